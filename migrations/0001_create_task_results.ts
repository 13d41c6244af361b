import { Effect } from "effect"
import { SqlClient } from "effect/sql"

// IF NOT EXISTS: a database that the Go sidecar (or anything else) created in this shape is adopted as it is.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS task_results (
    id TEXT PRIMARY KEY,
    type TEXT,
    status TEXT,
    params TEXT,
    error TEXT NOT NULL DEFAULT '',
    submitted_at TEXT,
    completed_at TEXT
  )`
  yield* sql`CREATE INDEX IF NOT EXISTS idx_task_results_submitted_at ON task_results (submitted_at DESC)`
})
