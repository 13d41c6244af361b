import { Context, DateTime, Deferred, Effect, Layer, Option } from "effect"
import type { TaskId } from "../Domain.js"
import { logAnnotated, logFrom } from "../Logging.js"
import { untilWritten } from "../store/Retry.js"
import type { Completion, RunningTask, Store } from "../store/Store.js"
import type { RegisteredHandler } from "./TaskHandlers.js"

/**
 * Resumed runs wait for this gate, which the server opens once it listens, so that the probes answer first. Without a
 * gate (the engine alone), they resume at once.
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

/** How many resumed runs run at once. */
const resumeConcurrency = 64

/**
 * Crash recovery: runs left `running` with no handler fail; the rest, past the ResumeGate and once their resume count
 * is written, restart with the same `run`. `turn` waits for a task's turn; `forget` takes it out of line.
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
    // tasks waiting for their turn, each with whoever waits for it
    const line = new Map<TaskId, Array<() => void>>(running.map((task) => [task.id, []]))
    const forgetNow = (id: TaskId) => {
      const waiting = line.get(id)
      line.delete(id)
      waiting?.forEach((go) => go())
    }
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
    // by id: new submits may have started runs meanwhile
    const countResumed = resumable.length === 0 ? Effect.void : store.resumed(resumable.map(([task]) => task.id)).pipe(
      Effect.retry(untilWritten),
      Effect.orDie // untilWritten never gives up
    )

    let resumed = 0
    let wake: (() => void) | undefined
    /** A resumed run's last step, however it ends: room for the next. */
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
