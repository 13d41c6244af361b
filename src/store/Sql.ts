import { SqliteMigrator } from "@effect/sql-sqlite-node"
import { Data, Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync } from "node:fs"
import { dirname } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { migrations } from "../../migrations/index.js"
import { AppConfig } from "../Config.js"
import { mainConnectionCheckpoint, restartBytes } from "./Checkpointer.js"
import { isPlainFile, sqliteHeader } from "./DatabaseFile.js"
import { open, sqliteLayer } from "./Sqlite.js"
import { busyTimeout } from "./Store.js"

const ensureFolder = (filename: string) =>
  Effect.sync(() => {
    if (isPlainFile(filename)) mkdirSync(dirname(filename), { recursive: true })
  })

/** The highest PRAGMA user_version of the Go sidecar's schema that migration 0004 knows how to adopt. */
export const highestGoVersion = 5

/** A database file this sidecar must not open; refused before anything wrote to it. */
export class UnsupportedDatabase extends Data.TaggedError("UnsupportedDatabase")<{
  readonly file: string
  readonly reason: string
}> {
  override get message() {
    return `the database ${this.file} ${this.reason}; the file was left untouched`
  }
}

const headerSize = 100

/**
 * The user_version of `file` when it is a Go sidecar's database newer than this sidecar adopts (above
 * highestGoVersion, with no migrator table), else undefined; read without writing to the file or beside it.
 */
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
  // empty or not SQLite at all: the client's own open creates or refuses it, as before
  if (length < headerSize || !header.subarray(0, sqliteHeader.length).equals(sqliteHeader)) return undefined
  const hasWal = existsSync(`${file}-wal`)
  // Without a -wal file the header's user_version is the committed one, or, under a hot rollback journal, that of
  // an unfinished transaction, which (versions only grow) is no lower: either way, at most highestGoVersion means
  // there is nothing to refuse, and a normal start needs no more than this read.
  if (!hasWal && header.readUInt32BE(60) <= highestGoVersion) return undefined
  // A WAL-mode file opened even read-only gets -wal and -shm files created beside it; with no -wal file it is
  // complete on its own, so read a copy in memory instead (marked rollback-mode: memory databases have no WAL).
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

/**
 * Refuses a file of a Go sidecar newer than 0004 adopts, before the client opens it: the client switches the file to
 * WAL on open, which rewrites its header, and the migrations would then reshape a schema they do not know.
 */
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

// Pragmas first (they are per connection), then the migrations, so nothing can query an old schema.
const setup = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`PRAGMA synchronous = NORMAL`
  // A submit and its completion append ~10 pages to the WAL, so SQLite's default checkpoint (every 1,000 pages) ran
  // every ~100 submits, copying and fsyncing the same hot index pages over and over: a third of a write's cost here.
  // Ten times fewer checkpoints copy each such page once; the WAL is cut back after each to bound the volume. Once
  // the server runs, checkpoints move off the event loop (see Checkpointer); this is what the connection does until
  // then, and should that stop.
  yield* sql`PRAGMA wal_autocheckpoint = ${sql.literal(String(mainConnectionCheckpoint))}`
  yield* sql`PRAGMA journal_size_limit = ${sql.literal(String(restartBytes))}`
  // While migrating, nothing else is served, so SQLite may wait for another writer the blocking way. Afterwards
  // the Store waits asynchronously instead (see busyTimeout), so the connection must not block at all.
  yield* sql`PRAGMA busy_timeout = ${sql.literal(String(Duration.toMillis(busyTimeout)))}`
  const applied = yield* SqliteMigrator.run({ loader: SqliteMigrator.fromRecord(migrations) })
  yield* sql`PRAGMA busy_timeout = 0`
  yield* Effect.logInfo("database ready").pipe(
    Effect.annotateLogs("migrationsApplied", applied.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`))
  )
})

/** SQLite on `filename` (":memory:" allowed), configured and migrated before anything can use it. */
export const sqlLayer = (filename: string) =>
  Layer.effectDiscard(setup).pipe(
    Layer.provideMerge(sqliteLayer(filename)),
    Layer.provide(Layer.effectDiscard(Effect.andThen(ensureFolder(filename), refuseUnsupported(filename))))
  )

export const SqlLive = Layer.unwrap(Effect.gen(function*() {
  return sqlLayer((yield* AppConfig).dbPath)
}))
