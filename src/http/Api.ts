import { Schema, SchemaTransformation } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import pkg from "../../package.json" with { type: "json" }
import { ReadinessStatus, SubmitTask, Task, TaskId, TaskRun, TaskStatus } from "../Domain.js"
import {
  InvalidParams,
  InvalidRequest,
  InvalidTaskId,
  NotReady,
  StoreError,
  TaskNotFound,
  UnknownTaskType
} from "../Errors.js"

// Both submit answers are `{"id"}`; the status code tells them apart.
const idOnly = <Tag extends string>(tag: Tag, status: number, description: string) =>
  Schema.Struct({ id: Schema.String }).pipe(
    Schema.decodeTo(
      Schema.TaggedStruct(tag, { id: TaskId }),
      SchemaTransformation.transform({
        decode: ({ id }) => ({ _tag: tag, id }),
        encode: ({ id }) => ({ id })
      })
    ),
    HttpApiSchema.status(status)
  ).annotate({ description })

/** 201: a run started (a new id, or a failed task again). */
export const TaskStarted = idOnly("TaskStarted", 201, "A run started (a new id, or a failed task run again)")
/** 202: the task is running or completed already; nothing was done. */
export const TaskDeduplicated = idOnly("TaskDeduplicated", 202, "The task is running or completed: nothing was done")

const TaskPath = { id: Schema.String }

const integerParam = (min: number, max: number) =>
  Schema.String.check(
    Schema.makeFilter((s) =>
      (/^\d{1,9}$/.test(s) && Number(s) >= min && Number(s) <= max) || `must be an integer from ${min} to ${max}`
    )
  ).pipe(Schema.decodeTo(Schema.NumberFromString))

const ListParams = {
  status: Schema.optionalKey(TaskStatus),
  type: Schema.optionalKey(Schema.String.check(Schema.isMinLength(1, { message: "must not be empty" }))),
  limit: Schema.optionalKey(integerParam(1, 1000))
}

const secondsParam = (max: number) =>
  Schema.String.check(
    Schema.makeFilter((s) =>
      (/^\d{1,9}(\.\d{1,3})?$/.test(s) && Number(s) <= max) || `must be a number of seconds from 0 to ${max}`
    )
  ).pipe(Schema.decodeTo(Schema.NumberFromString))

const GetParams = {
  /** Seconds to wait for the task to end before answering. */
  wait: Schema.optionalKey(secondsParam(60))
}

const Ready = HttpApiSchema.Empty(200).annotate({ description: "Ready" })

const badRequest = InvalidRequest.pipe(HttpApiSchema.status(400))
const unavailable = StoreError.pipe(HttpApiSchema.status(503))
const notFound = TaskNotFound.pipe(HttpApiSchema.status(404))

export class TasksApi extends HttpApiGroup.make("tasks")
  .add(
    HttpApiEndpoint.post("submit", "/v0/tasks", {
      payload: SubmitTask,
      success: [TaskStarted, TaskDeduplicated],
      error: [
        badRequest,
        InvalidTaskId.pipe(HttpApiSchema.status(400)),
        UnknownTaskType.pipe(HttpApiSchema.status(400)),
        InvalidParams.pipe(HttpApiSchema.status(400)),
        unavailable
      ]
    })
      .annotate(OpenApi.Summary, "Submit a task under a stable id")
      .annotate(
        OpenApi.Description,
        "No task with that id: it is stored and started (201). Running or completed: nothing happens (202). " +
          "Failed: it runs again under the same id with `run` incremented (201). Without an id, one is generated."
      )
  )
  .add(
    HttpApiEndpoint.get("list", "/v0/tasks", {
      query: ListParams,
      success: Schema.Array(Task).annotate({ description: "The most recently submitted, newest first" }),
      error: [badRequest, unavailable]
    })
      .annotate(OpenApi.Summary, "List recent tasks")
      .annotate(
        OpenApi.Description,
        "The `limit` (1 to 1000, default 100) most recently submitted tasks, newest first; only those with the " +
          "given `status` and `type` when they are given."
      )
  )
  .add(
    HttpApiEndpoint.get("get", "/v0/tasks/:id", {
      params: TaskPath,
      query: GetParams,
      success: Task,
      error: [badRequest, notFound, unavailable]
    })
      .annotate(OpenApi.Summary, "Get one task")
      .annotate(
        OpenApi.Description,
        "With `wait` (0 to 60 seconds), answers as soon as the task is completed or failed, or with its current " +
          "state when the wait is over."
      )
  )
  .add(
    HttpApiEndpoint.get("runs", "/v0/tasks/:id/runs", {
      params: TaskPath,
      success: Schema.Array(TaskRun).annotate({ description: "Every run of the task, oldest first" }),
      error: [notFound, unavailable]
    })
      .annotate(OpenApi.Summary, "The task's run history")
  )
  .add(
    HttpApiEndpoint.delete("remove", "/v0/tasks/:id", {
      params: TaskPath,
      success: HttpApiSchema.NoContent.annotate({ description: "Deleted" }),
      error: [notFound, unavailable]
    })
      .annotate(OpenApi.Summary, "Delete a task, interrupting its run first")
  )
  .annotate(OpenApi.Description, "Submit, inspect and delete tasks")
{}

/** The kubelet's probes and the Go clients' status call. */
export class HealthApi extends HttpApiGroup.make("health", { topLevel: true })
  .add(
    HttpApiEndpoint.get("healthz", "/v0/healthz", { success: Ready, error: NotReady.pipe(HttpApiSchema.status(503)) })
      .annotate(OpenApi.Summary, "Readiness probe: 200 once ready, 503 until then")
  )
  .add(
    HttpApiEndpoint.get("startupz", "/v0/startupz", { success: Ready, error: NotReady.pipe(HttpApiSchema.status(503)) })
      .annotate(OpenApi.Summary, "Startup probe: the same answer as the readiness probe")
  )
  .add(
    HttpApiEndpoint.get("livez", "/v0/livez", {
      success: HttpApiSchema.Empty(200).annotate({ description: "The database answers" }),
      error: unavailable
    })
      .annotate(OpenApi.Summary, "Liveness probe: 200 when the database answers, whatever the readiness")
  )
  .add(
    HttpApiEndpoint.get("status", "/v0/status", {
      success: Schema.Struct({ status: ReadinessStatus }).annotate({ description: "Ready or Initializing" })
    })
      .annotate(OpenApi.Summary, "Readiness as a word, for the Go clients")
  )
  .add(
    HttpApiEndpoint.get("metrics", "/v0/metrics", {
      success: Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/plain; version=0.0.4; charset=utf-8" }))
    })
      .annotate(OpenApi.Summary, "Prometheus metrics (text exposition)")
  )
  .annotate(OpenApi.Description, "Kubernetes probes, readiness and metrics")
{}

/** The sidecar's HTTP contract (v0, as the Go original's clients know it). */
export class Api extends HttpApi.make("sidecar")
  .add(HealthApi)
  .add(TasksApi)
  // a 400 shows the refused value; an unknown query parameter is a 400
  .annotate(HttpApi.ParseOptions, { reportInput: true })
  .annotate(HttpApi.QueryParseOptions, { reportInput: true, onExcessProperty: "error" })
  .annotate(OpenApi.Title, "Sidecar task engine")
  .annotate(OpenApi.Version, pkg.version)
  .annotate(
    OpenApi.Description,
    "Durable, idempotent task execution over HTTP. Every error answer is JSON with a `_tag` and an `error` string: " +
      "besides each operation's own, `InvalidRequest` (400: malformed JSON or HTTP, a field or query parameter that " +
      "does not fit), `RouteNotFound` (404), `BodyTooLarge` (413, over 1 MiB), `Unauthenticated` (401, under " +
      "trusted-header) and `InternalError` (500)."
  )
{}
