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
 * Group commit: what callers ask to have written within one turn of the event loop is written together, by
 * `write`, in one transaction, and each caller is answered with its own part of the result once that transaction
 * has committed. Under concurrency the pages a batch touches (the ends of the indexes above all) are written once
 * per batch rather than once per item.
 *
 * Batches are written one after another, never two at once: items that arrive while one is being written (while it
 * waits out a locked database, say) make up the next. `write` answers in the order of its input; should it fail,
 * every caller of that batch gets the failure. A caller interrupted before its batch began is taken out and nothing
 * of it is written; one interrupted during the write ends only when the write has, so that whatever it interrupts
 * (a DELETE, say) comes after the write, never before it.
 *
 * A caller alone writes its item itself, at once, in its own fiber: when nothing is being written and neither this
 * turn of the event loop nor the last one that brought any item brought another. That is a client sending one
 * request at a time, for which the hop to the next turn and a fiber for a batch of one cost a sixth of a submit.
 * Items that come while it is being written are written after it, as a batch; once items come together, every item
 * waits for its batch again, from the next one on. Interrupting such a caller interrupts its write, which `write`
 * must allow wherever it can wait (the Store's writes wait only before a statement, for a permit or for a locked
 * database, and a statement runs synchronously): nothing of it is written then, as for a caller taken out of a queue.
 */
export const groupCommit = <I, O, E>(
  write: (batch: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<O>, E>
): Effect.Effect<(item: I) => Effect.Effect<O, E>, never, Scope.Scope> =>
  Effect.map(FiberSet.makeRuntime<never, void, never>(), (fork) => {
    let queue: Array<Waiting<I, O, E>> = []
    // Whether a write is scheduled or under way; and the batch last taken, with who waits for its write to end.
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

    // How many items this turn of the event loop has brought so far, and the last turn that brought any.
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
