// A test's own look into SQLite files: connections of its own (node:sqlite, as the sidecar's) and one-line reads.
import { DatabaseSync } from "node:sqlite"
import { pathToFileURL } from "node:url"

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
