import { DateTime, Duration, Effect, Option, Schedule } from "effect"
import type { Store } from "../store/Store.js"

/** Rows deleted per statement: small, so a prune never holds the database for long. */
const batch = 500

/** Between two prunes: a tenth of the retention, at most ten minutes. */
export const pruneInterval = (retention: Duration.Duration) =>
  Duration.min(Duration.minutes(10), Duration.times(retention, 0.1))

/** The grace before the first prune of tasks no retention has pruned yet: an hour, or the retention if shorter. */
export const gracePeriod = (retention: Duration.Duration) => Duration.min(Duration.hours(1), retention)

/**
 * Delete what ended more than `retention` ago, in small batches, forever: never a running task, and never the
 * readiness task (of `readinessTypes`) that readiness is derived from at startup. On a file whose tasks no retention
 * has pruned yet (migration 0008), first warn what will go and wait out the grace.
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
  // An upgrade never silently deletes history: on a file whose tasks no retention has pruned yet (adopted from the Go
  // sidecar, say), say what the first prune will delete and give an operator time to stop it.
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
      // none ended early enough for the first prune to take it, so there is nothing to wait for; they go as they age
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
