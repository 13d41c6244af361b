import { Cause, Data, Effect } from "effect"
import type { CliError } from "effect/cli"
import { HttpClientError } from "effect/http"
import { makeClient } from "./Client.js"

/** What `sidecar` exits with (the README lists them). */
export const ExitCode = {
  /** The task failed, or `probe` found the sidecar not ready or not live. */
  Failed: 1,
  /** The command line was wrong (the CLI printed why). */
  Usage: 2,
  /** The sidecar refused the request (400, 404, 503...): its `error` is printed. */
  Refused: 3,
  /** No sidecar answered at --url, or the answer was not the sidecar API. */
  Unreachable: 4,
  /** --timeout passed before the task ended. */
  TimedOut: 5
} as const

/** Ends a command: a one-line reason on stderr, an exit code. */
export class CliFailure extends Data.TaggedError("CliFailure")<{ readonly code: number; readonly reason: string }> {}

/** A usage error's text: the CLI's fixed sentences, else its message. */
export const usageMessage = (error: CliError.NonShowHelpErrors): string => {
  switch (error._tag) {
    case "MissingOption":
      return `Expected to find option: '--${error.option}'`
    case "MissingArgument":
      return `Missing argument <${error.argument}>`
    case "UnrecognizedOption":
      return `Received unknown argument: '${error.option}'`
    case "UnexpectedArgument":
      return error.arguments.map((argument) => `Received unknown argument: '${argument}'`).join("\n\n")
    default:
      return error.message
  }
}

const errorText = (body: unknown): string | undefined =>
  typeof body === "object" && body !== null && "error" in body && typeof body.error === "string"
    ? body.error
    : undefined

// fetch's reason sits a cause or two deep, sometimes in an AggregateError
const transportText = (cause: unknown): string | undefined => {
  if (cause instanceof AggregateError && cause.errors.length > 0) return transportText(cause.errors[0])
  if (!(cause instanceof Error)) return undefined
  return transportText(cause.cause) ?? (cause.message === "" ? undefined : cause.message)
}

const explain = (url: string, error: unknown): Effect.Effect<CliFailure> => {
  const failure = (code: number, reason: string) => Effect.succeed(new CliFailure({ code, reason }))
  const unexpected = (what: string) => failure(ExitCode.Unreachable, `unexpected answer from ${url}: ${what}`)
  const notTheApi = unexpected("it does not look like the sidecar API")
  if (HttpClientError.isHttpClientError(error)) {
    const { reason, response } = error
    if (response === undefined) {
      // A TimeoutError is the CLI client's own request timeout.
      const why = Cause.isTimeoutError(reason.cause)
        ? "no answer"
        : transportText(reason.cause) ?? reason.description ?? reason._tag.replace(/Error$/, "")
      return failure(ExitCode.Unreachable, `cannot reach ${url}: ${why}`)
    }
    // a listed error status whose body is not the error's shape
    if (reason._tag === "StatusCodeError") return notTheApi
    // an unlisted status (413, a proxy's 502) may still carry an `error`
    return response.json.pipe(
      Effect.map(errorText),
      Effect.orElseSucceed(() => undefined),
      Effect.flatMap((text) =>
        text === undefined ? unexpected(`HTTP ${response.status}`) : failure(ExitCode.Refused, text)
      )
    )
  }
  const text = errorText(error)
  return text === undefined ? notTheApi : failure(ExitCode.Refused, text)
}

/** The typed client for `url`, and `call`, which makes any failure a CliFailure. */
export const connect = (url: string) =>
  Effect.map(makeClient(url), (client) => ({
    client,
    call: <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, CliFailure> =>
      Effect.catch(effect, (error) => Effect.flatMap(explain(url, error), Effect.fail))
  }))
