// SQLite files for tests: a fresh path in a temp folder, a connection of the test's own (node:sqlite, as the
// sidecar's), one-line reads, which migrations a file has had applied, and whether a file was left untouched.
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Effect, FileSystem } from "effect"
import { SqlClient } from "effect/sql"
import { createHash } from "node:crypto"
import { readdirSync, readFileSync } from "node:fs"
import { dirname } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { pathToFileURL } from "node:url"

/** The path of a database file not created yet, in a temp folder removed with the scope. */
export const tempDb = Effect.map(
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "sidecar-db-" })),
  (dir) => `${dir}/sidecar.db`
).pipe(Effect.provide(NodeServices.layer))

/**
 * A connection of the test's own to `file` (node:sqlite, as the sidecar's): read-only with `readonly`, and only if
 * the file exists with `mustExist`.
 */
export const openDatabase = (
  file: string,
  options: { readonly readonly?: boolean; readonly mustExist?: boolean } = {}
): DatabaseSync => {
  if (options.mustExist !== true) return new DatabaseSync(file, { readOnly: options.readonly ?? false })
  const url = pathToFileURL(file)
  url.searchParams.set("mode", options.readonly === true ? "ro" : "rw")
  return new DatabaseSync(url, { readOnly: options.readonly ?? false })
}

/** The first column of the first row `sql` answers, or undefined. */
export const scalar = (db: DatabaseSync, sql: string, ...params: Array<string | number | null>): unknown => {
  const statement = db.prepare(sql)
  statement.setReturnArrays(true)
  return (statement.get(...params) as Array<unknown> | undefined)?.[0]
}

/** `PRAGMA text`: what it answers first (a setting's value), or undefined. */
export const pragma = (db: DatabaseSync, text: string): unknown => scalar(db, `PRAGMA ${text}`)

/** Every row of `sql`, as plain objects. */
export const rowsOf = <Row>(db: DatabaseSync, sql: string, ...params: Array<string | number | null>): Array<Row> =>
  db.prepare(sql).all(...params).map((row) => ({ ...row }) as Row)

/** The columns of task_results in `file`, which must exist, in table order. */
export const taskColumns = (file: string): Array<string> => {
  const db = openDatabase(file, { readonly: true, mustExist: true })
  try {
    return rowsOf<{ name: string }>(db, "SELECT name FROM pragma_table_info('task_results')").map((c) => c.name)
  } finally {
    db.close()
  }
}

/** The names of the migrations applied to the database the SqlClient is on, in order. */
export const appliedMigrations = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<{ name: string }>`SELECT name FROM effect_sql_migrations ORDER BY migration_id`.pipe(
      Effect.map((rows) => rows.map((r) => r.name))
    )
)

/** The SHA-256 of `file`'s bytes, to check it was not written. */
export const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex")

/** The names in `file`'s folder, sorted: to check nothing was created beside it. */
export const filesBeside = (file: string) => readdirSync(dirname(file)).sort()
