import { TaskHandlers } from "./engine/TaskHandlers.js"
import { builtinHandlers } from "./handlers/Builtins.js"
import { launch } from "./Launch.js"

launch(TaskHandlers.layer(...builtinHandlers), process.argv)
