import {
  Headers,
  HttpApiBuilder,
  HttpApiError,
  HttpApiSwagger,
  HttpIncomingMessage,
  HttpMethod,
  HttpMiddleware,
  HttpServer,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse,
  OpenApi
} from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import { Cause, Data, Duration, Effect, Layer, Option } from "effect"
import { IncomingMessage } from "node:http"
import { Api } from "./Api.js"
import { describeTaskTypes } from "./ApiDocs.js"
import { authn, type AuthnMode } from "./Authn.js"
import { Engine } from "./Engine.js"
import { formatIssues, InvalidRequest, NotReady } from "./Errors.js"
import { Metrics } from "./Metrics.js"
import { Shutdown } from "./Shutdown.js"
import { TaskHandlers } from "./TaskHandlers.js"

const TasksLive = HttpApiBuilder.group(Api, "tasks", (handlers) =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const shutdown = yield* Shutdown
    return handlers
      .handle("submit", ({ payload }) =>
        Effect.map(engine.submit(payload), (outcome) =>
          outcome._tag === "Started"
            ? { _tag: "TaskStarted" as const, id: outcome.id }
            : { _tag: "TaskDeduplicated" as const, id: outcome.id }))
      .handle("list", ({ urlParams }) => engine.list({ ...urlParams, limit: urlParams.limit ?? 100 }))
      .handle("get", ({ path, urlParams }) =>
        urlParams.wait === undefined || urlParams.wait === 0
          ? engine.get(path.id)
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

export const HttpApiLive = Layer.unwrapEffect(Effect.map(TaskHandlers, (handlers) =>
  // The served OpenAPI document (and /docs) describes the task types this sidecar actually has.
  HttpApiBuilder.api(Api.annotate(OpenApi.Transform, describeTaskTypes(handlers))).pipe(
    Layer.provide([TasksLive, HealthLive])
  )))

const jsonError = (status: number, error: string) => HttpServerResponse.unsafeJson({ error }, { status })

/** Largest request body accepted; larger ones get 413. */
export const maxBodyBytes = 1024 * 1024

/**
 * Deepest nesting of arrays and objects accepted in a body; deeper is a 400. Finding: a body like 3000 nested
 * arrays got 500, because Schema's error message prints the offending value recursively and overflows the stack
 * (as JSON.stringify does when such params are stored). No task's params need more than a few levels.
 */
export const maxJsonDepth = 128

/** The 413; `Connection: close` when the refused body was not read to its end (its rest is still on the wire). */
const tooLarge = (ended: boolean) => {
  const response = jsonError(413, `request body too large (limit ${maxBodyBytes} bytes)`)
  return ended ? response : HttpServerResponse.setHeader(response, "connection", "close")
}

class BodyTooLarge extends Data.TaggedError("BodyTooLarge")<{ readonly ended: boolean }> {}

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

/**
 * The body as text, counted as it arrives; `refused` when its declared length is over the limit already.
 *
 * Finding: a chunked body (no Content-Length) over the limit got a connection reset, not a 413: the framework's
 * reader destroys the socket as soon as the limit is passed, before any answer is written. Answering at once and
 * leaving the rest unread is no better: Node closes the connection after the answer when the client asked for
 * `Connection: close`, the kernel resets a connection closed with unread input, and the client sees the reset,
 * not the 413. So a body over the limit is read to its end and dropped, and only then refused, with `ended`. That
 * drain is bounded (twice `maxBodyBytes` read in all, 5 s) so a client that never stops cannot hold the server's
 * attention: it gets its 413 with `Connection: close`, and may well see a reset instead.
 */
const readBody = (source: IncomingMessage, refused: boolean) =>
  Effect.async<string, BodyTooLarge | Error>((resume) => {
    const chunks: Array<Buffer> = []
    let bytes = 0
    let timer: ReturnType<typeof setTimeout> | undefined
    const off = () => {
      clearTimeout(timer)
      source.off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose)
    }
    const refuse = () => {
      refused = true
      chunks.length = 0
      timer = setTimeout(giveUp, 5_000)
    }
    const giveUp = () => {
      off()
      source.pause() // the answer closes the connection: stop reading what it drops anyway
      resume(Effect.fail(new BodyTooLarge({ ended: false })))
    }
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      if (!refused && bytes <= maxBodyBytes) {
        chunks.push(chunk)
        return
      }
      if (!refused) refuse()
      if (bytes > 2 * maxBodyBytes) giveUp()
    }
    const onEnd = () => {
      off()
      const text = Buffer.concat(chunks).toString("utf8")
      resume(refused ? Effect.fail(new BodyTooLarge({ ended: true })) : Effect.succeed(text))
    }
    const onError = (error: Error) => {
      off()
      resume(Effect.fail(error))
    }
    const onClose = () => onError(new Error("connection closed before the body ended"))
    if (refused) refuse()
    source.on("data", onData).on("end", onEnd).on("error", onError).on("close", onClose)
    return Effect.sync(off)
  })

/** Whether a JSON text nests arrays and objects deeper than `max` (only brackets outside strings count). */
const nestedDeeperThan = (json: string, max: number) => {
  let depth = 0
  let inString = false
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i)
    if (inString) {
      if (c === 92) i++ // a backslash: skip the escaped character
      else if (c === 34) inString = false
    } else if (c === 34) inString = true
    else if (c === 91 || c === 123) {
      if (++depth > max) return true
    } else if (c === 93 || c === 125) depth--
  }
  return false
}

const parseJson = (text: string): unknown => {
  if (text === "") return null // as the framework does: the payload schema then says what is missing
  const value: unknown = JSON.parse(text)
  if (nestedDeeperThan(text, maxJsonDepth)) throw new Error(`JSON nested deeper than ${maxJsonDepth} levels`)
  return value
}

/** `request` whose `text` and `json` come from `text` rather than from the framework's own body reader. */
const withBody = (request: HttpServerRequest.HttpServerRequest, text: Effect.Effect<string, unknown>) => {
  const unreadable = (cause: unknown) => new HttpServerError.RequestError({ request, reason: "Decode", cause })
  const body = Effect.mapError(text, (e) => (e instanceof HttpServerError.RequestError ? e : unreadable(e)))
  const json = Effect.flatMap(body, (s) => Effect.try({ try: () => parseJson(s), catch: unreadable }))
  // Everything else (url, headers, method, the response it is bound to) stays the request's own.
  return Object.create(request, { text: { value: body }, json: { value: json } }) as HttpServerRequest.HttpServerRequest
}

/**
 * Bodies are refused over `maxBodyBytes` (413) and over `maxJsonDepth` (400), and read as JSON whatever their
 * content type says: Go clients and curl -d do not always say application/json, and this API has no other body type.
 */
const hardenRequests = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const source: unknown = NodeHttpServerRequest.toIncomingMessage(request)
    // HTTP/1.1 requires Host; the server lets such requests through (requireHostHeader: false) so the 400 is JSON.
    if (source instanceof IncomingMessage && source.httpVersion === "1.1" && source.headers.host === undefined) {
      return jsonError(400, "missing Host header (HTTP/1.1 requires one)")
    }
    if (!HttpMethod.hasBody(request.method)) return yield* app
    const declaredTooLarge = Number(request.headers["content-length"]) > maxBodyBytes
    // A server other than Node's keeps the framework's own reader and limit (which closes instead of answering).
    const text = source instanceof IncomingMessage
      ? yield* Effect.cached(readBody(source, declaredTooLarge))
      : declaredTooLarge
      ? Effect.fail(new BodyTooLarge({ ended: false }))
      : request.text
    if (declaredTooLarge) {
      return yield* Effect.match(text, {
        onFailure: (e) => tooLarge(e instanceof BodyTooLarge && e.ended),
        onSuccess: () => tooLarge(true)
      })
    }
    const asJson = request.modify({ headers: Headers.set(request.headers, "content-type", "application/json") })
    return yield* Effect.provideService(app, HttpServerRequest.HttpServerRequest, withBody(asJson, text))
  }).pipe(HttpIncomingMessage.withMaxBodySize(Option.some(maxBodyBytes))))

/** Count every answer by route, method and status (a failure that escaped everything else counts as a 500). */
const countRequests = (metrics: Metrics) =>
  HttpMiddleware.make((app) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const path = request.url.split("?")[0]!
      return app.pipe(
        Effect.tap((response) => metrics.request(path, request.method, response.status)),
        Effect.tapErrorCause(() => metrics.request(path, request.method, 500))
      )
    })
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
      Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/v0/openapi.json" })),
      Layer.provide(HttpApiSwagger.layer({ path: "/docs" })),
      Layer.provide([HttpApiLive, ErrorBodyLive]),
      HttpServer.withLogAddress
    )))

/** The API with no authentication: everyone who can reach it is trusted. */
export const HttpLive = httpLayer("unauthenticated")
