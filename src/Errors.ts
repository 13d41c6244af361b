import { Effect, Schema, SchemaIssue } from "effect"

export interface Issue {
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
}
const maxIssues = 5
const maxIssueLength = 300

/** "field.path: problem; ..." for a 400, bounded: a hostile body can produce huge messages. */
export const formatIssues = (issues: ReadonlyArray<Issue>): string => {
  const shown = issues.slice(0, maxIssues).map((i) => {
    const text = i.path.length > 0 ? `${i.path.map(String).join(".")}: ${i.message}` : i.message
    return text.length > maxIssueLength ? `${text.slice(0, maxIssueLength)}...` : text
  })
  const more = issues.length - shown.length
  return shown.join("; ") + (more > 0 ? ` (and ${more} more)` : "")
}

const standardIssues = SchemaIssue.makeFormatterStandardSchemaV1()

/** A schema's failure as problems, each with its field's path. */
export const schemaIssues = (error: Schema.SchemaError): ReadonlyArray<Issue> =>
  standardIssues(error.issue).issues.map((issue) => ({
    message: issue.message,
    path: (issue.path ?? []).map((segment) => (typeof segment === "object" ? segment.key : segment))
  }))

/** A schema's failure as `formatIssues` says it. */
export const formatSchemaError = (error: Schema.SchemaError): string => formatIssues(schemaIssues(error))

// Errors crossing the HTTP boundary carry an `error` string: Go clients read it.

export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  error: Schema.String
}) {
  override get message() {
    return this.error
  }
}

export class InvalidTaskId extends Schema.TaggedError<InvalidTaskId>()("InvalidTaskId", {
  id: Schema.String,
  error: Schema.String
}) {
  static of = (id: string) =>
    new InvalidTaskId({ id, error: `invalid task id ${JSON.stringify(id)}: must be a UUID (8-4-4-4-12 hex digits)` })
  override get message() {
    return this.error
  }
}

export class UnknownTaskType extends Schema.TaggedError<UnknownTaskType>()("UnknownTaskType", {
  type: Schema.String,
  error: Schema.String
}) {
  static of = (type: string) => new UnknownTaskType({ type, error: `unknown task type: ${type}` })
  override get message() {
    return this.error
  }
}

export class InvalidParams extends Schema.TaggedError<InvalidParams>()("InvalidParams", {
  type: Schema.String,
  error: Schema.String
}) {
  override get message() {
    return this.error
  }
}

export class TaskNotFound extends Schema.TaggedError<TaskNotFound>()("TaskNotFound", {
  id: Schema.String,
  error: Schema.String
}) {
  static of = (id: string) => new TaskNotFound({ id, error: `task ${id} not found` })
  override get message() {
    return this.error
  }
}

export class NotReady extends Schema.TaggedError<NotReady>()("NotReady", {
  error: Schema.String
}) {
  override get message() {
    return this.error
  }
}

/** One storage step failed; `error` keeps the driver's message. */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  op: Schema.String,
  error: Schema.String
}) {
  /** A failure of storage step `op`, in the driver's words. */
  static of = (op: string, message: string) => new StoreError({ op, error: `store ${op} failed: ${message}` })
  override get message() {
    return this.error
  }
}

/** How a handler fails its task; `retryable` says whether resubmitting may help. */
export class TaskError extends Schema.TaggedError<TaskError>()("TaskError", {
  task: Schema.String,
  operation: Schema.String,
  message: Schema.String,
  hint: Schema.optionalKey(Schema.String),
  retryable: Schema.Boolean.pipe(Schema.withConstructorDefault(Effect.succeed(false))),
  cause: Schema.optionalKey(Schema.Defect())
}) {
  /** "task: operation: message [hint: ...]" */
  render(): string {
    return `${this.task}: ${this.operation}: ${this.message}${this.hint === undefined ? "" : ` [hint: ${this.hint}]`}`
  }
  override toString(): string {
    return this.render()
  }
}
