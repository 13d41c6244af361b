import { Effect } from "effect"
import { SqlClient } from "effect/sql"

// The handler's result as JSON text; NULL when it returned nothing.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const columns = yield* sql<{ name: string }>`SELECT name FROM pragma_table_info('task_results')`
  if (!columns.some((c) => c.name === "result")) {
    yield* sql`ALTER TABLE task_results ADD COLUMN result TEXT`
  }
})
