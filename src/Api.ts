import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { ReadinessStatus, SubmitTask, Task, TaskId } from "./Domain.js"
import {
  InvalidParams,
  InvalidRequest,
  InvalidTaskId,
  NotReady,
  StoreError,
  TaskNotFound,
  UnknownTaskType
} from "./Errors.js"

// Both answers to a submit are `{"id"}` on the wire (as in the Go original); the status code tells them apart,
// and the typed client gets the tag back from it.
const idOnly = <Tag extends string>(tag: Tag, status: number) =>
  Schema.transform(Schema.Struct({ id: Schema.String }), Schema.TaggedStruct(tag, { id: TaskId }), {
    strict: true,
    decode: ({ id }) => ({ _tag: tag, id }),
    encode: ({ id }) => ({ id })
  }).annotations(HttpApiSchema.annotations({ status }))

/** 201: a run started, the first for a new id or the next for a failed one. */
export const TaskStarted = idOnly("TaskStarted", 201)
/** 202: the task is running or completed already; nothing was done. */
export const TaskDeduplicated = idOnly("TaskDeduplicated", 202)

const TaskPath = Schema.Struct({ id: Schema.String })

export class TasksApi extends HttpApiGroup.make("tasks")
  .add(
    HttpApiEndpoint.post("submit", "/v0/tasks")
      .setPayload(SubmitTask)
      .addSuccess(TaskStarted)
      .addSuccess(TaskDeduplicated)
      .addError(InvalidTaskId, { status: 400 })
      .addError(UnknownTaskType, { status: 400 })
      .addError(InvalidParams, { status: 400 })
      .addError(StoreError, { status: 503 })
  )
  .add(
    HttpApiEndpoint.get("list", "/v0/tasks")
      .addSuccess(Schema.Array(Task))
      .addError(StoreError, { status: 503 })
  )
  .add(
    HttpApiEndpoint.get("get", "/v0/tasks/:id")
      .setPath(TaskPath)
      .addSuccess(Task)
      .addError(TaskNotFound, { status: 404 })
      .addError(StoreError, { status: 503 })
  )
  .add(
    HttpApiEndpoint.del("remove", "/v0/tasks/:id")
      .setPath(TaskPath)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(TaskNotFound, { status: 404 })
      .addError(StoreError, { status: 503 })
  )
{}

/** The kubelet's probes and the Go clients' status call. */
export class HealthApi extends HttpApiGroup.make("health", { topLevel: true })
  .add(HttpApiEndpoint.get("healthz", "/v0/healthz").addSuccess(HttpApiSchema.Empty(200)).addError(NotReady, { status: 503 }))
  .add(HttpApiEndpoint.get("startupz", "/v0/startupz").addSuccess(HttpApiSchema.Empty(200)).addError(NotReady, { status: 503 }))
  .add(HttpApiEndpoint.get("livez", "/v0/livez").addSuccess(HttpApiSchema.Empty(200)).addError(StoreError, { status: 503 }))
  .add(HttpApiEndpoint.get("status", "/v0/status").addSuccess(Schema.Struct({ status: ReadinessStatus })))
{}

/** The sidecar's HTTP contract (v0, wire-compatible with the Go original's clients). */
export class Api extends HttpApi.make("sidecar")
  .add(HealthApi)
  .add(TasksApi)
  .addError(InvalidRequest, { status: 400 })
  .annotate(OpenApi.Title, "Sidecar task engine")
{}
