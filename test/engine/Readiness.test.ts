import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { Engine } from "../../src/engine/Engine.js"
import { probeTask, settled, submit } from "../support/engine.js"
import { EngineTest, Probe, SqlMemory, withFreshEngine } from "../support/layers.js"

const ID = "6f9619ff-8b86-4011-b42d-00c04fc964ff"

describe("readiness", () => {
  it.effect("mark-ready makes the sidecar ready, a failing task later does not undo it, mark-not-ready does", () =>
    Effect.gen(function*() {
      const engine = yield* Engine
      expect(yield* engine.ready).toBe(false)
      yield* settled((yield* submit({ type: "mark-ready" })).id)
      expect(yield* engine.ready).toBe(true)
      yield* settled((yield* probeTask("x", { fail: "bad" })).id)
      expect(yield* engine.ready).toBe(true)
      yield* settled((yield* submit({ type: "mark-not-ready" })).id)
      expect(yield* engine.ready).toBe(false)
    }).pipe(Effect.provide(EngineTest)))

  it.effect("after a restart, readiness is whichever of mark-ready / mark-not-ready completed last", () =>
    Effect.gen(function*() {
      const ready = Effect.flatMap(Engine, (e) => e.ready)
      yield* withFreshEngine(Effect.gen(function*() {
        yield* settled((yield* submit({ type: "mark-ready" })).id)
      }))
      expect(yield* withFreshEngine(ready)).toBe(true)
      yield* TestClock.adjust("1 second")
      yield* withFreshEngine(Effect.gen(function*() {
        yield* settled((yield* submit({ type: "mark-not-ready" })).id)
      }))
      expect(yield* withFreshEngine(ready)).toBe(false)
      yield* TestClock.adjust("1 second")
      // a deterministic-id mark-ready submitted again after restart is deduplicated, and still counts
      yield* withFreshEngine(Effect.andThen(submit({ id: ID, type: "mark-ready" }), settled(ID)))
      expect(yield* withFreshEngine(Effect.map(submit({ id: ID, type: "mark-ready" }), (o) => o._tag)))
        .toBe("Deduplicated")
      expect(yield* withFreshEngine(ready)).toBe(true)
    }).pipe(Effect.provide(Layer.merge(SqlMemory, Probe.layer))))
})
