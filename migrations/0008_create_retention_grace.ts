import { Effect } from "effect"
import { SqlClient } from "effect/sql"

/**
 * Retention came in with 0005. A file that gets 0005 in the same start as this migration holds tasks that no
 * retention has ever pruned: adopted from the Go sidecar, which kept everything, or written by this sidecar before
 * 0005. Deleting weeks of them on the first start would surprise whoever upgrades, so such a file gets the row here:
 * its first prune then waits a grace period, whose end Retention.ts stores in `ends_at` (a restart neither restarts
 * nor skips it) and whose row it deletes once the grace is over. A new file has no tasks, and a file already under
 * retention got 0005 at an earlier start: neither gets a row.
 *
 * "The same start": the migrator records all the migrations of one run in a single INSERT before running them, so
 * they share `created_at`, while 0005 applied by an earlier start has that start's time (to the second).
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE retention_grace (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    history TEXT NOT NULL,
    ends_at TEXT
  )`
  const [batch] = yield* sql<{ runs: number }>`
    SELECT count(DISTINCT created_at) AS runs FROM effect_sql_migrations WHERE migration_id IN (5, 8)`
  const [tasks] = yield* sql<{ n: number }>`SELECT count(*) AS n FROM task_results`
  if (batch?.runs !== 1 || (tasks?.n ?? 0) === 0) return
  const [version] = yield* sql<{ user_version: number }>`PRAGMA user_version`
  // the Go sidecar versioned its schema with user_version; this project never sets it
  const history = (version?.user_version ?? 0) > 0 ? "adopted from the Go sidecar" : "written before retention"
  yield* sql`INSERT INTO retention_grace (id, history, ends_at) VALUES (1, ${history}, NULL)`
  yield* Effect.logInfo("tasks no retention has pruned yet: the first prune waits a grace period").pipe(
    Effect.annotateLogs({ tasks: tasks?.n ?? 0, history })
  )
})
