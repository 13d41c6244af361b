// Part http/: the HTTP surface. Api.ts, the contract; Http.ts, its implementation and serving; RequestBody.ts and
// Authn.ts, request hardening and authentication; ApiDocs.ts, the OpenAPI document and /docs. Imports engine/, the
// registry of handlers, and the shared modules.
import { Cause, Context, Duration, Effect, Layer } from "effect"
import { HttpMiddleware, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder, HttpApiError, OpenApi } from "effect/http-api"
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
      // Answered as the API declares (TaskStarted, TaskDeduplicated), without encoding `{"id"}` through a Schema.
      .handle(
        "submit",
        ({ payload }) =>
          Effect.map(
            engine.submit(payload),
            (outcome) =>
              HttpServerResponse.jsonUnsafe({ id: outcome.id }, { status: outcome._tag === "Started" ? 201 : 202 })
          )
      )
      // Lists and plain gets answer the stored rows as they are (see Store's toJson) rather than through Task.
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
            // a stopping server answers its waiters at once rather than let them hold up its drain
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

/** The API's routes, with the OpenAPI document and /docs describing the task types this sidecar actually has. */
export const HttpApiLive = Layer.unwrap(Effect.gen(function*() {
  const { handlers } = yield* TaskHandlers
  const described = Api.annotate(OpenApi.Transform, describeTaskTypes(handlers))
  return Layer.mergeAll(HttpApiBuilder.layer(Api), apiDocsLayer(described)).pipe(
    Layer.provide([TasksLive, HealthLive])
  )
}))

/**
 * Every error the framework produces on its own (decode failures, unknown routes, defects) as a JSON body with an
 * `error` string, like the typed errors. Never a stack trace.
 */
const errorBody = (cause: Cause.Cause<unknown>): Effect.Effect<HttpServerResponse.HttpServerResponse, unknown> => {
  for (const reason of cause.reasons) {
    if (reason._tag === "Die" && HttpApiError.HttpApiSchemaError.is(reason.defect)) {
      // the shape of the API's own InvalidRequest
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

/**
 * What is wrong with a request the API could not decode, in words for people: which field, of the body, the query or
 * the path, and what it accepts, once.
 */
const requestProblem = (error: HttpApiError.HttpApiSchemaError): string => {
  const where = error.kind === "Payload" ? "request body" : error.kind === "Query" ? "query" : "path"
  return formatIssues(
    schemaIssues(error.cause).map(({ message, path }) => {
      // the framework's own words for a body that is not JSON at all, or that is missing
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
 * What every request goes through, as one middleware of the router (inside the server's own handling, so what it
 * answers is what the client gets): authentication, the body's hardening, JSON errors, and the count by route,
 * method and status. Plain code around one effect: with a middleware apiece, they cost a get a fifth more.
 */
const everyRequest = (authnMode: AuthnMode, metrics: Metrics["Service"]) =>
  HttpRouter.middleware((app) => {
    const answered = Effect.catchCause(app, errorBody)
    return Effect.withFiber((fiber) => {
      const request = Context.getUnsafe(fiber.context, HttpServerRequest.HttpServerRequest)
      const count = (response: HttpServerResponse.HttpServerResponse) => {
        const query = request.url.indexOf("?")
        metrics.request(query === -1 ? request.url : request.url.slice(0, query), request.method, response.status)
        return response
      }
      const refused = authnMode === "trusted-header" ? rejection(request) : undefined
      if (refused !== undefined) {
        metrics.rejected(refused)
        return Effect.succeed(count(unauthorized(refused)))
      }
      return Effect.map(hardened(request, answered), count)
    })
  }, { global: true })

/**
 * The API served on whatever HttpServer is provided (a real port in main, a test server in tests), with
 * `authnMode` deciding who may call it.
 */
export const httpLayer = (authnMode: AuthnMode) =>
  Layer.unwrap(Effect.gen(function*() {
    const metrics = yield* Metrics
    return HttpRouter.serve(Layer.mergeAll(HttpApiLive, everyRequest(authnMode, metrics)), { disableLogger: true })
      .pipe(
        // Nothing exports traces, yet the framework's per-request tracing would still make a span for each request.
        Layer.provide(Layer.succeed(HttpMiddleware.TracerDisabledWhen, () => true))
      )
  }))

/** The API with no authentication: everyone who can reach it is trusted. */
export const HttpLive = httpLayer("unauthenticated")
