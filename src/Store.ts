import { SqlClient } from "@effect/sql"
import { DateTime, Effect, Option } from "effect"
import type { TaskId, TaskStatus } from "./Domain.js"
import { Task } from "./Domain.js"
import { StoreError } from "./Errors.js"

/** A row of `task_results` as SQLite returns it. */
type TaskRow = {
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

/** How a run ended, as written by the conditional completion. */
export interface Completion {
  readonly status: Exclude<TaskStatus, "running">
  readonly error?: string | undefined
  readonly result?: unknown
  readonly completedAt: DateTime.Utc
}

const columns = "id, type, status, run, params, error, result, submitted_at, completed_at"

// JSON NULL, {} and "" are all "nothing" on the wire: the Go original omitted them.
const encodeJson = (value: unknown): string | null =>
  value === undefined || value === null || isEmptyObject(value) ? null : JSON.stringify(value)
const decodeJson = (text: string | null): unknown => {
  if (text === null || text === "") return undefined
  try {
    const value: unknown = JSON.parse(text)
    return value === null || isEmptyObject(value) ? undefined : value
  } catch {
    return text
  }
}
const isEmptyObject = (value: unknown) =>
  typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 0

const toRow = (task: Task): TaskRow => ({
  id: task.id,
  type: task.type,
  status: task.status,
  run: task.run,
  params: encodeJson(task.params),
  error: task.error ?? "",
  result: encodeJson(task.result),
  submitted_at: DateTime.formatIso(task.submittedAt),
  completed_at: task.completedAt === undefined ? null : DateTime.formatIso(task.completedAt)
})

const fromRow = (row: TaskRow): Task => {
  const params = decodeJson(row.params)
  const result = decodeJson(row.result)
  return new Task({
    id: row.id as TaskId,
    type: row.type,
    status: row.status as TaskStatus,
    run: row.run,
    ...(params === undefined ? {} : { params }),
    ...(row.error === "" || row.error === null ? {} : { error: row.error }),
    ...(result === undefined ? {} : { result }),
    submittedAt: DateTime.unsafeMake(row.submitted_at),
    ...(row.completed_at === null || row.completed_at === "" ? {} : { completedAt: DateTime.unsafeMake(row.completed_at) })
  }, true)
}

/** The only module that speaks SQL: `task_results` in, `Task` out. */
export class Store extends Effect.Service<Store>()("sidecar/Store", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    /** Insert the task, or replace every column of the row with its id. */
    const save = (task: Task) => {
      const row = toRow(task)
      return sql`INSERT INTO task_results ${sql.insert(row)}
        ON CONFLICT (id) DO UPDATE SET type = excluded.type, status = excluded.status, run = excluded.run,
          params = excluded.params, error = excluded.error, result = excluded.result,
          submitted_at = excluded.submitted_at, completed_at = excluded.completed_at`.pipe(
        Effect.asVoid,
        StoreError.wrap("save"),
        Effect.withSpan("Store.save", { attributes: { id: task.id, run: task.run } })
      )
    }

    /** The task with exactly this id. */
    const get = (id: string) =>
      sql<TaskRow>`SELECT ${sql.literal(columns)} FROM task_results WHERE id = ${id}`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), fromRow)),
        StoreError.wrap("get"),
        Effect.withSpan("Store.get", { attributes: { id } })
      )

    /** The `limit` most recently submitted tasks, newest first. */
    const list = (limit: number) =>
      sql<TaskRow>`SELECT ${sql.literal(columns)} FROM task_results
        ORDER BY submitted_at DESC, rowid DESC LIMIT ${limit}`.pipe(
        Effect.map((rows) => rows.map(fromRow)),
        StoreError.wrap("list"),
        Effect.withSpan("Store.list", { attributes: { limit } })
      )

    /** Every task a previous process left `running`, oldest first. */
    const listRunning = sql<TaskRow>`SELECT ${sql.literal(columns)} FROM task_results
      WHERE status = 'running' ORDER BY submitted_at, rowid`.pipe(
      Effect.map((rows) => rows.map(fromRow)),
      StoreError.wrap("listRunning"),
      Effect.withSpan("Store.listRunning")
    )

    /**
     * Record how run `run` of `id` ended, only if the row still belongs to that run and is still running:
     * a late completion of a superseded or deleted run never overwrites anything. True when written.
     */
    const complete = (id: TaskId, run: number, completion: Completion) =>
      sql`UPDATE task_results SET status = ${completion.status}, error = ${completion.error ?? ""},
            result = ${encodeJson(completion.result)}, completed_at = ${DateTime.formatIso(completion.completedAt)}
          WHERE id = ${id} AND run = ${run} AND status = 'running' RETURNING id`.pipe(
        Effect.map((rows) => rows.length > 0),
        StoreError.wrap("complete"),
        Effect.withSpan("Store.complete", { attributes: { id, run } })
      )

    /** The most recently completed task among `types` (by completedAt). */
    const lastCompleted = (types: ReadonlyArray<string>) =>
      sql<TaskRow>`SELECT ${sql.literal(columns)} FROM task_results
        WHERE status = 'completed' AND ${sql.in("type", types)}
        ORDER BY completed_at DESC, rowid DESC LIMIT 1`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), fromRow)),
        StoreError.wrap("lastCompleted"),
        Effect.withSpan("Store.lastCompleted")
      )

    /** Delete the row; true when there was one. */
    const remove = (id: string) =>
      sql`DELETE FROM task_results WHERE id = ${id} RETURNING id`.pipe(
        Effect.map((rows) => rows.length > 0),
        StoreError.wrap("remove"),
        Effect.withSpan("Store.remove", { attributes: { id } })
      )

    /** Succeeds when the database answers a query on the task table. */
    const ping = sql`SELECT count(*) FROM (SELECT 1 FROM task_results LIMIT 1)`.pipe(
      Effect.asVoid,
      StoreError.wrap("ping"),
      Effect.withSpan("Store.ping")
    )

    return { save, get, list, listRunning, complete, lastCompleted, remove, ping } as const
  })
}) {}
