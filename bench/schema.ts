// The task table as migrations/0001-0003 leave it, replayed in the same order with node:sqlite so that the
// baseline and the seeded databases have byte-for-byte the schema the sidecar's migrator produces (the
// migrations adopt an existing table, so the sidecar starts on these files as on its own).
import { DatabaseSync } from "node:sqlite"

export const columns = "id, type, status, run, params, error, result, submitted_at, completed_at"

/** A row of task_results as node:sqlite returns it. */
export interface TaskRow {
  readonly id: string
  readonly type: string
  readonly status: string
  readonly run: number
  readonly params: string | null
  readonly error: string
  readonly result: string | null
  readonly submitted_at: string
  readonly completed_at: string | null
}

/** Create (or adopt) task_results and its index, exactly as the migrations do. */
export const createSchema = (db: DatabaseSync): void => {
  db.exec(`CREATE TABLE IF NOT EXISTS task_results (
    id TEXT PRIMARY KEY,
    type TEXT,
    status TEXT,
    params TEXT,
    error TEXT NOT NULL DEFAULT '',
    submitted_at TEXT,
    completed_at TEXT
  )`)
  db.exec("CREATE INDEX IF NOT EXISTS idx_task_results_submitted_at ON task_results (submitted_at DESC)")
  const has = (name: string) =>
    (db.prepare("SELECT name FROM pragma_table_info('task_results')").all() as Array<{ name: string }>)
      .some((c) => c.name === name)
  if (!has("run")) db.exec("ALTER TABLE task_results ADD COLUMN run INTEGER NOT NULL DEFAULT 1")
  if (!has("result")) db.exec("ALTER TABLE task_results ADD COLUMN result TEXT")
}

/** The type the benchmark's servers register, whose run does nothing. */
export const noopType = "noop"

/** Seeded ids are canonical UUIDs derived from the row number, so scenarios can address any row without a query. */
export const seededId = (i: number): string => `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`

/**
 * A database file with `rows` tasks of the no-op type in `status` (completed rows have their completion time),
 * submitted one second apart, the newest a minute before now. One transaction: 100,000 rows take well under a second.
 *
 * Recent on purpose: since retention came in (6442d67) the sidecar deletes, at startup and every few minutes,
 * finished tasks that ended more than SIDECAR_RETENTION_HOURS ago (default 168). Rows dated months back were all
 * pruned as the sidecar started, so it answered get-one with 404 and list-100 with [] while the baseline served
 * 100,000 rows. 100,000 seconds is under 28 hours, well inside the default window, so the sidecar keeps every row
 * and still runs its pruning pass over them, as a deployed one with the default setting does.
 */
export const seedDatabase = (file: string, rows: number, status: "completed" | "running"): void => {
  const seedEpoch = Date.now() - 60_000 - rows * 1000
  const db = new DatabaseSync(file)
  try {
    db.exec("PRAGMA journal_mode = WAL")
    createSchema(db)
    const insert = db.prepare(
      `INSERT INTO task_results (${columns}) VALUES (?, ?, ?, 1, NULL, '', NULL, ?, ?)`
    )
    db.exec("BEGIN")
    {
      for (let i = 0; i < rows; i++) {
        const submitted = seedEpoch + i * 1000
        insert.run(
          seededId(i),
          noopType,
          status,
          new Date(submitted).toISOString(),
          status === "completed" ? new Date(submitted + 5).toISOString() : null
        )
      }
    }
    db.exec("COMMIT")
    // Everything into the main file, so a plain copy of it is the whole database.
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)")
  } finally {
    db.close()
  }
}
