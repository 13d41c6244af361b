import { JSONSchema } from "effect"
import type { TaskHandler } from "./TaskHandlers.js"

type Json = Record<string, any>

/**
 * The OpenAPI document's POST /v0/tasks body, one variant per registered task type with that type's params schema
 * (and its result schema as `x-result`). The HttpApi contract types params as unknown, since which types exist is
 * up to the application; this fills in the ones this sidecar has.
 */
export const describeTaskTypes = (handlers: ReadonlyMap<string, TaskHandler>) => (spec: Json): Json => {
  const document = structuredClone(spec)
  const definitions: Json = {}
  const schemaOf = (handler: TaskHandler, which: "params" | "result"): Json => {
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
