import { describe, expect, it, layer } from "@effect/vitest"
import { DateTime, Effect, Layer, Option } from "effect"
import type { TaskId } from "../../src/Domain.js"
import { Task } from "../../src/Domain.js"
import { Metrics } from "../../src/Metrics.js"
import { Sqlite } from "../../src/store/Connection.js"
import { Store } from "../../src/store/Store.js"
import { taskId as id } from "../support/ids.js"
import { SqlMemory } from "../support/layers.js"
import { complete, save } from "../support/store.js"

const at = (seconds: number) => DateTime.makeUnsafe(seconds * 1000)
const task = (n: number, fields: Partial<ConstructorParameters<typeof Task>[0]> = {}) =>
  new Task({ id: id(n), type: "test", status: "running", run: 1, submittedAt: at(n), ...fields })

/** The real Store over in-memory SQLite, with Metrics of its own. */
const StoreMemory = Store.layer.pipe(Layer.provideMerge(Layer.merge(SqlMemory, Metrics.layer)))

layer(StoreMemory)("Store", (it) => {
  it.effect("save then get round-trips every field, run included", () =>
    Effect.gen(function*() {
      const store = yield* Store
      const saved = task(1, {
        status: "failed",
        run: 7,
        params: { command: "x", args: ["a"] },
        error: "test: op: broke",
        result: { exitCode: 3 },
        completedAt: at(5)
      })
      yield* save(saved)
      const got = Option.getOrThrow(yield* store.get(id(1)))
      expect(got).toEqual(saved)
    }))

  it.effect("empty optional fields stay absent, never null, empty string or {}", () =>
    Effect.gen(function*() {
      const store = yield* Store
      yield* save(task(2, { params: {}, result: null }))
      const got = Option.getOrThrow(yield* store.get(id(2)))
      expect(Object.keys(got).sort()).toEqual(["id", "run", "status", "submittedAt", "type"])
    }))

  it.effect("save on an existing id replaces the row (upsert)", () =>
    Effect.gen(function*() {
      const store = yield* Store
      yield* save(task(3, { status: "failed", error: "first", completedAt: at(4) }))
      yield* save(task(3, { run: 2, params: { again: true } }))
      const got = Option.getOrThrow(yield* store.get(id(3)))
      expect(got.run).toBe(2)
      expect(got.status).toBe("running")
      expect(got.error).toBeUndefined()
      expect(got.completedAt).toBeUndefined()
      expect(got.params).toEqual({ again: true })
    }))

  it.effect("get of an unknown id is None, and ids are matched exactly (letter case included)", () =>
    Effect.gen(function*() {
      const store = yield* Store
      const upper = "ABCDEF00-0000-4000-8000-000000000001" as TaskId
      yield* save(task(0, { id: upper }))
      expect(Option.isSome(yield* store.get(upper))).toBe(true)
      expect(Option.isNone(yield* store.get(upper.toLowerCase()))).toBe(true)
      expect(Option.isNone(yield* store.get("no-such-id"))).toBe(true)
    }))

  it.effect("getJsonAll answers each id in its order, None for an unknown one", () =>
    Effect.gen(function*() {
      const store = yield* Store
      yield* save(task(11))
      yield* save(task(12, { status: "failed", error: "test: op: broke", completedAt: at(13) }))
      const got = yield* store.getJsonAll([id(12), "no-such-id", id(11)])
      expect(got.map(Option.map((t) => [t.id, t.status]))).toEqual([
        Option.some([id(12), "failed"]),
        Option.none(),
        Option.some([id(11), "running"])
      ])
      expect((yield* store.getJsonAll([id(11)])).map(Option.isSome)).toEqual([true])
    }))

  it.effect("conditional completion writes only the run that still owns the row", () =>
    Effect.gen(function*() {
      const store = yield* Store
      yield* save(task(10, { run: 2 }))
      expect(yield* complete(id(10), 1, { status: "completed", completedAt: at(11) })).toBe(false)
      expect(Option.getOrThrow(yield* store.get(id(10))).status).toBe("running")
      expect(yield* complete(id(10), 2, { status: "failed", error: "bad", completedAt: at(11) })).toBe(true)
      expect(Option.getOrThrow(yield* store.get(id(10)))).toMatchObject({ status: "failed", error: "bad", run: 2 })
      // a second completion of the same run (already terminal) changes nothing
      expect(yield* complete(id(10), 2, { status: "completed", completedAt: at(12) })).toBe(false)
      expect(yield* complete(id(99), 1, { status: "completed", completedAt: at(12) })).toBe(false)
      expect(Option.isNone(yield* store.get(id(99)))).toBe(true)
    }))

  it.effect("remove deletes the row and answers what it held", () =>
    Effect.gen(function*() {
      const store = yield* Store
      yield* save(task(20, { run: 4 }))
      expect(Option.map(yield* store.remove(id(20)), (t) => t.run)).toEqual(Option.some(4))
      expect(Option.isNone(yield* store.get(id(20)))).toBe(true)
      expect(Option.isNone(yield* store.remove(id(20)))).toBe(true)
    }))

  it.effect("ping succeeds on a healthy database", () => Effect.flatMap(Store, (s) => s.ping))
})

describe("Store listing", () => {
  it.effect("list is newest first by submittedAt and honours the limit; listRunning finds running rows", () =>
    Effect.gen(function*() {
      const store = yield* Store
      // saved out of order on purpose
      for (const n of [3, 1, 5, 2, 4]) {
        yield* save(task(n, n % 2 === 0 ? { status: "completed", completedAt: at(n + 1) } : {}))
      }
      expect((yield* store.list({ limit: 100 })).map((t) => t.id)).toEqual([5, 4, 3, 2, 1].map(id))
      expect((yield* store.list({ limit: 2 })).map((t) => t.id)).toEqual([id(5), id(4)])
      expect((yield* store.listRunning).map((t) => t.id)).toEqual([1, 3, 5].map(id))
    }).pipe(Effect.provide(StoreMemory)))

  it.effect("lastCompleted picks the latest completion among the given types", () =>
    Effect.gen(function*() {
      const store = yield* Store
      yield* save(task(1, { type: "mark-ready", status: "completed", completedAt: at(10) }))
      yield* save(task(2, { type: "mark-not-ready", status: "completed", completedAt: at(20) }))
      yield* save(task(3, { type: "mark-ready", status: "failed", completedAt: at(30) }))
      yield* save(task(4, { type: "other", status: "completed", completedAt: at(40) }))
      const last = yield* store.lastCompleted(["mark-ready", "mark-not-ready"])
      expect(Option.map(last, (t) => t.id)).toEqual(Option.some(id(2)))
    }).pipe(Effect.provide(StoreMemory)))

  // Every start and every retention pass asks this; a plan through the status index sorted every completed task.
  it.effect("lastCompleted reads the given types' rows through the type index, not every completed task", () =>
    Effect.gen(function*() {
      const { plan, prepared, store } = yield* recordingStore
      prepared.length = 0
      yield* store.lastCompleted(["mark-ready", "mark-not-ready"])
      expect(prepared).toHaveLength(1)
      expect(plan(prepared[0]!)).toMatch(
        /SEARCH task_results USING INDEX idx_task_results_type_submitted_at \(type=\?\)/
      )
      expect(plan(prepared[0]!)).not.toMatch(/status/)
    }).pipe(Effect.scoped, Effect.provide(SqlMemory)))

  // Migration 0009 left the status index with the tasks not completed only, and retention without an index of its
  // own: each query must still find its rows through an index, never by reading the whole table.
  it.effect("lists by every filter, crash recovery and retention read through an index", () =>
    Effect.gen(function*() {
      const { plan, prepared, store } = yield* recordingStore
      const planOf = <A, E>(query: Effect.Effect<A, E>) =>
        Effect.map(Effect.andThen(Effect.sync(() => (prepared.length = 0)), query), () => {
          expect(prepared).toHaveLength(1)
          return plan(prepared[0]!)
        })
      // the statements prepared as the store was made, found by their text
      const made = [...prepared]
      const preparedOnce = (marker: RegExp) => plan(made.find((text) => marker.test(text))!)
      const list = (status: "" | "completed" | "failed", type: "" | "x") =>
        plan(
          made.find((text) =>
            text.includes("ORDER BY submitted_at DESC, rowid DESC LIMIT ?") &&
            text.includes("status = ?") === (status !== "") &&
            text.includes("<> 'completed'") === (status === "failed") &&
            text.includes("type = ?") === (type !== "")
          )!
        )
      expect(list("", "")).toMatch(/SCAN task_results USING INDEX idx_task_results_submitted_at\b/)
      expect(list("completed", "")).toMatch(/SCAN task_results USING INDEX idx_task_results_submitted_at\b/)
      expect(list("failed", "")).toMatch(/SEARCH task_results USING INDEX idx_task_results_unfinished_submitted_at/)
      expect(list("", "x")).toMatch(/SEARCH task_results USING INDEX idx_task_results_type_submitted_at/)
      expect(list("completed", "x")).toMatch(/SEARCH task_results USING INDEX idx_task_results_type_submitted_at/)
      expect(list("failed", "x")).toMatch(
        /SEARCH task_results USING INDEX idx_task_results_(unfinished|type)_submitted/
      )
      expect(preparedOnce(/^SELECT id, type, run, params/)).toMatch(
        /SEARCH task_results USING INDEX idx_task_results_unfinished_submitted_at \(status=\?\)/
      )
      expect(yield* planOf(store.resumed([id(1), id(2)]))).toMatch(
        /SEARCH task_results USING INDEX sqlite_autoindex_task_results_1 \(id=\?\)/
      )
      const before = at(100)
      for (const keep of [[], ["mark-ready"]]) {
        expect(yield* planOf(store.prune(before, keep, 10))).toMatch(
          /SEARCH task_results USING INDEX idx_task_results_submitted_at \(submitted_at<\?\)/
        )
        expect(yield* planOf(store.countPrunable(before, keep))).toMatch(
          /SEARCH task_results USING INDEX idx_task_results_submitted_at \(submitted_at<\?\)/
        )
      }
    }).pipe(Effect.scoped, Effect.provide(SqlMemory)))

  // Migration 0010: an index in the order a list reads it, backwards for newest first, so no list sorts its rows.
  it.effect("lists by every filter and crash recovery read their rows in index order, with no sort", () =>
    Effect.gen(function*() {
      const { plan, prepared } = yield* recordingStore
      const reads = prepared.filter((text) => text.includes("ORDER BY submitted_at"))
      // six lists (by status: any, completed, another; by type or not) and crash recovery's query
      expect(reads).toHaveLength(7)
      for (const text of reads) expect(plan(text)).not.toMatch(/TEMP B-TREE/)
    }).pipe(Effect.scoped, Effect.provide(SqlMemory)))
})

/** A Store over the test's connection that records every statement it prepares, and the query plan of one. */
const recordingStore = Effect.gen(function*() {
  const db = yield* Sqlite
  const prepared: Array<string> = []
  const recording = new Proxy(db.db, {
    get: (target, key) => {
      if (key === "prepare") {
        return (text: string) => {
          prepared.push(text)
          return target.prepare(text)
        }
      }
      const value = Reflect.get(target, key, target)
      return typeof value === "function" ? value.bind(target) : value
    }
  })
  const store = yield* Store.pipe(
    Effect.provide(
      Store.layer.pipe(Layer.provide(Layer.merge(Layer.succeed(Sqlite, { ...db, db: recording }), Metrics.layer)))
    )
  )
  const plan = (text: string) => {
    const values = Array.from({ length: parameterCount(text) }, () => "x")
    return (db.db.prepare(`EXPLAIN QUERY PLAN ${text}`).all(...values) as Array<{ detail: string }>)
      .map((row) => row.detail).join("; ")
  }
  return { plan, prepared, store }
})

/** How many values a statement takes: `?N` is the N-th, a bare `?` the one after the highest so far (SQLite's rule). */
const parameterCount = (text: string) =>
  [...text.matchAll(/\?(\d*)/g)].reduce((n, [, digits]) => digits === "" ? n + 1 : Math.max(n, Number(digits)), 0)
