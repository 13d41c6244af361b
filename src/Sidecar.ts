// The whole server as one layer, and runSidecar, which runs it as the process: config, logging, database, engine,
// HTTP, metrics and the shutdown sequence wired together.
// Deep imports: the package's index also loads the cluster, RPC and worker modules.
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Config, Duration, Effect, Exit, Layer, Option, References } from "effect"
import { AppConfig, describeConfigError, LogConfig, ShutdownTimeout } from "./Config.js"
import { Engine } from "./engine/Engine.js"
import { Readiness } from "./engine/Readiness.js"
import { ResumeGate } from "./engine/Recovery.js"
import type { TaskHandlers } from "./engine/TaskHandlers.js"
import { Commands } from "./handlers/RunCommand.js"
import { httpLayer } from "./http/Http.js"
import { createHttpServer } from "./http/NodeServer.js"
import { loggerFor } from "./Logging.js"
import { Metrics } from "./Metrics.js"
import { Shutdown } from "./Shutdown.js"
import { BackgroundCheckpoints } from "./store/Checkpointer.js"
import { SqlLive } from "./store/Database.js"

const ServerLive = Layer.unwrap(Effect.gen(function*() {
  const config = yield* AppConfig
  return NodeHttpServer.layer(createHttpServer, {
    port: config.port,
    host: config.listen.host,
    // half the shutdown's time for requests in flight, the rest for runs and the database
    gracefulShutdownTimeout: Duration.times(config.shutdownTimeout, 0.5)
  })
}))

const HttpFromConfig = Layer.unwrap(Effect.gen(function*() {
  return httpLayer((yield* AppConfig).listen.authnMode)
}))

const MetricsLive = Layer.effectDiscard(Effect.flatMap(Metrics, (m) => m.collectProcessMetrics)).pipe(
  Layer.provideMerge(Metrics.layer)
)

const LoggingLive = Layer.unwrap(Effect.gen(function*() {
  return loggerFor(yield* LogConfig)
}))

const StartupLog = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* AppConfig
  yield* Effect.logInfo("sidecar starting").pipe(
    Effect.annotateLogs({
      database: config.dbPath,
      authnMode: config.listen.authnMode,
      commandsFile: Option.getOrElse(config.commandsFile, () => "none"),
      shutdownTimeoutSeconds: Duration.toSeconds(config.shutdownTimeout),
      retentionHours: Option.match(config.retention, { onNone: () => 0, onSome: Duration.toHours })
    })
  )
}))

/** On the first signal, say so, tell Shutdown (long polls) and arm a backstop against a stuck finalizer. */
const ShutdownWatchdog = Layer.effectDiscard(
  Effect.gen(function*() {
    const timeout = yield* ShutdownTimeout
    const shutdown = yield* Shutdown
    const run = Effect.runForkWith(yield* Effect.context<never>())
    // a second signal stops the process at once, as by default
    const second = (signal: NodeJS.Signals) => {
      process.removeAllListeners("SIGTERM").removeAllListeners("SIGINT")
      process.kill(process.pid, signal)
    }
    const arm = (signal: NodeJS.Signals) => {
      process.once("SIGTERM", second).once("SIGINT", second)
      run(
        Effect.logInfo("shutting down").pipe(
          Effect.annotateLogs({ signal, timeoutSeconds: Duration.toSeconds(timeout) })
        )
      )
      shutdown.beginUnsafe()
      setTimeout(() => {
        process.stderr.write(`sidecar: shutdown did not finish within ${Duration.format(timeout)}; exiting\n`)
        process.exit(1)
      }, Duration.toMillis(timeout)).unref()
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        process.once("SIGTERM", arm)
        process.once("SIGINT", arm)
      }),
      () =>
        Effect.sync(() => {
          process.off("SIGTERM", arm)
          process.off("SIGINT", arm)
        })
    )
  })
)

/** The whole sidecar, configured from the environment, over your task handlers. */
export const SidecarLive = <E>(handlers: Layer.Layer<TaskHandlers, E, Readiness | Commands>) =>
  // The engine is built before the server listens and closed after it drained; the runs a previous process left
  // resume, and checkpoints start, once the server listens (and stop before the database closes).
  Layer.merge(ResumeGate.open, BackgroundCheckpoints).pipe(
    Layer.provide(HttpFromConfig.pipe(
      Layer.provide(ServerLive),
      Layer.provide(Engine.layer),
      Layer.provide(handlers),
      Layer.provide([Readiness.layer, Commands.Live, MetricsLive]),
      Layer.provideMerge(SqlLive),
      Layer.provideMerge(ResumeGate.layer),
      Layer.provide(StartupLog),
      Layer.provide(ShutdownWatchdog),
      Layer.provide(Shutdown.layer)
    ))
  )

/** One line: the error's message, then its causes'. */
const describe = (error: unknown): string => {
  if (error instanceof Config.ConfigError) return describeConfigError(error)
  const message = error instanceof Error ? error.message : ""
  const cause = typeof error === "object" && error !== null && "cause" in error ? error.cause : undefined
  const why = cause === undefined || cause === null ? "" : describe(cause)
  return message === ""
    ? (why === "" ? String(error) : why)
    : why === "" || message.includes(why)
    ? message
    : `${message}: ${why}`
}

/** A start that failed: why on stderr, and exit code 1. */
const refuseStart = (cause: Cause.Cause<unknown>) =>
  Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.sync(() => {
    process.stderr.write(`sidecar: cannot start: ${describe(Cause.squash(cause))}\n`)
    process.exitCode = 1
  })

/** Run the sidecar until SIGTERM/SIGINT, logging to stdout as SIDECAR_LOG_FORMAT says. */
export const runSidecar = <E>(handlers: Layer.Layer<TaskHandlers, E, Readiness | Commands>) =>
  Layer.launch(SidecarLive(handlers)).pipe(
    // a signal interrupts the launch once every layer is released: the last line of a clean stop
    Effect.onInterrupt(() => Effect.logInfo("sidecar stopped")),
    // a bad setting or an unusable database stops startup; a defect is logged first
    Effect.catchCause((cause) =>
      Effect.andThen(Cause.hasDies(cause) ? Effect.logFatal("sidecar stopped", cause) : Effect.void, refuseStart(cause))
    ),
    Effect.provide(LoggingLive),
    // what is left: a logging setting the logger could not be made from
    Effect.catchCause(refuseStart),
    // nothing exports traces
    Effect.provideService(References.TracerEnabled, false),
    // SIGTERM/SIGINT is how the sidecar is meant to stop: exit 0, unless a start failed
    NodeRuntime.runMain({
      disableErrorReporting: true,
      teardown: (exit, onExit) =>
        onExit(Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause) ? 1 : (process.exitCode as number) ?? 0)
    })
  )
