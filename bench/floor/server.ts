/**
 * THE FRAMEWORK'S FLOOR, NEVER SHIPPED. The smallest server on the stack the sidecar must use, effect/http-api's
 * HttpApi served by @effect/platform-node's NodeHttpServer on node:http, answering the requests the benchmark
 * makes with no database, no engine, no middleware and no logging: what any HttpApi server on this machine costs
 * per request before it does anything. The benchmark runs it next to the sidecar and the baseline; nothing in src/
 * imports it, and it imports nothing from src/.
 *
 * - `POST /v0/tasks` decodes `{id?, type, params?}` and answers 201 `{"id"}`: the given id or a random UUID. It
 *   stores nothing and never answers 202, so for submits it is a floor under the sidecar, not a competitor of the
 *   baseline (which commits a row per submit).
 * - `GET /v0/tasks/:id` answers a fixed completed task with that id, `GET /v0/tasks` a fixed 100 of them, both
 *   encoded through a Schema of the task's wire shape (timestamps as plain strings).
 * - `GET /v0/livez` answers an empty 200.
 * Same environment (SIDECAR_HOST, SIDECAR_PORT; SIDECAR_DB is ignored) and the same JSON "Listening on" line as
 * the other two servers; spans off, as in src/Sidecar.ts and src/http/Http.ts.
 */
// Deep imports, as src/Sidecar.ts does: the package's index also loads the cluster, RPC and worker modules.
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer, References, Schema } from "effect"
import { HttpMiddleware, HttpRouter, HttpServer } from "effect/http"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup, HttpApiSchema } from "effect/http-api"
import { randomUUID } from "node:crypto"
import { createServer } from "node:http"

const port = Number(process.env["SIDECAR_PORT"] ?? "7777")
const host = process.env["SIDECAR_HOST"] ?? "0.0.0.0"

/** The task's wire shape, as the sidecar answers it (optional keys left out when empty). */
const FloorTask = Schema.Struct({
  id: Schema.String,
  type: Schema.String,
  status: Schema.Literals(["running", "completed", "failed"]),
  run: Schema.Int,
  params: Schema.optionalKey(Schema.Unknown),
  error: Schema.optionalKey(Schema.String),
  result: Schema.optionalKey(Schema.Unknown),
  submittedAt: Schema.String,
  completedAt: Schema.optionalKey(Schema.String)
})

const Submit = Schema.Struct({
  id: Schema.optionalKey(Schema.String),
  type: Schema.String,
  params: Schema.optionalKey(Schema.Unknown)
})

const Started = Schema.Struct({ id: Schema.String }).pipe(HttpApiSchema.status(201))

class FloorTasks extends HttpApiGroup.make("tasks")
  .add(HttpApiEndpoint.post("submit", "/v0/tasks", { payload: Submit, success: Started }))
  .add(HttpApiEndpoint.get("list", "/v0/tasks", { success: Schema.Array(FloorTask) }))
  .add(HttpApiEndpoint.get("get", "/v0/tasks/:id", { params: { id: Schema.String }, success: FloorTask }))
{}

class FloorHealth extends HttpApiGroup.make("health", { topLevel: true })
  .add(HttpApiEndpoint.get("livez", "/v0/livez", { success: HttpApiSchema.Empty(200) }))
{}

class FloorApi extends HttpApi.make("floor").add(FloorHealth).add(FloorTasks) {}

/** A completed no-op task like the benchmark's seeded rows (bench/schema.ts), the `i`-th of them. */
const task = (i: number): typeof FloorTask.Type => {
  const submitted = Date.UTC(2026, 0, 1) + i * 1000
  return {
    id: `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`,
    type: "noop",
    status: "completed",
    run: 1,
    submittedAt: new Date(submitted).toISOString(),
    completedAt: new Date(submitted + 5).toISOString()
  }
}

const one = task(0)
const hundred = Array.from({ length: 100 }, (_, i) => task(99 - i))

const TasksLive = HttpApiBuilder.group(FloorApi, "tasks", (handlers) =>
  handlers
    .handle("submit", ({ payload }) => Effect.succeed({ id: payload.id ?? randomUUID() }))
    .handle("list", () => Effect.succeed(hundred))
    .handle("get", ({ params }) => Effect.succeed({ ...one, id: params.id })))

const HealthLive = HttpApiBuilder.group(FloorApi, "health", (handlers) => handlers.handle("livez", () => Effect.void))

/** The line bench/servers.ts waits for, written straight to stdout (Effect's logging is off). */
const ListeningLine = Layer.effectDiscard(
  HttpServer.addressFormattedWith((address) =>
    Effect.sync(() => process.stdout.write(`${JSON.stringify({ message: `Listening on ${address}` })}\n`))
  )
)

const FloorLive = HttpRouter.serve(
  HttpApiBuilder.layer(FloorApi).pipe(Layer.provide([TasksLive, HealthLive])),
  { disableLogger: true, disableListenLog: true }
).pipe(
  Layer.provide(Layer.succeed(HttpMiddleware.TracerDisabledWhen, () => true)),
  Layer.merge(ListeningLine),
  Layer.provide(NodeHttpServer.layer(createServer, { port, host }))
)

Layer.launch(FloorLive).pipe(
  Effect.provideService(References.TracerEnabled, false),
  Effect.provideService(References.MinimumLogLevel, "None"),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
