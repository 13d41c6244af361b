import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { HttpBody, HttpClient } from "effect/http"
import { OpenApi } from "effect/http-api"
import { TaskHandlers } from "../../src/engine/TaskHandlers.js"
import { Api } from "../../src/http/Api.js"
import { describeTaskTypes } from "../../src/http/ApiDocs.js"
import { HttpTest } from "../support/layers.js"

const get = (url: string) =>
  Effect.gen(function*() {
    const response = yield* (yield* HttpClient.HttpClient).get(url)
    return { status: response.status, contentType: response.headers["content-type"], text: yield* response.text }
  }).pipe(Effect.scoped)

/** Every operation of the API: path, method, and the statuses it declares (a 400 only where input is decoded). */
const operations = {
  "/v0/tasks": { post: ["201", "202", "400", "503"], get: ["200", "400", "503"] },
  "/v0/tasks/{id}": { get: ["200", "400", "404", "503"], delete: ["204", "404", "503"] },
  "/v0/tasks/{id}/runs": { get: ["200", "404", "503"] },
  "/v0/healthz": { get: ["200", "503"] },
  "/v0/startupz": { get: ["200", "503"] },
  "/v0/livez": { get: ["200", "503"] },
  "/v0/status": { get: ["200"] },
  "/v0/metrics": { get: ["200"] }
}

describe("API description", () => {
  it.effect("GET /v0/openapi.json is the OpenAPI 3 document of Api, listing every path, method and status", () =>
    Effect.gen(function*() {
      const res = yield* get("/v0/openapi.json")
      expect(res.status).toBe(200)
      expect(res.contentType).toMatch(/^application\/json/)
      const spec = JSON.parse(res.text)
      expect(spec.openapi).toMatch(/^3\./)
      expect(spec.info).toMatchObject({ title: "Sidecar task engine", version: expect.any(String) })
      const { handlers } = yield* TaskHandlers
      expect(spec).toEqual(JSON.parse(JSON.stringify(describeTaskTypes(handlers)(OpenApi.fromApi(Api)))))

      expect(Object.keys(spec.paths).sort()).toEqual(Object.keys(operations).sort())
      for (const [path, methods] of Object.entries(operations)) {
        expect(Object.keys(spec.paths[path]).sort(), path).toEqual(Object.keys(methods).sort())
        for (const [method, statuses] of Object.entries(methods)) {
          const operation = spec.paths[path][method]
          expect(Object.keys(operation.responses).sort(), `${method} ${path}`).toEqual(statuses)
          expect(operation.summary, `${method} ${path}`).toEqual(expect.any(String))
        }
      }
      // Each registered task type with its params (and its result, where the handler declares one).
      const body = spec.paths["/v0/tasks"].post.requestBody.content["application/json"].schema
      expect(body.discriminator).toEqual({ propertyName: "type" })
      const variants = Object.fromEntries(body.oneOf.map((v: any) => [v.properties.type.enum[0], v]))
      expect(Object.keys(variants).sort()).toEqual([...handlers.keys()].sort())
      expect(variants["run-command"].properties.params).toMatchObject({
        type: "object",
        required: ["command"],
        properties: { command: { type: "string" }, args: { type: "array" } }
      })
      expect(variants["await-http"].properties.params.required).toEqual(["url"])
      expect(variants["test-typed"]["x-result"]).toMatchObject({ type: "object", required: ["doubled", "at"] })
      // The task shape a client codes against, and the path parameter.
      const task: string = spec.paths["/v0/tasks/{id}"].get.responses["200"].content["application/json"].schema.$ref
      expect(task).toMatch(/^#\/components\/schemas\//)
      expect(spec.components.schemas[task.split("/").at(-1)!].required)
        .toEqual(["id", "type", "status", "run", "submittedAt"])
      expect(spec.paths["/v0/tasks/{id}"].get.parameters).toContainEqual(
        expect.objectContaining({ name: "id", in: "path", required: true })
      )
      // No Authorize button for a scheme the API does not have
      expect(spec).not.toHaveProperty("security")
      expect(spec.components).not.toHaveProperty("securitySchemes")
    }).pipe(Effect.provide(HttpTest)))

  it.effect("what /docs' \"Try it out\" sends first is accepted: the body's example is a submit the server takes", () =>
    Effect.gen(function*() {
      const spec = JSON.parse((yield* get("/v0/openapi.json")).text)
      const example = spec.paths["/v0/tasks"].post.requestBody.content["application/json"].example
      expect(example).toEqual({ type: expect.any(String) })
      const client = yield* HttpClient.HttpClient
      const response = yield* client.post("/v0/tasks", { body: HttpBody.jsonUnsafe(example) })
      expect(response.status).toBe(201)
      // every 400 the document lists is the shape the server sends: `_tag` and `error`
      const shapes = spec.paths["/v0/tasks"].post.responses["400"].content["application/json"].schema.anyOf
      for (const { $ref } of shapes) {
        expect(spec.components.schemas[$ref.split("/").at(-1)].required, $ref).toEqual(
          expect.arrayContaining(["_tag", "error"])
        )
      }
    }).pipe(Effect.scoped, Effect.provide(HttpTest)))

  it.effect("GET /docs is the Swagger UI page, inline (no CDN)", () =>
    Effect.gen(function*() {
      const res = yield* get("/docs")
      expect(res.status).toBe(200)
      expect(res.contentType).toMatch(/^text\/html/)
      expect(res.text).toContain("SwaggerUIBundle")
      expect(res.text).toContain("/v0/tasks/{id}")
      expect(res.text).not.toMatch(/<script[^>]+src="https?:/)
    }).pipe(Effect.provide(HttpTest)))
})
