import { SqliteMigrator } from "@effect/sql-sqlite-node"
import { Data, Duration, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync } from "node:fs"
import { dirname } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { baseline } from "../../migrations/baseline.js"
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

/** Each migration as the migrator records it ([id, name]), in order. */
const migrationRows = Object.keys(migrations).map((key) => {
  const [, id, name] = /^(\d+)_(.+)$/.exec(key)!
  return [Number(id), name!] as const
}).sort(([a], [b]) => a - b)

/** The migrations the baseline stands for. */
const baselined = migrationRows.filter(([id]) => id <= baseline.through)

const label = ([id, name]: readonly [number, string]) => `${String(id).padStart(4, "0")}_${name}`

/**
 * An empty database gets, in one transaction, the schema the migrations through `baseline.through` leave behind
 * (migrations/baseline.ts) and the migrator's rows for them, so that the migrator applies only what came after.
 * Whether it was empty: this start created the database.
 */
const createFromBaseline = (sql: SqlClient.SqlClient) =>
  sql.withTransaction(Effect.gen(function*() {
    const [found] = yield* sql<{ objects: number; version: number }>`SELECT
      (SELECT count(*) FROM sqlite_master) AS objects, (SELECT user_version FROM pragma_user_version) AS version`
    if (found!.objects > 0 || found!.version !== 0) return false
    for (const statement of baseline.statements) yield* sql.unsafe(statement)
    for (const [migration_id, name] of baselined) {
      yield* sql`INSERT INTO effect_sql_migrations ${sql.insert({ migration_id, name })}`
    }
    if (baseline.userVersion !== 0) yield* sql`PRAGMA user_version = ${sql.literal(String(baseline.userVersion))}`
    return true
  }))

// Pragmas first, then the migrations, so nothing can query an old schema.
const setup = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`PRAGMA synchronous = NORMAL`
  // the connection's own checkpoints, until the Checkpointer runs (and should it stop)
  yield* sql`PRAGMA wal_autocheckpoint = ${sql.literal(String(mainConnectionCheckpoint))}`
  yield* sql`PRAGMA journal_size_limit = ${sql.literal(String(restartBytes))}`
  // only while migrating may SQLite wait for another writer the blocking way (see busyTimeout)
  yield* sql`PRAGMA busy_timeout = ${sql.literal(String(Duration.toMillis(busyTimeout)))}`
  const created = yield* createFromBaseline(sql)
  const applied = yield* SqliteMigrator.run({ loader: SqliteMigrator.fromRecord(migrations) })
  yield* sql`PRAGMA busy_timeout = 0`
  yield* Effect.logInfo("database ready").pipe(
    Effect.annotateLogs({ created, migrationsApplied: [...(created ? baselined : []), ...applied].map(label) })
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
