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

/**
 * Decode `params` with the handler's schema; a mismatch names the field and the problem. Stops at the first problem:
 * collecting them all costs time in proportion to the input (seconds, for a megabyte of bad array elements).
 */
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

/** A run that outlives its handler's timeout is interrupted and fails; trying again may well help. */
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

/** The result as stored: encoded with the handler's result schema when it declares one. */
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
/** What running `handler` on decoded params is, up to the result as stored; made once per handler. */
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

/**
 * The run's log lines, the handler's own included, carry the task's id, type and run: set in the run's own fiber as
 * its first step, so that nothing is restored where the fiber ends anyway.
 */
const annotate = (fiber: Fiber.Fiber<unknown, unknown>, task: RunOf) =>
  fiber.setContext(Context.add(fiber.context, References.CurrentLogAnnotations, {
    ...fiber.getRef(References.CurrentLogAnnotations),
    taskId: task.id,
    type: task.type,
    run: task.run
  }))

/** What runs one run of a task and records how it ended, over the engine's store and metrics. */
export const makeExecute = (store: Store["Service"], metrics: Metrics["Service"]) =>
  Effect.gen(function*() {
    // Completions of runs that end together are written in one transaction (see GroupCommit).
    const completeGrouped = yield* groupCommit(store.completeAll)

    /**
     * Write how a run ended. A write the database refuses (a full or read-only volume) is retried until it is taken,
     * the row `running` meanwhile: the run ends, and is counted and told of, only once its outcome is on disk. Should
     * the process stop first, the run is interrupted like any other and the next start resumes it.
     */
    const finish = (task: RunOf, completion: Completion) =>
      completeGrouped({ id: task.id, run: task.run, completion }).pipe(
        Effect.retry(untilWritten),
        Effect.orDie, // untilWritten never gives up
        Effect.flatMap((written) =>
          written ? Effect.void : Effect.logInfo("run superseded or deleted; its completion was not written")
        )
      )

    /** The run's completion written (see `finish`), then counted and told of, in one more step. */
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

    // What a run does around its handler (its count, its lines, its clock) is done in as few steps of its fiber as
    // it can: for a short handler these steps are most of the run, and with an effect apiece, resuming 10k runs
    // after a crash took a sixth longer.
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

    /**
     * One run of `task`, with its params decoded (by the submit that started it, or from the stored ones); forked
     * from a runtime with the services the handlers were registered with (see TaskHandlers).
     * `ended` runs last, however the run ends: with what the run does when it ends, in one finalizer.
     */
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
