import * as NodeServices from "@effect/platform-node/NodeServices"
import { SqliteMigrator } from "@effect/sql-sqlite-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { readdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { migrations } from "../../migrations/index.js"
import type { TaskId } from "../../src/Domain.js"
import { Metrics } from "../../src/Metrics.js"
import { sqliteLayer } from "../../src/store/Connection.js"
import { sqlLayer } from "../../src/store/Database.js"
import { Store } from "../../src/store/Store.js"
import { appliedMigrations, openDatabase, pragma, taskColumns, tempDb } from "../support/sqlite.js"

/** task_results as migration 0001 (and the Go sidecar's first schema) made it. */
const table0001 = `CREATE TABLE task_results (id TEXT PRIMARY KEY, type TEXT, status TEXT, params TEXT,
  error TEXT NOT NULL DEFAULT '', submitted_at TEXT, completed_at TEXT)`

const open = (file: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provide(effect, Store.layer.pipe(Layer.provide(Metrics.layer))).pipe(
    Effect.provide(sqlLayer(file))
  )

describe("migrations", () => {
  it("the index the migrator loads lists every migration file, under its own id and name", () => {
    const files = readdirSync(fileURLToPath(new URL("../../migrations", import.meta.url)))
      .flatMap((file) => {
        const m = /^0*(\d+)_(\w+)\.ts$/.exec(file)
        return m === null ? [] : [`${m[1]}_${m[2]}`]
      })
    expect(Object.keys(migrations).sort()).toEqual(files.sort())
    expect(files.length).toBeGreaterThanOrEqual(7)
  })

  it.effect("create the schema on a new file, and a second start applies nothing", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      expect(yield* appliedMigrations.pipe(Effect.provide(sqlLayer(file)))).toEqual([
        "create_task_results",
        "add_run_column",
        "add_result_column",
        "adopt_go_sidecar",
        "create_task_runs",
        "index_task_filters",
        "keep_past_runs_only",
        "create_retention_grace",
        "fewer_index_writes_per_task",
        "lists_in_index_order"
      ])
      expect(taskColumns(file)).toEqual([
        "id",
        "type",
        "status",
        "params",
        "error",
        "submitted_at",
        "completed_at",
        "run",
        "result",
        "resumes"
      ])
      // second start: the same rows, no error from re-running anything
      expect(yield* appliedMigrations.pipe(Effect.provide(sqlLayer(file)))).toHaveLength(10)
      const db = openDatabase(file, { readonly: true })
      const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'task_results'")
        .all()
      const pragmas = { journal: pragma(db, "journal_mode") }
      db.close()
      expect(indexes.map((row) => (row as { name: string }).name).filter((name) => name.startsWith("idx_")).sort())
        .toEqual([
          "idx_task_results_submitted_at",
          "idx_task_results_type_submitted_at",
          "idx_task_results_unfinished_submitted_at"
        ])
      expect(pragmas.journal).toBe("wal")
    }).pipe(Effect.provide(NodeServices.layer)))

  it.effect("a 0001-shaped database made by another program, with rows, upgrades in place", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      const db = openDatabase(file)
      db.exec(table0001)
      db.prepare("INSERT INTO task_results VALUES (?, ?, ?, ?, ?, ?, ?)").run(
        "11111111-1111-4111-8111-111111111111",
        "run-command",
        "failed",
        "{\"command\":\"sync\"}",
        "run-command: sync: exited with code 1",
        "2026-01-02T03:04:05.000Z",
        "2026-01-02T03:05:00.000Z"
      )
      db.prepare("INSERT INTO task_results VALUES (?, ?, ?, ?, ?, ?, ?)").run(
        "22222222-2222-4222-8222-222222222222",
        "mark-ready",
        "completed",
        null,
        "",
        "2026-01-02T04:00:00.000Z",
        "2026-01-02T04:00:01.000Z"
      )
      db.close()

      const [failed, ready] = yield* Effect.all([
        Effect.flatMap(Store, (s) => s.get("11111111-1111-4111-8111-111111111111")),
        Effect.flatMap(Store, (s) => s.get("22222222-2222-4222-8222-222222222222"))
      ]).pipe(open(file))
      expect(Option.getOrThrow(failed)).toMatchObject({
        id: "11111111-1111-4111-8111-111111111111" as TaskId,
        status: "failed",
        run: 1, // existing rows completed their first run
        params: { command: "sync" },
        error: "run-command: sync: exited with code 1"
      })
      expect(Option.getOrThrow(failed).result).toBeUndefined()
      expect(Option.getOrThrow(ready)).toMatchObject({ type: "mark-ready", status: "completed", run: 1 })
      expect(Option.getOrThrow(ready).params).toBeUndefined()
      expect(taskColumns(file)).toContain("run")
      expect(taskColumns(file)).toContain("result")
    }).pipe(Effect.provide(NodeServices.layer)))

  it.effect("a database that already has run and result (but no migrator table) keeps its data", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      const db = openDatabase(file)
      db.exec(`CREATE TABLE task_results (id TEXT PRIMARY KEY, type TEXT, status TEXT, params TEXT,
        error TEXT NOT NULL DEFAULT '', submitted_at TEXT, completed_at TEXT, run INTEGER NOT NULL DEFAULT 1,
        result TEXT)`)
      db.prepare("INSERT INTO task_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)").run(
        "33333333-3333-4333-8333-333333333333",
        "run-command",
        "completed",
        null,
        "",
        "2026-01-02T03:04:05.000Z",
        "2026-01-02T03:05:00.000Z",
        4,
        "{\"exitCode\":0}"
      )
      db.close()
      const got = yield* Effect.flatMap(Store, (s) => s.get("33333333-3333-4333-8333-333333333333")).pipe(open(file))
      expect(Option.getOrThrow(got)).toMatchObject({ run: 4, result: { exitCode: 0 } })
    }).pipe(Effect.provide(NodeServices.layer)))
})

describe("0008: the grace before retention first prunes a file", () => {
  const graceRows = (file: string) => {
    const db = openDatabase(file, { readonly: true })
    try {
      return db.prepare("SELECT history, ends_at FROM retention_grace").all()
    } finally {
      db.close()
    }
  }
  const insertTask = (file: string) => {
    const db = openDatabase(file)
    try {
      db.prepare(`INSERT INTO task_results (id, type, status, error, submitted_at, completed_at)
        VALUES (?, ?, ?, ?, ?, ?)`).run(
        "44444444-4444-4444-8444-444444444444",
        "mark-ready",
        "completed",
        "",
        "2025-01-02T03:04:05.000Z",
        "2025-01-02T03:04:06.000Z"
      )
    } finally {
      db.close()
    }
  }

  it.effect("a new file gets none: it has no tasks", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* appliedMigrations.pipe(Effect.provide(sqlLayer(file)))
      expect(graceRows(file)).toEqual([])
    }).pipe(Effect.provide(NodeServices.layer)))

  it.effect("a file with tasks from before retention (0001 to 0003) gets one, its end left to the first prune", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      const db = openDatabase(file)
      db.exec(table0001)
      db.close()
      insertTask(file)
      yield* appliedMigrations.pipe(Effect.provide(sqlLayer(file)))
      expect(graceRows(file)).toEqual([{ history: "written before retention", ends_at: null }])
    }).pipe(Effect.provide(NodeServices.layer)))

  it.effect("a file already under retention (0005 applied by an earlier start) gets none", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      yield* SqliteMigrator.run({
        loader: Effect.map(SqliteMigrator.fromRecord(migrations), (all) => all.filter(([n]) => n <= 7))
      }).pipe(Effect.provide(sqliteLayer(file)))
      insertTask(file)
      // that earlier start was a while ago (the migrator records its time to the second)
      const db = openDatabase(file)
      db.exec("UPDATE effect_sql_migrations SET created_at = '2025-01-01 00:00:00'")
      db.close()
      expect(yield* appliedMigrations.pipe(Effect.provide(sqlLayer(file)))).toHaveLength(10)
      expect(graceRows(file)).toEqual([])
    }).pipe(Effect.provide(NodeServices.layer)))
})
