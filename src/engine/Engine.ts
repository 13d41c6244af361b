// Part engine/: what a submit means and what a run does. Engine.ts, the service; GroupCommit.ts, how submits and
// completions are written together; Execute.ts, one run; Recovery.ts, crash recovery; Readiness.ts, Retention.ts;
// TaskHandlers.ts, the registry of task types. Imports store/ and the shared modules, never the parts above it.
import { Clock, Context, Duration, Effect, Fiber, FiberMap, Layer, Option, Result, Schema, Semaphore } from "effect"
import { Retention } from "../Config.js"
import type { SubmitOutcome, TaskFilter } from "../Domain.js"
import { type SubmitTask, TaskId } from "../Domain.js"
import { InvalidParams, InvalidRequest, InvalidTaskId, StoreError, TaskNotFound, UnknownTaskType } from "../Errors.js"
import { logAnnotated, logFrom } from "../Logging.js"
import { Metrics } from "../Metrics.js"
import { busyTimeout } from "../store/Retry.js"
import { encodeJson } from "../store/Rows.js"
import { type Decision, Store } from "../store/Store.js"
import { decodeParams, makeExecute, type RunOf } from "./Execute.js"
import { groupCommit } from "./GroupCommit.js"
import { Readiness } from "./Readiness.js"
import { recoverRuns } from "./Recovery.js"
import { pruneForever } from "./Retention.js"
import type { RegisteredHandler } from "./TaskHandlers.js"
import { TaskHandlers } from "./TaskHandlers.js"

/** The task types whose last successful run decides readiness. */
export const readinessTypes = { ready: "mark-ready", notReady: "mark-not-ready" } as const
const readinessTypeNames = [readinessTypes.ready, readinessTypes.notReady]

const isTaskId = Schema.is(TaskId)

/** Why a submit is refused before anything is stored (a 400). */
type Rejected = InvalidTaskId | InvalidRequest | UnknownTaskType | InvalidParams

/** A submit that passed validation, waiting for its decision. */
interface Admitted {
  readonly id: TaskId
  readonly type: string
  readonly handler: RegisteredHandler
  readonly params: Result.Result<unknown, InvalidParams>
  /** The params as stored: the request's own, as JSON. */
  readonly stored: string | null
  readonly arrived: number
}

/** The task engine: decides what a submit means, runs each task in its own fiber, and records how it ended. */
export class Engine extends Context.Service<Engine>()("sidecar/Engine", {
  make: Effect.gen(function*() {
    const store = yield* Store
    const metrics = yield* Metrics
    const { context: handlersContext, handlers } = yield* TaskHandlers
    const readiness = yield* Readiness
    const runs = yield* FiberMap.make<TaskId>() // one fiber per running task, interrupted when the layer closes
    // Serializes Submit and Delete: deciding a batch of submits and deleting a task never interleave, and a resubmit
    // cannot slip in between a delete's two steps. Effect's Semaphore serves its waiters in arrival order. What runs
    // under it is uninterruptible once it has the permit: a caller that hangs up must not leave half a delete.
    const permit = yield* Semaphore.make(1)
    const withPermit = <A, E, R>(effect: Effect.Effect<A, E, R>) => permit.withPermit(Effect.uninterruptible(effect))
    const busyMillis = Duration.toMillis(busyTimeout)
    const { execute, finish } = yield* makeExecute(store, metrics)

    // Runs are forked from the engine's own runtime, not the submitting request's: they outlive the request, and
    // must not inherit its scope, its log annotations or the cost of copying its fiber state. That runtime has the
    // services the handlers were registered with (see TaskHandlers).
    const fork = yield* FiberMap.runtime(runs)<unknown>().pipe(
      Effect.updateContext((engine: Context.Context<never>) => Context.merge(engine, handlersContext))
    )
    // A fiber that already wrote its completion may still be in the map, so a newer run replaces it. A submit's run
    // yields before its first step: the submit answers first, and its run (a handler that ends at once, with its
    // completion) comes after. A run interrupted before it starts (a DELETE right after the 201) does nothing at all.
    // Resumed runs start at once: their `ended` must run however they end.
    const start = (task: RunOf, handler: RegisteredHandler, params: Admitted["params"]) =>
      fork(task.id, Effect.andThen(Effect.yieldNow, execute(task, handler, params)))

    /** The submit, checked: a 400 for a bad id, type or params, before anything is stored. */
    const admit = (
      req: SubmitTask,
      arrived: number
    ): Result.Result<Admitted, Rejected> => {
      const id = req.id === undefined || req.id === null || req.id === "" ? crypto.randomUUID() : req.id
      if (!isTaskId(id)) return Result.fail(InvalidTaskId.of(id))
      if (req.type === "") return Result.fail(new InvalidRequest({ error: "type: must not be empty" }))
      const handler = handlers.get(req.type)
      if (handler === undefined) return Result.fail(UnknownTaskType.of(req.type))
      const params = decodeParams(handler, req.params)
      if (Result.isFailure(params)) return Result.fail(params.failure)
      return Result.succeed({ id, type: req.type, handler, params, stored: encodeJson(req.params), arrived })
    }

    /**
     * The submit rule, as the store's one statement applied it: a new id started run 1, a failed task started its
     * next run, a running or completed task was left alone (the request's type and params ignored). Its log line,
     * its count and its run, synchronously, in the deciding fiber: a batch settles in one step of that fiber rather
     * than in a handful of effects a submit.
     */
    const settle = (fiber: Fiber.Fiber<unknown, unknown>, a: Admitted, decision: Decision): SubmitOutcome => {
      if (decision._tag === "Deduplicated") {
        const { run, status, type } = decision
        metrics.submitted(type, "deduplicated")
        // debug: a controller that resubmits to poll would otherwise fill the log with no-ops
        logFrom(fiber, "Debug", "task deduplicated", { taskId: a.id, type, run })
        return { _tag: "Deduplicated", id: a.id, status }
      }
      const { run } = decision
      // logged before the answer: a controller that sees the 201 finds the line
      logFrom(fiber, "Info", run === 1 ? "task submitted" : "task re-executed", { taskId: a.id, type: a.type, run })
      metrics.submitted(a.type, run === 1 ? "started" : "re-executed")
      start({ id: a.id, type: a.type, run }, a.handler, a.params)
      return { _tag: "Started", id: a.id, run }
    }

    /**
     * Decide a batch of submits in one transaction, in arrival order, holding the Semaphore that serializes Submit.
     * One that waited longer than the busy timeout for its turn (behind a batch waiting out a locked database) gets
     * its 503 at once rather than wait its own busy timeout too: every answer comes within twice that.
     */
    const decideBatch = (batch: ReadonlyArray<Admitted>) =>
      withPermit(Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const inTime = batch.filter((a) => now - a.arrived < busyMillis)
        const submittedAt = new Date(now).toISOString()
        const decided = inTime.length === 0 ? Effect.succeed([]) : store.decideAll(inTime.map((a) => ({
          id: a.id,
          type: a.type,
          params: a.stored,
          submittedAt
        })))
        return Effect.flatMap(
          decided,
          (decisions) =>
            Effect.withFiber<ReadonlyArray<Result.Result<SubmitOutcome, StoreError>>>((fiber) => {
              let next = 0
              return Effect.succeed(
                batch.map((a): Result.Result<SubmitOutcome, StoreError> =>
                  inTime[next] === a ? Result.succeed(settle(fiber, a, decisions[next++]!)) : Result.fail(tooLate)
                )
              )
            })
        )
      }))
    const decide = yield* groupCommit(decideBatch)
    const tooLate = new StoreError({
      op: "submit",
      error: `store submit failed: waited over ${Duration.format(busyTimeout)} for its turn ` +
        `(the database is locked, or the sidecar overloaded)`
    })

    /**
     * New id -> run 1. Running or completed -> nothing to do (the request's type and params are ignored).
     * Failed -> run it again under the same id with run + 1 and the request's type and params.
     * Submits that arrive together are decided together (see GroupCommit), each in arrival order.
     */
    const submit = (req: SubmitTask) =>
      Effect.flatMap(Clock.currentTimeMillis, (arrived): Effect.Effect<SubmitOutcome, Rejected | StoreError> => {
        const admitted = admit(req, arrived)
        return Result.isFailure(admitted)
          ? Effect.fail(admitted.failure)
          : Effect.flatMap(decide(admitted.success), Effect.fromResult)
      })

    const found = (id: string) => <A, E>(lookup: Effect.Effect<Option.Option<A>, E>) =>
      Effect.flatMap(lookup, (task) => Option.isSome(task) ? Effect.succeed(task.value) : TaskNotFound.of(id))
    /** The task with this id. */
    const get = (id: string) => found(id)(store.get(id))
    /** The task with this id, as TaskResult JSON (what the API answers, without decoding it first). */
    const getJson = (id: string) => found(id)(store.getJson(id))

    /**
     * The task, once it is terminal or `wait` has passed, whichever comes first. Its run's own fiber wakes the
     * waiter when it has written the outcome: no polling, and any number of waiters share it.
     */
    const await_ = (id: string, wait: Duration.Input) =>
      Effect.flatMap(get(id), (task) =>
        task.status !== "running" ? Effect.succeed(task) : join(id).pipe(
          Effect.timeoutOption(wait),
          metrics.waiting,
          Effect.andThen(get(id))
        ))

    /** The most recently submitted tasks, newest first: 100 of them unless `filter` says otherwise. */
    const list = (filter: TaskFilter = { limit: 100 }) => store.list(filter)
    /** The same, as TaskResult JSON. */
    const listJson = (filter: TaskFilter = { limit: 100 }) => store.listJson(filter)

    /** Every run of the task, oldest first. */
    const runsOf = (id: string) => Effect.andThen(get(id), store.runs(id))

    /**
     * Delete the row, then interrupt the task's run (a run-command child is killed) and wait for it; nothing is
     * written back for the interrupted run, whose conditional completion finds no row. The row goes first so that a
     * delete the database refuses leaves the run going. Under the Semaphore that serializes Submit, so that a
     * resubmit cannot slip in between.
     */
    const remove = (id: string) =>
      withPermit(Effect.gen(function*() {
        const deleted = yield* store.remove(id)
        if (Option.isNone(deleted)) return yield* TaskNotFound.of(id)
        if (isTaskId(id)) {
          yield* recovery.forget(id)
          yield* FiberMap.remove(runs, id)
        }
        const { run, status, type } = deleted.value
        yield* logAnnotated("Info", "task deleted", { taskId: id, type, run, status })
      }))

    /** Wait until the task's current run, if it has one in this process, has ended and recorded its outcome. */
    const join = (id: string) =>
      recovery.turn(id as TaskId).pipe(
        Effect.andThen(FiberMap.get(runs, id as TaskId)),
        Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: Fiber.await })),
        Effect.ignore
      )

    /** Whether the last successful mark-ready / mark-not-ready made the sidecar ready. */
    const ready = readiness.get
    /** Readiness survives restarts: whichever of mark-ready / mark-not-ready completed last decides. */
    const restoreReadiness = Effect.gen(function*() {
      const last = yield* store.lastCompleted(readinessTypeNames)
      const wasReady = Option.exists(last, (t) => t.type === readinessTypes.ready)
      yield* readiness.set(wasReady)
      return wasReady
    })

    /** Fails when the store does not answer. */
    const livez: Effect.Effect<void, StoreError> = Effect.tapError(store.ping, () => metrics.pingFailed)

    // The engine's start: readiness as it was, the runs a previous process left, retention.
    const readyAtStart = yield* restoreReadiness
    const recovery = yield* recoverRuns({
      store,
      handlers,
      finish,
      start: (task, handler, ended) => fork(task.id, execute(task, handler, decodeParams(handler, task.params), ended))
    })
    yield* Effect.forkScoped(recovery.resume)
    const retention = yield* Retention
    if (Option.isSome(retention)) {
      yield* Effect.forkScoped(pruneForever(store, retention.value, readinessTypeNames))
    }
    yield* Effect.logInfo("engine started").pipe(
      Effect.annotateLogs({ rehydrated: recovery.found, ready: readyAtStart })
    )

    return { submit, get, getJson, await: await_, list, listJson, runs: runsOf, remove, join, ready, livez } as const
  })
}) {
  /** The engine over the Store; what it needs besides (handlers, readiness, metrics, the database) is provided by the caller. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide(Store.layer))
}
