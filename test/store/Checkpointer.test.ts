import * as NodeServices from "@effect/platform-node/NodeServices"
import { describe, expect, it } from "@effect/vitest"
import { Effect, FileSystem, Layer, Logger } from "effect"
import { copyFileSync, existsSync, rmSync, unlinkSync } from "node:fs"
import { join } from "node:path"
import type { DatabaseSync } from "node:sqlite"
import { BackgroundCheckpoints, mainConnectionCheckpoint } from "../../src/store/Checkpointer.js"
import { Sqlite } from "../../src/store/Connection.js"
import { sqlLayer } from "../../src/store/Database.js"
import { openDatabase, pragma, scalar } from "../support/sqlite.js"
import { pollUntil } from "../support/wait.js"

/** A folder for one test's database, removed afterwards. */
const folder = Effect.flatMap(
  FileSystem.FileSystem,
  (fs) => fs.makeTempDirectoryScoped({ prefix: "sidecar-checkpoint-" })
).pipe(Effect.provide(NodeServices.layer))

const autocheckpoint = (db: DatabaseSync) => pragma(db, "wal_autocheckpoint") as number

/**
 * The rows of task_results in the database file alone: what checkpoints have copied there from the WAL. A copy taken
 * while a checkpoint writes into the file can be torn (SQLite finds it malformed): that is -1, "look again".
 */
const rowsInFile = (file: string, dir: string) => {
  const copy = join(dir, "copy.db")
  copyFileSync(file, copy)
  const db = openDatabase(copy, { readonly: true })
  try {
    const table = scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = 'task_results'")
    return table === 0 ? 0 : scalar(db, "SELECT count(*) FROM task_results") as number
  } catch (e) {
    const code = (e as { code?: unknown }).code
    if (code === "SQLITE_CORRUPT" || code === "SQLITE_NOTADB") return -1
    throw e
  } finally {
    db.close()
    rmSync(copy, { force: true })
  }
}

describe("background checkpoints", () => {
  it.live("copy what is committed into the database file while the connection itself no longer checkpoints", () =>
    Effect.gen(function*() {
      const dir = yield* folder
      const file = join(dir, "sidecar.db")
      yield* Effect.scoped(
        Effect.gen(function*() {
          const db = yield* Sqlite
          yield* Effect.scoped(Effect.gen(function*() {
            const scope = yield* Effect.scope
            yield* Layer.buildWithScope(BackgroundCheckpoints, scope).pipe(Effect.provideService(Sqlite, db))
            // once the worker runs
            expect(yield* pollUntil(Effect.sync(() => autocheckpoint(db.db)), (n) => n === 0)).toBe(0)
            const insert = db.db.prepare(
              `INSERT INTO task_results (id, type, status, submitted_at) VALUES (?, 'x', 'running', '')`
            )
            for (let i = 0; i < 500; i++) insert.run(`task-${i}`)
            expect(yield* pollUntil(Effect.sync(() => rowsInFile(file, dir)), (n) => n === 500)).toBe(500)
          }))
          // stopped before the connection closes (the server drains meanwhile): the connection checkpoints again
          expect(autocheckpoint(db.db)).toBe(mainConnectionCheckpoint)
        }).pipe(Effect.provide(sqlLayer(file)))
      )
      // the worker's connection closed first: the main one, closing last, folded the WAL in and removed it
      expect(existsSync(`${file}-wal`)).toBe(false)
      expect(rowsInFile(file, dir)).toBe(500)
    }).pipe(Effect.scoped))

  it.live("if the worker cannot run, the connection checkpoints itself again and a warning says so", () =>
    Effect.gen(function*() {
      const dir = yield* folder
      const file = join(dir, "sidecar.db")
      const warnings: Array<unknown> = []
      const capture = Logger.make(({ logLevel, message }) => {
        if (logLevel === "Warn") warnings.push(message)
      })
      yield* Effect.scoped(
        Effect.gen(function*() {
          const db = yield* Sqlite
          // the worker opens the file only if it exists: gone, the worker fails at its start
          unlinkSync(file)
          yield* Layer.buildWithScope(BackgroundCheckpoints, yield* Effect.scope).pipe(
            Effect.provideService(Sqlite, db)
          )
          yield* pollUntil(Effect.sync(() => warnings.length), (n) => n > 0)
          expect(String(warnings)).toMatch(
            /background checkpoints stopped .*the database connection checkpoints itself/
          )
          expect(autocheckpoint(db.db)).toBe(mainConnectionCheckpoint)
        }).pipe(Effect.provide(sqlLayer(file)), Effect.provide(Logger.layer([capture])))
      )
    }).pipe(Effect.scoped))
})
