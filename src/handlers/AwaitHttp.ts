import { Clock, Duration, Effect, Option, Schema } from "effect"
import { FetchHttpClient, HttpClient, type HttpClientError } from "effect/http"
import { taskHandler } from "../engine/TaskHandlers.js"
import { TaskError } from "../Errors.js"

const Url = Schema.String.check(
  Schema.isMaxLength(2048),
  Schema.makeFilter((s) => {
    if (!URL.canParse(s)) return "must be an absolute http:// or https:// URL"
    const url = new URL(s)
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return `must be an http:// or https:// URL, not ${url.protocol}//`
    }
    // they would not be sent, yet would be stored and logged with the params
    if (url.username !== "" || url.password !== "") return "must not carry credentials"
    return true
  })
)

const secondsUpTo = (max: number) => Schema.Number.check(Schema.isBetween({ minimum: 0.01, maximum: max }))

export const AwaitHttpParams = Schema.Struct({
  url: Url,
  expectStatus: Schema.Int.check(Schema.isBetween({ minimum: 100, maximum: 599 })).pipe(
    Schema.withDecodingDefaultKey(Effect.succeed(200))
  ),
  // left out: min(2, timeoutSeconds), so that a short timeout alone is accepted
  intervalSeconds: Schema.optionalKey(secondsUpTo(3600)),
  timeoutSeconds: secondsUpTo(86400).pipe(Schema.withDecodingDefaultKey(Effect.succeed(600)))
}).check(Schema.makeFilter((p) =>
  p.intervalSeconds === undefined || p.intervalSeconds <= p.timeoutSeconds ||
  { path: ["intervalSeconds"], issue: `must not be more than timeoutSeconds (${p.timeoutSeconds})` }
))

type Seen = { readonly status: number } | { readonly error: string }

const describe = (seen: Seen | undefined) =>
  seen === undefined ? "no attempt finished" : "status" in seen ? `status ${seen.status}` : seen.error

/** The innermost cause's words ("connect ECONNREFUSED ..."). */
const networkError = (error: HttpClientError.HttpClientError): string => {
  let cause: unknown = error.cause
  if (!(cause instanceof Error)) return error.message
  while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause
  const e = cause as Error
  // Happy Eyeballs failures: AggregateErrors whose parts say what happened
  if (e.message === "" && e instanceof AggregateError) {
    return e.errors.map((part) => (part instanceof Error ? part.message : String(part))).join(", ")
  }
  return e.message === "" ? ("code" in e ? String(e.code) : e.name) : e.message
}

/** Poll until the URL answers `expectStatus`; an attempt's scope aborts its request once the status is in. */
const poll = (client: HttpClient.HttpClient, params: typeof AwaitHttpParams.Type) =>
  Effect.gen(function*() {
    const { expectStatus, timeoutSeconds, url } = params
    const interval = Duration.seconds(params.intervalSeconds ?? Math.min(2, timeoutSeconds))
    // the interval, so a hanging server cannot stretch the cadence
    const perAttempt = Duration.clamp(interval, { minimum: Duration.seconds(1), maximum: Duration.seconds(10) })
    const started = yield* Clock.currentTimeMillis
    let attempts = 0
    let last: Seen | undefined

    const attempt = HttpClient.withScope(client).get(url).pipe(
      Effect.map((response): Seen => ({ status: response.status })),
      Effect.catch((e) => Effect.succeed<Seen>({ error: networkError(e) })),
      Effect.scoped,
      Effect.timeoutOption(perAttempt),
      Effect.map(Option.getOrElse((): Seen => ({ error: `no answer within ${Duration.toSeconds(perAttempt)} s` }))),
      Effect.tap((seen) => {
        attempts += 1
        last = seen
        return Effect.logDebug("await-http attempt").pipe(Effect.annotateLogs({ url, attempt: attempts, ...seen }))
      })
    )

    // attempts start every interval, so the cadence does not drift with latency
    const attemptThenWait = Effect.gen(function*() {
      const begun = yield* Clock.currentTimeMillis
      const seen = yield* attempt
      if ("status" in seen && seen.status === expectStatus) return true
      const rest = begun + Duration.toMillis(interval) - (yield* Clock.currentTimeMillis)
      if (rest > 0) yield* Effect.sleep(Duration.millis(rest))
      return false
    })

    yield* attemptThenWait.pipe(
      Effect.repeat({ until: (done) => done }),
      Effect.timeoutOrElse({
        duration: Duration.seconds(timeoutSeconds),
        orElse: () =>
          Effect.fail(new TaskError({
            task: "await-http",
            operation: url,
            message: `no ${expectStatus} within ${timeoutSeconds} s ` +
              `(${attempts} attempt${attempts === 1 ? "" : "s"}); last: ${describe(last)}`,
            retryable: true
          }))
      })
    )
    return { status: expectStatus, attempts, elapsedMs: (yield* Clock.currentTimeMillis) - started }
  })

/** The status awaited, how many requests it took, and how long. */
export const AwaitHttpResult = Schema.Struct({ status: Schema.Int, attempts: Schema.Int, elapsedMs: Schema.Number })

/** The handler over `client`, which should not follow redirects: the status awaited is the URL's own. */
export const makeAwaitHttp = (client: HttpClient.HttpClient) =>
  taskHandler({
    name: "await-http",
    params: AwaitHttpParams,
    result: AwaitHttpResult,
    run: (params) => poll(client, params)
  })

/** `await-http`: poll a URL until it answers the expected status (redirects are answers). */
export const awaitHttp = Effect.map(
  HttpClient.HttpClient,
  (client) =>
    makeAwaitHttp(
      HttpClient.transform(
        client,
        (response) => Effect.provideService(response, FetchHttpClient.RequestInit, { redirect: "manual" })
      )
    )
).pipe(Effect.provide(FetchHttpClient.layer))
