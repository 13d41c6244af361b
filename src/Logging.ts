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

// Lines logged in one run of fiber work (one batch of submits, say) are written together, in a microtask queued by
// the first of them: one write(2) instead of one a line, and still before any answer those fibers then send. A process
// that exits writes what is left.
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

/** A log line as jsonLines writes it: message, logLevel, timestamp, and annotations and cause when there are any. */
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

/**
 * One JSON object a line on stdout: message, logLevel, timestamp, and annotations and cause when there are any.
 * Written straight to stdout: Effect's own JSON logger formats more (spans, fiber ids) and goes through console.log,
 * which together cost several times as much per line.
 */
export const jsonLines = Logger.make(({ cause, date, fiber, logLevel, message }) => {
  const annotations = fiber.getRef(References.CurrentLogAnnotations)
  writeLine(messageOf(message), logLevel, date, hasAny(annotations) ? annotations : undefined, cause)
})

const hasAny = (record: Readonly<Record<string, unknown>>) => {
  for (const _ in record) return true
  return false
}

/**
 * The line `Effect.logWithLevel(level)(message)` wrapped in `Effect.annotateLogs(annotations)` writes (the fiber's own
 * annotations with these added, its log level filter, its clock, every logger), written at once by code that already
 * runs in the fiber, without an effect of its own. Where jsonLines is the only logger (as deployed), the line goes to
 * it directly; otherwise every logger is given it with the fiber's annotations and these set for the one line.
 */
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

/** `logFrom` as an effect, for code that is not already running synchronously in the fiber. */
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

/** The time on the fiber's clock, read by code that already runs in it. */
export const millisOf = (fiber: Fiber.Fiber<unknown, unknown>): number =>
  fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()

/** How a level is written in a line, as Effect 3 wrote it (the lines' shape is part of the interface). */
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
