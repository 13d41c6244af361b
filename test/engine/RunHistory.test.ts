import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import { Engine } from "../../src/engine/Engine.js"
import { settled, started, submit } from "../support/engine.js"
import { EngineTest, getJson, HttpTest, Probe, SqlTest, withFreshEngine } from "../support/layers.js"

const ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

describe("run history", () => {
  it.effect("each run keeps its own outcome, how it started and when; later runs do not erase earlier failures", () =>
    Effect.gen(function*() {
      const engine = yield* Engine
      yield* submit({ id: ID, type: "test", params: { key: "h", fail: "first" } })
      yield* settled(ID)
      yield* TestClock.adjust("1 minute")
      yield* submit({ id: ID, type: "test", params: { key: "h", fail: "second" } })
      yield* settled(ID)
      yield* TestClock.adjust("1 minute")
      yield* submit({ id: ID, type: "test", params: { key: "h" } })
      yield* settled(ID)
      const runs = yield* engine.runs(ID)
      expect(runs.map((r) => [r.run, r.status, r.startedBy, r.resumes, r.startedAt.epochMilliseconds])).toEqual([
        [1, "failed", "submit", 0, 0],
        [2, "failed", "resubmit", 0, 60_000],
        [3, "completed", "resubmit", 0, 120_000]
      ])
      expect(runs[0]!.error).toBe("test: h: first [hint: release it]")
      expect(runs[1]!.error).toBe("test: h: second [hint: release it]")
      expect(runs[2]!.error).toBeUndefined()
      expect(runs[2]!.result).toEqual({ key: "h", run: 3 })
      expect(runs.every((r) => r.completedAt !== undefined)).toBe(true)
      expect((yield* Effect.flip(engine.runs("00000000-0000-4000-8000-000000000000")))._tag).toBe("TaskNotFound")
    }).pipe(Effect.provide(EngineTest)))

  it.effect("crash recovery counts resumes on the same run; DELETE forgets the runs with the task", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("r")
      // Each start stops only once its run has started: a run forked and not yet begun is interrupted before it starts.
      yield* withFreshEngine(
        Effect.andThen(submit({ id: ID, type: "test", params: { key: "r", hold: true } }), started("r", 1))
      )
      yield* withFreshEngine(started("r", 2)) // a start that resumes it, then stops again
      yield* probe.release("r")
      const runs = yield* withFreshEngine(Effect.flatMap(Engine, (e) => Effect.andThen(e.join(ID), e.runs(ID))))
      expect(runs.map((r) => [r.run, r.status, r.resumes])).toEqual([[1, "completed", 2]])
      yield* withFreshEngine(Effect.flatMap(Engine, (e) => e.remove(ID)))
      const sql = yield* SqlClient.SqlClient
      expect(yield* sql`SELECT * FROM task_runs WHERE task_id = ${ID}`).toEqual([])
    }).pipe(Effect.provide(Layer.merge(SqlTest, Probe.layer))))

  it.effect("GET /v0/tasks/{id}/runs answers them oldest first; 404 for an unknown task", () =>
    Effect.gen(function*() {
      yield* submit({ id: ID, type: "test", params: { key: "x", fail: "no" } })
      yield* settled(ID)
      yield* submit({ id: ID, type: "test", params: { key: "x" } })
      yield* settled(ID)
      const res = yield* getJson(`/v0/tasks/${ID}/runs`)
      expect(res.status).toBe(200)
      expect(res.json.map((r: any) => [r.run, r.status, r.startedBy])).toEqual([
        [1, "failed", "submit"],
        [2, "completed", "resubmit"]
      ])
      expect(Object.keys(res.json[0]).sort()).toEqual([
        "completedAt",
        "error",
        "resumes",
        "run",
        "startedAt",
        "startedBy",
        "status"
      ])
      const missing = yield* getJson("/v0/tasks/00000000-0000-4000-8000-000000000000/runs")
      expect(missing.status).toBe(404)
      expect(missing.json.error).toMatch(/not found/)
    }).pipe(Effect.provide(HttpTest)))
})
