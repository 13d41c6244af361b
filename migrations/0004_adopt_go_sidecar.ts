import { Data, Effect } from "effect"
import { SqlClient } from "effect/sql"

/**
 * Adopts a database the Go sidecar wrote (it versioned its schema with PRAGMA user_version 1 to 5 and had no
 * migrator table): 0001 to 0003 accept its table as it is, this brings its columns and values to this project's
 * form. It decides by the columns it finds, never by the version number: one Go release shipped an extra column at
 * version 3, and a column we do not know is kept with its data. On a database this project created it only scans
 * the rows once and changes nothing.
 */

// Go v1 had a scheduler; Go v2 dropped these two columns (and the index on next_run_at) itself.
const goColumns = ["schedule", "next_run_at"]
const ownColumns = ["id", "type", "status", "run", "params", "error", "result", "submitted_at", "completed_at"]

/** This project's form, DateTime.formatIso's: UTC, milliseconds, `Z`. The GLOB is the same test in SQL. */
const canonical = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const canonicalGlob = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z"

// Go's RFC3339Nano: up to 9 fractional digits (trailing zeros trimmed, none at all on whole seconds), `Z` or an
// offset. The space separator is how a Go time.Time reaches SQLite through database/sql drivers.
const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/

/**
 * An RFC 3339 time in this project's form, or undefined when it is not one. Fractions beyond milliseconds are
 * truncated, as Go's own Truncate would, never rounded up into the next millisecond.
 */
export const normaliseTimestamp = (text: string): string | undefined => {
  const m = rfc3339.exec(text)
  if (m === null) return undefined
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number
  ]
  const millis = Number((m[7] ?? "").slice(0, 3).padEnd(3, "0"))
  const offsetHours = Number(m[9] ?? 0)
  const offsetMinutes = Number(m[10] ?? 0)
  if (offsetHours > 23 || offsetMinutes > 59) return undefined
  // set field by field: Date.UTC reads years 0 to 99 as 1900 to 1999, and Go's zero time is year 1
  const local = new Date(0)
  local.setUTCFullYear(year, month - 1, day)
  local.setUTCHours(hour, minute, second, millis)
  // out-of-range fields (February 30th, 24:00, second 60) roll over into another instant: refuse them instead
  if (
    local.getUTCFullYear() !== year || local.getUTCMonth() !== month - 1 || local.getUTCDate() !== day ||
    local.getUTCHours() !== hour || local.getUTCMinutes() !== minute || local.getUTCSeconds() !== second
  ) return undefined
  const sign = m[8] === "-" ? -1 : 1
  const iso = new Date(local.getTime() - sign * (offsetHours * 60 + offsetMinutes) * 60_000).toISOString()
  // an offset can push year 9999 or 0000 out of the 4-digit form, which the next start would not recognise
  return canonical.test(iso) ? iso : undefined
}

class UnreadableTimestamp extends Data.TaggedError("UnreadableTimestamp")<{
  readonly id: unknown
  readonly column: string
  readonly value: unknown
}> {
  override get message() {
    return `task_results row ${JSON.stringify(this.id)}: ${this.column} ${JSON.stringify(this.value)} is not an ` +
      "RFC 3339 time; correct or delete that row, then start again (no row was changed)"
  }
}

type Candidate = {
  readonly rowid: number
  readonly id: unknown
  readonly submitted_at: unknown
  readonly completed_at: unknown
  readonly params_empty: number | null
  readonly result_empty: number | null
}

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [version] = yield* sql<{ user_version: number }>`PRAGMA user_version`
  const userVersion = version?.user_version ?? 0
  const columns = yield* sql<{ name: string; notnull: number; dflt_value: unknown }>`
    SELECT name, "notnull", dflt_value FROM pragma_table_info('task_results')`
  const foundGo = columns.map((c) => c.name).filter((name) => goColumns.includes(name))
  const unknown = columns.filter((c) => !ownColumns.includes(c.name) && !goColumns.includes(c.name))

  const droppedIndexes: Array<string> = []
  let scheduledRows = 0
  if (foundGo.length > 0) {
    // SQLite refuses to drop an indexed column: find every index on them, whatever Go named it. The SQL text test
    // catches expressions and partial-index WHERE clauses, which index_info does not list.
    const mentionsGo = new RegExp(`\\b(${foundGo.join("|")})\\b`)
    const indexes = yield* sql<{ name: string; sql: string | null }>`
      SELECT l.name AS name, m.sql AS sql FROM pragma_index_list('task_results') AS l
      LEFT JOIN sqlite_master AS m ON m.type = 'index' AND m.name = l.name
      WHERE l.origin = 'c'`
    for (const index of indexes) {
      const on = yield* sql<{ name: string | null }>`SELECT name FROM pragma_index_info(${index.name})`
      if (on.some((c) => c.name !== null && foundGo.includes(c.name)) || mentionsGo.test(index.sql ?? "")) {
        yield* sql`DROP INDEX ${sql(index.name)}`
        droppedIndexes.push(index.name)
      }
    }
    const [scheduled] = yield* sql<{ n: number }>`SELECT count(*) AS n FROM task_results WHERE ${
      sql.literal(foundGo.map((c) => `coalesce(${c}, '') <> ''`).join(" OR "))
    }`
    scheduledRows = scheduled?.n ?? 0
    for (const column of foundGo) {
      yield* sql`ALTER TABLE task_results DROP COLUMN ${sql(column)}`
    }
  }

  // One scan finds the rows that need anything (none on this project's own databases), one UPDATE fixes them all.
  const candidates = yield* sql<Candidate>`
    SELECT rowid AS rowid, id, submitted_at, completed_at,
      trim(params) IN ('null', '') AS params_empty, trim(result) IN ('null', '') AS result_empty
    FROM task_results
    WHERE submitted_at IS NULL OR submitted_at NOT GLOB ${canonicalGlob}
      OR (completed_at IS NOT NULL AND completed_at NOT GLOB ${canonicalGlob})
      OR trim(params) IN ('null', '') OR trim(result) IN ('null', '')`
  const inForm = (row: Candidate, column: "submitted_at" | "completed_at") => {
    const value = row[column]
    const normalised = typeof value !== "string" ? undefined : canonical.test(value) ? value : normaliseTimestamp(value)
    // A defect, as the migrator makes of any failure (the run rolls back the same), but ours: the one line a failed
    // start prints then names the row instead of only the migration.
    return normalised === undefined
      ? Effect.die(new UnreadableTimestamp({ id: row.id, column, value }))
      : Effect.succeed(normalised)
  }
  const fixes: Array<{ rowid: number; submittedAt: string; completedAt: string | null }> = []
  let timestampsRewritten = 0
  let emptyJsonCleared = 0
  for (const row of candidates) {
    const submittedAt = yield* inForm(row, "submitted_at")
    // Go left completed_at NULL until a run ended; an empty string means the same
    const completedAt = row.completed_at === null || row.completed_at === ""
      ? null
      : yield* inForm(row, "completed_at")
    if (submittedAt !== row.submitted_at || completedAt !== row.completed_at) timestampsRewritten++
    emptyJsonCleared += (row.params_empty ?? 0) + (row.result_empty ?? 0)
    fixes.push({ rowid: row.rowid, submittedAt, completedAt })
  }
  if (fixes.length > 0) {
    yield* sql`UPDATE task_results SET
        submitted_at = fix.value ->> '$.submittedAt',
        completed_at = fix.value ->> '$.completedAt',
        params = CASE WHEN trim(params) IN ('null', '') THEN NULL ELSE params END,
        result = CASE WHEN trim(result) IN ('null', '') THEN NULL ELSE result END
      FROM json_each(${JSON.stringify(fixes)}) AS fix
      WHERE task_results.rowid = fix.value ->> '$.rowid'`
  }

  const report = {
    userVersion,
    goColumnsDropped: foundGo,
    goIndexesDropped: droppedIndexes,
    scheduledRowsDiscarded: scheduledRows,
    rowsRewritten: fixes.length,
    timestampsRewritten,
    emptyJsonCleared,
    unknownColumnsKept: unknown.map((c) => c.name)
  }
  if (userVersion > 0 || foundGo.length > 0) {
    yield* Effect.logInfo("adopted a Go sidecar database").pipe(Effect.annotateLogs(report))
  } else if (fixes.length > 0 || unknown.length > 0) {
    yield* Effect.logInfo("task_results brought to this project's form").pipe(Effect.annotateLogs(report))
  } else {
    yield* Effect.logDebug("no Go sidecar database to adopt").pipe(Effect.annotateLogs(report))
  }
  // kept as found, but this project's inserts name only its own columns: such a column makes every insert fail
  const blocking = unknown.filter((c) => c.notnull === 1 && c.dflt_value === null).map((c) => c.name)
  if (blocking.length > 0) {
    yield* Effect.logWarning("unknown NOT NULL columns without a default: new tasks cannot be stored").pipe(
      Effect.annotateLogs("columns", blocking)
    )
  }
})
