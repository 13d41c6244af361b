import { Clock, DateTime, Deferred, Duration, Effect, Exit, Fiber, FiberId, FiberMap, Option, Schema } from "effect"
import type { SubmitOutcome } from "./Domain.js"
import { type SubmitTask, Task, type TaskFilter, TaskId } from "./Domain.js"
import { Retention } from "./Config.js"
import { decodeParams, makeExecute } from "./Execute.js"
import {
  InvalidParams,
  InvalidRequest,
  InvalidTaskId,
  StoreError,
  TaskNotFound,
  UnknownTaskType
} from "./Errors.js"
import { Metrics } from "./Metrics.js"
import { Readiness } from "./Readiness.js"
import { pruneForever } from "./Retention.js"
import { busyTimeout, Store } from "./Store.js"
import type { TaskHandler } from "./TaskHandlers.js"
import { TaskHandlers } from "./TaskHandlers.js"

/** The task types whose last successful run decides readiness. */
export const readinessTypes = { ready: "mark-ready", notReady: "mark-not-ready" } as const

const isTaskId = Schema.is(TaskId)

/** The task engine: decides what a submit means, runs each task in its own fiber, and records how it ended. */
export class Engine extends Effect.Service<Engine>()("sidecar/Engine", {
  scoped: Effect.gen(function*() {
    const store = yield* Store
    const metrics = yield* Metrics
    const handlers = yield* TaskHandlers
    const readiness = yield* Readiness
    const runs = yield* FiberMap.make<TaskId>() // one fiber per running task, interrupted when the layer closes

    // One submit or delete decides at a time, in arrival order (Effect's Semaphore lets a newcomer overtake those
    // already waiting, and under load some waited seconds). Each caller queues behind the previous one's Deferred.
    let lastInLine = Deferred.unsafeMake<void>(FiberId.none)
    Deferred.unsafeDone(lastInLine, Exit.void)
    const busyMillis = Duration.toMillis(busyTimeout)
    // Made only when needed: an error captures a stack trace, a cost every submit would pay.
    const tooLate = (op: string) =>
      new StoreError({
        op,
        error: `store ${op} failed: waited over ${Duration.format(busyTimeout)} for its turn ` +
          `(the database is locked, or the sidecar overloaded)`
      })

    /**
     * Run `decide` alone, uninterruptibly (a client that hangs up must not leave a persisted row without its fiber).
     * A caller that waited longer than the busy timeout for its turn (behind a submit waiting out a locked database)
     * gets its 503 at once rather than wait its own busy timeout too: every answer comes within twice that.
     */
    const exclusively = <A, E>(op: string, decide: Effect.Effect<A, E>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          const previous = lastInLine
          const mine = Deferred.unsafeMake<void>(FiberId.none)
          lastInLine = mine
          const release = Deferred.done(mine, Exit.void)
          return Effect.flatMap(Clock.currentTimeMillis, (arrived) =>
            restore(Deferred.await(previous)).pipe(
              // Interrupted while queued: hand the turn on once it comes, never before (the caller ahead may still
              // be deciding). Only a caller that was admitted releases through `ensuring`.
              Effect.onInterrupt(() => Effect.forkDaemon(Effect.zipRight(Deferred.await(previous), release))),
              Effect.zipRight(Clock.currentTimeMillis),
              Effect.flatMap((admitted) => {
                const turn: Effect.Effect<A, E | StoreError> = admitted - arrived >= busyMillis ? tooLate(op) : decide
                return Effect.ensuring(turn, release)
              })
            ))
        })
      )

    const handlerFor = (type: string) =>
      Option.fromNullable(handlers.get(type)).pipe(Effect.mapError(() => UnknownTaskType.of(type)))

    const { execute, finish } = makeExecute(store, metrics)

    // Runs are forked from the engine's own runtime, not the submitting request's: they outlive the request, and
    // must not inherit its scope, its log annotations or the cost of copying its fiber state.
    const fork = yield* FiberMap.runtime(runs)()
    // A fiber that already wrote its completion may still be in the map, so a newer run replaces it.
    const start = (task: Task, handler: TaskHandler, params?: Effect.Effect<unknown, InvalidParams>) =>
      Effect.sync(() => fork(task.id, execute(task, handler, params)))

    const validate = (req: SubmitTask) =>
      Effect.gen(function*() {
        const id = req.id === undefined || req.id === null || req.id === "" ? crypto.randomUUID() : req.id
        if (!isTaskId(id)) return yield* InvalidTaskId.of(id)
        if (req.type === "") return yield* new InvalidRequest({ error: "type: must not be empty" })
        const handler = yield* handlerFor(req.type)
        const params = yield* decodeParams(handler, req.params)
        return { id, handler, params }
      })

    /**
     * New id -> run 1. Running or completed -> nothing to do (the request's type and params are ignored).
     * Failed -> run it again under the same id with run + 1 and the request's type and params.
     */
    const submit = (req: SubmitTask) => Effect.flatMap(validate(req), ({ handler, id, params }) =>
      exclusively("submit", Effect.gen(function*() {
        const existing = yield* store.get(id)
        if (Option.isSome(existing) && existing.value.status !== "failed") {
          yield* metrics.submitted(existing.value.type, "deduplicated")
          // debug: a controller that resubmits to poll would otherwise fill the log with no-ops
          yield* Effect.logDebug("task deduplicated").pipe(
            Effect.annotateLogs({ taskId: id, type: existing.value.type, run: existing.value.run })
          )
          return { _tag: "Deduplicated", id, status: existing.value.status } satisfies SubmitOutcome
        }
        const task = new Task({
          id,
          type: req.type,
          status: "running",
          run: Option.match(existing, { onNone: () => 1, onSome: (t) => t.run + 1 }),
          ...(req.params === undefined ? {} : { params: req.params }),
          submittedAt: yield* DateTime.now
        }, true)
        yield* store.save(task)
        yield* metrics.submitted(task.type, Option.isSome(existing) ? "re-executed" : "started")
        yield* Effect.logInfo(Option.isSome(existing) ? "task re-executed" : "task submitted").pipe(
          Effect.annotateLogs({ taskId: id, type: task.type, run: task.run })
        )
        yield* start(task, handler, Effect.succeed(params)) // decoded once, by validate
        return { _tag: "Started", id, run: task.run } satisfies SubmitOutcome
      })))

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
    const await_ = (id: string, wait: Duration.DurationInput) =>
      Effect.flatMap(get(id), (task) =>
        task.status !== "running" ? Effect.succeed(task) : join(id).pipe(
          Effect.timeoutOption(wait),
          metrics.waiting,
          Effect.zipRight(get(id))
        ))

    /** The most recently submitted tasks, newest first: 100 of them unless `filter` says otherwise. */
    const list = (filter: TaskFilter = { limit: 100 }) => store.list(filter)
    /** The same, as TaskResult JSON. */
    const listJson = (filter: TaskFilter = { limit: 100 }) => store.listJson(filter)

    /** Every run of the task, oldest first. */
    const runsOf = (id: string) => Effect.zipRight(get(id), store.runs(id))

    /**
     * Interrupt the task's run (a run-command child is killed) and wait for it, then delete the row; nothing
     * is written back for the interrupted run. Under the gate, so a concurrent resubmit cannot slip between.
     */
    const remove = (id: string) =>
      exclusively("remove", Effect.gen(function*() {
        if (isTaskId(id)) yield* FiberMap.remove(runs, id)
        const deleted = yield* store.remove(id)
        if (Option.isNone(deleted)) return yield* TaskNotFound.of(id)
        const { run, status, type } = deleted.value
        yield* Effect.logInfo("task deleted").pipe(Effect.annotateLogs({ taskId: id, type, run, status }))
      }))

    /** Wait until the task's current run, if it has one in this process, has ended and recorded its outcome. */
    const join = (id: string) =>
      FiberMap.get(runs, id as TaskId).pipe(Effect.flatMap(Fiber.await), Effect.ignore)

    /** Whether the last successful mark-ready / mark-not-ready made the sidecar ready. */
    const ready = readiness.get

    /** Fails when the store does not answer. */
    const livez: Effect.Effect<void, StoreError> = Effect.tapError(store.ping, () => metrics.pingFailed)

    // Readiness survives restarts: whichever of mark-ready / mark-not-ready completed last decides.
    const last = yield* store.lastCompleted([readinessTypes.ready, readinessTypes.notReady])
    yield* readiness.set(Option.exists(last, (t) => t.type === readinessTypes.ready))

    // Crash recovery: resume what a previous process left running. Same run number: it is the same run. Runs whose
    // type has no handler any more fail first, so that counting the resumptions is one statement, not one a task.
    const running = yield* store.listRunning
    const resumable: Array<readonly [Task, TaskHandler]> = []
    for (const task of running) {
      const handler = handlers.get(task.type)
      if (handler !== undefined) {
        resumable.push([task, handler])
        continue
      }
      yield* finish(task, {
        status: "failed",
        error: `no handler registered for task type: ${task.type}`,
        completedAt: yield* DateTime.now
      })
      yield* Effect.logWarning("task could not be resumed: no handler registered for task type").pipe(
        Effect.annotateLogs({ taskId: task.id, type: task.type, run: task.run })
      )
    }
    if (resumable.length > 0) yield* store.resumedRunning
    for (const [task, handler] of resumable) {
      yield* Effect.logInfo("task resumed").pipe(Effect.annotateLogs({ taskId: task.id, type: task.type, run: task.run }))
      yield* start(task, handler)
    }
    const retention = yield* Retention
    if (Option.isSome(retention)) {
      yield* Effect.forkScoped(pruneForever(store, retention.value, [readinessTypes.ready, readinessTypes.notReady]))
    }
    yield* Effect.logInfo("engine started").pipe(
      Effect.annotateLogs({ rehydrated: running.length, ready: Option.exists(last, (t) => t.type === readinessTypes.ready) })
    )

    return { submit, get, getJson, await: await_, list, listJson, runs: runsOf, remove, join, ready, livez } as const
  }),
  dependencies: [Store.Default]
}) {}

