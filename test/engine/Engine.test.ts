import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Logger, Option, References, Result } from "effect"
import { TestClock } from "effect/testing"
import { Engine } from "../../src/engine/Engine.js"
import { Readiness } from "../../src/engine/Readiness.js"
import { Metrics } from "../../src/Metrics.js"
import { Store } from "../../src/store/Store.js"
import { probeTask, reExecutionLeftRunning, settled, submit } from "../support/engine.js"
import {
  EngineTest,
  engineWithStore,
  InterleavingStore,
  Probe,
  SqlMemory,
  SqlTest,
  withFreshEngine
} from "../support/layers.js"
import { captureLogs, type LogLine } from "../support/logs.js"

/**
 * When a submit that writes its decision itself (a caller alone) runs with a SaveLatch, that write waits for the
 * latch: it holds the gate mid-decision meanwhile.
 */
const SaveLatch = Context.Reference<Option.Option<Deferred.Deferred<void>>>("test/SaveLatch", {
  defaultValue: () => Option.none()
})
const LatchedStore = Layer.effect(
  Store,
  Effect.map(Store, (real) =>
    Store.of({
      ...real,
      decideAll: (batch) =>
        Effect.flatMap(SaveLatch, Option.match({ onNone: () => Effect.void, onSome: Deferred.await })).pipe(
          Effect.andThen(real.decideAll(batch))
        )
    }))
).pipe(Layer.provide(Store.layer))
const ID = "6f9619ff-8b86-4011-b42d-00c04fc964ff"

/** The real Store, recording how many ids each of its batched reads was asked for. */
const readBatches: Array<number> = []
const CountingReads = Layer.effect(
  Store,
  Effect.map(Store, (real) =>
    Store.of({
      ...real,
      getJsonAll: (ids) => {
        readBatches.push(ids.length)
        return real.getJsonAll(ids)
      }
    }))
).pipe(Layer.provide(Store.layer))

describe("Engine.submit", () => {
  it.effect("a new id starts run 1 and completes it", () =>
    Effect.gen(function*() {
      const outcome = yield* probeTask("a")
      expect(outcome._tag).toBe("Started")
      expect(outcome.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
      const task = yield* settled(outcome.id)
      expect(task).toMatchObject({ status: "completed", run: 1, type: "test", result: { key: "a", run: 1 } })
      expect(task.completedAt).toBeDefined()
      expect(task.error).toBeUndefined()
    }).pipe(Effect.provide(EngineTest)))

  // A client that sends one request at a time waits for each answer: the run must not hold it up.
  it.effect("a submit alone is answered before its run begins; the run follows", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      const outcome = yield* probeTask("order")
      expect(outcome._tag).toBe("Started")
      expect(probe.runs("order")).toBe(0)
      expect(yield* settled(outcome.id)).toMatchObject({ status: "completed", run: 1 })
      expect(probe.runs("order")).toBe(1)
    }).pipe(Effect.provide(EngineTest)))

  it.effect("absent, null and empty ids each get a distinct generated UUID", () =>
    Effect.gen(function*() {
      const ids = yield* Effect.all([
        submit({ type: "mark-not-ready" }),
        submit({ id: null, type: "mark-not-ready" }),
        submit({ id: "", type: "mark-not-ready" }),
        submit({ type: "mark-not-ready" })
      ]).pipe(Effect.map((os) => os.map((o) => o.id)))
      expect(new Set(ids).size).toBe(4)
    }).pipe(Effect.provide(EngineTest)))

  it.effect("a caller's id is used exactly as given, letter case included", () =>
    Effect.gen(function*() {
      const upper = ID.toUpperCase()
      expect((yield* probeTask("case", {}, upper)).id).toBe(upper)
      expect((yield* settled(upper)).id).toBe(upper)
      // the lower-case spelling is another task
      expect((yield* probeTask("case", {}, ID))._tag).toBe("Started")
    }).pipe(Effect.provide(EngineTest)))

  it.effect("bad requests fail with typed errors and write nothing", () =>
    Effect.gen(function*() {
      const engine = yield* Engine
      for (
        const id of ["abc", `{${ID}}`, ID.slice(1), `${ID}0`, ID.replace(/-/g, ""), ID.replace("f", "g"), ` ${ID}`]
      ) {
        const error = yield* Effect.flip(engine.submit({ id, type: "mark-ready" }))
        expect(error._tag).toBe("InvalidTaskId")
      }
      expect((yield* Effect.flip(engine.submit({ type: "no-such-type" }))).message).toBe(
        "unknown task type: no-such-type"
      )
      expect((yield* Effect.flip(engine.submit({ type: "" })))._tag).toBe("InvalidRequest")
      const badParams = yield* Effect.flip(engine.submit({ type: "test", params: { key: 5 } }))
      expect(badParams._tag).toBe("InvalidParams")
      expect(badParams.message).toContain("key: Expected string, got 5")
      expect((yield* Effect.flip(engine.submit({ type: "mark-ready", params: { x: 1 } })))._tag).toBe("InvalidParams")
      expect(yield* engine.list()).toEqual([])
    }).pipe(Effect.provide(EngineTest)))

  it.effect("running and completed tasks are deduplicated; the new type and params are ignored", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("dup")
      yield* probeTask("dup", { hold: true }, ID)
      const whileRunning = yield* submit({ id: ID, type: "mark-ready" })
      expect(whileRunning).toEqual({ _tag: "Deduplicated", id: ID, status: "running" })
      yield* probe.release("dup")
      yield* settled(ID)
      const afterCompletion = yield* probeTask("other", {}, ID)
      expect(afterCompletion).toEqual({ _tag: "Deduplicated", id: ID, status: "completed" })
      const task = yield* settled(ID)
      expect(task).toMatchObject({ type: "test", run: 1, params: { key: "dup", hold: true } })
      expect(probe.runs("dup")).toBe(1)
      expect(probe.runs("other")).toBe(0)
      expect(yield* Readiness.pipe(Effect.flatMap((r) => r.get))).toBe(false)
    }).pipe(Effect.provide(EngineTest)))

  it.effect("a failed task runs again under the same id: run 2, then run 3", () =>
    Effect.gen(function*() {
      yield* probeTask("flaky", { fail: "not yet" }, ID)
      const first = yield* settled(ID)
      expect(first).toMatchObject({ status: "failed", run: 1, error: "test: flaky: not yet [hint: release it]" })

      yield* TestClock.adjust("1 minute")
      expect(yield* probeTask("flaky", { fail: "still not" }, ID)).toEqual({ _tag: "Started", id: ID, run: 2 })
      const second = yield* settled(ID)
      expect(second).toMatchObject({ status: "failed", run: 2, error: "test: flaky: still not [hint: release it]" })
      expect(second.submittedAt.epochMilliseconds).toBe(60_000)

      yield* TestClock.adjust("1 minute")
      yield* probeTask("flaky", {}, ID)
      const third = yield* settled(ID)
      expect(third).toMatchObject({ status: "completed", run: 3, params: { key: "flaky" } })
      expect(third.error).toBeUndefined()
      expect(third.submittedAt.epochMilliseconds).toBe(120_000)
      expect((yield* Probe).runs("flaky")).toBe(3)
    }).pipe(Effect.provide(EngineTest)))

  it.effect("a re-execution clears the previous run's error, result and completion time while it runs", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probeTask("clear", { fail: "no" }, ID)
      yield* settled(ID)
      yield* probe.hold("clear")
      yield* probeTask("clear", { hold: true }, ID)
      const running = yield* Effect.flatMap(Engine, (e) => e.get(ID))
      expect(running.status).toBe("running")
      expect(running.run).toBe(2)
      expect(running.error).toBeUndefined()
      expect(running.completedAt).toBeUndefined()
      yield* probe.release("clear")
      expect((yield* settled(ID)).status).toBe("completed")
    }).pipe(Effect.provide(EngineTest)))

  it.effect("concurrent submits of one failed id re-execute it exactly once", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probeTask("once", { fail: "first run fails" }, ID)
      yield* settled(ID)
      yield* probe.hold("once")
      const outcomes = yield* Effect.all(
        Array.from({ length: 100 }, () => probeTask("once", { hold: true }, ID)),
        { concurrency: "unbounded" }
      )
      expect(outcomes.filter((o) => o._tag === "Started")).toEqual([{ _tag: "Started", id: ID, run: 2 }])
      expect(outcomes.filter((o) => o._tag === "Deduplicated")).toHaveLength(99)
      yield* probe.release("once")
      expect(yield* settled(ID)).toMatchObject({ status: "completed", run: 2 })
      expect(probe.runs("once")).toBe(2)
    }).pipe(Effect.provide(engineWithStore(InterleavingStore, SqlMemory))))

  it.effect("a submit interrupted while queued never lets the next one in before the one ahead has decided", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      const saving = yield* Deferred.make<void>()
      const body = { id: ID, type: "test", params: { key: "gate" } }
      // the first save waits for the test, holding the gate in the middle of its decision
      const first = yield* Effect.forkChild(submit(body).pipe(Effect.provideService(SaveLatch, Option.some(saving))))
      const queued = yield* Effect.forkChild(probeTask("gate", {}, ID))
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      yield* Fiber.interrupt(queued) // its client hung up
      const next = yield* Effect.forkChild(probeTask("gate", {}, ID))
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      expect(next.pollUnsafe()).toBeUndefined() // still behind the first
      yield* Deferred.succeed(saving, undefined)
      expect(yield* Fiber.join(first)).toEqual({ _tag: "Started", id: ID, run: 1 })
      expect((yield* Fiber.join(next))._tag).toBe("Deduplicated")
      yield* settled(ID)
      expect(probe.runs("gate")).toBe(1)
    }).pipe(Effect.provide(engineWithStore(LatchedStore, SqlMemory))))

  it.effect("different tasks run concurrently: a long one does not hold up the others", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("long")
      const long = yield* probeTask("long", { hold: true })
      const quick = yield* probeTask("quick")
      expect((yield* settled(quick.id)).status).toBe("completed")
      expect((yield* Effect.flatMap(Engine, (e) => e.get(long.id))).status).toBe("running")
      expect(probe.runs("long")).toBe(1)
      yield* probe.release("long")
      expect((yield* settled(long.id)).status).toBe("completed")
    }).pipe(Effect.provide(EngineTest)))

  it.effect("a handler that throws fails its own run; the engine keeps serving", () =>
    Effect.gen(function*() {
      const crashed = yield* probeTask("boom", { crash: "kaboom" })
      expect(yield* settled(crashed.id)).toMatchObject({ status: "failed", error: "handler crashed: kaboom" })
      const next = yield* probeTask("after")
      expect((yield* settled(next.id)).status).toBe("completed")
    }).pipe(Effect.provide(EngineTest)))
})

describe("Engine reads", () => {
  it.effect("get returns running, completed and failed tasks with their fields; unknown ids are TaskNotFound", () =>
    Effect.gen(function*() {
      const engine = yield* Engine
      const probe = yield* Probe
      yield* probe.hold("r")
      const running = yield* probeTask("r", { hold: true })
      const failed = yield* probeTask("f", { fail: "nope" })
      const completed = yield* probeTask("c")
      yield* Effect.all([settled(failed.id), settled(completed.id)])
      const r = yield* engine.get(running.id)
      expect(Object.keys(r).sort()).toEqual(["id", "params", "run", "status", "submittedAt", "type"])
      const f = yield* engine.get(failed.id)
      expect(f).toMatchObject({ status: "failed", error: "test: f: nope [hint: release it]" })
      expect(f.completedAt).toBeDefined()
      expect(f.result).toBeUndefined()
      const c = yield* engine.get(completed.id)
      expect(Object.keys(c).sort()).toEqual([
        "completedAt",
        "id",
        "params",
        "result",
        "run",
        "status",
        "submittedAt",
        "type"
      ])
      expect((yield* Effect.flip(engine.get(ID)))._tag).toBe("TaskNotFound")
      yield* probe.release("r")
    }).pipe(Effect.provide(EngineTest)))

  it.effect("gets asked for together are read together, each answered with its own task or TaskNotFound", () =>
    Effect.gen(function*() {
      const engine = yield* Engine
      const ids = [(yield* probeTask("x")).id, (yield* probeTask("y")).id, (yield* probeTask("z")).id]
      yield* Effect.forEach(ids, settled, { discard: true })
      readBatches.length = 0
      const asked = [...ids, ID, ids[0]!]
      const answers = yield* Effect.forEach(asked, (id) => Effect.result(engine.getJson(id)), {
        concurrency: "unbounded"
      })
      expect(answers.map((a) => Result.isSuccess(a) ? a.success.id : a.failure._tag)).toEqual([
        ...ids,
        "TaskNotFound",
        ids[0]
      ])
      expect(Math.max(...readBatches)).toBeGreaterThan(1)
    }).pipe(Effect.provide(engineWithStore(CountingReads, SqlMemory))))

  it.effect("list is newest first and limited", () =>
    Effect.gen(function*() {
      const ids: Array<string> = []
      for (let i = 0; i < 5; i++) {
        ids.push((yield* submit({ type: "mark-not-ready" })).id)
        yield* TestClock.adjust("1 second")
      }
      const engine = yield* Engine
      expect((yield* engine.list()).map((t) => t.id)).toEqual([...ids].reverse())
      expect((yield* engine.list({ limit: 2 })).map((t) => t.id)).toEqual([ids[4], ids[3]])
    }).pipe(Effect.provide(EngineTest)))

  it.effect("list returns at most 100 tasks by default", () =>
    Effect.gen(function*() {
      yield* Effect.forEach(Array.from({ length: 120 }), () => submit({ type: "mark-not-ready" }), { discard: true })
      expect(yield* Effect.flatMap(Engine, (e) => e.list())).toHaveLength(100)
    }).pipe(Effect.provide(EngineTest)))
})

describe("Engine.remove", () => {
  it.effect("interrupts a running task, deletes it, and a later submit of the id starts again at run 1", () =>
    Effect.gen(function*() {
      const engine = yield* Engine
      const probe = yield* Probe
      yield* probe.hold("del")
      yield* probeTask("del", { hold: true }, ID)
      // the run starts once the submit has answered
      for (let i = 0; i < 50 && probe.runs("del") === 0; i++) yield* Effect.yieldNow
      expect(probe.runs("del")).toBe(1)
      yield* engine.remove(ID)
      expect(probe.interruptions("del")).toBe(1)
      expect((yield* Effect.flip(engine.get(ID)))._tag).toBe("TaskNotFound")
      expect((yield* Effect.flip(engine.remove(ID)))._tag).toBe("TaskNotFound")
      yield* probe.release("del")
      expect(yield* probeTask("del", {}, ID)).toEqual({ _tag: "Started", id: ID, run: 1 })
      expect(yield* settled(ID)).toMatchObject({ status: "completed", run: 1 })
    }).pipe(Effect.provide(EngineTest)))

  it.effect("a DELETE right after the answer, before the run began, stops the run before its handler", () =>
    Effect.gen(function*() {
      const engine = yield* Engine
      const probe = yield* Probe
      yield* probeTask("early", {}, ID)
      yield* engine.remove(ID)
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      expect(probe.runs("early")).toBe(0)
      expect((yield* Effect.flip(engine.get(ID)))._tag).toBe("TaskNotFound")
      // neither counted as started nor as ended
      expect(yield* Effect.flatMap(Metrics, (m) => m.exposition)).toMatch(/^sidecar_tasks_running 0$/m)
    }).pipe(Effect.provide(EngineTest)))
})

describe("a run's log lines", () => {
  /** `program`, with every line logged (debug included) collected. */
  const logged = <A, E, R>(program: Effect.Effect<A, E, R>) =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const result = yield* program.pipe(Effect.provide(captureLogs(lines)))
      return { result, lines }
    })
  const ofRun = (lines: ReadonlyArray<LogLine>) =>
    lines.filter((l) => ["task started", "test handler ran", "task completed"].includes(l.message as string))

  it.effect("carry the task's id, type and run, the handler's own included, and nothing of the submitting fiber's", () =>
    Effect.gen(function*() {
      const submitted = probeTask("logged", {}, ID).pipe(Effect.annotateLogs("request", "r-1"))
      const { lines } = yield* logged(Effect.andThen(submitted, settled(ID)).pipe(Effect.provide(EngineTest)))
      const run = ofRun(lines)
      expect(run.map((l) => l.message)).toEqual(["task started", "test handler ran", "task completed"])
      for (const line of run) {
        expect(line.annotations).toMatchObject({ taskId: ID, type: "test", run: 1 })
        expect(line.annotations).not.toHaveProperty("request")
      }
    }))

  // A controller that has its 201 must find the line: it is logged before the submit answers, alone or in a batch.
  it.effect("a submit's line is logged before its answer", () =>
    Effect.gen(function*() {
      const seen: Array<unknown> = []
      const capture = Logger.make(({ fiber, message }) => {
        if ((Array.isArray(message) ? message[0] : message) === "task submitted") {
          seen.push(fiber.getRef(References.CurrentLogAnnotations).taskId)
        }
      })
      const answeredAfterLine = (id: string) =>
        Effect.map(submit({ id, type: "test", params: { key: id } }), (outcome) => seen.includes(outcome.id))
      const { alone, together } = yield* Effect.gen(function*() {
        const alone = yield* answeredAfterLine(ID)
        const together = yield* Effect.all([1, 2, 3].map((n) => answeredAfterLine(`${ID.slice(0, -1)}${n}`)), {
          concurrency: "unbounded"
        })
        return { alone, together }
      }).pipe(Effect.provide(EngineTest), Effect.provide(Logger.layer([capture])))
      expect(alone).toBe(true)
      expect(together).toEqual([true, true, true])
    }))

  it.effect("of a run resumed at a start carry them too", () =>
    Effect.gen(function*() {
      yield* reExecutionLeftRunning("resumed", ID)
      const { lines } = yield* logged(withFreshEngine(settled(ID)))
      const run = ofRun(lines)
      expect(run.map((l) => l.message)).toEqual(["task started", "test handler ran", "task completed"])
      for (const line of run) expect(line.annotations).toMatchObject({ taskId: ID, type: "test", run: 2 })
    }).pipe(Effect.provide(Layer.merge(SqlTest, Probe.layer))))
})
