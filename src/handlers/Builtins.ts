// Part handlers/: the built-in task types, written as users' are. Imports engine/ and the shared modules.
import { Effect, Schema } from "effect"
import { readinessTypes } from "../engine/Engine.js"
import { Readiness } from "../engine/Readiness.js"
import { taskHandler } from "../engine/TaskHandlers.js"
import { awaitHttp } from "./AwaitHttp.js"
import { runCommand } from "./RunCommand.js"

/** No params: absent, null or {}; anything else is a 400. */
export const NoParams = Schema.Unknown.check(
  Schema.makeFilter((p) =>
    p === undefined || p === null || (typeof p === "object" && !Array.isArray(p) && Object.keys(p).length === 0) ||
    "this task type takes no params"
  )
)

export const markReady = taskHandler({
  name: readinessTypes.ready,
  params: NoParams,
  result: Schema.Void,
  run: () => Effect.flatMap(Readiness, (r) => r.set(true))
})

export const markNotReady = taskHandler({
  name: readinessTypes.notReady,
  params: NoParams,
  result: Schema.Void,
  run: () => Effect.flatMap(Readiness, (r) => r.set(false))
})

/** The built-in task types; pass them to `TaskHandlers.layer` with your own. */
export const builtinHandlers = [markReady, markNotReady, runCommand, awaitHttp] as const
