import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import type * as HttpLayerRouterModule from "@effect/platform/HttpLayerRouter"
import { Effect, JSONSchema, Layer } from "effect"
import type { RegisteredHandler } from "../engine/TaskHandlers.js"

type Json = Record<string, any>

/**
 * The OpenAPI document's POST /v0/tasks body, one variant per registered task type with that type's params schema
 * (and its result schema as `x-result`). The HttpApi contract types params as unknown, since which types exist is
 * up to the application; this fills in the ones this sidecar has.
 */
export const describeTaskTypes = (handlers: ReadonlyMap<string, RegisteredHandler>) => (spec: Json): Json => {
  const document = structuredClone(spec)
  const definitions: Json = {}
  const schemaOf = (handler: RegisteredHandler, which: "params" | "result"): Json => {
    const schema = handler[which]
    if (schema === undefined) return {}
    try {
      return JSONSchema.fromAST(schema.ast, {
        definitions,
        definitionPath: "#/components/schemas/",
        target: "openApi3.1"
      }) as Json
    } catch {
      return { description: `${handler.name} ${which}: not expressible as JSON Schema` }
    }
  }
  const body = document.paths["/v0/tasks"].post.requestBody.content["application/json"]
  const id = body.schema.properties.id
  body.schema = {
    oneOf: [...handlers.values()].map((handler) => ({
      title: handler.name,
      type: "object",
      required: ["type"],
      properties: { id, type: { type: "string", enum: [handler.name] }, params: schemaOf(handler, "params") },
      ...(handler.result === undefined ? {} : { "x-result": schemaOf(handler, "result") })
    })),
    discriminator: { propertyName: "type" }
  }
  document.components.schemas = { ...document.components.schemas, ...definitions }
  return document
}

/**
 * `GET /v0/openapi.json` and `GET /docs` (Swagger UI, inline so it works offline), each made on its first request:
 * made as the server starts, the document and the page's 2 MB of assets cost every start some 50 ms for pages few
 * ever ask for. The page's module is imported only then, so a start does not even read it; for the same reason src/
 * imports @effect/platform's modules by their own paths, never the package's index, which re-exports this module and
 * put its 1.9 MB in what every start loads (test/Main.test.ts checks what a start loads).
 */
export const ApiDocsLive = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const { api } = yield* HttpApi.Api
    const spec = yield* Effect.cached(Effect.sync(() => HttpServerResponse.unsafeJson(OpenApi.fromApi(api))))
    const page = yield* Effect.cached(
      Effect.gen(function*() {
        const [Swagger, HttpLayerRouter] = yield* Effect.promise(() =>
          Promise.all([import("@effect/platform/HttpApiSwagger"), import("@effect/platform/HttpLayerRouter")])
        )
        // The platform builds the page as it mounts it on a router: this router only keeps it.
        let made: Effect.Effect<HttpServerResponse.HttpServerResponse> = Effect.dieMessage("no Swagger UI page")
        const keep = { add: (_method: string, _path: string, handler: typeof made) => Effect.sync(() => void (made = handler)) }
        yield* Layer.build(
          Swagger.layerHttpLayerRouter({ api, path: "/docs" }).pipe(
            Layer.provide(Layer.succeed(HttpLayerRouter.HttpRouter, keep as unknown as HttpLayerRouterModule.HttpRouter))
          )
        ).pipe(Effect.scoped)
        return yield* made
      })
    )
    yield* router.get("/v0/openapi.json", spec)
    yield* router.get("/docs", page)
  })
)
