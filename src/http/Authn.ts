import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { type HttpServerRequest, HttpServerResponse } from "effect/http"
import { IncomingMessage } from "node:http"

export type AuthnMode = "unauthenticated" | "trusted-header"

/** Paths whose callers carry no identity: the kubelet's probes and the metrics scrape. */
export const unauthenticatedPaths: ReadonlySet<string> = new Set([
  "/v0/healthz",
  "/v0/startupz",
  "/v0/livez",
  "/v0/metrics"
])

export type RejectionReason = "missing" | "empty" | "duplicated"

/** Each X-Remote-User header apart: Node joins repeats with ", ", making two identities look like one. */
const remoteUsers = (request: HttpServerRequest.HttpServerRequest): ReadonlyArray<string> => {
  const source: unknown = NodeHttpServerRequest.toIncomingMessage(request)
  if (source instanceof IncomingMessage) return source.headersDistinct["x-remote-user"] ?? []
  const joined = request.headers["x-remote-user"]
  return joined === undefined ? [] : [joined]
}

/** Why a request for `path` (its URL without the query) is refused under trusted-header, if it is. */
export const rejection = (request: HttpServerRequest.HttpServerRequest, path: string): RejectionReason | undefined => {
  if (unauthenticatedPaths.has(path)) return undefined
  const users = remoteUsers(request)
  if (users.length === 0) return "missing"
  if (users.length > 1) return "duplicated"
  if (users[0]!.trim() === "") return "empty"
  return undefined
}

const messages: Record<RejectionReason, string> = {
  missing: "missing X-Remote-User header",
  empty: "empty X-Remote-User header",
  duplicated: "more than one X-Remote-User header"
}

/** The 401 for a request refused under trusted-header. */
export const unauthorized = (reason: RejectionReason) =>
  HttpServerResponse.jsonUnsafe({ _tag: "Unauthenticated", error: messages[reason] }, { status: 401 })
