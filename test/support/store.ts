import { DateTime, Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { Task, TaskId } from "../../src/Domain.js"
import { columns, encodeJson } from "../../src/store/Rows.js"
import { type Completion, Store } from "../../src/store/Store.js"

/**
 * Insert the task, or replace every column of the row with its id (a changed `run` keeps the replaced one): rows as
 * a test needs them, written on the sidecar's own connection.
 */
export const save = (task: Task) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(
      `INSERT INTO task_results (${columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (id) DO UPDATE SET type = excluded.type, status = excluded.status, run = excluded.run,
    params = excluded.params, error = excluded.error, result = excluded.result,
    submitted_at = excluded.submitted_at, completed_at = excluded.completed_at,
    resumes = CASE WHEN excluded.run = run THEN resumes ELSE 0 END`,
      [
        task.id,
        task.type,
        task.status,
        task.run,
        encodeJson(task.params),
        task.error ?? "",
        encodeJson(task.result),
        DateTime.formatIso(task.submittedAt),
        task.completedAt === undefined ? null : DateTime.formatIso(task.completedAt)
      ]
    ).pipe(Effect.asVoid))

/** The Store's `completeAll` of one run: whether it was written. */
export const complete = (id: TaskId, run: number, completion: Completion) =>
  Effect.flatMap(Store, (store) => Effect.map(store.completeAll([{ id, run, completion }]), (written) => written[0]!))
