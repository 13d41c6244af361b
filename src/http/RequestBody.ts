import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Data, Effect } from "effect"
import { Headers, HttpMethod, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { IncomingMessage } from "node:http"

/** An error answer: JSON with a `_tag` and an `error` string. */
export const jsonError = (status: number, tag: string, error: string) =>
  HttpServerResponse.jsonUnsafe({ _tag: tag, error }, { status })

/** Largest request body accepted; larger ones get 413. */
export const maxBodyBytes = 1024 * 1024

/** Deepest nesting accepted in a body (deeper is a 400): schema errors and JSON.stringify recurse into it. */
export const maxJsonDepth = 128

/** The 413; `Connection: close` when the body's rest is still on the wire. */
export const tooLarge = (ended: boolean) => {
  const response = jsonError(413, "BodyTooLarge", `request body too large (limit ${maxBodyBytes} bytes)`)
  return ended ? response : HttpServerResponse.setHeader(response, "connection", "close")
}

export class BodyTooLarge extends Data.TaggedError("BodyTooLarge")<{ readonly ended: boolean }> {}

/**
 * The body as text. One over the limit is drained before its 413, or the client would see a reset; the drain is
 * bounded (twice `maxBodyBytes`, 5 s).
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
      source.pause() // the answer closes the connection
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
 * Make `request` read as JSON `text`, on the object itself: a new request service would set and restore the fiber's
 * context on every request with a body.
 */
const readAsJson = (request: HttpServerRequest.HttpServerRequest, text: string) => {
  const headers = Headers.set(request.headers, "content-type", "application/json")
  Object.defineProperties(request, {
    text: { value: Effect.succeed(text) },
    headers: { value: headers }
  })
}

const unreadable = (e: unknown) =>
  e instanceof BodyTooLarge ? tooLarge(e.ended) : jsonError(400, "InvalidRequest", `invalid request body: ${String(e)}`)

/** `app` for `request`, its body read here, bounded, and taken as JSON whatever its type. */
export const hardened = <E, R>(
  request: HttpServerRequest.HttpServerRequest,
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R> => {
  const source: unknown = NodeHttpServerRequest.toIncomingMessage(request)
  // the sidecar runs on Node's server only (in tests too)
  if (!(source instanceof IncomingMessage)) return Effect.die(new Error("not a request of Node's HTTP server"))
  // requireHostHeader: false lets it through, so that this 400 is JSON
  if (source.httpVersion === "1.1" && source.headers.host === undefined) {
    return Effect.succeed(jsonError(400, "InvalidRequest", "missing Host header (HTTP/1.1 requires one)"))
  }
  if (!HttpMethod.hasBody(request.method)) return app
  const declaredTooLarge = Number(source.headers["content-length"]) > maxBodyBytes
  return Effect.matchEffect(readBody(source, declaredTooLarge), {
    onFailure: (e) => Effect.succeed(unreadable(e)),
    // a body declared too large is refused from its first byte: it never reads as text
    onSuccess: (text) => {
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
