import { DateTime, Duration, Effect, Option, Schedule } from "effect"
import type { Store } from "../store/Store.js"

/** Rows deleted per statement: small, so a prune never holds the database long. */
const batch = 500

/** Between two prunes: a tenth of the retention, at most ten minutes. */
export const pruneInterval = (retention: Duration.Duration) =>
  Duration.min(Duration.minutes(10), Duration.times(retention, 0.1))

/** Grace before a never-pruned file's first prune. */
export const gracePeriod = (retention: Duration.Duration) => Duration.min(Duration.hours(1), retention)

/**
 * Delete what ended over `retention` ago, in small batches, forever, never a running task nor the readiness task. A
 * never-pruned file first gets a warning and a grace: history is never deleted silently.
 */
export const pruneForever = (
  store: Store["Service"],
  retention: Duration.Duration,
  readinessTypes: ReadonlyArray<string>
) => {
  const keep = Effect.map(
    store.lastCompleted(readinessTypes),
    Option.match({ onNone: (): Array<string> => [], onSome: (t) => [t.id] })
  )
  const pruneOnce = Effect.gen(function*() {
    const before = DateTime.subtractDuration(yield* DateTime.now, retention)
    const kept = yield* keep
    let total = 0
    for (;;) {
      const deleted = yield* store.prune(before, kept, batch)
      total += deleted
      if (deleted < batch) break
      yield* Effect.yieldNow // let requests in between batches
    }
    if (total > 0) {
      yield* Effect.logInfo("pruned old tasks").pipe(
        Effect.annotateLogs({ deleted: total, before: DateTime.formatIso(before) })
      )
    }
  })
  const graceOnce = Effect.gen(function*() {
    const now = yield* DateTime.now
    const grace = yield* store.grace(DateTime.addDuration(now, gracePeriod(retention)))
    if (Option.isNone(grace)) return
    const { endsAt, history } = grace.value
    const before = DateTime.subtractDuration(endsAt, retention)
    const tasks = yield* store.countPrunable(before, yield* keep)
    const said = { tasks, history, retentionHours: Duration.toHours(retention), keepThem: "SIDECAR_RETENTION_HOURS=0" }
    if (tasks > 0) {
      yield* Effect.logWarning(
        "retention will delete tasks this sidecar has not pruned before; to keep them, stop it and restart it " +
          "with SIDECAR_RETENTION_HOURS=0"
      ).pipe(Effect.annotateLogs({
        ...said,
        endedBefore: DateTime.formatIso(before),
        deletingFrom: DateTime.formatIso(endsAt)
      }))
      yield* Effect.sleep(Duration.millis(Math.max(0, Duration.toMillis(DateTime.distance(now, endsAt)))))
    } else {
      // none old enough for the first prune: no wait
      yield* Effect.logWarning(
        "retention will delete tasks this sidecar has not pruned before as they age; to keep them, restart it " +
          "with SIDECAR_RETENTION_HOURS=0"
      ).pipe(Effect.annotateLogs(said))
    }
    yield* store.endGrace
  })
  return graceOnce.pipe(
    // never prune before the grace is known to be over
    Effect.tapError((e) => Effect.logWarning("reading the retention grace failed; trying again later", e)),
    Effect.retry(Schedule.spaced(pruneInterval(retention))),
    Effect.andThen(
      pruneOnce.pipe(
        Effect.catch((e) => Effect.logWarning("pruning old tasks failed; trying again later", e)),
        Effect.repeat(Schedule.spaced(pruneInterval(retention)))
      )
    )
  )
}
