// Part handlers/: the built-in task types (mark-ready and mark-not-ready here; RunCommand.ts, AwaitHttp.ts), written
// as any user's own handlers are. Imports engine/ (the registry, Readiness) and the shared modules.
import { Effect, Schema } from "effect"
import { readinessTypes } from "../engine/Engine.js"
import { Readiness } from "../engine/Readiness.js"
import { taskHandler } from "../engine/TaskHandlers.js"
import { awaitHttp } from "./AwaitHttp.js"
import { runCommand } from "./RunCommand.js"

/** For task types that take no params: absent, null or {} are all accepted, anything else is a 400. */
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

/** The task types every sidecar has; pass them to `TaskHandlers.layer` along with your own. */
export const builtinHandlers = [markReady, markNotReady, runCommand, awaitHttp] as const
