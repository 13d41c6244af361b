// What a program logs, captured line by line for a test to look at.
import { Layer, Logger, References } from "effect"

/** One captured line: its message (the first part, when it has several), level and annotations. */
export interface LogLine {
  readonly message: unknown
  readonly level: string
  readonly annotations: Record<string, unknown>
}

/** A logger layer that keeps every line, at debug and above, in `logs`. */
export const captureLogs = (logs: Array<LogLine>) =>
  Layer.merge(
    Logger.layer([
      Logger.make<unknown, void>(({ fiber, logLevel, message }) => {
        logs.push({
          message: Array.isArray(message) ? message[0] : message,
          level: logLevel,
          annotations: { ...fiber.getRef(References.CurrentLogAnnotations) }
        })
      })
    ]),
    Layer.succeed(References.MinimumLogLevel, "Debug")
  )
