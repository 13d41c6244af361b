import { Clock, DateTime, Duration, Effect, Either, Fiber, FiberMap, Option, Schema } from "effect"
import type { SubmitOutcome, TaskFilter } from "./Domain.js"
import { type SubmitTask, TaskId } from "./Domain.js"
import { Retention } from "./Config.js"
import { decodeParams, makeExecute, type RunOf } from "./Execute.js"
import { InvalidParams, InvalidRequest, InvalidTaskId, StoreError, TaskNotFound, UnknownTaskType } from "./Errors.js"
import { groupCommit } from "./GroupCommit.js"
import { Metrics } from "./Metrics.js"
import { Readiness } from "./Readiness.js"
import { pruneForever } from "./Retention.js"
import { busyTimeout, encodeJson, type RunningTask, Store } from "./Store.js"
import { makeSubmitSemaphore } from "./SubmitSemaphore.js"
import type { TaskHandler } from "./TaskHandlers.js"
import { TaskHandlers } from "./TaskHandlers.js"

/** The task types whose last successful run decides readiness. */
export const readinessTypes = { ready: "mark-ready", notReady: "mark-not-ready" } as const

/** Runs left by a previous process that are resumed at once; the rest wait for one of them to end. */
const resumeConcurrency = 64

const isTaskId = Schema.is(TaskId)

/** Why a submit is refused before anything is stored (a 400). */
type Rejected = InvalidTaskId | InvalidRequest | UnknownTaskType | InvalidParams

/** A submit that passed validation, waiting for its decision. */
interface Admitted {
  readonly id: TaskId
  readonly type: string
  readonly handler: TaskHandler
  readonly params: Either.Either<unknown, InvalidParams>
  /** The params as stored: the request's own, as JSON. */
  readonly stored: string | null
  readonly arrived: number
}

/** The task engine: decides what a submit means, runs each task in its own fiber, and records how it ended. */
export class Engine extends Effect.Service<Engine>()("sidecar/Engine", {
  scoped: Effect.gen(function*() {
    const store = yield* Store
    const metrics = yield* Metrics
    const handlers = yield* TaskHandlers
    const readiness = yield* Readiness
    const runs = yield* FiberMap.make<TaskId>() // one fiber per running task, interrupted when the layer closes
    const semaphore = makeSubmitSemaphore()
    const busyMillis = Duration.toMillis(busyTimeout)
    const { execute, finish } = yield* makeExecute(store, metrics)

    // Runs are forked from the engine's own runtime, not the submitting request's: they outlive the request, and
    // must not inherit its scope, its log annotations or the cost of copying its fiber state.
    const fork = yield* FiberMap.runtime(runs)()
    // A fiber that already wrote its completion may still be in the map, so a newer run replaces it.
    const start = (task: RunOf, handler: TaskHandler, params: Admitted["params"]) =>
      fork(task.id, execute(task, handler, params))

    /** The submit, checked: a 400 for a bad id, type or params, before anything is stored. */
    const admit = (
      req: SubmitTask,
      arrived: number
    ): Either.Either<Admitted, Rejected> => {
      const id = req.id === undefined || req.id === null || req.id === "" ? crypto.randomUUID() : req.id
      if (!isTaskId(id)) return Either.left(InvalidTaskId.of(id))
      if (req.type === "") return Either.left(new InvalidRequest({ error: "type: must not be empty" }))
      const handler = handlers.get(req.type)
      if (handler === undefined) return Either.left(UnknownTaskType.of(req.type))
      const params = decodeParams(handler, req.params)
      if (Either.isLeft(params)) return Either.left(params.left)
      return Either.right({ id, type: req.type, handler, params, stored: encodeJson(req.params), arrived })
    }

    /**
     * Decide a batch of submits in one transaction, holding the Semaphore that serializes Submit, and start the runs
     * it decided on. One that waited longer than the busy timeout for its turn (behind a batch waiting out a locked
     * database) gets its 503 at once rather than wait its own busy timeout too: every answer comes within twice that.
     */
    const decideBatch = (batch: ReadonlyArray<Admitted>) =>
      semaphore.withPermit(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const inTime = batch.filter((a) => now - a.arrived < busyMillis)
        const decided = inTime.length === 0 ? [] : yield* store.decideAll(inTime.map((a) => ({
          id: a.id,
          type: a.type,
          params: a.stored,
          submittedAt: new Date(now).toISOString()
        })))
        const decisions = new Map(inTime.map((a, i) => [a, decided[i]!]))
        return yield* Effect.forEach(batch, (a): Effect.Effect<Effect.Effect<SubmitOutcome, StoreError>> => {
          const decision = decisions.get(a)
          if (decision === undefined) return Effect.succeed(Effect.fail(tooLate))
          if (decision._tag === "Deduplicated") {
            const { run, status, type } = decision
            return metrics.submitted(type, "deduplicated").pipe(
              // debug: a controller that resubmits to poll would otherwise fill the log with no-ops
              Effect.zipRight(Effect.logDebug("task deduplicated").pipe(Effect.annotateLogs({ taskId: a.id, type, run }))),
              Effect.as(Effect.succeed({ _tag: "Deduplicated", id: a.id, status }))
            )
          }
          const { run } = decision
          // logged before the answer: a controller that sees the 201 finds the line
          return Effect.logInfo(run === 1 ? "task submitted" : "task re-executed").pipe(
            Effect.annotateLogs({ taskId: a.id, type: a.type, run }),
            Effect.zipRight(metrics.submitted(a.type, run === 1 ? "started" : "re-executed")),
            Effect.zipRight(Effect.sync(() => start({ id: a.id, type: a.type, run }, a.handler, a.params))),
            Effect.as(Effect.succeed({ _tag: "Started", id: a.id, run }))
          )
        })
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
        return Either.isLeft(admitted) ? Effect.fail(admitted.left) : Effect.flatten(decide(admitted.right))
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

    // Runs a previous process left running that wait for their turn to be resumed (see `resume` below), with whoever
    // waits for that turn (`join`).
    const resumeQueue = new Map<TaskId, Array<() => void>>()
    /** `id` no longer waits to be resumed (it is resumed, or deleted); whoever waited for its turn goes on. */
    const dequeueResume = (id: TaskId) =>
      Effect.sync(() => {
        const waiting = resumeQueue.get(id)
        resumeQueue.delete(id)
        waiting?.forEach((go) => go())
      })
    const resumeTurn = (id: TaskId) =>
      Effect.async<void>((resume) => {
        const waiting = resumeQueue.get(id)
        if (waiting === undefined) resume(Effect.void)
        else waiting.push(() => resume(Effect.void))
      })

    /**
     * Interrupt the task's run (a run-command child is killed) and wait for it, then delete the row; nothing
     * is written back for the interrupted run. Under the Semaphore that serializes Submit, so that a resubmit
     * cannot slip in between.
     */
    const remove = (id: string) =>
      semaphore.withPermit(Effect.gen(function*() {
        if (isTaskId(id)) {
          yield* dequeueResume(id)
          yield* FiberMap.remove(runs, id)
        }
        const deleted = yield* store.remove(id)
        if (Option.isNone(deleted)) return yield* TaskNotFound.of(id)
        const { run, status, type } = deleted.value
        yield* Effect.logInfo("task deleted").pipe(Effect.annotateLogs({ taskId: id, type, run, status }))
      }))

    /** Wait until the task's current run, if it has one in this process, has ended and recorded its outcome. */
    const join = (id: string) =>
      Effect.suspend(() => resumeQueue.has(id as TaskId) ? resumeTurn(id as TaskId) : Effect.void).pipe(
        Effect.zipRight(FiberMap.get(runs, id as TaskId)),
        Effect.flatMap(Fiber.await),
        Effect.ignore
      )

    /** Whether the last successful mark-ready / mark-not-ready made the sidecar ready. */
    const ready = readiness.get

    /** Fails when the store does not answer. */
    const livez: Effect.Effect<void, StoreError> = Effect.tapError(store.ping, () => metrics.pingFailed)

    // Readiness survives restarts: whichever of mark-ready / mark-not-ready completed last decides.
    const last = yield* store.lastCompleted([readinessTypes.ready, readinessTypes.notReady])
    yield* readiness.set(Option.exists(last, (t) => t.type === readinessTypes.ready))

    // Crash recovery: what a previous process left running. Runs whose type has no handler any more fail first, so
    // that counting the resumptions is one statement, not one a task. The rest resume in the background once the
    // server listens, `resumeConcurrency` at a time, with the same run number: each is the same run.
    const running = yield* store.listRunning
    const resumable: Array<readonly [RunningTask, TaskHandler]> = []
    const orphans: Array<RunningTask> = []
    for (const task of running) {
      const handler = handlers.get(task.type)
      if (handler === undefined) orphans.push(task)
      else resumable.push([task, handler])
    }
    yield* Effect.forEach(orphans, (task) =>
      Effect.gen(function*() {
        yield* finish(task, {
          status: "failed",
          error: `no handler registered for task type: ${task.type}`,
          completedAt: yield* DateTime.now
        })
        yield* Effect.logWarning("task could not be resumed: no handler registered for task type").pipe(
          Effect.annotateLogs({ taskId: task.id, type: task.type, run: task.run })
        )
      }), { concurrency: "unbounded", discard: true })
    if (resumable.length > 0) yield* store.resumedRunning
    for (const [task] of resumable) resumeQueue.set(task.id, [])
    const turns = yield* Effect.makeSemaphore(resumeConcurrency)
    const resume = ([task, handler]: readonly [RunningTask, TaskHandler]) =>
      Effect.flatMap(turns.take(1), () => {
        // deleted while it waited: nothing to resume
        if (!resumeQueue.has(task.id)) return turns.release(1)
        const run = execute(task, handler, decodeParams(handler, task.params))
        return Effect.logInfo("task resumed").pipe(
          Effect.annotateLogs({ taskId: task.id, type: task.type, run: task.run }),
          Effect.zipRight(Effect.sync(() => fork(task.id, Effect.ensuring(run, turns.release(1))))),
          Effect.zipRight(dequeueResume(task.id))
        )
      })
    yield* Effect.forkScoped(Effect.forEach(resumable, resume, { discard: true }))

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
