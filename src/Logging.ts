import { Cause, HashMap, Layer, Logger } from "effect"
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

/**
 * One JSON object a line on stdout: message, logLevel, timestamp, and annotations and cause when there are any.
 * Written straight to stdout: Effect's own Logger.json formats more (spans, fiber ids) and goes through console.log,
 * which together cost several times as much per line.
 */
export const jsonLines = Logger.make(({ annotations, cause, date, logLevel, message }) => {
  const line: Record<string, unknown> = {
    message: messageOf(message),
    logLevel: logLevel.label,
    timestamp: date.toISOString()
  }
  if (HashMap.size(annotations) > 0) line.annotations = Object.fromEntries(annotations)
  if (!Cause.isEmpty(cause)) line.cause = Cause.pretty(cause)
  if (unwritten === "") {
    flushOnExit()
    queueMicrotask(writeOut)
  }
  unwritten += `${stringify(line)}\n`
})

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
