import { Context, DateTime, Deferred, Effect, Layer, Option } from "effect"
import type { TaskId } from "../Domain.js"
import { logAnnotated, logFrom } from "../Logging.js"
import { untilWritten } from "../store/Retry.js"
import type { Completion, RunningTask, Store } from "../store/Store.js"
import type { RegisteredHandler } from "./TaskHandlers.js"

/**
 * Where there is one, crash recovery resumes runs only once it is open: the server opens it once it listens, so that
 * the probes answer at a start as on an empty database instead of after thousands of resumed runs have raced the
 * server's own start for the CPU. Without one (the engine alone), runs resume at once.
 */
export class ResumeGate extends Context.Service<ResumeGate, Deferred.Deferred<void>>()("sidecar/ResumeGate") {
  static readonly layer = Layer.effect(ResumeGate, Deferred.make<void>())
  /** Open the gate (a layer, built after the server's). */
  static readonly open = Layer.effectDiscard(Effect.flatMap(ResumeGate, (gate) => Deferred.succeed(gate, undefined)))
  /** Until the gate is open; at once where there is none. */
  static readonly passed = Effect.flatMap(
    Effect.serviceOption(ResumeGate),
    Option.match({ onNone: () => Effect.void, onSome: Deferred.await })
  )
}

/** Runs left by a previous process that are resumed at once; the rest wait for one of them to end. */
const resumeConcurrency = 64

/**
 * Crash recovery, the engine's start: the runs a previous process left `running`. `resume` (forked by the engine)
 * fails those whose type has no handler any more, waits for the ResumeGate, counts the resumption of the others and
 * starts them again, `resumeConcurrency` at a time, with the same run number: finishing an interrupted run is not a
 * new run. Each write is retried until the database takes it (a full volume, say), and nothing is resumed before its
 * count is written. Until its turn a task waits in line: `turn` waits for it, `forget` takes it out.
 */
export const recoverRuns = (options: {
  readonly store: Store["Service"]
  readonly handlers: ReadonlyMap<string, RegisteredHandler>
  readonly finish: (task: RunningTask, completion: Completion) => Effect.Effect<void>
  /** Start the run again; `ended` must run when it ends, however it ends. */
  readonly start: (task: RunningTask, handler: RegisteredHandler, ended: Effect.Effect<void>) => void
}) =>
  Effect.gen(function*() {
    const { finish, handlers, start, store } = options
    const running = yield* store.listRunning
    const resumable: Array<readonly [RunningTask, RegisteredHandler]> = []
    const orphans: Array<RunningTask> = []
    for (const task of running) {
      const handler = handlers.get(task.type)
      if (handler === undefined) orphans.push(task)
      else resumable.push([task, handler])
    }
    // The tasks waiting for their turn (to be resumed, or failed for want of a handler), each with whoever waits for
    // that turn.
    const line = new Map<TaskId, Array<() => void>>(running.map((task) => [task.id, []]))
    /** `id` no longer waits (it is resumed or failed, or deleted); whoever waited for its turn goes on. */
    const forgetNow = (id: TaskId) => {
      const waiting = line.get(id)
      line.delete(id)
      waiting?.forEach((go) => go())
    }
    /** Until `id` is resumed, failed or forgotten, if it waits for that. */
    const turn = (id: TaskId) =>
      Effect.callback<void>((resume) => {
        const waiting = line.get(id)
        if (waiting === undefined) resume(Effect.void)
        else waiting.push(() => resume(Effect.void))
      })

    const failOrphans = Effect.forEach(orphans, (task) =>
      Effect.gen(function*() {
        // deleted while it waited: nothing to fail
        if (!line.has(task.id)) return
        yield* finish(task, {
          status: "failed",
          error: `no handler registered for task type: ${task.type}`,
          completedAt: yield* DateTime.now
        })
        forgetNow(task.id)
        yield* logAnnotated("Warn", "task could not be resumed: no handler registered for task type", {
          taskId: task.id,
          type: task.type,
          run: task.run
        })
      }), { concurrency: "unbounded", discard: true })
    // Counted by id, not as "every running row": by the time it is written, new submits may have started runs.
    const countResumed = resumable.length === 0 ? Effect.void : store.resumed(resumable.map(([task]) => task.id)).pipe(
      Effect.retry(untilWritten),
      Effect.orDie // untilWritten never gives up
    )

    // Runs resumed and not yet ended, and how to wake `resume` when it waits for one to end.
    let resumed = 0
    let wake: (() => void) | undefined
    /** What a resumed run does last, however it ends: it makes room for the next. */
    const ended = Effect.sync(() => {
      resumed--
      const go = wake
      wake = undefined
      go?.()
    })
    const room = Effect.callback<void>((resume) => {
      if (resumed < resumeConcurrency) return resume(Effect.void)
      wake = () => resume(Effect.void)
      return Effect.sync(() => (wake = undefined))
    })
    // In line order, as many at a time as there is room for: one step of this fiber starts them all, and it waits
    // for room once a batch, not once a run (with a Semaphore's permit a run, resuming 10k runs took a sixth longer).
    let next = 0
    const resumeAll: Effect.Effect<void> = Effect.andThen(
      room,
      Effect.withFiber((fiber) => {
        while (resumed < resumeConcurrency && next < resumable.length) {
          const [task, handler] = resumable[next++]!
          // deleted while it waited: nothing to resume
          if (!line.has(task.id)) continue
          resumed++
          logFrom(fiber, "Info", "task resumed", { taskId: task.id, type: task.type, run: task.run })
          start(task, handler, ended)
          forgetNow(task.id)
        }
        return next < resumable.length ? resumeAll : Effect.void
      })
    )

    return {
      /** How many runs the previous process left running. */
      found: running.length,
      resume: Effect.andThen(failOrphans, Effect.andThen(ResumeGate.passed, Effect.andThen(countResumed, resumeAll))),
      turn,
      forget: (id: TaskId) => Effect.sync(() => forgetNow(id))
    } as const
  })
