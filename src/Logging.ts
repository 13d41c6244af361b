import {
  Cause,
  Clock,
  Context,
  Effect,
  type Fiber,
  FiberRef,
  HashMap,
  HashSet,
  Inspectable,
  Layer,
  Logger,
  LogLevel,
  Option,
  Tracer
} from "effect"
import type { LogConfig } from "./Config.js"
import type { Config } from "effect"

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
  const line: Record<string, unknown> = { message, logLevel: level.label, timestamp: date.toISOString() }
  if (annotations !== undefined) line.annotations = annotations
  if (!Cause.isEmpty(cause)) line.cause = Cause.pretty(cause)
  if (unwritten === "") {
    flushOnExit()
    queueMicrotask(writeOut)
  }
  unwritten += `${stringify(line)}\n`
}

/**
 * One JSON object a line on stdout: message, logLevel, timestamp, and annotations and cause when there are any.
 * Written straight to stdout: Effect's own Logger.json formats more (spans, fiber ids) and goes through console.log,
 * which together cost several times as much per line.
 */
export const jsonLines = Logger.make(({ annotations, cause, date, logLevel, message }) =>
  writeLine(
    messageOf(message),
    logLevel,
    date,
    HashMap.size(annotations) > 0 ? Object.fromEntries(annotations) : undefined,
    cause
  )
)

// Whether the fiber's loggers are jsonLines and at most Effect's tracerLogger (there by default, and a no-op outside
// a span), for the set last seen: a runtime keeps the same set.
let loggersSeen: HashSet.HashSet<Logger.Logger<unknown, any>> | undefined
let jsonLinesOnly = false
const onlyJsonLines = (loggers: HashSet.HashSet<Logger.Logger<unknown, any>>) => {
  if (loggers !== loggersSeen) {
    loggersSeen = loggers
    jsonLinesOnly = HashSet.has(loggers, jsonLines) &&
      HashSet.size(HashSet.remove(HashSet.remove(loggers, jsonLines), Logger.tracerLogger)) === 0
  }
  return jsonLinesOnly
}

/**
 * The line `Effect.logWithLevel(level, message)` wrapped in `Effect.annotateLogs(annotations)` writes (the fiber's
 * own annotations with these added, its log level filter, its clock, every logger), made without annotateLogs: that
 * sets the fiber's annotations for the one line and sets them back, copying all of the fiber's refs and comparing
 * annotation maps each time, which cost twice what the line itself does on every task's path (measured 11 µs a line
 * against 5 µs; 6 µs against 0.3 µs for a debug line the level filters out).
 *
 * Where jsonLines is the only logger that acts (as deployed: Effect's tracerLogger acts only within a span), the line
 * is written to it directly: the options every logger is given (a copy of the fiber's refs among them) and the
 * annotations merged into a map are made for nothing there, and two lines a task (resumed, completed) made a third of
 * crash recovery's time after listening. The line is the same: jsonLines does not redact (JSON.stringify ignores
 * Redactable), so it needs no redactable context either.
 */
export const logAnnotated = (
  level: LogLevel.LogLevel,
  message: string,
  annotations: Readonly<Record<string, unknown>>,
  cause: Cause.Cause<unknown> = Cause.empty
): Effect.Effect<void> =>
  Effect.withFiberRuntime((fiber) => {
    logFrom(fiber, level, message, annotations, cause)
    return Effect.void
  })

/** The time on the fiber's clock, read by code that already runs in it. */
export const millisOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>): number =>
  Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis()

/** `logAnnotated`'s line, written at once on behalf of `fiber` (by code that already runs in it, synchronously). */
export const logFrom = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  level: LogLevel.LogLevel,
  message: string,
  annotations: Readonly<Record<string, unknown>>,
  cause: Cause.Cause<unknown> = Cause.empty
): void => {
  if (LogLevel.greaterThan(fiber.getFiberRef(FiberRef.currentMinimumLogLevel), level)) return
  const loggers = fiber.getFiberRef(FiberRef.currentLoggers)
  if (HashSet.size(loggers) === 0) return
  const own = fiber.getFiberRef(FiberRef.currentLogAnnotations)
  const date = new Date(millisOf(fiber))
  if (onlyJsonLines(loggers) && Option.isNone(Context.getOption(fiber.currentContext, Tracer.ParentSpan))) {
    const fields: Record<string, unknown> = {}
    let any = false
    HashMap.forEach(own, (value, key) => {
      fields[key] = value
      any = true
    })
    for (const key in annotations) {
      fields[key] = annotations[key]
      any = true
    }
    writeLine(message, level, date, any ? fields : undefined, cause)
    return
  }
  let all = own
  for (const [key, value] of Object.entries(annotations)) all = HashMap.set(all, key, value)
  const options = {
    fiberId: fiber.id(),
    logLevel: level,
    message: [message],
    cause,
    context: fiber.getFiberRefs(),
    spans: fiber.getFiberRef(FiberRef.currentLogSpan),
    annotations: all,
    date
  }
  Inspectable.withRedactableContext(options.context, () => {
    for (const logger of loggers) logger.log(options)
  })
}

/** The logger SIDECAR_LOG_FORMAT and SIDECAR_LOG_LEVEL ask for. */
export const loggerFor = ({ format, level }: Config.Config.Success<typeof LogConfig>) =>
  Layer.merge(
    format === "json"
      ? Logger.replace(Logger.defaultLogger, jsonLines)
      : format === "logfmt"
      ? Logger.logFmt
      : Logger.pretty,
    Logger.minimumLogLevel(level)
  )
