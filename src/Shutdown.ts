import { Context, Deferred, Effect, Exit, Layer } from "effect"

/** Whether the process has been told to stop: long-poll waits then answer at once, not holding up the drain. */
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
