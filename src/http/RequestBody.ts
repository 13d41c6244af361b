import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Data, Effect } from "effect"
import { Headers, HttpMethod, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { IncomingMessage } from "node:http"

/** An error answer as every one of this API's: JSON with the error's `_tag` and an `error` string for people. */
export const jsonError = (status: number, tag: string, error: string) =>
  HttpServerResponse.jsonUnsafe({ _tag: tag, error }, { status })

/** Largest request body accepted; larger ones get 413. */
export const maxBodyBytes = 1024 * 1024

/**
 * Deepest nesting of arrays and objects accepted in a body; deeper is a 400. Finding: a body like 3000 nested
 * arrays got 500, because Schema's error message prints the offending value recursively and overflows the stack
 * (as JSON.stringify does when such params are stored). No task's params need more than a few levels.
 */
export const maxJsonDepth = 128

/** The 413; `Connection: close` when the refused body was not read to its end (its rest is still on the wire). */
export const tooLarge = (ended: boolean) => {
  const response = jsonError(413, "BodyTooLarge", `request body too large (limit ${maxBodyBytes} bytes)`)
  return ended ? response : HttpServerResponse.setHeader(response, "connection", "close")
}

export class BodyTooLarge extends Data.TaggedError("BodyTooLarge")<{ readonly ended: boolean }> {}

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
  Effect.callback<string, BodyTooLarge | Error>((resume) => {
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

/**
 * Make `request` read as JSON: its `text` is `text`, and it says it is JSON whatever it said (the API parses it).
 * Defined on the request itself, which is this request's own object, rather than provided to the app as a new
 * HttpServerRequest: providing a service around the app would set and restore the fiber's context on every request
 * with a body.
 */
const readAsJson = (request: HttpServerRequest.HttpServerRequest, text: string) => {
  const headers = Headers.set(request.headers, "content-type", "application/json")
  // Everything else (url, method, the response it is bound to) stays as it was.
  Object.defineProperties(request, {
    text: { value: Effect.succeed(text) },
    headers: { value: headers }
  })
}

const unreadable = (e: unknown) =>
  e instanceof BodyTooLarge ? tooLarge(e.ended) : jsonError(400, "InvalidRequest", `invalid request body: ${String(e)}`)

/**
 * `app` for `request`, hardened: bodies are refused over `maxBodyBytes` (413) and over `maxJsonDepth` (400), and read
 * as JSON whatever their content type says: Go clients and curl -d do not always say application/json, and this API
 * has no other body type. The body is read here, before the API decodes it, so the framework's reader is never used.
 */
export const hardened = <E, R>(
  request: HttpServerRequest.HttpServerRequest,
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R> => {
  const source: unknown = NodeHttpServerRequest.toIncomingMessage(request)
  // the sidecar runs on Node's server only (in tests too)
  if (!(source instanceof IncomingMessage)) return Effect.die(new Error("not a request of Node's HTTP server"))
  // HTTP/1.1 requires Host; the server lets such requests through (requireHostHeader: false) so the 400 is JSON.
  if (source.httpVersion === "1.1" && source.headers.host === undefined) {
    return Effect.succeed(jsonError(400, "InvalidRequest", "missing Host header (HTTP/1.1 requires one)"))
  }
  if (!HttpMethod.hasBody(request.method)) return app
  const declaredTooLarge = Number(source.headers["content-length"]) > maxBodyBytes
  return Effect.matchEffect(readBody(source, declaredTooLarge), {
    onFailure: (e) => Effect.succeed(unreadable(e)),
    onSuccess: (text) => {
      if (declaredTooLarge) return Effect.succeed(tooLarge(true))
      if (nestedDeeperThan(text, maxJsonDepth)) {
        return Effect.succeed(
          jsonError(400, "InvalidRequest", `invalid request body: JSON nested deeper than ${maxJsonDepth} levels`)
        )
      }
      readAsJson(request, text)
      return app
    }
  })
}
