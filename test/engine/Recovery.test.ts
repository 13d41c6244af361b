import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { Engine } from "../../src/engine/Engine.js"
import { ResumeGate } from "../../src/engine/Recovery.js"
import { probeTask, reExecutionLeftRunning, settled, started } from "../support/engine.js"
import { Probe, SqlMemory, SqlTest, withFreshEngine } from "../support/layers.js"

const ID = "6f9619ff-8b86-4011-b42d-00c04fc964ff"

describe("shutdown and recovery", () => {
  it.effect("shutdown interrupts runs and leaves them running; the next start resumes them with run unchanged", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("resume")
      yield* withFreshEngine(Effect.andThen(probeTask("resume", { hold: true }, ID), started("resume", 1)))
      // the engine is gone: its run was interrupted, nothing was written
      expect(probe.interruptions("resume")).toBe(1)
      const sql = yield* SqlClient.SqlClient
      expect(yield* sql`SELECT status, run FROM task_results WHERE id = ${ID}`).toEqual([{ status: "running", run: 1 }])

      yield* probe.release("resume")
      const resumed = yield* withFreshEngine(settled(ID))
      expect(resumed).toMatchObject({ status: "completed", run: 1 })
      expect(probe.runs("resume")).toBe(2)
    }).pipe(Effect.provide(Layer.merge(SqlTest, Probe.layer))))

  it.effect("with a resume gate (the server's), runs left running resume only once it opens", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("gated")
      yield* withFreshEngine(Effect.andThen(probeTask("gated", { hold: true }, ID), started("gated", 1)))
      yield* probe.release("gated")
      const gate = yield* Deferred.make<void>()
      const resumed = yield* withFreshEngine(Effect.gen(function*() {
        // the engine has started; had it forked the resumption unconditionally, these turns would have run it
        for (let i = 0; i < 50; i++) yield* Effect.yieldNow
        expect(probe.runs("gated")).toBe(1)
        expect(yield* Effect.flatMap(Engine, (e) => e.get(ID))).toMatchObject({ status: "running", run: 1 })
        yield* Deferred.succeed(gate, undefined)
        return yield* settled(ID)
      })).pipe(Effect.provideService(ResumeGate, gate))
      expect(resumed).toMatchObject({ status: "completed", run: 1 })
      expect(probe.runs("gated")).toBe(2)
    }).pipe(Effect.provide(Layer.merge(SqlTest, Probe.layer))))

  it.effect("a resumed re-execution keeps its run number", () =>
    Effect.gen(function*() {
      yield* reExecutionLeftRunning("again", ID)
      expect(yield* withFreshEngine(settled(ID))).toMatchObject({ status: "completed", run: 2 })
    }).pipe(Effect.provide(Layer.merge(SqlTest, Probe.layer))))

  it.effect("a running row whose type has no handler is marked failed as the engine starts", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO task_results (id, type, status, params, submitted_at, run)
        VALUES (${ID}, 'retired-type', 'running', NULL, '2026-01-01T00:00:00.000Z', 3)`
      const task = yield* withFreshEngine(settled(ID))
      expect(task).toMatchObject({
        status: "failed",
        run: 3,
        error: "no handler registered for task type: retired-type"
      })
      expect(task.completedAt).toBeDefined()
    }).pipe(Effect.provide(Layer.merge(SqlMemory, Probe.layer))))

  it.effect("more runs left running than resume at once all resume: each one that ends lets the next in", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const ids = Array.from({ length: 150 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`)
      for (const [i, id] of ids.entries()) {
        yield* sql`INSERT INTO task_results (id, type, status, params, submitted_at, run)
          VALUES (${id}, 'test', 'running', ${JSON.stringify({ key: `k${i}` })}, '2026-01-01T00:00:00.000Z', 1)`
      }
      const tasks = yield* withFreshEngine(Effect.forEach(ids, settled))
      expect(tasks.every((t) => t.status === "completed" && t.run === 1)).toBe(true)
    }).pipe(Effect.provide(Layer.merge(SqlMemory, Probe.layer))))
})
