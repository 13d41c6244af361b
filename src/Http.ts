import {
  Headers,
  HttpApiBuilder,
  HttpApiError,
  HttpApiSwagger,
  HttpIncomingMessage,
  HttpMiddleware,
  HttpServer,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { Cause, Effect, Layer, Option } from "effect"
import { Api } from "./Api.js"
import { Engine } from "./Engine.js"
import { InvalidRequest, NotReady } from "./Errors.js"

const TasksLive = HttpApiBuilder.group(Api, "tasks", (handlers) =>
  Effect.gen(function*() {
    const engine = yield* Engine
    return handlers
      .handle("submit", ({ payload }) =>
        Effect.map(engine.submit(payload), (outcome) =>
          outcome._tag === "Started"
            ? { _tag: "TaskStarted" as const, id: outcome.id }
            : { _tag: "TaskDeduplicated" as const, id: outcome.id }))
      .handle("list", () => engine.list())
      .handle("get", ({ path }) => engine.get(path.id))
      .handle("remove", ({ path }) => engine.remove(path.id))
  }))

const HealthLive = HttpApiBuilder.group(Api, "health", (handlers) =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const whenReady = Effect.flatMap(engine.ready, (ready) => ready ? Effect.void : new NotReady({ error: "not ready" }))
    return handlers
      .handle("healthz", () => whenReady)
      .handle("startupz", () => whenReady)
      .handle("livez", () => engine.livez)
      .handle("status", () =>
        Effect.map(engine.ready, (ready) => ({ status: ready ? "Ready" as const : "Initializing" as const })))
  }))

export const HttpApiLive = HttpApiBuilder.api(Api).pipe(Layer.provide([TasksLive, HealthLive]))

const jsonError = (status: number, error: string) => HttpServerResponse.unsafeJson({ error }, { status })

/**
 * Every error the framework produces on its own (decode failures, unknown routes, unreadable bodies, defects)
 * becomes a JSON body with an `error` string, like the typed errors. Never a stack trace.
 */
export const ErrorBodyLive = HttpApiBuilder.middleware(Api, (app) =>
  Effect.catchAllCause(app, (cause) => {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      const e: unknown = failure.value
      if (e instanceof HttpApiError.HttpApiDecodeError) {
        return Effect.fail(
          new InvalidRequest({
            error: e.issues.map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message)).join("; ")
          })
        )
      }
      if (HttpServerError.isServerError(e) && e._tag === "RouteNotFound") {
        return Effect.succeed(jsonError(404, `no route for ${e.request.method} ${e.request.url}`))
      }
      return Effect.failCause(cause)
    }
    const defect = Cause.dieOption(cause)
    if (Option.isSome(defect)) {
      const d: unknown = defect.value
      // A body that is not JSON arrives as a RequestError defect: the framework reads it with orDie.
      if (HttpServerError.isServerError(d) && d._tag === "RequestError") {
        return Effect.succeed(jsonError(400, `invalid request body: ${String(d.cause ?? d.message)}`))
      }
      return Effect.logError("request failed with a defect", cause).pipe(Effect.as(jsonError(500, "internal error")))
    }
    return Effect.failCause(cause)
  }))

/** Largest request body accepted; larger ones get 413 before anything is read. */
export const maxBodyBytes = 1024 * 1024

// Go clients and curl -d do not always say application/json; this API has no other body type, so read it as JSON.
const bodiesAreJson = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const declared = request.headers["content-length"]
    if (declared !== undefined && Number(declared) > maxBodyBytes) {
      return jsonError(413, `request body too large (limit ${maxBodyBytes} bytes)`)
    }
    if (request.method === "GET" || request.method === "HEAD" || request.headers["content-type"] === "application/json") {
      return yield* app
    }
    return yield* Effect.provideService(
      app,
      HttpServerRequest.HttpServerRequest,
      request.modify({ headers: Headers.set(request.headers, "content-type", "application/json") })
    )
  }).pipe(HttpIncomingMessage.withMaxBodySize(Option.some(maxBodyBytes))))

/** The API served on whatever HttpServer is provided (a real port in main, a test server in tests). */
export const HttpLive = HttpApiBuilder.serve(bodiesAreJson).pipe(
  Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/v0/openapi.json" })),
  Layer.provide(HttpApiSwagger.layer({ path: "/docs" })),
  Layer.provide([HttpApiLive, ErrorBodyLive]),
  HttpServer.withLogAddress
)
