import {
  Cause,
  Context,
  DateTime,
  Duration,
  Effect,
  Exit,
  type Fiber,
  Option,
  References,
  Result,
  Schema
} from "effect"
import type { TaskId } from "../Domain.js"
import { formatSchemaError, InvalidParams, TaskError } from "../Errors.js"
import { logFrom, millisOf } from "../Logging.js"
import type { Metrics } from "../Metrics.js"
import { untilWritten } from "../store/Retry.js"
import type { Completion, Store } from "../store/Store.js"
import { groupCommit } from "./GroupCommit.js"
import type { RegisteredHandler } from "./TaskHandlers.js"

/** What a run needs of its task. */
export interface RunOf {
  readonly id: TaskId
  readonly type: string
  readonly run: number
}

const paramsDecoders = new WeakMap<RegisteredHandler, (params: unknown) => Result.Result<unknown, Schema.SchemaError>>()

/** Decode `params` with the handler's schema; stops at the first problem. */
export const decodeParams = (handler: RegisteredHandler, params: unknown): Result.Result<unknown, InvalidParams> => {
  let decode = paramsDecoders.get(handler)
  if (decode === undefined) {
    const decodeWith = Schema.decodeUnknownResult(handler.params as Schema.Codec<unknown, unknown>)
    decode = (input) => decodeWith(input, { errors: "first", onExcessProperty: "error", reportInput: true })
    paramsDecoders.set(handler, decode)
  }
  return Result.mapError(
    decode(params),
    (e) =>
      new InvalidParams({ type: handler.name, error: `invalid params for ${handler.name}: ${formatSchemaError(e)}` })
  )
}

const describeDefect = (cause: Cause.Cause<unknown>) => {
  const defect = Cause.squash(cause)
  return defect instanceof Error ? defect.message : String(defect)
}

const withTimeout = (handler: RegisteredHandler) => <A, E, R>(run: Effect.Effect<A, E, R>) =>
  handler.timeout === undefined ? run : run.pipe(
    Effect.timeoutOrElse({
      duration: handler.timeout,
      orElse: () =>
        Effect.fail(new TaskError({
          task: handler.name,
          operation: "run",
          message: `timed out after ${Duration.toSeconds(Duration.fromInputUnsafe(handler.timeout!))} s`,
          retryable: true
        }))
    })
  )

const encodeResult = (handler: RegisteredHandler): (value: unknown) => Effect.Effect<unknown, TaskError> => {
  if (handler.result === undefined) return Effect.succeed
  const encode = Schema.encodeUnknownEffect(handler.result as Schema.Codec<unknown, unknown>)
  return (value) =>
    encode(value).pipe(
      Effect.mapError((e) =>
        new TaskError({
          task: handler.name,
          operation: "result",
          message: `the handler's result does not fit its schema: ${formatSchemaError(e)}`
        })
      )
    )
}

const runners = new WeakMap<RegisteredHandler, (params: unknown) => Effect.Effect<unknown, TaskError, unknown>>()
const runnerOf = (handler: RegisteredHandler) => {
  let runner = runners.get(handler)
  if (runner === undefined) {
    const encode = encodeResult(handler)
    const timed = withTimeout(handler)
    runner = (params) => timed(Effect.suspend(() => handler.run(params))).pipe(Effect.flatMap(encode))
    runners.set(handler, runner)
  }
  return runner
}

const annotate = (fiber: Fiber.Fiber<unknown, unknown>, task: RunOf) =>
  fiber.setContext(Context.add(fiber.context, References.CurrentLogAnnotations, {
    ...fiber.getRef(References.CurrentLogAnnotations),
    taskId: task.id,
    type: task.type,
    run: task.run
  }))

/** Runs one run of a task and records how it ended. */
export const makeExecute = (store: Store["Service"], metrics: Metrics["Service"]) =>
  Effect.gen(function*() {
    // completions of runs ending together share a transaction
    const completeGrouped = yield* groupCommit(store.completeAll)

    /**
     * Write how a run ended, retried until the database takes it, the row `running` meanwhile: the run is counted and
     * logged only once its outcome is on disk.
     */
    const finish = (task: RunOf, completion: Completion) =>
      completeGrouped({ id: task.id, run: task.run, completion }).pipe(
        Effect.retry(untilWritten),
        Effect.orDie, // untilWritten never gives up
        Effect.flatMap((written) =>
          written ? Effect.void : Effect.logInfo("run superseded or deleted; its completion was not written")
        )
      )

    const recorded = (
      task: RunOf,
      completion: Completion,
      elapsedMs: number,
      tell: (fiber: Fiber.Fiber<unknown, unknown>) => void
    ) =>
      Effect.andThen(
        finish(task, completion),
        Effect.withFiber<void>((fiber) => {
          metrics.finished(task.type, completion.status, elapsedMs / 1000)
          tell(fiber)
          return Effect.void
        })
      )

    const failed = (
      task: RunOf,
      cause: Cause.Cause<TaskError | InvalidParams>,
      completedAt: DateTime.Utc,
      elapsedMs: number
    ) => {
      const failure = Cause.findErrorOption(cause)
      const error = Option.match(failure, {
        onSome: (e) => (e._tag === "TaskError" ? e.render() : e.error),
        onNone: () =>
          Cause.hasInterruptsOnly(cause)
            ? "handler interrupted itself"
            : `handler crashed: ${describeDefect(cause)}`
      })
      return recorded(task, { status: "failed", error, completedAt }, elapsedMs, (fiber) => {
        if (Option.isNone(failure) && Cause.hasDies(cause)) metrics.crashed(task.type)
        Option.match(failure, {
          onSome: (e) =>
            logFrom(fiber, "Warn", "task failed", {
              elapsedMs,
              error,
              taskError: e._tag === "TaskError"
                ? { task: e.task, operation: e.operation, message: e.message, hint: e.hint, retryable: e.retryable }
                : { message: e.error }
            }),
          onNone: () => logFrom(fiber, "Error", "task failed: handler crashed", { elapsedMs, error }, cause)
        })
      })
    }

    // Few synchronous steps around the handler: for a short handler they are most of the run.
    const record = (task: RunOf, exit: Exit.Exit<unknown, TaskError | InvalidParams>, started: number) =>
      Effect.withFiber<void>((fiber) => {
        const now = millisOf(fiber)
        const completedAt = DateTime.makeUnsafe(now)
        const elapsedMs = now - started
        if (Exit.isFailure(exit)) return failed(task, exit.cause, completedAt, elapsedMs)
        return recorded(
          task,
          { status: "completed", result: exit.value, completedAt },
          elapsedMs,
          (fiber) => logFrom(fiber, "Info", "task completed", { elapsedMs })
        )
      })

    /** One run of `task` with its decoded params; `ended` runs last, however the run ends. */
    const execute = (
      task: RunOf,
      handler: RegisteredHandler,
      params: Result.Result<unknown, InvalidParams>,
      ended: Effect.Effect<void> = Effect.void
    ) => {
      const run: Effect.Effect<unknown, TaskError | InvalidParams, unknown> = Result.isSuccess(params)
        ? runnerOf(handler)(params.success)
        : Effect.fail(params.failure)
      return Effect.withFiber<void, never, unknown>((fiber) => {
        annotate(fiber, task)
        metrics.runStarted()
        logFrom(fiber, "Debug", "task started", {})
        const started = millisOf(fiber)
        return Effect.onExit(
          Effect.flatMap(Effect.exit(run), (exit) => record(task, exit, started)),
          (exit) =>
            Effect.andThen(
              Effect.withFiber<void>((fiber) => {
                // Interruption (shutdown, DELETE) is not a failure: nothing is written and the row stays `running`.
                if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) {
                  logFrom(fiber, "Info", "task interrupted; it stays running until resumed or deleted", {})
                }
                metrics.runEnded()
                return Effect.void
              }),
              ended
            )
        )
      })
    }

    return { execute, finish } as const
  })
