import { Deferred, Effect, Exit, FiberId } from "effect"

/**
 * The Semaphore that serializes Submit: one permit, so that deciding a batch of submits and deleting a task (which
 * interrupts the task's run, waits for it, then deletes the row) never interleave, and a resubmit cannot slip in
 * between a delete's two steps. Taken in arrival order: Effect's own Semaphore lets a newcomer overtake those already
 * waiting, and under load some waited seconds.
 */
export interface SubmitSemaphore {
  /**
   * Run `effect` holding the permit, uninterruptibly once it has it (a caller that hangs up must not leave a half
   * done delete); waiting for it can be interrupted.
   */
  readonly withPermit: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export const makeSubmitSemaphore = (): SubmitSemaphore => {
  // Each caller queues behind the previous one's Deferred, and completes its own when it is done.
  let lastInLine = Deferred.unsafeMake<void>(FiberId.none)
  Deferred.unsafeDone(lastInLine, Exit.void)
  return {
    withPermit: (effect) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          const previous = lastInLine
          const mine = Deferred.unsafeMake<void>(FiberId.none)
          lastInLine = mine
          const release = Deferred.done(mine, Exit.void)
          return restore(Deferred.await(previous)).pipe(
            // Interrupted while queued: hand the permit on once it comes, never before (the holder ahead may still
            // be at work). Only a caller that got the permit releases it through `ensuring`.
            Effect.onInterrupt(() => Effect.forkDaemon(Effect.zipRight(Deferred.await(previous), release))),
            Effect.zipRight(Effect.ensuring(effect, release))
          )
        })
      )
  }
}
