import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Effect } from "effect"
import { pollUntil, request, runToExit, startSidecar } from "./sidecar.js"

const ID = "5e1f7b2a-9c3d-4e8f-a1b2-c3d4e5f60718"

const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "sidecar-main-" }))
  .pipe(Effect.provide(NodeContext.layer))

const rows = (file: string) => {
  const db = new Database(file, { readonly: true })
  try {
    return db.prepare("SELECT id, type, status, run FROM task_results ORDER BY submitted_at").all()
  } finally {
    db.close()
  }
}

describe("the sidecar process", () => {
  it.live("SIGTERM exits 0 leaving runs `running`; the next start restores readiness and resumes them", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const db = `${dir}/data/sidecar.db` // the folder does not exist yet: the sidecar creates it
      const commands = `${dir}/commands.json`
      yield* Effect.promise(() =>
        import("node:fs/promises").then((fs) =>
          fs.writeFile(commands, JSON.stringify({ wait: { argv: ["node", "-e", "setInterval(() => {}, 1000)"] } }))
        )
      )
      const env = { SIDECAR_DB: db, SIDECAR_COMMANDS: commands }

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
        "0008_create_retention_grace"
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
      const submitLog = first.logs().find((l) => l.message === "task submitted" && l.annotations.taskId === ID)
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

  // Swagger UI is 1.9 MB of JavaScript; parsing it on every start cost about 0.1 s here before /docs loaded it alone.
  // A module namespace of a package (`var Schema_exports = {}`) is esbuild keeping all of that module: the bundle
  // rewrites barrel imports so that it keeps what is used (0.7 MB less, about 90 ms less to start, measured).
  it.live("a start loads the server's code only: no whole package module, the Swagger UI page on the first GET /docs, the CLI never", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const loaded = `${dir}/loaded.txt`
      const fs = yield* Effect.promise(() => import("node:fs/promises"))
      // a module loader hook in the child, writing down every file Node loads
      yield* Effect.promise(() =>
        Promise.all([
          fs.writeFile(
            `${dir}/hooks.mjs`,
            `import { appendFileSync } from "node:fs"
export const load = (url, context, next) => { appendFileSync(${JSON.stringify(loaded)}, url + "\\n"); return next(url, context) }`
          ),
          fs.writeFile(
            `${dir}/register.mjs`,
            `import { register } from "node:module"; register(${JSON.stringify(`file://${dir}/hooks.mjs`)})`
          )
        ])
      )
      const bundleFiles = (text: string) =>
        text.split("\n").filter((url) => url.includes("/dist/")).map((url) => url.replace(/^.*\/dist\//, ""))
      const swaggerUi = (files: ReadonlyArray<string>) =>
        Effect.promise(() =>
          Promise.all(files.map((file) => fs.readFile(new URL(`../dist/${file}`, import.meta.url), "utf8")))
        ).pipe(Effect.map((texts) => texts.some((text) => text.includes("swagger-ui-bundle.js"))))

      const sidecar = yield* startSidecar({ SIDECAR_DB: ":memory:", NODE_OPTIONS: `--import=file://${dir}/register.mjs` })
      expect((yield* request(`${sidecar.url}/v0/livez`)).status).toBe(200)
      const atStart = bundleFiles(yield* Effect.promise(() => fs.readFile(loaded, "utf8")))
      expect(atStart).toContain("main.mjs")
      expect(atStart.some((file) => file.startsWith("Sidecar-")), atStart.join()).toBe(true)
      expect(atStart.some((file) => file.startsWith("Cli-")), atStart.join()).toBe(false)
      expect(yield* swaggerUi(atStart)).toBe(false)
      const wholeModules = yield* Effect.promise(() =>
        Promise.all(atStart.map((file) => fs.readFile(new URL(`../dist/${file}`, import.meta.url), "utf8")))
      ).pipe(Effect.map((texts) => texts.flatMap((text) => [...text.matchAll(/^var ([A-Z]\w*)_exports = \{\}/gm)])))
      expect(wholeModules.map((m) => m[1])).toEqual([])

      const docs = yield* Effect.promise(() => fetch(`${sidecar.url}/docs`).then((res) => res.status))
      expect(docs).toBe(200)
      const afterDocs = bundleFiles(yield* Effect.promise(() => fs.readFile(loaded, "utf8")))
      expect(yield* swaggerUi(afterDocs)).toBe(true)
      expect(yield* sidecar.stop()).toBe(0)
    }).pipe(Effect.scoped))
})
