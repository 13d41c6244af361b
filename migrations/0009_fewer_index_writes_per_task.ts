import { Effect } from "effect"
import { SqlClient } from "effect/sql"

// Fewer B-tree writes per completion, the filters and retention still served by indexes. A completion wrote four
// pages: the row, the full status index twice (its entry left `running` and joined `completed`, two places in the
// index) and the terminal completed_at index. Now it writes two: the row and its leaving the status index, which
// keeps only the tasks not completed (running and failed: what a controller filters for and crash recovery reads,
// a small part of the table). A list of completed tasks walks the submitted_at index, where most rows are
// completed ones. Retention finds its candidates through the submitted_at index too: a task that ended before the
// cutoff was submitted before it.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DROP INDEX IF EXISTS idx_task_results_terminal_completed_at`
  yield* sql`DROP INDEX IF EXISTS idx_task_results_status_submitted_at`
  yield* sql`CREATE INDEX IF NOT EXISTS idx_task_results_unfinished_submitted_at ON task_results (status, submitted_at DESC)
    WHERE status <> 'completed'`
})
