import { Effect } from "effect"
import { SqlClient } from "effect/sql"

// Lists filtered by status or type, newest first, and retention's search for old terminal rows, each served by an
// index rather than a scan of the whole table.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE INDEX IF NOT EXISTS idx_task_results_status_submitted_at ON task_results (status, submitted_at DESC)`
  yield* sql`CREATE INDEX IF NOT EXISTS idx_task_results_type_submitted_at ON task_results (type, submitted_at DESC)`
  yield* sql`CREATE INDEX IF NOT EXISTS idx_task_results_terminal_completed_at ON task_results (completed_at)
    WHERE status <> 'running'`
})
