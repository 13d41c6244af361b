import * as NodeServices from "@effect/platform-node/NodeServices"
import { expect, layer } from "@effect/vitest"
import { Context, Effect, FileSystem, Layer } from "effect"
import * as Http from "node:http"
import { join } from "node:path"
import { runToExit, type Sidecar, startSidecar } from "../support/sidecar.js"

/** A GET or POST with exactly these header lines (a repeated name stays two lines). */
const call = (url: string, path: string, headers: ReadonlyArray<readonly [string, string]>, body?: string) =>
  Effect.callback<{ status: number; json: any }>((resume) => {
    const { hostname, port } = new URL(url)
    const raw = ["host", `${hostname}:${port}`, ...headers.flatMap(([name, value]) => [name, value])]
    if (body !== undefined) {
      raw.push("content-type", "application/json", "content-length", String(Buffer.byteLength(body)))
    }
    const req = Http.request({ host: hostname, port, path, method: body === undefined ? "GET" : "POST", headers: raw })
    req.on("response", (res) => {
      let text = ""
      res.setEncoding("utf8").on("data", (c: string) => (text += c)).on("end", () => {
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          json = undefined
        }
        resume(Effect.succeed({ status: res.statusCode!, json }))
      })
    })
    req.on("error", (e) => resume(Effect.die(e)))
    req.end(body)
  })

class Server extends Context.Service<Server, Sidecar>()("test/AuthnServer") {}
const ServerLive = Layer.effect(
  Server,
  Effect.gen(function*() {
    const dir = yield* Effect.flatMap(
      FileSystem.FileSystem,
      (fs) => fs.makeTempDirectoryScoped({ prefix: "sidecar-authn-" })
    )
    // no SIDECAR_HOST: trusted-header binds loopback on its own
    return yield* startSidecar({
      SIDECAR_DB: join(dir, "sidecar.db"),
      SIDECAR_AUTHN_MODE: "trusted-header",
      SIDECAR_HOST: ""
    })
  })
).pipe(Layer.provide(NodeServices.layer))

const alice = [["X-Remote-User", "alice"]] as const

layer(ServerLive, { timeout: "60 seconds", excludeTestServices: true })("trusted-header authentication", (it) => {
  it.effect("listens on loopback and says so at startup", () =>
    Effect.gen(function*() {
      const sidecar = yield* Server
      expect(sidecar.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(sidecar.logs().find((l) => l.message === "sidecar starting")?.annotations.authnMode).toBe("trusted-header")
    }))

  it.effect("the probes and the metrics scrape need no identity", () =>
    Effect.gen(function*() {
      const { url } = yield* Server
      for (const path of ["/v0/livez", "/v0/metrics"]) expect((yield* call(url, path, [])).status).toBe(200)
      for (const path of ["/v0/healthz", "/v0/startupz"]) expect((yield* call(url, path, [])).status).toBe(503)
    }))

  it.effect("everything else answers 401 with a JSON error without exactly one non-empty X-Remote-User", () =>
    Effect.gen(function*() {
      const { url } = yield* Server
      const paths = [
        "/v0/tasks",
        "/v0/tasks/00000000-0000-4000-8000-000000000001",
        "/v0/status",
        "/v0/openapi.json",
        "/docs"
      ]
      for (const path of paths) {
        expect(yield* call(url, path, []), path).toEqual({
          status: 401,
          json: { _tag: "Unauthenticated", error: "missing X-Remote-User header" }
        })
        expect((yield* call(url, path, [["X-Remote-User", ""]])).json, path).toEqual({
          _tag: "Unauthenticated",
          error: "empty X-Remote-User header"
        })
        expect((yield* call(url, path, [["X-Remote-User", "   "]])).status, path).toBe(401)
        // never trust the first of two values
        expect(yield* call(url, path, [["X-Remote-User", "alice"], ["X-Remote-User", "mallory"]]), path).toEqual({
          status: 401,
          json: { _tag: "Unauthenticated", error: "more than one X-Remote-User header" }
        })
      }
      const submit = yield* call(url, "/v0/tasks", [], JSON.stringify({ type: "mark-ready" }))
      expect(submit.status).toBe(401)
      expect((yield* call(url, "/v0/tasks", alice)).json).toEqual([]) // the refused submit stored nothing
    }))

  it.effect("with one identity, requests go through", () =>
    Effect.gen(function*() {
      const { url } = yield* Server
      expect((yield* call(url, "/v0/status", alice)).json).toEqual({ status: "Initializing" })
      expect((yield* call(url, "/v0/tasks", alice, JSON.stringify({ type: "mark-not-ready" }))).status).toBe(201)
      expect((yield* call(url, "/v0/openapi.json", alice)).status).toBe(200)
    }))

  it.effect("rejections are counted by reason", () =>
    Effect.gen(function*() {
      const { url } = yield* Server
      yield* call(url, "/v0/status", [])
      const text = yield* Effect.promise(() => fetch(`${url}/v0/metrics`).then((r) => r.text()))
      for (const reason of ["missing", "empty", "duplicated"]) {
        expect(text).toMatch(new RegExp(`^sidecar_authn_rejections_total\\{reason="${reason}"\\} [1-9]`, "m"))
      }
    }))
})

layer(NodeServices.layer, { excludeTestServices: true })("trusted-header configuration", (it) => {
  it.effect("an explicit SIDECAR_HOST outside loopback, or a misspelt mode, refuses to start naming the variable", () =>
    Effect.gen(function*() {
      const refused = yield* runToExit({
        SIDECAR_AUTHN_MODE: "trusted-header",
        SIDECAR_HOST: "0.0.0.0",
        SIDECAR_DB: ":memory:"
      })
      expect(refused.code).not.toBe(0)
      expect(refused.stderr).toMatch(/^sidecar: cannot start: .*SIDECAR_HOST.*loopback.*"0\.0\.0\.0"/)
      const typo = yield* runToExit({ SIDECAR_AUTHN_MODE: "trusted_header", SIDECAR_DB: ":memory:" })
      expect(typo.stderr).toMatch(/SIDECAR_AUTHN_MODE.*unauthenticated, trusted-header.*trusted_header/)
    }))
})
