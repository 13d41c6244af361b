import type { Duration, Schema } from "effect"
import { Context, Effect, Layer } from "effect"
import type { TaskError } from "../Errors.js"

/**
 * What runs a task type: `params` validates the request's params at submit time (a 400 when they do not fit)
 * and decodes them again for each run; `run` returns a JSON-encodable result or fails with a `TaskError`.
 */
export interface TaskHandler<P = any, R = never> {
  readonly name: string
  readonly params: Schema.Codec<P, any>
  readonly run: (params: P) => Effect.Effect<unknown, TaskError, R>
  /** The result's schema: results are encoded with it before they are stored (and described by it). */
  readonly result?: Schema.Codec<any, any> | undefined
  /** A run that takes longer is interrupted and fails with a retryable "timed out after N s". */
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

/** A handler, or an effect that builds one (for handlers configured at startup, such as run-command). */
export type HandlerSource = TaskHandler<any, any> | Effect.Effect<TaskHandler<any, any>, any, any>

type Needs<H> = H extends Effect.Effect<TaskHandler<any, infer R1>, any, infer R2> ? R1 | R2
  : H extends TaskHandler<any, infer R> ? R
  : never
type Fails<H> = H extends Effect.Effect<any, infer E, any> ? E : never

/** A handler as registered: its `run` needs the registry's `context`. */
export type RegisteredHandler = TaskHandler<any, unknown>

/**
 * The registry of task types: each type's handler by name, and what their runs need, the services the layer was
 * built with. The engine forks every run with `context`: provided to each run instead, it was merged into the run's
 * and set and restored around it, 15 % of crash recovery's time after listening (10k runs).
 */
export interface Registry {
  readonly handlers: ReadonlyMap<string, RegisteredHandler>
  readonly context: Context.Context<unknown>
}

/** The registry of task types. There is no default; the application supplies one. */
export class TaskHandlers extends Context.Service<TaskHandlers, Registry>()("sidecar/TaskHandlers") {
  /** A registry of `handlers`; the services they need are taken once, when the layer is built. */
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
