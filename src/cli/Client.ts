import type { Effect } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { Api } from "../http/Api.js"

/** A typed client for a sidecar, from the server's own `Api`; needs an `HttpClient`. */
export const makeClient = (baseUrl: string | URL) =>
  HttpApiClient.make(Api, {
    transformClient: HttpClient.mapRequest(HttpClientRequest.prependUrl(String(baseUrl).replace(/\/$/, "")))
  })

export type SidecarClient = Effect.Success<ReturnType<typeof makeClient>>
