import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import type { Migrator } from "@effect/sql"
import { SqliteClient, SqliteMigrator } from "@effect/sql-sqlite-node"
import { Duration, Effect, Layer } from "effect"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { AppConfig } from "./Config.js"
import { busyTimeout } from "./Store.js"

const migrationsDir = fileURLToPath(new URL("../migrations", import.meta.url))

/**
 * Loads `migrations/NNNN_name.ts`. The `import()` lives here rather than in the library's loader so that it
 * resolves through our own module loader (tsx, vitest) instead of from inside node_modules.
 */
export const migrationsFrom = (dir: string): Migrator.Loader =>
  Effect.sync(() =>
    readdirSync(dir).flatMap((file) => {
      const m = /^(\d+)_(\w+)\.(ts|js)$/.exec(file)
      return m === null
        ? []
        : [[Number(m[1]), m[2]!, Effect.promise(() => import(pathToFileURL(join(dir, file)).href))] as const]
    }).sort(([a], [b]) => a - b)
  )

const ensureFolder = (filename: string) =>
  Effect.gen(function*() {
    if (filename === ":memory:" || filename.startsWith("file:")) return
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    yield* fs.makeDirectory(path.dirname(filename), { recursive: true })
  })

// Pragmas first (they are per connection), then the migrations, so nothing can query an old schema.
const setup = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`PRAGMA synchronous = NORMAL`
  // While migrating, nothing else is served, so SQLite may wait for another writer the blocking way. Afterwards
  // the Store waits asynchronously instead (see busyTimeout), so the connection must not block at all.
  yield* sql`PRAGMA busy_timeout = ${sql.literal(String(Duration.toMillis(busyTimeout)))}`
  const applied = yield* SqliteMigrator.run({ loader: migrationsFrom(migrationsDir) })
  yield* sql`PRAGMA busy_timeout = 0`
  yield* Effect.logInfo("database ready").pipe(
    Effect.annotateLogs("migrationsApplied", applied.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`))
  )
})

/** SQLite on `filename` (":memory:" allowed), configured and migrated before anything can use it. */
export const sqlLayer = (filename: string) =>
  Layer.effectDiscard(setup).pipe(
    Layer.provideMerge(SqliteClient.layer({ filename })),
    Layer.provide(Layer.effectDiscard(ensureFolder(filename))),
    Layer.provide(NodeContext.layer)
  )

export const SqlLive = Layer.unwrapEffect(Effect.map(AppConfig, (config) => sqlLayer(config.dbPath)))
