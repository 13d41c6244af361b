import type { Duration, Schema } from "effect"
import { Context, Effect, Layer } from "effect"
import type { TaskError } from "../Errors.js"

/**
 * What runs a task type: `params` is checked at submit (else a 400) and decoded for each run; `run` returns a
 * JSON-encodable result or fails with a `TaskError`.
 */
export interface TaskHandler<P = any, R = never> {
  readonly name: string
  readonly params: Schema.Codec<P, any>
  readonly run: (params: P) => Effect.Effect<unknown, TaskError, R>
  /** Encodes results before they are stored, and describes them. */
  readonly result?: Schema.Codec<any, any> | undefined
  /** A longer run is interrupted and fails, retryably. */
  readonly timeout?: Duration.Input | undefined
}

/** Declare a handler, inferring its params and result types from its schemas. */
export const taskHandler = <P, I, A = unknown, RI = unknown, R = never>(handler: {
  readonly name: string
  readonly params: Schema.Codec<P, I>
  readonly result?: Schema.Codec<A, RI> | undefined
  readonly timeout?: Duration.Input | undefined
  readonly run: (params: P) => Effect.Effect<A, TaskError, R>
}): TaskHandler<P, R> => handler

/** A handler, or an effect that builds one at startup (as run-command's does). */
export type HandlerSource = TaskHandler<any, any> | Effect.Effect<TaskHandler<any, any>, any, any>

type Needs<H> = H extends Effect.Effect<TaskHandler<any, infer R1>, any, infer R2> ? R1 | R2
  : H extends TaskHandler<any, infer R> ? R
  : never
type Fails<H> = H extends Effect.Effect<any, infer E, any> ? E : never

/** A handler as registered: its `run` needs the registry's `context`. */
export type RegisteredHandler = TaskHandler<any, unknown>

/** Handlers by name, and `context`, the services every run is forked with. */
export interface Registry {
  readonly handlers: ReadonlyMap<string, RegisteredHandler>
  readonly context: Context.Context<unknown>
}

/** The registry of task types; the application supplies it. */
export class TaskHandlers extends Context.Service<TaskHandlers, Registry>()("sidecar/TaskHandlers") {
  /** A registry of `handlers`, their services taken when the layer is built. */
  static layer = <const Hs extends ReadonlyArray<HandlerSource>>(
    ...handlers: Hs
  ): Layer.Layer<TaskHandlers, Fails<Hs[number]>, Needs<Hs[number]>> =>
    Layer.effect(
      TaskHandlers,
      Effect.gen(function*() {
        const context = yield* Effect.context<unknown>()
        const built = yield* Effect.forEach(
          handlers as ReadonlyArray<HandlerSource>,
          (h) => Effect.isEffect(h) ? h : Effect.succeed(h)
        )
        const registered = new Map<string, RegisteredHandler>()
        for (const h of built) {
          if (registered.has(h.name)) return yield* Effect.die(new Error(`task type ${h.name} registered twice`))
          registered.set(h.name, h)
        }
        return { handlers: registered, context }
      })
    ) as any
}
