import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { HttpClient } from "effect/http"
import { SqlClient } from "effect/sql"
import { Engine } from "../src/engine/Engine.js"
import { routeOf } from "../src/Metrics.js"
import { held } from "./support/engine.js"
import { HttpTest } from "./support/layers.js"

const ID = "3c9e4d5f-6a7b-4c8d-9e0f-a1b2c3d4e5f6"

const scrape = Effect.flatMap(
  HttpClient.HttpClient,
  (client) =>
    Effect.flatMap(
      client.get("/v0/metrics"),
      (res) => Effect.map(res.text, (text) => ({ status: res.status, type: res.headers["content-type"], text }))
    )
)
/** The value of one sample line, e.g. `sidecar_tasks_running` or `name{label="x"}`. */
const sample = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}
it.effect("GET /v0/metrics exposes submits, runs, durations, running tasks, crashes, requests and ping failures", () =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const submit = (body: object) => engine.submit(body as never)

    yield* engine.join((yield* submit({ id: ID, type: "test", params: { key: "a", fail: "no" } })).id)
    yield* engine.join((yield* submit({ id: ID, type: "test", params: { key: "a" } })).id) // re-executed
    yield* submit({ id: ID, type: "test", params: { key: "a" } }) // deduplicated
    const crash = yield* submit({ type: "test", params: { key: "c", crash: "boom" } })
    yield* engine.join(crash.id)
    const probe = yield* held("h")

    const client = yield* HttpClient.HttpClient
    yield* client.get("/v0/livez")
    yield* client.get(`/v0/tasks/${ID}`)
    yield* client.get("/v0/tasks/unknown-id")
    yield* client.get("/no/such/route")
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE task_results RENAME TO broken`
    yield* client.get("/v0/livez")
    yield* sql`ALTER TABLE broken RENAME TO task_results`

    const { status, text, type } = yield* scrape
    expect(status).toBe(200)
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(text).toContain("# TYPE sidecar_tasks_submitted_total counter")
    expect(sample(text, `sidecar_tasks_submitted_total{type="test",outcome="started"}`)).toBe(3)
    expect(sample(text, `sidecar_tasks_submitted_total{type="test",outcome="re-executed"}`)).toBe(1)
    expect(sample(text, `sidecar_tasks_submitted_total{type="test",outcome="deduplicated"}`)).toBe(1)
    expect(sample(text, `sidecar_task_runs_finished_total{type="test",status="failed"}`)).toBe(2)
    expect(sample(text, `sidecar_task_runs_finished_total{type="test",status="completed"}`)).toBe(1)
    expect(sample(text, `sidecar_task_duration_seconds_count{type="test",status="failed"}`)).toBe(2)
    expect(sample(text, `sidecar_task_duration_seconds_bucket{le="+Inf",type="test",status="completed"}`)).toBe(1)
    expect(sample(text, "sidecar_tasks_running")).toBe(1)
    expect(sample(text, `sidecar_handler_crashes_total{type="test"}`)).toBe(1)
    expect(sample(text, "sidecar_store_ping_failures_total")).toBe(1)
    expect(sample(text, `sidecar_http_requests_total{route="/v0/livez",method="GET",status="200"}`)).toBe(1)
    expect(sample(text, `sidecar_http_requests_total{route="/v0/livez",method="GET",status="503"}`)).toBe(1)
    expect(sample(text, `sidecar_http_requests_total{route="/v0/tasks/:id",method="GET",status="404"}`)).toBe(1)
    expect(sample(text, `sidecar_http_requests_total{route="other",method="GET",status="404"}`)).toBe(1)
    yield* probe.release("h")
  }).pipe(Effect.provide(HttpTest)))

it("routes become a few label values whatever the path", () => {
  expect(routeOf("/v0/tasks")).toBe("/v0/tasks")
  expect(routeOf("/v0/tasks/anything-at-all")).toBe("/v0/tasks/:id")
  expect(routeOf("/v0/tasks/a/b")).toBe("other")
  expect(routeOf("/v0/livez")).toBe("/v0/livez")
  expect(routeOf("/../../etc/passwd")).toBe("other")
})
