import { builtinHandlers } from "./Builtins.js"
import { runSidecar } from "./Sidecar.js"
import { TaskHandlers } from "./TaskHandlers.js"

runSidecar(TaskHandlers.layer(...builtinHandlers))
