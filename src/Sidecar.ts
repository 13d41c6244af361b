import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Cause, ConfigError, Effect, Layer, Logger } from "effect"
import { createServer } from "node:http"
import { AppConfig } from "./Config.js"
import { Engine } from "./Engine.js"
import { HttpLive } from "./Http.js"
import { Readiness } from "./Readiness.js"
import { Commands } from "./RunCommand.js"
import { SqlLive } from "./Sql.js"
import type { TaskHandlers } from "./TaskHandlers.js"

const ServerLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) => NodeHttpServer.layer(createServer, { port: config.port, host: config.listen.host }))
)

/**
 * The whole sidecar, configured from the environment, with your registry of task handlers (which may use the
 * Readiness and Commands services the sidecar provides).
 */
export const SidecarLive = <E>(handlers: Layer.Layer<TaskHandlers, E, Readiness | Commands>) =>
  // Provided outermost, the engine is built before the server listens and closed after it has drained.
  HttpLive.pipe(
    Layer.provide(ServerLive),
    Layer.provide(Engine.Default),
    Layer.provide(handlers),
    Layer.provide([Readiness.Default, Commands.Live, SqlLive])
  )

const describe = (error: unknown): string =>
  ConfigError.isConfigError(error)
    ? String(error)
    : error instanceof Error && error.message !== ""
    ? error.message
    : typeof error === "object" && error !== null && "cause" in error
    ? describe(error.cause)
    : String(error)

/** Run the sidecar until SIGTERM/SIGINT, logging JSON lines to stdout. */
export const runSidecar = <E>(handlers: Layer.Layer<TaskHandlers, E, Readiness | Commands>) =>
  Layer.launch(SidecarLive(handlers)).pipe(
    // A bad setting or an unusable database stops startup with one line that says why, and a non-zero exit.
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause) ? Effect.void : Effect.gen(function*() {
        if (Cause.isDie(cause)) yield* Effect.logFatal("sidecar stopped", cause)
        process.stderr.write(`sidecar: cannot start: ${describe(Cause.squash(cause))}\n`)
        process.exitCode = 1
      })
    ),
    Effect.provide(Logger.json),
    NodeRuntime.runMain({ disablePrettyLogger: true })
  )
