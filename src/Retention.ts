import { DateTime, Duration, Effect, Option, Schedule } from "effect"
import type { Store } from "./Store.js"

/** Rows deleted per statement: small, so a prune never holds the database for long. */
const batch = 500

/** Between two prunes: a tenth of the retention, at most ten minutes. */
export const pruneInterval = (retention: Duration.Duration) =>
  Duration.min(Duration.minutes(10), Duration.times(retention, 0.1))

/**
 * Delete what ended more than `retention` ago, in small batches, forever: never a running task, and never the
 * readiness task (of `readinessTypes`) that readiness is derived from at startup.
 */
export const pruneForever = (store: Store, retention: Duration.Duration, readinessTypes: ReadonlyArray<string>) => {
  const pruneOnce = Effect.gen(function*() {
    const before = DateTime.subtractDuration(yield* DateTime.now, retention)
    const keep = Option.match(yield* store.lastCompleted(readinessTypes), { onNone: () => [], onSome: (t) => [t.id] })
    let total = 0
    for (;;) {
      const deleted = yield* store.prune(before, keep, batch)
      total += deleted
      if (deleted < batch) break
      yield* Effect.yieldNow() // let requests in between batches
    }
    if (total > 0) {
      yield* Effect.logInfo("pruned old tasks").pipe(Effect.annotateLogs({ deleted: total, before: DateTime.formatIso(before) }))
    }
  })
  return pruneOnce.pipe(
    Effect.catchAll((e) => Effect.logWarning("pruning old tasks failed; trying again later", e)),
    Effect.repeat(Schedule.spaced(pruneInterval(retention)))
  )
}
