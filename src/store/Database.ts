import { SqliteMigrator } from "@effect/sql-sqlite-node"
import { Data, Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync } from "node:fs"
import { dirname } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { migrations } from "../../migrations/index.js"
import { AppConfig } from "../Config.js"
import { mainConnectionCheckpoint, restartBytes } from "./Checkpointer.js"
import { open, sqliteLayer } from "./Connection.js"
import { isPlainFile, sqliteHeader } from "./DatabaseFile.js"
import { busyTimeout } from "./Retry.js"

const ensureFolder = (filename: string) =>
  Effect.sync(() => {
    if (isPlainFile(filename)) mkdirSync(dirname(filename), { recursive: true })
  })

/** The Go sidecar's highest user_version that migration 0004 adopts. */
export const highestGoVersion = 5

/** A database file this sidecar must not open, refused untouched. */
export class UnsupportedDatabase extends Data.TaggedError("UnsupportedDatabase")<{
  readonly file: string
  readonly reason: string
}> {
  override get message() {
    return `the database ${this.file} ${this.reason}; the file was left untouched`
  }
}

const headerSize = 100

/** The user_version of a Go sidecar's `file` too new to adopt, read without writing to it. */
const unsupportedVersion = (file: string): number | undefined => {
  if (statSync(file, { throwIfNoEntry: false })?.isFile() !== true) return undefined
  const header = Buffer.alloc(headerSize)
  const fd = openSync(file, "r")
  let length: number
  try {
    length = readSync(fd, header, 0, headerSize, 0)
  } finally {
    closeSync(fd)
  }
  if (length < headerSize || !header.subarray(0, sqliteHeader.length).equals(sqliteHeader)) return undefined
  const hasWal = existsSync(`${file}-wal`)
  // without a -wal file, the header's user_version is the committed one or higher: nothing to refuse
  if (!hasWal && header.readUInt32BE(60) <= highestGoVersion) return undefined
  // opening a WAL-mode file, even read-only, creates files beside it: read a copy (marked rollback-mode) instead
  let db: DatabaseSync
  if (header[18] === 2 && !hasWal) {
    db = new DatabaseSync(":memory:")
    db.deserialize(readFileSync(file).fill(1, 18, 20))
  } else {
    db = open(file, { readOnly: true })
  }
  try {
    const userVersion = (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version
    const migrated = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'effect_sql_migrations'")
      .get() !== undefined
    return userVersion > highestGoVersion && !migrated ? userVersion : undefined
  } finally {
    db.close()
  }
}

const describe = (e: unknown) =>
  e instanceof Error ? ("code" in e && typeof e.code === "string" ? `${e.code}: ${e.message}` : e.message) : String(e)

/** Refuses a Go sidecar's file too new to adopt, before opening it switches it to WAL. */
const refuseUnsupported = (filename: string) =>
  Effect.gen(function*() {
    if (!isPlainFile(filename)) return
    const version = yield* Effect.try({
      try: () => unsupportedVersion(filename),
      catch: (e) =>
        new UnsupportedDatabase({
          file: filename,
          reason: `could not be read to check its schema version (${describe(e)})`
        })
    })
    if (version !== undefined) {
      return yield* new UnsupportedDatabase({
        file: filename,
        reason: `is at the Go sidecar's schema version ${version} (PRAGMA user_version), newer than ` +
          `${highestGoVersion}, the highest this sidecar can adopt`
      })
    }
  })

// Pragmas first, then the migrations, so nothing can query an old schema.
const setup = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`PRAGMA synchronous = NORMAL`
  // the connection's own checkpoints, until the Checkpointer runs (and should it stop)
  yield* sql`PRAGMA wal_autocheckpoint = ${sql.literal(String(mainConnectionCheckpoint))}`
  yield* sql`PRAGMA journal_size_limit = ${sql.literal(String(restartBytes))}`
  // only while migrating may SQLite wait for another writer the blocking way (see busyTimeout)
  yield* sql`PRAGMA busy_timeout = ${sql.literal(String(Duration.toMillis(busyTimeout)))}`
  const applied = yield* SqliteMigrator.run({ loader: SqliteMigrator.fromRecord(migrations) })
  yield* sql`PRAGMA busy_timeout = 0`
  yield* Effect.logInfo("database ready").pipe(
    Effect.annotateLogs("migrationsApplied", applied.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`))
  )
})

/** SQLite on `filename` (":memory:" allowed), configured and migrated before any use. */
export const sqlLayer = (filename: string) =>
  Layer.effectDiscard(setup).pipe(
    Layer.provideMerge(sqliteLayer(filename)),
    Layer.provide(Layer.effectDiscard(Effect.andThen(ensureFolder(filename), refuseUnsupported(filename))))
  )

export const SqlLive = Layer.unwrap(Effect.gen(function*() {
  return sqlLayer((yield* AppConfig).dbPath)
}))
