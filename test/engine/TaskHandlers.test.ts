import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { Engine } from "../../src/engine/Engine.js"
import { Readiness } from "../../src/engine/Readiness.js"
import { taskHandler, TaskHandlers } from "../../src/engine/TaskHandlers.js"
import { NoParams } from "../../src/handlers/Builtins.js"
import { Metrics } from "../../src/Metrics.js"
import { Shutdown } from "../../src/Shutdown.js"
import { settled, submit } from "../support/engine.js"
import { EngineTest, Probe, SqlMemory } from "../support/layers.js"
import { untilSleeping } from "../support/wait.js"

describe("task handlers", () => {
  class Greeting extends Context.Service<Greeting, string>()("test/Greeting") {}
  const greet = taskHandler({ name: "greet", params: NoParams, run: () => Effect.service(Greeting) })
  const handlers = TaskHandlers.layer(greet).pipe(Layer.provide(Layer.succeed(Greeting, "the handlers' layer's")))

  it.effect("a run has the services its handlers' layer was given, over the engine's own of the same tag", () =>
    Effect.gen(function*() {
      const { id } = yield* submit({ type: "greet" })
      expect(yield* settled(id)).toMatchObject({ status: "completed", result: "the handlers' layer's" })
    }).pipe(Effect.provide(Engine.layer.pipe(
      Layer.provideMerge(handlers),
      Layer.provideMerge(
        Layer.mergeAll(Readiness.layer, Metrics.layer, Shutdown.layer, Layer.succeed(Greeting, "the engine's"))
      ),
      Layer.provideMerge(SqlMemory)
    ))))
})

describe("handler timeouts and typed results", () => {
  it.effect("a run past its handler's timeout is interrupted and fails with a retryable 'timed out after N s'", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("t")
      const { id } = yield* submit({ type: "test-timed", params: { key: "t" } })
      expect(yield* untilSleeping(1_000)).toBe(true)
      yield* TestClock.adjust("1 second")
      expect(yield* settled(id)).toMatchObject({ status: "failed", error: "test-timed: run: timed out after 1 s" })
      yield* probe.release("t")
    }).pipe(Effect.provide(EngineTest)))

  it.effect("a result is stored encoded by its schema; one that does not fit fails the run", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("1 second")
      const ok = yield* submit({ type: "test-typed", params: { n: 21 } })
      expect((yield* settled(ok.id)).result).toEqual({ doubled: 42, at: "1970-01-01T00:00:01.000Z" })
      const bad = yield* submit({ type: "test-typed", params: { n: 0.25 } })
      const failed = yield* settled(bad.id)
      expect(failed.status).toBe("failed")
      expect(failed.error).toMatch(/^test-typed: result: the handler's result does not fit its schema: doubled: /)
    }).pipe(Effect.provide(EngineTest)))
})
