// Part engine/: submits, runs, crash recovery. Imports store/ and the shared modules, never the parts above.
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

type Rejected = InvalidTaskId | InvalidRequest | UnknownTaskType | InvalidParams

interface Admitted {
  readonly id: TaskId
  readonly type: string
  readonly handler: RegisteredHandler
  readonly params: Result.Result<unknown, InvalidParams>
  readonly stored: string | null
  readonly arrived: number
}

/** The task engine: what a submit means, a fiber per run, how each ended. */
export class Engine extends Context.Service<Engine>()("sidecar/Engine", {
  make: Effect.gen(function*() {
    const store = yield* Store
    const metrics = yield* Metrics
    const { context: handlersContext, handlers } = yield* TaskHandlers
    const readiness = yield* Readiness
    const runs = yield* FiberMap.make<TaskId>() // one fiber per running task
    // Serializes submits and deletes, so a resubmit cannot slip between a delete's two steps; uninterruptible once
    // held, so a hung-up caller cannot leave half a delete.
    const permit = yield* Semaphore.make(1)
    const withPermit = <A, E, R>(effect: Effect.Effect<A, E, R>) => permit.withPermit(Effect.uninterruptible(effect))
    const busyMillis = Duration.toMillis(busyTimeout)
    const { execute, finish } = yield* makeExecute(store, metrics)

    // Runs outlive the request: forked from the engine's runtime, with the handlers' services.
    const fork = yield* FiberMap.runtime(runs)<unknown>().pipe(
      Effect.updateContext((engine: Context.Context<never>) => Context.merge(engine, handlersContext))
    )
    // A newer run replaces a finished fiber still in the map. A submit's run yields once before it starts, so that the
    // answer goes out first and a DELETE right after the 201 stops it before it does anything. Resumed runs start at
    // once: their `ended` must run however they end.
    const start = (task: RunOf, handler: RegisteredHandler, params: Admitted["params"]) =>
      fork(task.id, Effect.andThen(Effect.yieldNow, execute(task, handler, params)))

    /** The submit checked: a 400 before anything is stored. */
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

    /** Log, count and start what was decided, synchronously: a batch settles in one step. */
    const settle = (fiber: Fiber.Fiber<unknown, unknown>, a: Admitted, decision: Decision): SubmitOutcome => {
      if (decision._tag === "Deduplicated") {
        const { run, status, type } = decision
        metrics.submitted(type, "deduplicated")
        // debug: controllers poll by resubmitting
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

    /** Decide a batch in one transaction, in arrival order; a submit that waited past the busy timeout gets its 503. */
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
     * New id: run 1. Running or completed: nothing (type and params ignored). Failed: run + 1 under the same id,
     * with the request's type and params.
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
    // the gets asked for in one turn of the event loop are read together, as submits are written together
    const readJson = yield* groupCommit(store.getJsonAll)
    /** The task with this id, as TaskResult JSON. */
    const getJson = (id: string) => found(id)(readJson(id))

    /** The task once it is terminal or `wait` has passed; its run wakes the waiters. */
    const await_ = (id: string, wait: Duration.Input) =>
      Effect.flatMap(get(id), (task) =>
        task.status !== "running" ? Effect.succeed(task) : join(id).pipe(
          Effect.timeoutOption(wait),
          metrics.waiting,
          Effect.andThen(get(id))
        ))

    /** The most recently submitted tasks, newest first (100 unless `filter` says). */
    const list = (filter: TaskFilter = { limit: 100 }) => store.list(filter)
    /** The same, as TaskResult JSON. */
    const listJson = (filter: TaskFilter = { limit: 100 }) => store.listJson(filter)

    /** Every run of the task, oldest first. */
    const runsOf = (id: string) => Effect.andThen(get(id), store.runs(id))

    /**
     * Delete the row, then interrupt the run and wait for it: a delete the database refuses leaves the run going,
     * and the interrupted run writes nothing.
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

    /** Until the task's run here, if any, has ended and recorded its outcome. */
    const join = (id: string) =>
      recovery.turn(id as TaskId).pipe(
        Effect.andThen(FiberMap.get(runs, id as TaskId)),
        Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: Fiber.await })),
        Effect.ignore
      )

    /** Whether the sidecar is ready. */
    const ready = readiness.get
    /** The last completed mark-ready / mark-not-ready decides, across restarts. */
    const restoreReadiness = Effect.gen(function*() {
      const last = yield* store.lastCompleted(readinessTypeNames)
      const wasReady = Option.exists(last, (t) => t.type === readinessTypes.ready)
      yield* readiness.set(wasReady)
      return wasReady
    })

    /** Fails when the store does not answer. */
    const livez: Effect.Effect<void, StoreError> = Effect.tapError(store.ping, () => Effect.sync(metrics.pingFailed))

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
  /** The engine over the Store; the caller provides the rest. */
  static readonly layer = Layer.effect(this, this.make).pipe(Layer.provide(Store.layer))
}
