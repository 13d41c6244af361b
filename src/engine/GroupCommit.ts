import { Effect, Exit, FiberSet, type Scope } from "effect"

interface Batch {
  written: boolean
  readonly listeners: Array<() => void>
}

interface Waiting<I, O, E> {
  readonly item: I
  readonly resume: (result: Effect.Effect<O, E>) => void
}

/**
 * Group commit: items asked for within one turn of the event loop are written by `write` in one transaction, one batch
 * at a time; each caller gets its part, or the batch's failure, once committed. A caller interrupted before its batch
 * began is taken out; during the write, it ends only when the write has (what it interrupts comes after). A caller
 * alone writes at once in its own fiber, interruptibly, so `write` may wait only before it writes anything.
 */
export const groupCommit = <I, O, E>(
  write: (batch: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<O>, E>
): Effect.Effect<(item: I) => Effect.Effect<O, E>, never, Scope.Scope> =>
  Effect.map(FiberSet.makeRuntime<never, void, never>(), (fork) => {
    let queue: Array<Waiting<I, O, E>> = []
    // a write scheduled or under way; the batch last taken and its waiters
    let writing = false
    let current: Batch = { written: true, listeners: [] }

    const writeQueued: Effect.Effect<void> = Effect.suspend(() => {
      const batch = queue
      const taken: Batch = current = { written: false, listeners: [] }
      queue = []
      const written = batch.length === 0 ? Effect.succeed([]) : write(batch.map((w) => w.item))
      return written.pipe(
        Effect.exit,
        Effect.map((exit) => {
          if (Exit.isSuccess(exit)) batch.forEach((w, i) => w.resume(Effect.succeed(exit.value[i]!)))
          else batch.forEach((w) => w.resume(Effect.failCause(exit.cause)))
        }),
        // the layer closing mid-write: nobody is left hanging
        Effect.onInterrupt(() => Effect.sync(() => batch.forEach((w) => w.resume(Effect.interrupt)))),
        Effect.ensuring(Effect.sync(() => {
          taken.written = true
          taken.listeners.forEach((listener) => listener())
        })),
        Effect.andThen(Effect.suspend(() => {
          if (queue.length > 0) return writeQueued
          writing = false
          return Effect.void
        }))
      )
    })
    const start = () => fork(writeQueued)

    let thisTurn = 0
    let lastTurn = 0
    const endTurn = () => {
      lastTurn = thisTurn
      thisTurn = 0
    }
    const writeAlone = (item: I) =>
      Effect.ensuring(
        Effect.map(write([item]), (written) => written[0]!),
        Effect.sync(() => {
          if (queue.length > 0) setImmediate(start)
          else writing = false
        })
      )

    const enqueue = (item: I) =>
      Effect.callback<O, E>((resume) => {
        const waiting = { item, resume }
        queue.push(waiting)
        if (!writing) {
          writing = true
          setImmediate(start)
        }
        return Effect.suspend(() => {
          const at = queue.indexOf(waiting)
          if (at >= 0) {
            queue.splice(at, 1)
            return Effect.void
          }
          const taken = current
          return taken.written
            ? Effect.void
            : Effect.callback<void>((written) => void taken.listeners.push(() => written(Effect.void)))
        })
      })

    return (item: I) =>
      Effect.suspend(() => {
        if (thisTurn++ === 0) setImmediate(endTurn)
        if (writing || thisTurn > 1 || lastTurn > 1) return enqueue(item)
        writing = true
        return writeAlone(item)
      })
  })
