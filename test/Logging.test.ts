import { expect, it } from "@effect/vitest"
import { Cause, Effect, FiberRef, HashMap, Logger, LogLevel, TestClock } from "effect"
import { logAnnotated } from "../src/Logging.js"

interface Line {
  readonly level: string
  readonly message: unknown
  readonly annotations: Record<string, unknown>
  readonly cause: string
  readonly time: number
}

/** Every line the program logs, as the loggers see it, with `minimum` as the level filter. */
const linesOf = <E>(program: Effect.Effect<void, E>, minimum: LogLevel.LogLevel) =>
  Effect.gen(function*() {
    const lines: Array<Line> = []
    const capture = Logger.make(({ annotations, cause, date, logLevel, message }) =>
      lines.push({
        level: logLevel.label,
        message,
        annotations: Object.fromEntries(annotations),
        cause: Cause.pretty(cause),
        time: date.getTime()
      })
    )
    yield* program.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
      Logger.withMinimumLogLevel(minimum)
    )
    return lines
  })

it.effect("logAnnotated writes the line annotateLogs around a log would, leaving the fiber's annotations alone", () =>
  Effect.gen(function*() {
    yield* TestClock.setTime(86_400_000)
    const failure = Cause.fail("boom")
    const annotated = { taskId: "t-1", run: 2 }
    const withEffect = Effect.annotateLogs(
      Effect.zipRight(
        Effect.logInfo("task submitted").pipe(Effect.annotateLogs(annotated)),
        Effect.logError("task failed", failure).pipe(Effect.annotateLogs({ elapsedMs: 5 }))
      ),
      "service",
      "sidecar"
    )
    const withOurs = Effect.annotateLogs(
      Effect.zipRight(
        logAnnotated(LogLevel.Info, "task submitted", annotated),
        logAnnotated(LogLevel.Error, "task failed", { elapsedMs: 5 }, failure)
      ),
      "service",
      "sidecar"
    )
    const expected = yield* linesOf(withEffect, LogLevel.Info)
    expect(expected).toHaveLength(2)
    expect(expected[0]).toMatchObject({ annotations: { service: "sidecar", taskId: "t-1", run: 2 }, time: 86_400_000 })
    expect(yield* linesOf(withOurs, LogLevel.Info)).toEqual(expected)

    const after = yield* Effect.zipRight(
      logAnnotated(LogLevel.Info, "x", { taskId: "t-2" }),
      FiberRef.get(FiberRef.currentLogAnnotations)
    )
    expect(HashMap.has(after, "taskId")).toBe(false)
  }))

it.effect("logAnnotated keeps to the level filter", () =>
  Effect.gen(function*() {
    const lines = yield* linesOf(
      Effect.zipRight(
        logAnnotated(LogLevel.Debug, "task deduplicated", { run: 1 }),
        logAnnotated(LogLevel.Warning, "w", {})
      ),
      LogLevel.Info
    )
    expect(lines.map((l) => [l.level, l.message])).toEqual([["WARN", ["w"]]])
  }))
