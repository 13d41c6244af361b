import { Cause, Data, Effect } from "effect"
import type { CliError } from "effect/cli"
import { HttpClientError } from "effect/http"
import { makeClient } from "./Client.js"

/** What `sidecar` exits with; the README lists them. */
export const ExitCode = {
  /** The task ended failed, or `probe` found the sidecar not ready or not live. */
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

/** Ends a command with a one-line reason on stderr and an exit code. */
export class CliFailure extends Data.TaggedError("CliFailure")<{ readonly code: number; readonly reason: string }> {}

/**
 * What a usage error prints: a missing or unknown flag or argument in the CLI's fixed sentences ("Expected to find
 * option: '--type'"); any other error its own message, which for the values we check is ours word for word.
 */
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

// fetch reports "connect ECONNREFUSED 127.0.0.1:7777" a cause or two deep, sometimes inside an AggregateError.
const transportText = (cause: unknown): string | undefined => {
  if (cause instanceof AggregateError && cause.errors.length > 0) return transportText(cause.errors[0])
  if (!(cause instanceof Error)) return undefined
  return transportText(cause.cause) ?? (cause.message === "" ? undefined : cause.message)
}

/** Any failure of a call to the sidecar at `url`, as a reason and an exit code. */
const explain = (url: string, error: unknown): Effect.Effect<CliFailure> => {
  const failure = (code: number, reason: string) => Effect.succeed(new CliFailure({ code, reason }))
  const unexpected = (what: string) => failure(ExitCode.Unreachable, `unexpected answer from ${url}: ${what}`)
  const notTheApi = unexpected("it does not look like the sidecar API")
  if (HttpClientError.isHttpClientError(error)) {
    const { reason, response } = error
    if (response === undefined) {
      // A TimeoutError is the request timeout the CLI's HttpClient has (Cli.ts): nothing answered in time.
      const why = Cause.isTimeoutError(reason.cause)
        ? "no answer"
        : transportText(reason.cause) ?? reason.description ?? reason._tag.replace(/Error$/, "")
      return failure(ExitCode.Unreachable, `cannot reach ${url}: ${why}`)
    }
    // A status the contract lists for an error, with a body not in the error's shape.
    if (reason._tag === "StatusCodeError") return notTheApi
    // A status the contract does not list (a 413, a proxy's 502): the body may still carry an `error`.
    return response.json.pipe(
      Effect.map(errorText),
      Effect.orElseSucceed(() => undefined),
      Effect.flatMap((text) =>
        text === undefined ? unexpected(`HTTP ${response.status}`) : failure(ExitCode.Refused, text)
      )
    )
  }
  // The API's own errors (InvalidTaskId, TaskNotFound, StoreError...) all carry the server's `error` string.
  const text = errorText(error)
  return text === undefined ? notTheApi : failure(ExitCode.Refused, text)
}

/** The typed client for `url`, and `call`, which turns any failure of one of its calls into a CliFailure. */
export const connect = (url: string) =>
  Effect.map(makeClient(url), (client) => ({
    client,
    call: <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, CliFailure> =>
      Effect.catch(effect, (error) => Effect.flatMap(explain(url, error), Effect.fail))
  }))
