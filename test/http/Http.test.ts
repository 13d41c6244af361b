import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpBody, HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { SqlClient } from "effect/sql"
import { Engine } from "../../src/engine/Engine.js"
import { Api } from "../../src/http/Api.js"
import { maxBodyBytes } from "../../src/http/RequestBody.js"
import { HttpTest, Probe, serverOver, SqlMemory } from "../support/layers.js"

const ID = "0b1e0e58-5a3c-4f7e-9d3e-3c5f2a1b7c9d"

const call = (method: "GET" | "POST" | "DELETE" | "PUT", url: string, body?: string, contentType?: string) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    let request = HttpClientRequest.make(method)(url)
    if (body !== undefined) request = HttpClientRequest.setBody(request, HttpBody.text(body, contentType))
    const response = yield* client.execute(request)
    const text = yield* response.text
    return { status: response.status, text, json: text === "" ? undefined : JSON.parse(text) as any }
  }).pipe(Effect.scoped)

const post = (body: unknown) => call("POST", "/v0/tasks", JSON.stringify(body), "application/json")
const settle = (id: string) => Effect.flatMap(Engine, (e) => e.join(id))

/** Every error answer: a 4xx/5xx whose JSON body has a non-empty `error` string. */
const expectError = (res: { status: number; json: any }, status: number, error?: string | RegExp) => {
  expect(res.status).toBe(status)
  expect(typeof res.json?.error).toBe("string")
  expect(res.json.error.length).toBeGreaterThan(0)
  if (typeof error === "string") expect(res.json.error).toBe(error)
  else if (error !== undefined) expect(res.json.error).toMatch(error)
}

describe("POST /v0/tasks", () => {
  it.effect("201 {id} for a new task, 202 {id} while it runs or once completed, 201 again after a failure", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("h")
      const created = yield* post({ id: ID, type: "test", params: { key: "h", hold: true, fail: "once" } })
      expect(created).toMatchObject({ status: 201, json: { id: ID } })
      expect(Object.keys(created.json)).toEqual(["id"])
      expect(yield* post({ id: ID, type: "mark-ready" })).toMatchObject({ status: 202, json: { id: ID } })
      yield* probe.release("h")
      yield* settle(ID)
      const again = yield* post({ id: ID, type: "test", params: { key: "h" } })
      expect(again).toMatchObject({ status: 201, json: { id: ID } })
      yield* settle(ID)
      expect(yield* post({ id: ID, type: "test", params: { key: "h" } })).toMatchObject({ status: 202 })
      const task = yield* call("GET", `/v0/tasks/${ID}`)
      expect(task.json).toMatchObject({ status: "completed", run: 2 })
    }).pipe(Effect.provide(HttpTest)))

  it.effect("without an id, a UUID is generated", () =>
    Effect.gen(function*() {
      const a = yield* post({ type: "mark-not-ready" })
      const b = yield* post({ type: "mark-not-ready", id: null })
      const c = yield* post({ type: "mark-not-ready", id: "" })
      for (const res of [a, b, c]) {
        expect(res.status).toBe(201)
        expect(res.json.id).toMatch(/^[0-9a-f-]{36}$/)
      }
      expect(new Set([a.json.id, b.json.id, c.json.id]).size).toBe(3)
    }).pipe(Effect.provide(HttpTest)))

  it.effect("400 with a JSON error for every kind of bad request, and nothing is stored", () =>
    Effect.gen(function*() {
      expectError(
        yield* call("POST", "/v0/tasks", "{\"type\":", "application/json"),
        400,
        /^request body: not valid JSON$/
      )
      expectError(
        yield* call("POST", "/v0/tasks", "", "application/json"),
        400,
        `request body: expected a JSON object such as {"type": "mark-ready"}, got nothing`
      )
      expectError(yield* post({}), 400, "type: Missing key")
      expectError(yield* post({ type: "" }), 400, "type: must not be empty")
      expectError(yield* post({ type: 42 }), 400, "type: Expected string, got 42")
      expectError(yield* post([1, 2]), 400)
      expectError(yield* post({ id: "not-a-uuid", type: "mark-ready" }), 400, /^invalid task id "not-a-uuid"/)
      expectError(yield* post({ id: 7, type: "mark-ready" }), 400)
      expectError(yield* post({ type: "launch-missiles" }), 400, "unknown task type: launch-missiles")
      expectError(yield* post({ type: "test", params: { key: 1 } }), 400, /key: Expected string, got 1/)
      expectError(yield* post({ type: "run-command", params: { command: "nope" } }), 400, /unknown command: nope/)
      // a query parameter the list does not take, and one it takes with a value it does not: said once each
      expectError(yield* call("GET", "/v0/tasks?foo=bar"), 400, "foo: unknown query parameter")
      expectError(
        yield* call("GET", "/v0/tasks?status=done"),
        400,
        `status: Expected "running" | "completed" | "failed", got "done"`
      )
      expectError(yield* call("GET", "/v0/tasks?limit=0"), 400, "limit: must be an integer from 1 to 1000")
      expect((yield* call("GET", "/v0/tasks")).json).toEqual([])
    }).pipe(Effect.provide(HttpTest)))

  it.effect("a body sent without a JSON content type is still read as JSON (as curl -d and Go clients send it)", () =>
    Effect.gen(function*() {
      const res = yield* call(
        "POST",
        "/v0/tasks",
        JSON.stringify({ type: "mark-ready" }),
        "application/x-www-form-urlencoded"
      )
      expect(res.status).toBe(201)
      const plain = yield* call("POST", "/v0/tasks", JSON.stringify({ type: "mark-ready" }), "text/plain")
      expect(plain.status).toBe(201)
    }).pipe(Effect.provide(HttpTest)))

  it.effect("a body over the limit is refused with 413 before it is read", () =>
    Effect.gen(function*() {
      const huge = JSON.stringify({ type: "mark-ready", params: { pad: "x".repeat(maxBodyBytes) } })
      expectError(yield* call("POST", "/v0/tasks", huge, "application/json"), 413, /too large/)
      expect((yield* call("GET", "/v0/tasks")).json).toEqual([])
    }).pipe(Effect.provide(HttpTest)))
})

describe("GET and DELETE /v0/tasks", () => {
  it.effect("TaskResult JSON has the Go shape: RFC 3339 UTC times, empty keys omitted", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("shape")
      yield* post({ id: ID, type: "test", params: { key: "shape", hold: true } })
      const running = (yield* call("GET", `/v0/tasks/${ID}`)).json
      expect(Object.keys(running).sort()).toEqual(["id", "params", "run", "status", "submittedAt", "type"])
      expect(running.submittedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/)
      yield* probe.release("shape")
      yield* settle(ID)
      const done = (yield* call("GET", `/v0/tasks/${ID}`)).json
      expect(done).toMatchObject({
        id: ID,
        type: "test",
        status: "completed",
        run: 1,
        result: { key: "shape", run: 1 }
      })
      expect(done.completedAt).toMatch(/Z$/)
      expect(done).not.toHaveProperty("error")

      const failed = (yield* post({ type: "test", params: { key: "f", fail: "broken" } })).json.id
      yield* settle(failed)
      const f = (yield* call("GET", `/v0/tasks/${failed}`)).json
      expect(f).toMatchObject({ status: "failed", error: "test: f: broken [hint: release it]" })
      expect(f).not.toHaveProperty("result")

      const bare = (yield* post({ type: "mark-not-ready", params: {} })).json.id
      yield* settle(bare)
      expect(Object.keys((yield* call("GET", `/v0/tasks/${bare}`)).json).sort())
        .toEqual(["completedAt", "id", "run", "status", "submittedAt", "type"])
    }).pipe(Effect.provide(HttpTest)))

  it.effect("list answers an array, newest first; get of an unknown id is 404 with an error", () =>
    Effect.gen(function*() {
      const first = (yield* post({ type: "mark-not-ready" })).json.id
      const second = (yield* post({ type: "mark-not-ready" })).json.id
      const list = yield* call("GET", "/v0/tasks")
      expect(list.status).toBe(200)
      expect(list.json.map((t: { id: string }) => t.id)).toEqual([second, first])
      expectError(yield* call("GET", `/v0/tasks/${ID}`), 404, `task ${ID} not found`)
      expectError(yield* call("GET", "/v0/tasks/..%2F..%2Fetc%2Fpasswd"), 404)
    }).pipe(Effect.provide(HttpTest)))

  it.effect("DELETE answers 204 with no body, then 404; the task is gone from get and list", () =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.hold("d")
      yield* post({ id: ID, type: "test", params: { key: "d", hold: true } })
      const deleted = yield* call("DELETE", `/v0/tasks/${ID}`)
      expect(deleted).toMatchObject({ status: 204, text: "" })
      expect(probe.interruptions("d")).toBe(1)
      expectError(yield* call("DELETE", `/v0/tasks/${ID}`), 404)
      expectError(yield* call("GET", `/v0/tasks/${ID}`), 404)
      expect((yield* call("GET", "/v0/tasks")).json).toEqual([])
      yield* probe.release("d")
    }).pipe(Effect.provide(HttpTest)))

  it.effect("unknown routes and wrong methods answer 404 with a JSON error", () =>
    Effect.gen(function*() {
      expectError(yield* call("GET", "/v0/nothing"), 404)
      expectError(yield* call("PUT", "/v0/tasks", "{}", "application/json"), 404)
      expectError(yield* call("GET", "/"), 404)
    }).pipe(Effect.provide(HttpTest)))
})

describe("probes", () => {
  it.effect("healthz and startupz are 503 until mark-ready, then 200; status goes Initializing -> Ready and back", () =>
    Effect.gen(function*() {
      expectError(yield* call("GET", "/v0/healthz"), 503)
      expectError(yield* call("GET", "/v0/startupz"), 503)
      expect((yield* call("GET", "/v0/livez")).status).toBe(200)
      expect((yield* call("GET", "/v0/status")).json).toEqual({ status: "Initializing" })

      yield* settle((yield* post({ type: "mark-ready" })).json.id)
      expect((yield* call("GET", "/v0/healthz")).status).toBe(200)
      expect((yield* call("GET", "/v0/startupz")).status).toBe(200)
      expect((yield* call("GET", "/v0/status")).json).toEqual({ status: "Ready" })

      yield* settle((yield* post({ type: "test", params: { key: "x", fail: "bad" } })).json.id)
      expect((yield* call("GET", "/v0/healthz")).status).toBe(200)

      yield* settle((yield* post({ type: "mark-not-ready" })).json.id)
      expectError(yield* call("GET", "/v0/healthz"), 503)
      expect((yield* call("GET", "/v0/status")).json).toEqual({ status: "Initializing" })
    }).pipe(Effect.provide(HttpTest)))

  class CloseDb extends Context.Service<CloseDb, Effect.Effect<void>>()("test/CloseDb") {}
  /** In-memory SQLite whose connection the test can close underneath the running server. */
  const ClosableSql = Layer.effectContext(Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(SqlMemory, scope)
    return Context.add(context, CloseDb, Scope.close(scope, Exit.void))
  }))

  it.effect("livez is 503 with an error once the database connection is closed; submits get 503 too", () =>
    Effect.gen(function*() {
      expect((yield* call("GET", "/v0/livez")).status).toBe(200)
      yield* Effect.flatten(CloseDb)
      expectError(yield* call("GET", "/v0/livez"), 503, /^store ping failed: /)
      expectError(yield* post({ type: "mark-ready" }), 503, /^store submit failed: /)
      expectError(yield* call("GET", "/v0/tasks"), 503)
    }).pipe(Effect.provide(serverOver(ClosableSql))))

  it.effect("livez is 503 when the database is broken underneath (its table dropped by someone else)", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`DROP TABLE task_results`
      expectError(yield* call("GET", "/v0/livez"), 503, /no such table/)
    }).pipe(Effect.provide(HttpTest)))
})

describe("typed client", () => {
  it.effect("HttpApiClient built from the same Api tells started from deduplicated and catches typed errors", () =>
    Effect.gen(function*() {
      const client = yield* HttpApiClient.make(Api)
      const started = yield* client.tasks.submit({ payload: { id: ID, type: "mark-ready" } })
      expect(started).toEqual({ _tag: "TaskStarted", id: ID })
      yield* settle(ID)
      expect(yield* client.tasks.submit({ payload: { id: ID, type: "mark-ready" } }))
        .toEqual({ _tag: "TaskDeduplicated", id: ID })
      const task = yield* client.tasks.get({ params: { id: ID }, query: {} })
      expect(task.status).toBe("completed")
      const missing = yield* Effect.flip(client.tasks.get({ params: { id: "nope" }, query: {} }))
      expect(missing._tag).toBe("TaskNotFound")
      const invalid = yield* Effect.flip(client.tasks.submit({ payload: { id: "x", type: "mark-ready" } }))
      expect(invalid._tag).toBe("InvalidTaskId")
      yield* client.tasks.remove({ params: { id: ID } })
      expect((yield* client.tasks.list({ query: {} })).length).toBe(0)
      yield* client.healthz()
    }).pipe(Effect.provide(HttpTest)))
})
