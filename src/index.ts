/**
 * The package's public surface: what the author of task handlers needs to run a sidecar of their own, the layers the
 * README shows composed by hand, and what a client of a running sidecar needs. Everything else is internal.
 */
export { Readiness } from "./engine/Readiness.js"
export { type HandlerSource, type TaskHandler, taskHandler, TaskHandlers } from "./engine/TaskHandlers.js"
export { TaskError } from "./Errors.js"
export { awaitHttp } from "./handlers/AwaitHttp.js"
export { builtinHandlers, markNotReady, markReady, NoParams } from "./handlers/Builtins.js"
export { Commands, type CommandSpec, runCommand } from "./handlers/RunCommand.js"
export { runCli } from "./Launch.js"
export { runSidecar } from "./Sidecar.js"

export { Engine } from "./engine/Engine.js"
export { HttpLive } from "./http/Http.js"
export { Metrics } from "./Metrics.js"
export { BackgroundCheckpoints } from "./store/Checkpointer.js"
export { sqlLayer } from "./store/Database.js"

export { makeClient, type SidecarClient } from "./cli/Client.js"
export { ReadinessStatus, RunStart, SubmitTask, Task, TaskId, TaskRun, TaskStatus } from "./Domain.js"
export {
  InvalidParams,
  InvalidRequest,
  InvalidTaskId,
  NotReady,
  StoreError,
  TaskNotFound,
  UnknownTaskType
} from "./Errors.js"
export { Api } from "./http/Api.js"
