// Part http/: the HTTP contract (Api.ts), its handlers and middleware (Http.ts), request bodies, authentication, the
// OpenAPI document and the node:http server (NodeServer.ts). Imports engine/ and the shared modules.
import { Cause, Context, Duration, Effect, Layer, Stdio, Terminal } from "effect"
import { HttpMiddleware, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder, HttpApiError, OpenApi } from "effect/http-api"
import { ChildProcessSpawner } from "effect/process/ChildProcessSpawner"
import { SqlClient } from "effect/sql"
import { Engine } from "../engine/Engine.js"
import { TaskHandlers } from "../engine/TaskHandlers.js"
import { formatIssues, NotReady, schemaIssues } from "../Errors.js"
import { Metrics } from "../Metrics.js"
import { Shutdown } from "../Shutdown.js"
import { Api } from "./Api.js"
import { apiDocsLayer, describeTaskTypes } from "./ApiDocs.js"
import { type AuthnMode, rejection, unauthorized } from "./Authn.js"
import { hardened, jsonError } from "./RequestBody.js"

const TasksLive = HttpApiBuilder.group(Api, "tasks", (handlers) =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const shutdown = yield* Shutdown
    return handlers
      // `{"id"}` as declared, not encoded through a Schema
      .handle(
        "submit",
        ({ payload }) =>
          Effect.map(
            engine.submit(payload),
            (outcome) =>
              HttpServerResponse.jsonUnsafe({ id: outcome.id }, { status: outcome._tag === "Started" ? 201 : 202 })
          )
      )
      // the stored JSON as it is, not through Task
      .handle(
        "list",
        ({ query }) =>
          Effect.map(
            engine.listJson({ ...query, limit: query.limit ?? 100 }),
            (tasks) => HttpServerResponse.jsonUnsafe(tasks)
          )
      )
      .handle("get", ({ params, query }) =>
        query.wait === undefined || query.wait === 0
          ? Effect.map(engine.getJson(params.id), (task) => HttpServerResponse.jsonUnsafe(task))
          : engine.await(params.id, Duration.seconds(query.wait)).pipe(
            // a stopping server answers waiters at once, not holding up its drain
            Effect.raceFirst(Effect.andThen(shutdown.begun, engine.get(params.id)))
          ))
      .handle("runs", ({ params }) => engine.runs(params.id))
      .handle("remove", ({ params }) => engine.remove(params.id))
  }))

const HealthLive = HttpApiBuilder.group(Api, "health", (handlers) =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const metrics = yield* Metrics
    const whenReady = Effect.flatMap(
      engine.ready,
      (ready) => ready ? Effect.void : new NotReady({ error: "not ready" })
    )
    return handlers
      .handle("healthz", () => whenReady)
      .handle("startupz", () => whenReady)
      .handle("livez", () => engine.livez)
      .handle(
        "status",
        () => Effect.map(engine.ready, (ready) => ({ status: ready ? "Ready" as const : "Initializing" as const }))
      )
      .handle("metrics", () => metrics.exposition)
  }))

/** The API's routes, with OpenAPI and /docs describing this sidecar's task types. */
export const HttpApiLive = Layer.unwrap(Effect.gen(function*() {
  const { handlers } = yield* TaskHandlers
  const described = Api.annotate(OpenApi.Transform, describeTaskTypes(handlers))
  return Layer.mergeAll(HttpApiBuilder.layer(Api), apiDocsLayer(described)).pipe(
    Layer.provide([TasksLive, HealthLive])
  )
}))

const errorBody = (cause: Cause.Cause<unknown>): Effect.Effect<HttpServerResponse.HttpServerResponse, unknown> => {
  for (const reason of cause.reasons) {
    if (reason._tag === "Die" && HttpApiError.HttpApiSchemaError.is(reason.defect)) {
      return Effect.succeed(jsonError(400, "InvalidRequest", requestProblem(reason.defect)))
    }
    if (reason._tag === "Fail" && HttpServerError.isHttpServerError(reason.error)) {
      const e = reason.error
      if (e.reason._tag === "RouteNotFound") {
        return Effect.succeed(jsonError(404, "RouteNotFound", `no route for ${e.request.method} ${e.request.url}`))
      }
    }
  }
  if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
  return Effect.logError("request failed with a defect", cause).pipe(
    Effect.as(jsonError(500, "InternalError", "internal error"))
  )
}

const requestProblem = (error: HttpApiError.HttpApiSchemaError): string => {
  const where = error.kind === "Payload" ? "request body" : error.kind === "Query" ? "query" : "path"
  return formatIssues(
    schemaIssues(error.cause).map(({ message, path }) => {
      // the framework's words for a body that is not JSON, or missing
      if (message === "Expected a valid JSON body") return { path, message: `${where}: not valid JSON` }
      const missing = /, got (undefined|null)$/.exec(message)
      if (path.length === 0 && error.kind === "Payload" && missing !== null) {
        const got = missing[1] === "null" ? "null" : "nothing"
        return { path, message: `${where}: expected a JSON object such as {"type": "mark-ready"}, got ${got}` }
      }
      if (message.startsWith("Unexpected key")) {
        return { path, message: error.kind === "Query" ? "unknown query parameter" : "unknown field" }
      }
      return path.length === 0 ? { path, message: `${where}: ${message}` } : { path, message }
    })
  )
}

/**
 * The one middleware every request goes through (authentication, body limits, JSON errors, the count): plain code
 * around one effect, as it is on every request's path.
 */
const everyRequest = (authnMode: AuthnMode, metrics: Metrics["Service"]) =>
  HttpRouter.middleware((app) => {
    const answered = Effect.catchCause(app, errorBody)
    return Effect.withFiber((fiber) => {
      const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
      const query = request.url.indexOf("?")
      const path = query === -1 ? request.url : request.url.slice(0, query)
      const count = (response: HttpServerResponse.HttpServerResponse) => {
        metrics.request(path, request.method, response.status)
        return response
      }
      const refused = authnMode === "trusted-header" ? rejection(request, path) : undefined
      if (refused !== undefined) {
        metrics.rejected(refused)
        return Effect.succeed(count(unauthorized(refused)))
      }
      return Effect.map(hardened(request, answered), count)
    })
  }, { global: true })

/**
 * What requests need not carry (see `servedWithoutOurs`): the sidecar's own services, its database, and the process
 * services NodeHttpServer.layer provides besides the server, which serving never reads.
 */
const notForRequests = new Set(
  [SqlClient.SqlClient, ChildProcessSpawner, Stdio.Stdio, Terminal.Terminal].map((service) => service.key)
)
const isOurs = (key: string) => key.startsWith("sidecar/") || notForRequests.has(key)

/**
 * The server, built in a context without the sidecar's own services: HttpApiBuilder copies each request's context
 * into a new one, so every service in it costs every request, and the handlers hold what they use already.
 */
const servedWithoutOurs = <E, R>(serve: Layer.Layer<never, E, R>): Layer.Layer<never, E, R> =>
  Layer.fromBuild((memoMap, scope) =>
    Effect.updateContext(
      Layer.buildWithMemoMap(serve, memoMap, scope),
      (context: Context.Context<R>) =>
        Context.makeUnsafe<R>(new Map([...context.mapUnsafe].filter(([key]) => !isOurs(key))))
    )
  )

/** The API on the HttpServer provided, `authnMode` deciding who may call it. */
export const httpLayer = (authnMode: AuthnMode) =>
  Layer.unwrap(Effect.gen(function*() {
    const metrics = yield* Metrics
    const services = yield* Effect.context<Engine | Shutdown | Metrics | TaskHandlers>()
    const app = Layer.mergeAll(HttpApiLive, everyRequest(authnMode, metrics)).pipe(
      Layer.provide(Layer.succeedContext(services))
    )
    return HttpRouter.serve(app, { disableLogger: true }).pipe(
      // Nothing exports traces: no span per request.
      Layer.provide(Layer.succeed(HttpMiddleware.TracerDisabledWhen, () => true)),
      servedWithoutOurs
    )
  }))

/** The API with no authentication: everyone who can reach it is trusted. */
export const HttpLive = httpLayer("unauthenticated")
