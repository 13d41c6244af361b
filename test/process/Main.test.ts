import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { delimiter, join } from "node:path"
import { commandsFolder, request, runToExit, sidecarMain, startSidecar } from "../support/sidecar.js"
import { openDatabase } from "../support/sqlite.js"
import { pollUntil } from "../support/wait.js"

const ID = "5e1f7b2a-9c3d-4e8f-a1b2-c3d4e5f60718"
/** Node's modules the bundle's loader requires on first use (scripts/bundle.mjs). */
const { onDemandModules } = (await import("../../scripts/bundle.mjs" as string)) as {
  onDemandModules: ReadonlyArray<string>
}

/** A node on the PATH older than package.json's engines (the system's own, where the project brings its own). */
const olderNode = (process.env.PATH ?? "").split(delimiter).filter((dir) => !dir.includes("node_modules"))
  .map((dir) => join(dir, "node")).find((file) => {
    const version = spawnSync(file, ["--version"], { encoding: "utf8" }).stdout?.trim()
    return version !== undefined && /^v\d+\./.test(version) && Number(version.slice(1).split(".")[0]) < 26
  })

const rows = (file: string) => {
  const db = openDatabase(file, { readonly: true })
  try {
    return db.prepare("SELECT id, type, status, run FROM task_results ORDER BY submitted_at").all()
  } finally {
    db.close()
  }
}

describe("the sidecar process", () => {
  it.live("SIGTERM exits 0 leaving runs `running`; the next start restores readiness and resumes them", () =>
    Effect.gen(function*() {
      const folder = yield* commandsFolder("sidecar-main-", () => ({
        wait: { argv: ["node", "-e", "setInterval(() => {}, 1000)"] }
      }))
      const db = `${folder.dir}/data/sidecar.db` // the folder does not exist yet: the sidecar creates it
      const env = { ...folder.env, SIDECAR_DB: db }

      const first = yield* startSidecar(env)
      const startup = first.logs().find((l) => l.message === "database ready")
      expect(startup?.annotations.migrationsApplied).toEqual([
        "0001_create_task_results",
        "0002_add_run_column",
        "0003_add_result_column",
        "0004_adopt_go_sidecar",
        "0005_create_task_runs",
        "0006_index_task_filters",
        "0007_keep_past_runs_only",
        "0008_create_retention_grace",
        "0009_fewer_index_writes_per_task",
        "0010_lists_in_index_order"
      ])
      expect((yield* request(`${first.url}/v0/livez`)).status).toBe(200)
      expect((yield* request(`${first.url}/v0/healthz`)).status).toBe(503)
      expect((yield* request(`${first.url}/v0/tasks`, { method: "POST", body: { type: "mark-ready" } })).status)
        .toBe(201)
      yield* pollUntil(request(`${first.url}/v0/healthz`), (r) => r.status === 200)
      const submitted = yield* request(`${first.url}/v0/tasks`, {
        method: "POST",
        body: { id: ID, type: "run-command", params: { command: "wait" } }
      })
      expect(submitted).toEqual({ status: 201, json: { id: ID } })
      // Written to stdout before the answer to the socket; this process may still read the two in either order.
      const submitLog = yield* pollUntil(
        Effect.sync(() => first.logs().find((l) => l.message === "task submitted" && l.annotations.taskId === ID)),
        (line) => line !== undefined,
        "2 seconds"
      )
      expect(submitLog?.annotations).toMatchObject({ type: "run-command", run: 1 })

      expect(yield* first.stop("SIGTERM")).toBe(0)
      expect(rows(db)).toEqual([
        expect.objectContaining({ type: "mark-ready", status: "completed" }),
        { id: ID, type: "run-command", status: "running", run: 1 }
      ])

      const second = yield* startSidecar(env)
      // readiness comes back from the store before anything is submitted
      expect((yield* request(`${second.url}/v0/healthz`)).status).toBe(200)
      expect((yield* request(`${second.url}/v0/status`)).json).toEqual({ status: "Ready" })
      // the run resumes once the server listens, not before
      const logs = yield* pollUntil(Effect.sync(second.logs), (ls) => ls.some((l) => l.message === "task resumed"))
      const resumedAt = logs.findIndex((l) => l.message === "task resumed")
      expect(logs[resumedAt]?.annotations).toMatchObject({ taskId: ID, run: 1 })
      expect(logs.findIndex((l) => l.message.startsWith("Listening on"))).toBeLessThan(resumedAt)
      expect((yield* request(`${second.url}/v0/tasks/${ID}`)).json).toMatchObject({ status: "running", run: 1 })
      expect((yield* request(`${second.url}/v0/tasks/${ID}`, { method: "DELETE" })).status).toBe(204)
      expect(yield* second.stop("SIGINT")).toBe(0)
      expect(rows(db)).toHaveLength(1)
    }).pipe(Effect.scoped))

  it.live("a bad setting stops startup with one line naming it and a non-zero exit", () =>
    Effect.gen(function*() {
      const port = yield* runToExit({ SIDECAR_PORT: "abc", SIDECAR_DB: ":memory:" })
      expect(port.code).not.toBe(0)
      expect(port.stderr).toMatch(/^sidecar: cannot start: .*SIDECAR_PORT.*abc/)
      expect(port.stderr.trim().split("\n")).toHaveLength(1)
      const commands = yield* runToExit({ SIDECAR_COMMANDS: "/nonexistent/commands.json", SIDECAR_DB: ":memory:" })
      expect(commands.code).not.toBe(0)
      expect(commands.stderr).toMatch(/^sidecar: cannot start: SIDECAR_COMMANDS: cannot read/)
    }))

  it.skipIf(olderNode === undefined)(
    `on a node older than engines (${olderNode}), a start is refused with one line`,
    () => {
      const started = spawnSync(olderNode!, [sidecarMain], {
        env: { ...process.env, SIDECAR_DB: ":memory:" },
        encoding: "utf8"
      })
      expect(started.status).toBe(1)
      expect(started.stderr).toMatch(/^sidecar: needs Node\.js 26\.12\.1 or later, but runs on v\d+/)
      expect(started.stderr.trim().split("\n")).toHaveLength(1)
    }
  )

  // A start compiled the bundle before it ran it: about 80 ms here, of a 460 ms start
  // (docs/benchmarks/2026-12-07-notebook.md). It now runs from the code cache of a training start, which the build
  // makes. The CLI is in the bundle but neither compiled nor run until first imported; Swagger UI's page (1.9 MB) is
  // beside it, read when GET /docs first imports it. A module namespace of a package (`var Schema_exports = {}`) is
  // esbuild keeping all of that module: barrel imports are rewritten so that it keeps what is used.
  it.live("a start runs the bundle from its code cache; the CLI and Swagger UI's page stay unrun until imported", () =>
    Effect.gen(function*() {
      const fs = yield* Effect.promise(() => import("node:fs/promises"))
      const { createHash } = yield* Effect.promise(() => import("node:crypto"))
      const dist = (file: string) => new URL(`../../dist/${file}`, import.meta.url)
      const bundle = yield* Effect.promise(() => fs.readFile(dist("main.cjs")))
      const hash = createHash("sha256").update(bundle).digest("hex").slice(0, 16)
      expect(yield* Effect.promise(() => fs.readdir(dist("")))).toContain(`main.${hash}.codecache`)

      const sidecar = yield* startSidecar({ SIDECAR_DB: ":memory:" })
      expect((yield* request(`${sidecar.url}/v0/livez`)).status).toBe(200)
      expect(sidecar.stderr()).toBe("")
      const docs = yield* Effect.promise(() => fetch(`${sidecar.url}/docs`).then((res) => res.text()))
      expect(docs).toContain("swagger-ui-bundle.js")
      expect(yield* sidecar.stop()).toBe(0)

      // V8 flags that change its code: V8 refuses the cache; the start compiles from source, says so, and serves
      const otherFlags = yield* startSidecar({ SIDECAR_DB: ":memory:", NODE_OPTIONS: "--jitless" })
      expect((yield* request(`${otherFlags.url}/v0/livez`)).status).toBe(200)
      expect(otherFlags.stderr()).toMatch(/code cache .* was made by another node or with other V8 flags/)
      expect(yield* otherFlags.stop()).toBe(0)

      const text = bundle.toString("utf8")
      // httpApiSwagger: effect's module of Swagger UI's page, which effect/http-api imports on the first GET /docs
      const onImport = ["Cli", "Sidecar", "httpApiSwagger"]
      const wholeModules = [...text.matchAll(/^var (\w+)_exports = \{\}/gm)].map((m) => m[1])
      expect(wholeModules.sort()).toEqual(onImport)
      for (const module of onImport) expect(text).toMatch(new RegExp(`^var init_${module} = __esm\\(`, "m"))
      const swaggerUi = text.indexOf("\"swagger-ui.json\"")
      expect(text.lastIndexOf("var init_httpApiSwagger = __esm(", swaggerUi)).toBeGreaterThan(
        text.lastIndexOf("\n});\n", swaggerUi)
      )
    }).pipe(Effect.scoped))

  // scripts/bundle.mjs hands the bundle stand-ins for these: imported by @effect/platform-node, ws and prom-client,
  // used by nothing the server does
  it.live("TLS, HTTPS, web streams, readline, crypto and zlib are not loaded by a server that serves its API", () =>
    Effect.gen(function*() {
      const folder = yield* commandsFolder("sidecar-on-demand-", () => ({ hello: { argv: ["node", "-e", ""] } }))
      const preload = join(folder.dir, "report-modules.cjs")
      const watched = JSON.stringify(onDemandModules)
      writeFileSync(
        preload,
        `const { isMainThread } = require("node:worker_threads")\n` +
          `process.on("exit", () => isMainThread && process.stderr.write(JSON.stringify(${watched}` +
          `.filter((m) => process.moduleLoadList.includes("NativeModule " + m)))))`
      )
      const sidecar = yield* startSidecar({ ...folder.env, NODE_OPTIONS: `--require ${preload}` })
      for (const path of ["/v0/livez", "/v0/tasks", "/v0/openapi.json"]) {
        expect((yield* request(`${sidecar.url}${path}`)).status).toBe(200)
      }
      const metrics = yield* Effect.promise(() => fetch(`${sidecar.url}/v0/metrics`).then((res) => res.text()))
      expect(metrics).toContain("sidecar_http_requests_total")
      const body = { id: ID, type: "run-command", params: { command: "hello" } }
      expect((yield* request(`${sidecar.url}/v0/tasks`, { method: "POST", body })).status).toBe(201)
      yield* pollUntil(request(`${sidecar.url}/v0/tasks/${ID}`), (r) => r.json?.status === "completed")
      expect(yield* sidecar.stop()).toBe(0)
      expect(JSON.parse(sidecar.stderr())).toEqual([])
    }).pipe(Effect.scoped))
})
