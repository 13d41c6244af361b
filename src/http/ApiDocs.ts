import { Effect, JsonSchema, Layer, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { type HttpApi, type HttpApiGroup, HttpApiSwagger, OpenApi } from "effect/http-api"
import type { RegisteredHandler } from "../engine/TaskHandlers.js"

type Json = Record<string, any>

/** The OpenAPI document with one POST /v0/tasks body per registered task type. */
export const describeTaskTypes = (handlers: ReadonlyMap<string, RegisteredHandler>) => (spec: Json): Json => {
  const document = structuredClone(spec)
  const definitions: Json = {}
  const schemaOf = (handler: RegisteredHandler, which: "params" | "result"): Json => {
    const schema = handler[which]
    if (schema === undefined) return {}
    try {
      const single = Schema.toJsonSchemaDocument(schema)
      const openApi = JsonSchema.toMultiDocumentOpenApi3_1({
        dialect: "draft-2020-12",
        schemas: [single.schema],
        definitions: single.definitions
      })
      Object.assign(definitions, openApi.definitions)
      return openApi.schemas[0] as Json
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
  // what "Try it out" sends first: a body the server accepts
  const first = handlers.keys().next()
  if (first.done !== true) body.example = { type: first.value }
  document.components.schemas = { ...document.components.schemas, ...definitions }
  // no Authorize button: the API itself has no security scheme
  if (Array.isArray(document.security) && document.security.length === 0) delete document.security
  if (Object.keys(document.components.securitySchemes ?? {}).length === 0) delete document.components.securitySchemes
  return namedAsOnTheWire(document)
}

/** The document with its schemas named as on the wire (`Task`, not the framework's `TaskEncoded`). */
const namedAsOnTheWire = (document: Json): Json => {
  const names = Object.keys(document.components.schemas ?? {})
  const renamed = new Map(names.flatMap((name) => {
    const plain = name.replace(/Encoded$/, "")
    return plain !== name && !names.includes(plain) ? [[name, plain] as const] : []
  }))
  if (renamed.size === 0) return document
  const text = JSON.stringify(document).replace(
    /"#\/components\/schemas\/(\w+)"/g,
    (whole, name: string) => (renamed.has(name) ? `"#/components/schemas/${renamed.get(name)}"` : whole)
  )
  const result = JSON.parse(text)
  result.components.schemas = Object.fromEntries(
    Object.entries(result.components.schemas).map(([name, schema]) => [renamed.get(name) ?? name, schema])
  )
  return result
}

/** `GET /v0/openapi.json` and `GET /docs`, each made on its first request, not at start. */
export const apiDocsLayer = <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups>
) =>
  HttpRouter.use((router) =>
    Effect.gen(function*() {
      const spec = yield* Effect.cached(Effect.sync(() => HttpServerResponse.jsonUnsafe(OpenApi.fromApi(api))))
      const page = yield* Effect.cached(
        Effect.gen(function*() {
          // the page is built as it is mounted; this router keeps it
          let made: Effect.Effect<HttpServerResponse.HttpServerResponse> = Effect.die(new Error("no Swagger UI page"))
          const keep = {
            add: (_method: string, _path: string, handler: typeof made) => Effect.sync(() => void (made = handler))
          }
          yield* Layer.build(
            HttpApiSwagger.layer(api, { path: "/docs" }).pipe(
              Layer.provide(Layer.succeed(HttpRouter.HttpRouter, keep as unknown as HttpRouter.HttpRouter))
            )
          ).pipe(Effect.scoped)
          return yield* made
        })
      )
      yield* router.add("GET", "/v0/openapi.json", spec)
      yield* router.add("GET", "/docs", page)
    })
  )
