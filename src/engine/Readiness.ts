import { Context, Effect, Layer, Ref } from "effect"

/** Whether the node is ready, as the last mark-ready / mark-not-ready said. */
export class Readiness extends Context.Service<Readiness>()("sidecar/Readiness", {
  make: Effect.map(Ref.make(false), (ready) => ({
    /** True once a mark-ready completed, until a later mark-not-ready. */
    get: Ref.get(ready),
    set: (value: boolean) => Ref.set(ready, value)
  }))
}) {
  static readonly layer = Layer.effect(this, this.make)
}
