import { DateTime } from "effect"
import type { RunStart, TaskId, TaskStatus } from "../Domain.js"
import { Task, TaskRun } from "../Domain.js"

/** The columns the Store reads, in `RawTaskRow` order. */
export const columns = "id, type, status, run, params, error, result, submitted_at, completed_at"

/** A row of `task_results`. */
export type TaskRow = {
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

/** The same row, read as an array. */
export type RawTaskRow = readonly [
  id: string,
  type: string,
  status: string,
  run: number,
  params: string | null,
  error: string,
  result: string | null,
  submitted_at: string,
  completed_at: string | null
]

/** A row of the `task_runs` view. */
export type RunRow = {
  readonly run: number
  readonly status: string
  readonly error: string
  readonly result: string | null
  readonly started_at: string
  readonly completed_at: string | null
  readonly started_by: string
  readonly resumes: number
}

// JSON NULL, {} and "" are all "nothing" on the wire: the Go original omitted them.
/** A value as stored: JSON text, or NULL for nothing. */
export const encodeJson = (value: unknown): string | null =>
  value === undefined || value === null || isEmptyObject(value) ? null : JSON.stringify(value)

export const decodeJson = (text: string | null): unknown => {
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

/** A task as `TaskResult` JSON. */
export type TaskJson = typeof Task.Encoded

/** The row as TaskResult JSON, not through `Task`: timestamps are stored as `Task` encodes them. */
export const toJson = (
  [id, type, status, run, storedParams, error, storedResult, submittedAt, completedAt]: RawTaskRow
): TaskJson => {
  const params = decodeJson(storedParams)
  const result = decodeJson(storedResult)
  return {
    id,
    type,
    status: status as TaskStatus,
    run,
    ...(params === undefined ? {} : { params }),
    ...(error === "" || error === null ? {} : { error }),
    ...(result === undefined ? {} : { result }),
    submittedAt,
    ...(completedAt === null || completedAt === "" ? {} : { completedAt })
  }
}

export const fromRow = (row: RawTaskRow): Task => {
  const { completedAt, submittedAt, ...rest } = toJson(row)
  return new Task(
    {
      ...rest,
      id: rest.id as TaskId,
      submittedAt: DateTime.makeUnsafe(submittedAt),
      ...(completedAt === undefined ? {} : { completedAt: DateTime.makeUnsafe(completedAt) })
    },
    { disableChecks: true }
  )
}

export const fromRunRow = (row: RunRow): TaskRun => {
  const result = decodeJson(row.result)
  return new TaskRun(
    {
      run: row.run,
      status: row.status as TaskStatus,
      ...(row.error === "" ? {} : { error: row.error }),
      ...(result === undefined ? {} : { result }),
      startedAt: DateTime.makeUnsafe(row.started_at),
      ...(row.completed_at === null || row.completed_at === ""
        ? {}
        : { completedAt: DateTime.makeUnsafe(row.completed_at) }),
      startedBy: row.started_by as RunStart,
      resumes: row.resumes
    },
    { disableChecks: true }
  )
}
