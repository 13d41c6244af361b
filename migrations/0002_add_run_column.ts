import { Effect } from "effect"
import { SqlClient } from "effect/sql"

// Rows that exist already finished their first run, hence DEFAULT 1.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const columns = yield* sql<{ name: string }>`SELECT name FROM pragma_table_info('task_results')`
  if (!columns.some((c) => c.name === "run")) {
    yield* sql`ALTER TABLE task_results ADD COLUMN run INTEGER NOT NULL DEFAULT 1`
  }
})
