import { Duration, Schedule } from "effect"

/**
 * How long a statement waits for another connection's lock. The Store waits between retries: SQLite's busy_timeout
 * would sleep in the synchronous call, freezing the event loop, so the connection runs with busy_timeout 0.
 */
export const busyTimeout = Duration.seconds(5)

/** Every millisecond at first (most locks are a checkpoint's brief RESTART), then less and less often. */
export const whileBusy = Schedule.spaced("1 millis").pipe(
  Schedule.upTo({ duration: "40 millis" }),
  Schedule.concat(Schedule.min([Schedule.exponential("2 millis"), Schedule.spaced("50 millis")])),
  Schedule.upTo({ duration: busyTimeout })
)

/** A write already promised (a run's outcome, a resumption's count) is retried until written or interrupted. */
export const untilWritten = Schedule.min([Schedule.exponential("50 millis"), Schedule.spaced("1 second")])
