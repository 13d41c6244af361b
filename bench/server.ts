// The real sidecar as a user builds their own (README, "Your own sidecar"): the built-in task types plus one
// that does nothing, so the benchmark measures the engine and not a handler.
import { Effect } from "effect"
import { builtinHandlers, NoParams, runSidecar, taskHandler, TaskHandlers } from "../src/index.js"

/** Completes at once with no result. */
export const noop = taskHandler({ name: "noop", params: NoParams, run: () => Effect.void })

runSidecar(TaskHandlers.layer(...builtinHandlers, noop))
