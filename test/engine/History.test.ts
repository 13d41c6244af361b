import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { HttpClient } from "effect/http"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import { Engine } from "../../src/engine/Engine.js"
import { Shutdown } from "../../src/Shutdown.js"
import { settled, started, submit } from "../support/engine.js"
import { EngineTest, getJson, HttpTest, Probe, SqlTest, withFreshEngine } from "../support/layers.js"
import { eventually, untilSleeping } from "../support/wait.js"

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

describe("waiting without polling", () => {
  it.effect("?wait answers as soon as the run ends, woken by it, not by a timer; many waiters share it", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("w")
      yield* submit({ id: ID, type: "test", params: { key: "w", hold: true } })
      const waiters = yield* Effect.forEach(
        Array.from({ length: 100 }),
        () => Effect.forkChild(getJson(`/v0/tasks/${ID}?wait=60`))
      )
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      expect(waiters.every((w) => w.pollUnsafe() === undefined)).toBe(true)
      yield* probe.release("w") // no clock moves: only the run's end can answer them
      for (const waiter of waiters) {
        const res = yield* Fiber.join(waiter)
        expect(res).toMatchObject({ status: 200, json: { id: ID, status: "completed" } })
      }
    }).pipe(Effect.provide(HttpTest)))

  it.effect("when the wait is over first, the answer is the current state; a terminal task answers at once", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("s")
      yield* submit({ id: ID, type: "test", params: { key: "s", hold: true } })
      const waiter = yield* Effect.forkChild(getJson(`/v0/tasks/${ID}?wait=5`))
      expect(yield* untilSleeping(5_000)).toBe(true)
      yield* TestClock.adjust("5 seconds")
      expect(yield* Fiber.join(waiter)).toMatchObject({ status: 200, json: { status: "running" } })
      yield* probe.release("s")
      yield* settled(ID)
      expect((yield* getJson(`/v0/tasks/${ID}?wait=60`)).json.status).toBe("completed")
      expect((yield* getJson(`/v0/tasks/${ID}?wait=0`)).json.status).toBe("completed")
    }).pipe(Effect.provide(HttpTest)))

  it.effect("shutdown answers waiters at once, so they do not hold up the server's drain", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("d")
      yield* submit({ id: ID, type: "test", params: { key: "d", hold: true } })
      const waiter = yield* Effect.forkChild(getJson(`/v0/tasks/${ID}?wait=60`))
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      yield* Effect.flatMap(Shutdown, (s) => s.begin)
      expect(yield* Fiber.join(waiter)).toMatchObject({ status: 200, json: { status: "running" } })
      yield* probe.release("d")
    }).pipe(Effect.provide(HttpTest)))

  it.effect("a waiter whose client hangs up is released (sidecar_task_waiters goes back down)", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("gone")
      yield* submit({ id: ID, type: "test", params: { key: "gone", hold: true } })
      const waitersNow = Effect.flatMap(
        HttpClient.HttpClient,
        (client) => Effect.flatMap(client.get("/v0/metrics"), (res) => res.text)
      ).pipe(
        Effect.map((text) => Number(/^sidecar_task_waiters (\d+)$/m.exec(text)?.[1]))
      )
      const until = (done: (n: number) => boolean) => eventually(Effect.map(waitersNow, done), "10 seconds")
      const clients = yield* Effect.forEach(
        Array.from({ length: 20 }),
        () => Effect.forkChild(getJson(`/v0/tasks/${ID}?wait=60`))
      )
      yield* until((n) => n === 20)
      yield* Effect.forEach(clients, Fiber.interrupt) // each closes its connection
      yield* until((n) => n === 0)
      yield* probe.release("gone")
    }).pipe(Effect.provide(HttpTest)))

  it.effect("wait is a number of seconds from 0 to 60, fractions too; anything else, or another parameter, is a 400", () =>
    Effect.gen(function*() {
      yield* submit({ id: ID, type: "mark-not-ready" })
      for (const wait of ["61", "-1", "60.5", "abc", "", "1e1", " 5", "1.2345"]) {
        const res = yield* getJson(`/v0/tasks/${ID}?wait=${encodeURIComponent(wait)}`)
        expect(res.status, wait).toBe(400)
        expect(res.json, wait).toEqual({
          _tag: "InvalidRequest",
          error: "wait: must be a number of seconds from 0 to 60"
        })
      }
      for (const wait of ["0", "0.5", "1.25", "60"]) {
        expect((yield* getJson(`/v0/tasks/${ID}?wait=${wait}`)).status, wait).toBe(200)
      }
      const extra = yield* getJson(`/v0/tasks/${ID}?wiat=5`)
      expect(extra).toEqual({ status: 400, json: { _tag: "InvalidRequest", error: "wiat: unknown query parameter" } })
      const unknown = yield* getJson(`/v0/tasks/00000000-0000-4000-8000-000000000000?wait=1`)
      expect(unknown.status).toBe(404)
    }).pipe(Effect.provide(HttpTest)))
})

describe("list that scales", () => {
  it.effect("?status, ?type and ?limit filter the newest-first list; the plain form keeps 100", () =>
    Effect.gen(function*() {
      const ids: Array<string> = []
      for (let i = 0; i < 130; i++) {
        ids.push(
          (yield* submit({ type: "test", params: i % 3 === 0 ? { key: `k${i}`, fail: "x" } : { key: `k${i}` } })).id
        )
        yield* TestClock.adjust("1 second")
      }
      ids.push((yield* submit({ type: "mark-not-ready" })).id)
      yield* Effect.forEach(ids, settled)
      const all = (yield* getJson("/v0/tasks")).json as Array<any>
      expect(all).toHaveLength(100)
      const failed = (yield* getJson("/v0/tasks?status=failed&limit=1000")).json as Array<any>
      expect(failed).toHaveLength(44)
      expect(failed.every((t) => t.status === "failed")).toBe(true)
      const times = failed.map((t) => Date.parse(t.submittedAt))
      expect([...times].sort((a, b) => b - a)).toEqual(times)
      expect((yield* getJson("/v0/tasks?type=mark-not-ready")).json.map((t: any) => t.type)).toEqual(["mark-not-ready"])
      expect((yield* getJson("/v0/tasks?type=test&status=completed&limit=5")).json).toHaveLength(5)
      expect((yield* getJson("/v0/tasks?limit=1")).json[0].type).toBe("mark-not-ready")
      for (const query of ["limit=0", "limit=1001", "limit=ten", "limit=2.5", "status=done", "status=", "type="]) {
        const res = yield* getJson(`/v0/tasks?${query}`)
        expect(res.status, query).toBe(400)
        expect(typeof res.json.error, query).toBe("string")
      }
    }).pipe(Effect.provide(HttpTest)))
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
