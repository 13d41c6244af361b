import { Effect } from "effect"

/**
 * The Semaphore that serializes Submit: one permit, so that deciding a batch of submits and deleting a task (which
 * interrupts the task's run, waits for it, then deletes the row) never interleave, and a resubmit cannot slip in
 * between a delete's two steps. Given in arrival order, handed straight from one holder to the next: Effect's own
 * Semaphore lets a newcomer overtake those already waiting, and under load some waited seconds.
 */
export interface SubmitSemaphore {
  /**
   * Run `effect` holding the permit, uninterruptibly once it has it (a caller that hangs up must not leave a half
   * done delete); waiting for it can be interrupted.
   */
  readonly withPermit: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/** One caller of `withPermit`: whether it holds the permit, and how to wake it when it is handed the permit. */
interface Caller {
  holds: boolean
  wake?: () => void
}

export const makeSubmitSemaphore = (): SubmitSemaphore => {
  let held = false
  const waiting: Array<Caller> = []
  const release = () => {
    const next = waiting.shift()
    if (next === undefined) held = false
    else {
      next.holds = true
      next.wake?.()
    }
  }
  const acquire = (caller: Caller) =>
    Effect.suspend(() => {
      if (!held) {
        held = caller.holds = true
        return Effect.void
      }
      waiting.push(caller)
      return Effect.async<void>((resume) => {
        caller.wake = () => resume(Effect.void)
      })
    })
  const released = Effect.sync(release)
  return {
    withPermit: (effect) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          // Free: taken at once, with nothing to wait for and so nothing to undo.
          if (!held) {
            held = true
            return Effect.ensuring(effect, released)
          }
          const caller: Caller = { holds: false }
          return restore(acquire(caller)).pipe(
            // Interrupted while waiting: out of the line; or, if the permit had already come, passed on.
            Effect.onInterrupt(() =>
              Effect.sync(() => {
                const at = waiting.indexOf(caller)
                if (caller.holds) release()
                else if (at >= 0) waiting.splice(at, 1)
              })
            ),
            Effect.zipRight(Effect.ensuring(effect, released))
          )
        })
      )
  }
}
