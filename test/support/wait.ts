// Waiting for what a test cannot be told of: a condition polled with a bound (on the real clock, under a TestClock
// too), and a sleep begun on the TestClock.
import { Clock, Duration, Effect, Schedule } from "effect"
import { TestClock } from "effect/testing"

const notYet = Symbol("notYet")
/** Poll `effect` on the real clock until `done` holds of its value (which it answers), for at most `within`. */
export const pollUntil = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  done: (a: A) => boolean,
  within: Duration.Input = "15 seconds"
) =>
  effect.pipe(
    Effect.filterOrFail(done, () => notYet),
    Effect.retry({ schedule: Schedule.spaced("25 millis"), while: (e) => e === notYet }),
    Effect.timeoutOrElse({ duration: within, orElse: () => Effect.fail(new Error("condition not reached in time")) })
  )

/**
 * Check `check` every 10 ms until it holds, for at most `within` (a defect then). It runs on the real clock even in
 * a test on the TestClock, whose time only the test moves.
 */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, within: Duration.Input = "5 seconds") =>
  check.pipe(
    Effect.filterOrFail((ok) => ok, () => "not yet"),
    Effect.retry(Schedule.spaced("10 millis")),
    Effect.timeoutOrElse({ duration: within, orElse: () => Effect.fail(new Error("condition not met in time")) }),
    Effect.orDie,
    Effect.provideService(Clock.Clock, Clock.Clock.defaultValue())
  )

/**
 * Until something sleeps on the test clock for `millis` from now (at most 100 turns), and whether it does. Effect 4's
 * TestClock has no `sleeps()`: its implementation keeps them in a `sleeps` array of `{ timestamp }`, read here.
 */
export const untilSleeping = (millis: number) =>
  TestClock.testClockWith((clock) =>
    Effect.gen(function*() {
      const at = clock.currentTimeMillisUnsafe() + millis
      const sleeps = (clock as unknown as { readonly sleeps: ReadonlyArray<{ readonly timestamp: number }> }).sleeps
      for (let i = 0; i < 100 && !sleeps.some((sleep) => sleep.timestamp === at); i++) yield* Effect.yieldNow
      return sleeps.some((sleep) => sleep.timestamp === at)
    })
  )
