import * as HttpApiClient from "@effect/platform/HttpApiClient"
import type { Effect } from "effect"
import { Api } from "../http/Api.js"

/**
 * A typed client for a running sidecar, generated from the same `Api` the server implements: `client.tasks.submit`,
 * `client.tasks.get`, `client.healthz`... fail with the API's tagged errors (`TaskNotFound`, `InvalidTaskId`...).
 * Needs an `HttpClient` (`NodeHttpClient.layerUndici`, `FetchHttpClient.layer`).
 */
export const makeClient = (baseUrl: string | URL) => HttpApiClient.make(Api, { baseUrl })

export type SidecarClient = Effect.Effect.Success<ReturnType<typeof makeClient>>
