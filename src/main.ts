import { builtinHandlers } from "./Builtins.js"
import { runCli } from "./Cli.js"
import { TaskHandlers } from "./TaskHandlers.js"

// `sidecar` with no command serves, so `node --import tsx src/main.ts` still starts the server.
runCli(TaskHandlers.layer(...builtinHandlers), process.argv)
