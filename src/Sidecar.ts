// Deep imports: the package's index also loads the cluster, RPC and worker modules.
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Config, Duration, Effect, Exit, Layer, Option, References } from "effect"
import { createServer, type ServerResponse } from "node:http"
import { AppConfig, describeConfigError, LogConfig, ShutdownTimeout } from "./Config.js"
import { Engine } from "./engine/Engine.js"
import { Readiness } from "./engine/Readiness.js"
import { ResumeGate } from "./engine/Recovery.js"
import type { TaskHandlers } from "./engine/TaskHandlers.js"
import { Commands } from "./handlers/RunCommand.js"
import { httpLayer } from "./http/Http.js"
import { loggerFor } from "./Logging.js"
import { Metrics } from "./Metrics.js"
import { Shutdown } from "./Shutdown.js"
import { BackgroundCheckpoints } from "./store/Checkpointer.js"
import { SqlLive } from "./store/Sql.js"

/** Answer `error` as JSON and close the connection, where the platform does not answer. */
const answerJson = (response: ServerResponse, status: number, tag: string, error: string) => {
  const body = JSON.stringify({ _tag: tag, error })
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    connection: "close"
  })
  response.end(body)
}

const rawJson = (status: number, reason: string, tag: string, error: string) => {
  const body = JSON.stringify({ _tag: tag, error })
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${
    Buffer.byteLength(body)
  }\r\n` +
    `Connection: close\r\n\r\n${body}`
}

/**
 * Node's HTTP server, answering with a JSON `error` where Node on its own would answer bare or not at all (findings
 * of test/Hostile.test.ts): malformed requests, CONNECT, unknown `Expect` values, and requests carrying `Upgrade`.
 */
export const createHttpServer = () => {
  // Node would refuse a request without Host with a bare 400; the API's middleware refuses it with a JSON one.
  const server = createServer({ requireHostHeader: false })
  // The API has no WebSocket. With an `upgrade` listener (the platform adds one), Node diverts every request with an
  // Upgrade header to it and its body is never read: `curl --http2 -d ... http://` sends `Upgrade: h2c`. Without
  // one, Node hands such requests to the normal handler.
  const on = server.on.bind(server)
  server.on =
    ((event: string, listener: (...args: Array<any>) => void) =>
      event === "upgrade" ? server : on(event, listener)) as typeof server.on
  // The platform adds its request listener after the server listens, and removes it before it closes the server at
  // shutdown. A request in between (a client polling on a keep-alive connection while the sidecar stops) got no
  // answer, and its connection, left open, held the shutdown up until the watchdog (found by test/Shutdown.test.ts
  // in CI). Such a request is answered 503 and its connection closed.
  server.on("request", (_request, response) => {
    if (server.listenerCount("request") === 1) {
      answerJson(response, 503, "NotServing", "not serving requests (starting or shutting down); try again")
    }
  })
  server.on(
    "connect",
    (_request, socket) => socket.end(rawJson(405, "Method Not Allowed", "MethodNotAllowed", "CONNECT is not supported"))
  )
  server.on(
    "checkExpectation",
    (request, response) =>
      answerJson(response, 417, "ExpectationFailed", `unsupported Expect: ${request.headers.expect}`)
  )
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    if (error.code === "ECONNRESET" || !socket.writable) return socket.destroy()
    socket.end(
      error.code === "HPE_HEADER_OVERFLOW"
        ? rawJson(431, "Request Header Fields Too Large", "HeadersTooLarge", "request headers too large")
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? rawJson(408, "Request Timeout", "RequestTimeout", "request not received in time")
        : rawJson(400, "Bad Request", "InvalidRequest", "malformed HTTP request")
    )
  })
  return server
}

const ServerLive = Layer.unwrap(Effect.gen(function*() {
  const config = yield* AppConfig
  return NodeHttpServer.layer(createHttpServer, {
    port: config.port,
    host: config.listen.host,
    // requests in flight get half the shutdown's time to end; the runs and the database get the rest
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

/**
 * On the first signal, tell whoever waits on Shutdown (long polls) and arm a backstop: the graceful path (drain
 * requests, stop runs, close the database) is bounded on its own, but a stuck finalizer must not outlive
 * SIDECAR_SHUTDOWN_TIMEOUT_SECONDS.
 */
const ShutdownWatchdog = Layer.effectDiscard(
  Effect.gen(function*() {
    const timeout = yield* ShutdownTimeout
    const shutdown = yield* Shutdown
    // A second signal stops the process at once, as the signal's default does: every listener goes first.
    const second = (signal: NodeJS.Signals) => {
      process.removeAllListeners("SIGTERM").removeAllListeners("SIGINT")
      process.kill(process.pid, signal)
    }
    const arm = () => {
      process.once("SIGTERM", second).once("SIGINT", second)
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

/**
 * The whole sidecar, configured from the environment, with your registry of task handlers (which may use the
 * Readiness and Commands services the sidecar provides).
 */
export const SidecarLive = <E>(handlers: Layer.Layer<TaskHandlers, E, Readiness | Commands>) =>
  // Provided outermost, the engine is built before the server listens and closed after it has drained; the runs a
  // previous process left resume once the server listens, and checkpoints move off the event loop then too (they
  // stop before the database closes).
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

/** One line: the error's message, then its causes' (a failed migration says why only in its cause). */
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

/** A start that failed: one line on stderr that says why, and a non-zero exit. */
const refuseStart = (cause: Cause.Cause<unknown>) =>
  Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.sync(() => {
    process.stderr.write(`sidecar: cannot start: ${describe(Cause.squash(cause))}\n`)
    process.exitCode = 1
  })

/** Run the sidecar until SIGTERM/SIGINT, logging to stdout as SIDECAR_LOG_FORMAT says. */
export const runSidecar = <E>(handlers: Layer.Layer<TaskHandlers, E, Readiness | Commands>) =>
  Layer.launch(SidecarLive(handlers)).pipe(
    // A bad setting or an unusable database stops startup; a defect is logged first, with the configured logger.
    Effect.catchCause((cause) =>
      Effect.andThen(Cause.hasDies(cause) ? Effect.logFatal("sidecar stopped", cause) : Effect.void, refuseStart(cause))
    ),
    Effect.provide(LoggingLive),
    // what is left is a logging setting that stopped the logger itself from being made
    Effect.catchCause(refuseStart),
    // Nothing exports traces, so spans would be pure cost.
    Effect.provideService(References.TracerEnabled, false),
    // SIGTERM/SIGINT is how the sidecar is meant to stop: exit 0 (a start that failed has set exitCode 1)
    NodeRuntime.runMain({
      disableErrorReporting: true,
      teardown: (exit, onExit) =>
        onExit(Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause) ? 1 : (process.exitCode as number) ?? 0)
    })
  )
