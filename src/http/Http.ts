// Part http/: the HTTP surface. Api.ts, the contract; Http.ts, its implementation and serving; RequestBody.ts and
// Authn.ts, request hardening and authentication; ApiDocs.ts, the OpenAPI document and /docs. Imports engine/, the
// registry of handlers, and the shared modules.
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import { Cause, Duration, Effect, Exit, Layer, Option } from "effect"
import { Api } from "./Api.js"
import { ApiDocsLive, describeTaskTypes } from "./ApiDocs.js"
import { authn, type AuthnMode } from "./Authn.js"
import { Engine } from "../engine/Engine.js"
import { formatIssues, InvalidRequest, NotReady } from "../Errors.js"
import { Metrics } from "../Metrics.js"
import { BodyTooLarge, hardenRequests, jsonError, tooLarge } from "./RequestBody.js"
import { Shutdown } from "../Shutdown.js"
import { TaskHandlers } from "../engine/TaskHandlers.js"

const TasksLive = HttpApiBuilder.group(Api, "tasks", (handlers) =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const shutdown = yield* Shutdown
    return handlers
      // Answered as the API declares (TaskStarted, TaskDeduplicated), without encoding `{"id"}` through a Schema.
      .handle("submit", ({ payload }) =>
        Effect.map(engine.submit(payload), (outcome) =>
          HttpServerResponse.unsafeJson({ id: outcome.id }, { status: outcome._tag === "Started" ? 201 : 202 })))
      // Lists and plain gets answer the stored rows as they are (see Store's toJson) rather than through Task.
      .handle("list", ({ urlParams }) =>
        Effect.map(engine.listJson({ ...urlParams, limit: urlParams.limit ?? 100 }), HttpServerResponse.unsafeJson))
      .handle("get", ({ path, urlParams }) =>
        urlParams.wait === undefined || urlParams.wait === 0
          ? Effect.map(engine.getJson(path.id), HttpServerResponse.unsafeJson)
          : engine.await(path.id, Duration.seconds(urlParams.wait)).pipe(
            // a stopping server answers its waiters at once rather than let them hold up its drain
            Effect.raceFirst(Effect.zipRight(shutdown.begun, engine.get(path.id)))
          ))
      .handle("runs", ({ path }) => engine.runs(path.id))
      .handle("remove", ({ path }) => engine.remove(path.id))
  }))

const HealthLive = HttpApiBuilder.group(Api, "health", (handlers) =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const metrics = yield* Metrics
    const whenReady = Effect.flatMap(engine.ready, (ready) => ready ? Effect.void : new NotReady({ error: "not ready" }))
    return handlers
      .handle("healthz", () => whenReady)
      .handle("startupz", () => whenReady)
      .handle("livez", () => engine.livez)
      .handle("status", () =>
        Effect.map(engine.ready, (ready) => ({ status: ready ? "Ready" as const : "Initializing" as const })))
      .handle("metrics", () => metrics.exposition)
  }))

export const HttpApiLive = Layer.unwrapEffect(Effect.map(TaskHandlers, ({ handlers }) =>
  // The served OpenAPI document (and /docs) describes the task types this sidecar actually has.
  HttpApiBuilder.api(Api.annotate(OpenApi.Transform, describeTaskTypes(handlers))).pipe(
    Layer.provide([TasksLive, HealthLive])
  )))

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
            error: formatIssues(e.issues)
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
      // A body that cannot be read or parsed arrives as a RequestError defect: the framework reads it with orDie.
      if (HttpServerError.isServerError(d) && d._tag === "RequestError") {
        return Effect.succeed(
          d.cause instanceof BodyTooLarge
            ? tooLarge(d.cause.ended)
            : jsonError(400, `invalid request body: ${String(d.cause ?? d.message)}`)
        )
      }
      return Effect.logError("request failed with a defect", cause).pipe(Effect.as(jsonError(500, "internal error")))
    }
    return Effect.failCause(cause)
  }))

/** Count every answer by route, method and status (a failure that escaped everything else counts as a 500). */
const countRequests = (metrics: Metrics) =>
  HttpMiddleware.make((app) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
      Effect.onExit(app, (exit) => {
        const query = request.url.indexOf("?")
        const path = query === -1 ? request.url : request.url.slice(0, query)
        return metrics.request(path, request.method, Exit.isSuccess(exit) ? exit.value.status : 500)
      }))
  )

/**
 * The API served on whatever HttpServer is provided (a real port in main, a test server in tests), with
 * `authnMode` deciding who may call it.
 */
export const httpLayer = (authnMode: AuthnMode) =>
  Layer.unwrapEffect(Effect.map(Metrics, (metrics) =>
    HttpApiBuilder.serve((app) =>
      app.pipe(hardenRequests, authn(authnMode, metrics.rejected), countRequests(metrics))
    ).pipe(
      Layer.provide(ApiDocsLive),
      Layer.provide([HttpApiLive, ErrorBodyLive]),
      HttpServer.withLogAddress,
      // Nothing exports traces (Sidecar.ts turns the tracer off), yet the platform's per-request tracing would still
      // parse each URL, copy its headers and make a span.
      HttpMiddleware.withTracerDisabledWhen(() => true)
    )))

/** The API with no authentication: everyone who can reach it is trusted. */
export const HttpLive = httpLayer("unauthenticated")
