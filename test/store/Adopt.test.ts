import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, DateTime, Effect, Exit, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import { readdirSync, readFileSync } from "node:fs"
import type { DatabaseSync } from "node:sqlite"
import { fileURLToPath } from "node:url"
import { normaliseTimestamp } from "../../migrations/0004_adopt_go_sidecar.js"
import type { TaskId } from "../../src/Domain.js"
import { Task } from "../../src/Domain.js"
import { Metrics } from "../../src/Metrics.js"
import { sqlLayer, UnsupportedDatabase } from "../../src/store/Database.js"
import { Store } from "../../src/store/Store.js"
import { makeFileBefore0004, tasksBefore0004 } from "../fixtures/before0004.js"
import { type Fixture, fixtures, makeGoFile, refusal } from "../fixtures/goSidecar.js"
import { taskId as id } from "../support/ids.js"
import { engineOver } from "../support/layers.js"
import { captureLogs, type LogLine } from "../support/logs.js"
import { appliedMigrations, filesBeside, openDatabase, pragma, sha256, taskColumns, tempDb } from "../support/sqlite.js"
import { save } from "../support/store.js"

const migrationsDir = fileURLToPath(new URL("../../migrations", import.meta.url))
/** Every migration this checkout has, by name: a Go file must end up with all of them applied. */
const allMigrations = readdirSync(migrationsDir)
  .flatMap((file) => {
    const m = /^(\d+)_(\w+)\.ts$/.exec(file)
    return m === null ? [] : [[Number(m[1]), m[2]!] as const]
  })
  .sort(([a], [b]) => a - b)
  .map(([, name]) => name)

/** Open `file` exactly as the sidecar does (sqlLayer, then the Store), run `use`, close it; with what it logged. */
const open = <A, E>(file: string, use: Effect.Effect<A, E, Store | SqlClient.SqlClient>) =>
  Effect.gen(function*() {
    const logs: Array<LogLine> = []
    const value = yield* use.pipe(
      Effect.provide(Store.layer.pipe(Layer.provide(Metrics.layer))),
      Effect.provide(sqlLayer(file)),
      Effect.provide(captureLogs(logs))
    )
    return { value, logs }
  })

const readOnly = <A>(file: string, f: (db: DatabaseSync) => A): A => {
  const db = openDatabase(file, { readonly: true, mustExist: true })
  try {
    return f(db)
  } finally {
    db.close()
  }
}

/** Every table's rows (sorted, so WITHOUT ROWID tables compare too), the schema and user_version. */
const dump = (file: string) =>
  readOnly(file, (db) => {
    const schema = db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").all() as Array<
      { type: string; name: string }
    >
    const tables = Object.fromEntries(
      schema.filter((s) => s.type === "table").map((s) => [
        s.name,
        db.prepare(`SELECT * FROM "${s.name}"`).all().map((row) => JSON.stringify(row)).sort()
      ])
    )
    return { schema, tables, userVersion: pragma(db, "user_version") }
  })

const query = (file: string, text: string) => readOnly(file, (db) => db.prepare(text).all())

/** Names of the indexes on task_results, and the columns each covers. */
const taskIndexes = (file: string) =>
  readOnly(
    file,
    (db) =>
      (db.prepare("SELECT name FROM pragma_index_list('task_results')").all() as Array<{ name: string }>).map((i) => ({
        name: i.name,
        columns: (db.prepare("SELECT name FROM pragma_index_info(?)").all(i.name) as Array<{ name: string | null }>)
          .map((
            c
          ) => c.name)
      }))
  )

const rawTasks = (file: string) =>
  readOnly(
    file,
    (db) =>
      db.prepare(`SELECT id, type, status, run, params, error, result, submitted_at, completed_at FROM task_results
      ORDER BY id`).all()
  )

/** What the Store must answer for a fixture adopted from a Go file that had (or lacked) `run` and `result`. */
const expectedTask = (fixture: Fixture, has: { run: boolean; result: boolean }) => {
  const params = fixture.params === null || fixture.params === "{}" ? undefined : JSON.parse(fixture.params)
  const result = !has.result || fixture.result === null ? undefined : JSON.parse(fixture.result)
  return new Task({
    id: fixture.go.id as TaskId,
    type: fixture.go.type,
    status: fixture.go.status as Task["status"],
    run: has.run ? fixture.go.run : 1,
    ...(params === undefined ? {} : { params }),
    ...(fixture.go.error === "" ? {} : { error: fixture.go.error }),
    ...(result === undefined ? {} : { result }),
    submittedAt: DateTime.makeUnsafe(fixture.submittedAt),
    ...(fixture.completedAt === null ? {} : { completedAt: DateTime.makeUnsafe(fixture.completedAt) })
  })
}

const expectedRaw = (has: { run: boolean; result: boolean }) =>
  fixtures.map((f) => ({
    id: f.go.id,
    type: f.go.type,
    status: f.go.status,
    run: has.run ? f.go.run : 1,
    params: f.params,
    error: f.go.error,
    result: has.result ? f.result : null,
    submitted_at: f.submittedAt,
    completed_at: f.completedAt
  }))

const getAll = Effect.flatMap(Store, (store) => Effect.forEach(fixtures, (f) => store.get(f.go.id)))
const adoptionLog = (logs: ReadonlyArray<LogLine>) => logs.find((l) => l.message === "adopted a Go sidecar database")
const readyLog = (logs: ReadonlyArray<LogLine>) => logs.find((l) => l.message === "database ready")

/** The columns of task_results in a database this project creates from nothing, sorted. */
const freshColumns = Effect.gen(function*() {
  const file = yield* tempDb
  yield* open(file, Effect.void)
  return taskColumns(file).sort()
})

describe("adopting a Go sidecar database", () => {
  for (const version of [1, 2, 3, 4, 5]) {
    it.effect(`version ${version}: every row kept and brought to this schema, in place, once`, () =>
      Effect.gen(function*() {
        const file = yield* tempDb
        const ownColumns = yield* freshColumns
        makeGoFile(file, version)
        const has = { run: version >= 3, result: version >= 4 }
        const markersBefore = version >= 5 ? dump(file).tables.tx_markers : undefined
        const markersSchema = query(file, "SELECT sql FROM sqlite_master WHERE tbl_name = 'tx_markers'")

        const first = yield* open(file, Effect.all([getAll, appliedMigrations]))
        const [tasks, applied] = first.value

        // row by row, through the real Store
        for (const [n, fixture] of fixtures.entries()) {
          const task = Option.getOrThrow(tasks[n]!)
          expect(task).toEqual(expectedTask(fixture, has))
          expect(DateTime.formatIso(task.submittedAt)).toBe(fixture.submittedAt)
          expect(task.completedAt === undefined ? null : DateTime.formatIso(task.completedAt)).toBe(fixture.completedAt)
        }
        // and as stored: this project's text forms, SQL NULL for empty JSON
        expect(rawTasks(file)).toEqual(expectedRaw(has))

        expect(taskColumns(file).sort()).toEqual(ownColumns)
        const indexes = taskIndexes(file)
        expect(indexes.map((i) => i.name)).not.toContain("idx_due")
        expect(indexes.flatMap((i) => i.columns)).not.toContain("next_run_at")
        if (version >= 5) {
          expect(dump(file).tables.tx_markers).toEqual(markersBefore)
          expect(query(file, "SELECT sql FROM sqlite_master WHERE tbl_name = 'tx_markers'")).toEqual(markersSchema)
        }
        expect(applied).toEqual(allMigrations)

        expect(adoptionLog(first.logs)?.annotations).toEqual({
          userVersion: version,
          goColumnsDropped: version === 1 ? ["schedule", "next_run_at"] : [],
          goIndexesDropped: version === 1 ? ["idx_due"] : [],
          scheduledRowsDiscarded: version === 1 ? 1 : 0,
          rowsRewritten: 5,
          timestampsRewritten: 5,
          emptyJsonCleared: has.result ? 4 : 2,
          unknownColumnsKept: [],
          migration_id: "4",
          migration_name: "adopt_go_sidecar"
        })

        // the next start applies nothing and changes nothing
        const before = dump(file)
        const second = yield* open(file, getAll)
        expect(readyLog(second.logs)?.annotations.migrationsApplied).toEqual([])
        expect(adoptionLog(second.logs)).toBeUndefined()
        expect(dump(file)).toEqual(before)
        expect(second.value).toEqual(tasks)
      }))
  }

  it.effect("the release with another column at version 3: that column is kept with its data, run is added as 1", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      const ownColumns = yield* freshColumns
      makeGoFile(file, 3, { oddV3: true })
      const { logs, value: tasks } = yield* open(file, getAll)
      for (const [n, fixture] of fixtures.entries()) {
        expect(Option.getOrThrow(tasks[n]!)).toEqual(expectedTask(fixture, { run: false, result: false }))
      }
      expect(rawTasks(file)).toEqual(expectedRaw({ run: false, result: false }))
      expect(taskColumns(file).sort()).toEqual([...ownColumns, "attempts"].sort())
      expect(query(file, "SELECT id, attempts FROM task_results ORDER BY id")).toEqual(
        fixtures.map((f, n) => ({ id: f.go.id, attempts: n + 1 }))
      )
      expect(adoptionLog(logs)?.annotations).toMatchObject({ userVersion: 3, unknownColumnsKept: ["attempts"] })
      expect(logs.filter((l) => l.level === "Warn")).toEqual([])

      // and the sidecar can store new tasks beside it (the column's default fills it)
      const fresh = new Task({
        id: id(7),
        type: "mark-ready",
        status: "running",
        run: 1,
        submittedAt: DateTime.makeUnsafe("2026-01-02T03:04:05.000Z")
      })
      const again = yield* open(file, Effect.flatMap(Store, (s) => Effect.andThen(save(fresh), s.get(fresh.id))))
      expect(Option.getOrThrow(again.value)).toEqual(fresh)
    }))

  it.effect("a timestamp that is not RFC 3339 stops the start and rolls everything back", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      makeGoFile(file, 1)
      const db = openDatabase(file)
      db.prepare("UPDATE task_results SET submitted_at = 'yesterday' WHERE id = ?").run(id(4))
      db.close()
      const rowsBefore = dump(file).tables.task_results

      const exit = yield* Effect.exit(open(file, Effect.void))
      expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
      // the one line the sidecar prints when it cannot start
      expect(Exit.isFailure(exit) ? String(Cause.squash(exit.cause)) : "opened").toBe(
        `UnreadableTimestamp: task_results row "${id(4)}": submitted_at "yesterday" is not an RFC 3339 time; ` +
          "correct or delete that row, then start again (no row was changed)"
      )
      expect(dump(file).tables.task_results).toEqual(rowsBefore)
      expect(taskColumns(file)).toContain("next_run_at")
      expect(taskIndexes(file).map((i) => i.name)).toContain("idx_due")
      expect(query(file, "SELECT count(*) AS n FROM effect_sql_migrations")).toEqual([{ n: 0 }])
    }))
})

describe("retention after adopting a Go sidecar database", () => {
  /** Start the Engine on `file` with the default retention (168 h), run `use`, stop it; with what it logged. */
  const start = <A, E>(file: string, use: Effect.Effect<A, E>) =>
    Effect.gen(function*() {
      const logs: Array<LogLine> = []
      const engine = engineOver(sqlLayer(file)).pipe(
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { SIDECAR_RETENTION_HOURS: "168" } })))
      )
      const value = yield* use.pipe(Effect.provide(engine), Effect.provide(captureLogs(logs)))
      return { value, logs }
    })
  const taskIds = (file: string) =>
    (query(file, "SELECT id FROM task_results ORDER BY id") as Array<{ id: string }>).map((r) => r.id)
  /** Long enough for the background prune, forked as the Engine starts, to have its turn. */
  const settle = TestClock.adjust("1 second")
  const graceWarning = (logs: ReadonlyArray<LogLine>) =>
    logs.filter((l) => l.level === "Warn" && String(l.message).startsWith("retention will delete"))
  // four weeks after the fixtures ended: ids 2, 3 and 4 ended more than 168 h before; 1 is running, 5 never ended,
  // and 6 is the latest readiness task, which retention keeps
  const upgradedAt = Date.parse("2024-04-01T00:00:00.000Z")
  const warned = {
    tasks: 3,
    history: "adopted from the Go sidecar",
    retentionHours: 168,
    keepThem: "SIDECAR_RETENTION_HOURS=0",
    endedBefore: "2024-03-25T01:00:00.000Z", // the first prune's cutoff: the grace's end less the retention
    deletingFrom: "2024-04-01T01:00:00.000Z" // an hour after the start
  }

  it.effect("old finished tasks are kept through an hour's grace, announced with their count, then pruned", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      makeGoFile(file, 5)
      yield* TestClock.setTime(upgradedAt)
      const { logs } = yield* start(
        file,
        Effect.gen(function*() {
          yield* TestClock.adjust("59 minutes")
          expect(taskIds(file)).toEqual(fixtures.map((f) => f.go.id))
          yield* TestClock.adjust("1 minute")
          expect(taskIds(file)).toEqual([id(1), id(5), id(6)])
        })
      )
      expect(graceWarning(logs).map((l) => l.annotations)).toEqual([warned])
      const warning = logs.indexOf(graceWarning(logs)[0]!)
      const pruned = logs.findIndex((l) => l.message === "pruned old tasks")
      expect(logs[pruned]?.annotations).toEqual({ deleted: 3, before: "2024-03-25T01:00:00.000Z" })
      expect(warning).toBeGreaterThan(logs.findIndex((l) => l.message === "adopted a Go sidecar database"))
      expect(warning).toBeLessThan(pruned)
      // the grace is over for good: the next start prunes at once and says nothing
      expect(query(file, "SELECT * FROM retention_grace")).toEqual([])
      yield* TestClock.adjust("30 days")
      const next = yield* start(file, settle)
      expect(graceWarning(next.logs)).toEqual([])
      expect(next.logs.find((l) => l.message === "pruned old tasks")?.annotations.deleted).toBe(1)
      expect(taskIds(file)).toEqual([id(5), id(6)]) // 1 failed when it was resumed (no such command here)
    }))

  it.effect("a restart inside the grace keeps its end: it neither starts again nor is skipped", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      makeGoFile(file, 2)
      yield* TestClock.setTime(upgradedAt)
      const first = yield* start(file, TestClock.adjust("40 minutes"))
      expect(graceWarning(first.logs).map((l) => l.annotations)).toEqual([warned])
      expect(query(file, "SELECT history, ends_at FROM retention_grace")).toEqual([
        { history: "adopted from the Go sidecar", ends_at: warned.deletingFrom }
      ])

      const second = yield* start(
        file,
        Effect.gen(function*() {
          yield* TestClock.adjust("19 minutes")
          expect(taskIds(file)).toHaveLength(fixtures.length)
          yield* TestClock.adjust("1 minute")
          expect(taskIds(file)).toEqual([id(1), id(5), id(6)])
        })
      )
      expect(graceWarning(second.logs).map((l) => l.annotations)).toEqual([warned])
    }))

  it.effect("with nothing old enough to delete, it warns that adopted tasks go as they age, and does not wait", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      makeGoFile(file, 5)
      yield* TestClock.setTime(Date.parse("2024-03-04T00:00:00.000Z")) // a day after the last fixture ended
      const { logs } = yield* start(file, settle)
      expect(graceWarning(logs).map((l) => l.annotations)).toEqual([
        { tasks: 0, history: "adopted from the Go sidecar", retentionHours: 168, keepThem: "SIDECAR_RETENTION_HOURS=0" }
      ])
      expect(query(file, "SELECT * FROM retention_grace")).toEqual([])
    }))
})

describe("a Go sidecar database newer than version 5", () => {
  /** How opening `file` failed, as one line: "opened" when it did not fail. */
  const refused = (file: string) =>
    Effect.map(
      Effect.exit(open(file, Effect.void)),
      Exit.match({
        onSuccess: () => "opened",
        onFailure: (cause) => {
          const error = Cause.squash(cause)
          return error instanceof UnsupportedDatabase ? error.message : `not UnsupportedDatabase: ${String(error)}`
        }
      })
    )

  it.effect("is refused before it is opened, byte for byte untouched, nothing created beside it", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      makeGoFile(file, 5)
      const db = openDatabase(file)
      db.exec("ALTER TABLE task_results ADD COLUMN lease_owner TEXT")
      db.exec("PRAGMA user_version = 6")
      db.close()
      const hash = sha256(file)
      const files = filesBeside(file)
      expect(files).toEqual(["sidecar.db"])

      expect(yield* refused(file)).toBe(refusal(file, 6))
      expect(sha256(file)).toBe(hash)
      expect(filesBeside(file)).toEqual(files)
    }))

  it.effect("in WAL mode too: no -wal or -shm appears beside it", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      makeGoFile(file, 5, { journal: "wal" })
      const db = openDatabase(file)
      db.exec("PRAGMA user_version = 7")
      db.close() // the last connection checkpoints and removes -wal and -shm
      const hash = sha256(file)
      expect(filesBeside(file)).toEqual(["sidecar.db"])

      expect(yield* refused(file)).toBe(refusal(file, 7))
      expect(sha256(file)).toBe(hash)
      expect(filesBeside(file)).toEqual(["sidecar.db"])
    }))

  it.effect("when the new version is committed only to the -wal file of a writer still open, it is still refused", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      makeGoFile(file, 5, { journal: "wal" })
      const writer = openDatabase(file)
      yield* Effect.addFinalizer(() => Effect.sync(() => writer.close()))
      writer.exec("PRAGMA wal_autocheckpoint = 0")
      writer.exec("PRAGMA user_version = 6")
      expect(readFileSync(file).readUInt32BE(60)).toBe(5) // the header alone would say 5
      const hash = sha256(file)

      expect(yield* refused(file)).toBe(refusal(file, 6))
      expect(sha256(file)).toBe(hash)
    }))

  it.effect("a database of ours stamped with a user_version above 5 is not refused (it has the migrator's table)", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* open(file, Effect.void)
      const db = openDatabase(file)
      db.exec("PRAGMA user_version = 9")
      db.close()
      expect(filesBeside(file)).toEqual(["sidecar.db"])
      const { value } = yield* open(file, appliedMigrations)
      expect(value).toEqual(allMigrations)
    }))
})

describe("a database this project created before 0004", () => {
  it.effect("is left exactly as it was", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* makeFileBefore0004(file)
      const tasks = tasksBefore0004
      const before = rawTasks(file)

      const { logs, value } = yield* open(file, Effect.flatMap(Store, (s) => Effect.forEach(tasks, (t) => s.get(t.id))))
      expect(rawTasks(file)).toEqual(before)
      expect(value.map(Option.getOrThrow)).toEqual(tasks)
      expect(readyLog(logs)?.annotations.migrationsApplied).toContain("0004_adopt_go_sidecar")
      const adoption = logs.find((l) => l.message === "no Go sidecar database to adopt")
      expect(adoption?.annotations).toMatchObject({ userVersion: 0, rowsRewritten: 0, goColumnsDropped: [] })
      expect(logs.filter((l) => l.annotations.migration_id === "4" && l.level !== "Debug")).toEqual([])
    }))
})

describe("normaliseTimestamp", () => {
  it("reads Go's RFC 3339 forms: nanoseconds truncated, offsets applied, this project's form out", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["2024-03-01T10:20:30.123456789Z", "2024-03-01T10:20:30.123Z"],
      ["2024-03-01T10:20:30.999999999Z", "2024-03-01T10:20:30.999Z"],
      ["2024-12-31T23:59:59.9999Z", "2024-12-31T23:59:59.999Z"],
      ["2024-03-01T12:20:30.5+02:00", "2024-03-01T10:20:30.500Z"],
      ["2024-03-01T05:30:00.25-07:00", "2024-03-01T12:30:00.250Z"],
      ["2024-01-01T00:30:00.000001+01:00", "2023-12-31T23:30:00.000Z"],
      ["2024-02-29T00:00:00+05:30", "2024-02-28T18:30:00.000Z"],
      ["2024-03-01T10:20:30Z", "2024-03-01T10:20:30.000Z"],
      ["2024-03-01 10:20:30.123456-07:00", "2024-03-01T17:20:30.123Z"],
      ["2024-03-01t10:20:30.1z", "2024-03-01T10:20:30.100Z"],
      ["2024-03-01T10:20:30.123456789-00:00", "2024-03-01T10:20:30.123Z"],
      ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"],
      ["2026-01-02T03:04:05.000Z", "2026-01-02T03:04:05.000Z"]
    ]
    for (const [go, ours] of cases) expect([go, normaliseTimestamp(go)]).toEqual([go, ours])
  })

  it("refuses what is not an RFC 3339 instant, rather than guess", () => {
    for (
      const text of [
        "",
        "yesterday",
        "1709288430",
        "2024-03-01T10:20:30",
        "2024-03-01T10:20:30.Z",
        "2024-03-01T10:20:30+0200",
        "2024-03-01T10:20:30+24:00",
        "2024-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-03-01T24:00:00Z",
        "2024-03-01T10:60:00Z",
        "2024-03-01T10:20:60Z",
        "2024-03-01T10:20:30 +0000 UTC",
        "9999-12-31T23:30:00-01:00" // year 10000 in UTC has no 24-character form
      ]
    ) expect([text, normaliseTimestamp(text)]).toEqual([text, undefined])
  })

  it("agrees with new Date(x).toISOString() wherever Date reads milliseconds exactly", () => {
    for (
      const text of [
        "2024-03-01T10:20:30Z",
        "2024-03-01T10:20:30.5Z",
        "2024-03-01T10:20:30.12+02:00",
        "2024-03-01T10:20:30.123-11:30",
        "1970-01-01T00:00:00.000Z"
      ]
    ) expect(normaliseTimestamp(text)).toBe(new Date(text).toISOString())
  })

  it("any instant written as Go writes it, in any offset, reads back as that instant truncated to milliseconds", () => {
    const pad = (n: number, width = 2) => String(n).padStart(width, "0")
    fc.assert(
      fc.property(
        fc.integer({ min: -62135596800000, max: 253402300799999 }), // years 1 to 9999
        fc.integer({ min: 0, max: 999_999 }), // nanoseconds below the millisecond
        fc.integer({ min: -14 * 60, max: 14 * 60 }), // offset in minutes
        (millis, subMillisNanos, offset) => {
          const local = new Date(millis + offset * 60_000)
          fc.pre(local.getUTCFullYear() >= 1 && local.getUTCFullYear() <= 9999)
          const nanos = local.getUTCMilliseconds() * 1_000_000 + subMillisNanos
          const fraction = nanos === 0 ? "" : `.${String(nanos).padStart(9, "0").replace(/0+$/, "")}`
          const zone = offset === 0
            ? "Z"
            : `${offset < 0 ? "-" : "+"}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`
          const text = `${pad(local.getUTCFullYear(), 4)}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())}T` +
            `${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}${fraction}${zone}`
          expect([text, normaliseTimestamp(text)]).toEqual([text, new Date(millis).toISOString()])
        }
      ),
      { numRuns: 2000 }
    )
  })
})
