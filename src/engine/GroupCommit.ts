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
 * per batch rather than once per item; alone, a caller waits no longer than a `setImmediate`.
 *
 * Batches are written one after another, never two at once: items that arrive while one is being written (while it
 * waits out a locked database, say) make up the next. `write` answers in the order of its input; should it fail,
 * every caller of that batch gets the failure. A caller interrupted before its batch began is taken out and nothing
 * of it is written; one interrupted during the write ends only when the write has, so that whatever it interrupts
 * (a DELETE, say) comes after the write, never before it.
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
        Effect.zipRight(Effect.suspend(() => {
          if (queue.length > 0) return writeQueued
          writing = false
          return Effect.void
        }))
      )
    })
    const start = () => fork(writeQueued)

    return (item: I) =>
      Effect.async<O, E>((resume) => {
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
            : Effect.async<void>((written) => void taken.listeners.push(() => written(Effect.void)))
        })
      })
  })
