import { builtinHandlers } from "./Builtins.js"
import { TaskHandlers } from "./TaskHandlers.js"

const handlers = TaskHandlers.layer(...builtinHandlers)
const command = process.argv.slice(2)
// `sidecar` and `sidecar serve` start the server straight away: the CLI and its HTTP client are loaded only for the
// other commands (and `--help`), which a start would otherwise parse for nothing.
if (command.length === 0 || (command.length === 1 && command[0] === "serve")) {
  const { runSidecar } = await import("./Sidecar.js")
  runSidecar(handlers)
} else {
  const { runCli } = await import("./Cli.js")
  runCli(handlers, process.argv)
}
