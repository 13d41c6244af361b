import { Schema } from "effect"

const uuid = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

/** A task's stable identity: an 8-4-4-4-12 UUID, in the caller's letter case. */
export const TaskId = Schema.String.check(
  Schema.isPattern(uuid, { message: "must be a UUID in the 8-4-4-4-12 hex form" })
).pipe(Schema.brand("TaskId"))
export type TaskId = typeof TaskId.Type

export const TaskStatus = Schema.Literals(["running", "completed", "failed"])
export type TaskStatus = typeof TaskStatus.Type

/** TaskResult on the wire; empty optional keys omitted. */
export class Task extends Schema.Class<Task>("Task")({
  id: TaskId,
  type: Schema.String,
  status: TaskStatus,
  run: Schema.Int,
  params: Schema.optionalKey(Schema.Unknown),
  error: Schema.optionalKey(Schema.String),
  result: Schema.optionalKey(Schema.Unknown),
  submittedAt: Schema.DateTimeUtcFromString,
  completedAt: Schema.optionalKey(Schema.DateTimeUtcFromString)
}) {}

/** How a run began: a first submit, or a resubmit after failing. */
export const RunStart = Schema.Literals(["submit", "resubmit"])
export type RunStart = typeof RunStart.Type

/** One run of a task, kept after later runs. */
export class TaskRun extends Schema.Class<TaskRun>("TaskRun")({
  run: Schema.Int,
  status: TaskStatus,
  error: Schema.optionalKey(Schema.String),
  result: Schema.optionalKey(Schema.Unknown),
  startedAt: Schema.DateTimeUtcFromString,
  completedAt: Schema.optionalKey(Schema.DateTimeUtcFromString),
  startedBy: RunStart,
  /** How many times crash recovery resumed this same run. */
  resumes: Schema.Int
}) {}

/** The newest `limit` tasks, with `status` and `type` when given. */
export interface TaskFilter {
  readonly status?: TaskStatus | undefined
  readonly type?: string | undefined
  readonly limit: number
}

/** The body of `POST /v0/tasks`; `id` absent, null or "" means "generate one". */
export const SubmitTask = Schema.Struct({
  id: Schema.optionalKey(Schema.NullOr(Schema.String)),
  type: Schema.String,
  params: Schema.optionalKey(Schema.Unknown)
})
export type SubmitTask = typeof SubmitTask.Type

/** What a submit decided: a new run, or nothing to do. */
export type SubmitOutcome =
  | { readonly _tag: "Started"; readonly id: TaskId; readonly run: number }
  | { readonly _tag: "Deduplicated"; readonly id: TaskId; readonly status: TaskStatus }

/** What `GET /v0/status` says; clients know only these two. */
export const ReadinessStatus = Schema.Literals(["Ready", "Initializing"])
