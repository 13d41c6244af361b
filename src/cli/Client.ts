import type { Effect } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { Api } from "../http/Api.js"

/**
 * A typed client for a running sidecar, generated from the same `Api` the server implements: `client.tasks.submit`,
 * `client.tasks.get`, `client.healthz`... fail with the API's tagged errors (`TaskNotFound`, `InvalidTaskId`...).
 * Needs an `HttpClient` (`FetchHttpClient.layer`, `NodeHttpClient.layerUndici`).
 */
export const makeClient = (baseUrl: string | URL) =>
  HttpApiClient.make(Api, {
    transformClient: HttpClient.mapRequest(HttpClientRequest.prependUrl(String(baseUrl).replace(/\/$/, "")))
  })

export type SidecarClient = Effect.Success<ReturnType<typeof makeClient>>
