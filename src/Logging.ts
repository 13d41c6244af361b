// One logger, chosen by `loggerFor` (SIDECAR_LOG_FORMAT, SIDECAR_LOG_LEVEL), and two ways to hand it the same line:
// - `Effect.logInfo(...)` and the like, with `Effect.annotateLogs`: the default, for every line off the task hot paths
//   (startup, retention, store faults, request defects, handlers' own lines).
// - `logFrom(fiber, ...)`: the task lines of submits, runs and resumes, from code already running synchronously in
//   the fiber, so that a line costs no effect on those paths. `logAnnotated` is the same as an effect, for the task
//   lines of effect code (a delete, an orphan).
import type { Config } from "effect"
import { Cause, Clock, Context, Effect, type Fiber, Layer, Logger, LogLevel, References } from "effect"
import type { LogConfig } from "./Config.js"

const messageOf = (message: unknown) => (Array.isArray(message) && message.length === 1 ? message[0] : message)

const stringify = (line: Record<string, unknown>) => {
  try {
    return JSON.stringify(line)
  } catch {
    return JSON.stringify({ ...line, annotations: String(line.annotations) })
  }
}

// Lines are written together in a microtask, before any answer their fibers send.
let unwritten = ""
const writeOut = () => {
  const text = unwritten
  unwritten = ""
  if (text !== "") process.stdout.write(text)
}
let flushOnExit = () => {
  process.once("exit", writeOut)
  flushOnExit = () => {}
}

const writeLine = (
  message: unknown,
  level: LogLevel.LogLevel,
  date: Date,
  annotations: Record<string, unknown> | undefined,
  cause: Cause.Cause<unknown>
) => {
  const line: Record<string, unknown> = { message, logLevel: labels[level], timestamp: date.toISOString() }
  if (annotations !== undefined) line.annotations = annotations
  if (cause.reasons.length > 0) line.cause = Cause.pretty(cause)
  if (unwritten === "") {
    flushOnExit()
    queueMicrotask(writeOut)
  }
  unwritten += `${stringify(line)}\n`
}

/** One JSON object a line, straight to stdout, not through console.log (on every request's path). */
export const jsonLines = Logger.make(({ cause, date, fiber, logLevel, message }) => {
  const annotations = fiber.getRef(References.CurrentLogAnnotations)
  writeLine(messageOf(message), logLevel, date, hasAny(annotations) ? annotations : undefined, cause)
})

const hasAny = (record: Readonly<Record<string, unknown>>) => {
  for (const _ in record) return true
  return false
}

/** Write, from code running in `fiber`, the line `Effect.logWithLevel(level)(message)` with `annotations` would. */
export const logFrom = (
  fiber: Fiber.Fiber<unknown, unknown>,
  level: LogLevel.LogLevel,
  message: string,
  annotations: Readonly<Record<string, unknown>>,
  cause: Cause.Cause<unknown> = Cause.empty
): void => {
  if (LogLevel.isLessThan(level, fiber.getRef(References.MinimumLogLevel))) return
  const loggers = fiber.getRef(References.CurrentLoggers)
  if (loggers.size === 0) return
  const own = fiber.getRef(References.CurrentLogAnnotations)
  const all = hasAny(annotations) ? { ...own, ...annotations } : own
  const date = new Date(millisOf(fiber))
  if (loggers.size === 1 && loggers.has(jsonLines)) {
    writeLine(message, level, date, hasAny(all) ? all : undefined, cause)
    return
  }
  const context = fiber.context
  fiber.setContext(Context.add(context, References.CurrentLogAnnotations, all))
  try {
    for (const logger of loggers) logger.log({ message: [message], logLevel: level, cause, fiber, date })
  } finally {
    fiber.setContext(context)
  }
}

/** `logFrom` as an effect. */
export const logAnnotated = (
  level: LogLevel.LogLevel,
  message: string,
  annotations: Readonly<Record<string, unknown>>,
  cause: Cause.Cause<unknown> = Cause.empty
): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    logFrom(fiber, level, message, annotations, cause)
    return Effect.void
  })

/** The fiber's clock, read from code running in it. */
export const millisOf = (fiber: Fiber.Fiber<unknown, unknown>): number =>
  fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()

/** Levels as Effect 3 wrote them: the line's shape is an interface. */
const labels: Record<LogLevel.LogLevel, string> = {
  All: "ALL",
  Fatal: "FATAL",
  Error: "ERROR",
  Warn: "WARN",
  Info: "INFO",
  Debug: "DEBUG",
  Trace: "TRACE",
  None: "OFF"
}

/** The logger SIDECAR_LOG_FORMAT and SIDECAR_LOG_LEVEL ask for. */
export const loggerFor = ({ format, level }: Config.Success<typeof LogConfig>) =>
  Layer.merge(
    Logger.layer([
      format === "json"
        ? jsonLines
        : format === "logfmt"
        ? Logger.formatLogFmt.pipe(Logger.withConsoleLog)
        : Logger.consolePretty()
    ]),
    Layer.succeed(References.MinimumLogLevel, level)
  )
