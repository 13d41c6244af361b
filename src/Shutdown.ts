import { Context, Deferred, Effect, Exit, Layer } from "effect"

/**
 * Whether the process has been told to stop. Long-poll waits answer at once when it has, so that the server's drain
 * (which waits for every request in flight) is not held up by them.
 */
export class Shutdown extends Context.Service<Shutdown>()("sidecar/Shutdown", {
  make: Effect.map(Deferred.make<void>(), (signalled) => ({
    /** Succeeds once shutdown has begun. */
    begun: Deferred.await(signalled),
    begin: Deferred.done(signalled, Exit.void),
    /** For a signal handler, outside any fiber. */
    beginUnsafe: () => Deferred.doneUnsafe(signalled, Exit.void)
  }))
}) {
  static readonly layer = Layer.effect(this, this.make)
}
