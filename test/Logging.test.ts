import { expect, it } from "@effect/vitest"
import { Cause, Effect, Logger, type LogLevel, References } from "effect"
import { Headers } from "effect/http"
import { TestClock } from "effect/testing"
import { jsonLines, logAnnotated } from "../src/Logging.js"

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
    const capture = Logger.make(({ cause, date, fiber, logLevel, message }) =>
      lines.push({
        level: logLevel,
        message,
        annotations: { ...fiber.getRef(References.CurrentLogAnnotations) },
        cause: Cause.pretty(cause),
        time: date.getTime()
      })
    )
    yield* program.pipe(
      Effect.provide(Logger.layer([capture])),
      Effect.provideService(References.MinimumLogLevel, minimum)
    )
    return lines
  })

it.effect("logAnnotated writes the line annotateLogs around a log would, leaving the fiber's annotations alone", () =>
  Effect.gen(function*() {
    yield* TestClock.setTime(86_400_000)
    const failure = Cause.fail("boom")
    const annotated = { taskId: "t-1", run: 2 }
    const withEffect = Effect.annotateLogs(
      Effect.andThen(
        Effect.logInfo("task submitted").pipe(Effect.annotateLogs(annotated)),
        Effect.logError("task failed", failure).pipe(Effect.annotateLogs({ elapsedMs: 5 }))
      ),
      "service",
      "sidecar"
    )
    const withOurs = Effect.annotateLogs(
      Effect.andThen(
        logAnnotated("Info", "task submitted", annotated),
        logAnnotated("Error", "task failed", { elapsedMs: 5 }, failure)
      ),
      "service",
      "sidecar"
    )
    const expected = yield* linesOf(withEffect, "Info")
    expect(expected).toHaveLength(2)
    expect(expected[0]).toMatchObject({ annotations: { service: "sidecar", taskId: "t-1", run: 2 }, time: 86_400_000 })
    expect(yield* linesOf(withOurs, "Info")).toEqual(expected)

    const after = yield* Effect.andThen(
      logAnnotated("Info", "x", { taskId: "t-2" }),
      References.CurrentLogAnnotations
    )
    expect("taskId" in after).toBe(false)
  }))

it.effect("logAnnotated keeps to the level filter", () =>
  Effect.gen(function*() {
    const lines = yield* linesOf(
      Effect.andThen(
        logAnnotated("Debug", "task deduplicated", { run: 1 }),
        logAnnotated("Warn", "w", {})
      ),
      "Info"
    )
    expect(lines.map((l) => [l.level, l.message])).toEqual([["Warn", ["w"]]])
  }))

/** What `program` writes to stdout with jsonLines as the only logger, as JSON objects (lines jsonLines writes). */
const jsonLinesOf = <E>(program: Effect.Effect<void, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const original = process.stdout.write
      const chunks: Array<string> = []
      process.stdout.write = ((chunk: unknown) => chunks.push(String(chunk)) > 0) as typeof process.stdout.write
      return { original, chunks }
    }),
    ({ chunks }) =>
      program.pipe(
        Effect.provide(Logger.layer([jsonLines])),
        // jsonLines writes in a microtask: whatever the program logged is out once the next macrotask runs
        Effect.andThen(Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))),
        Effect.map(() =>
          chunks.join("").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as unknown)
        )
      ),
    ({ original }) => Effect.sync(() => void (process.stdout.write = original))
  )

it.effect("with jsonLines alone (as deployed), logAnnotated writes the JSON line annotateLogs around a log does", () =>
  Effect.gen(function*() {
    yield* TestClock.setTime(86_400_000)
    const failure = Cause.fail("boom")
    // Redactable, which only loggers that print with Inspectable redact: the same line either way
    const headers = Headers.fromInput({ authorization: "Bearer secret", accept: "*/*" })
    const withEffect = Effect.annotateLogs(
      Effect.all([
        Effect.logInfo("task submitted").pipe(Effect.annotateLogs({ taskId: "t-1", run: 2 })),
        Effect.logError("task failed", failure).pipe(Effect.annotateLogs({ elapsedMs: 5, service: "overridden" })),
        Effect.logWarning("headers").pipe(Effect.annotateLogs({ headers })),
        Effect.annotateLogs(Effect.logInfo("bare"), {})
      ]),
      "service",
      "sidecar"
    )
    const withOurs = Effect.annotateLogs(
      Effect.all([
        logAnnotated("Info", "task submitted", { taskId: "t-1", run: 2 }),
        logAnnotated("Error", "task failed", { elapsedMs: 5, service: "overridden" }, failure),
        logAnnotated("Warn", "headers", { headers }),
        logAnnotated("Info", "bare", {})
      ]),
      "service",
      "sidecar"
    )
    const expected = yield* jsonLinesOf(withEffect)
    expect(expected).toHaveLength(4)
    expect(expected[0]).toEqual({
      message: "task submitted",
      logLevel: "INFO",
      timestamp: "1970-01-02T00:00:00.000Z",
      annotations: { service: "sidecar", taskId: "t-1", run: 2 }
    })
    expect(yield* jsonLinesOf(withOurs)).toEqual(expected)
    // no annotations at all: no annotations field
    const alone = { message: "alone", logLevel: "INFO", timestamp: "1970-01-02T00:00:00.000Z" }
    expect(yield* jsonLinesOf(Effect.andThen(Effect.logInfo("alone"), logAnnotated("Info", "alone", {}))))
      .toEqual([alone, alone])
  }))
