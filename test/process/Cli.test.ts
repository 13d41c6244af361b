import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { commandsFolder, request, sidecarMain, startSidecar } from "../support/sidecar.js"
import { closedPort } from "../support/system.js"
import { pollUntil } from "../support/wait.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const bin = fileURLToPath(new URL("../../bin/sidecar.mjs", import.meta.url))

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Run the CLI to completion: the compiled entry point by default, or the `bin` a user runs (its shebang), which runs
 * the same bundle.
 */
const run = (command: ReadonlyArray<string>) => (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.callback<Run>((resume) => {
    const { SIDECAR_URL: _, ...inherited } = process.env
    const child = spawn(command[0]!, [...command.slice(1), ...args], {
      cwd: root,
      env: { ...inherited, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.once("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  }).pipe(Effect.timeout("30 seconds"), Effect.orDie)
const sidecar = run([process.execPath, sidecarMain])
const viaBin = run([bin])

/**
 * A failure is reported as one line on stderr, never a stack trace or a JSON dump; waiting may have printed
 * progress lines ("<id> running ...") before it.
 */
const expectReason = (run: Run, reason: RegExp) => {
  const lines = run.stderr.trimEnd().split("\n")
  expect(lines.at(-1)).toMatch(reason)
  for (const line of lines.slice(0, -1)) expect(line).toMatch(/^\S+ running \S+ \(/)
  expect(run.stderr).not.toMatch(/^\s+at |_tag|\{"/m)
}

/** Each CLI start costs a second or so: give a test with several of them room on a busy machine. */
const slow = 60_000

/** One real sidecar for the whole file, with a `fail` command that exits 3. */
class Server extends Context.Service<Server, { readonly url: string }>()("test/Cli/Server") {}
const ServerLive = Layer.effect(
  Server,
  Effect.gen(function*() {
    const { env } = yield* commandsFolder("sidecar-cli-", () => ({
      fail: { argv: [process.execPath, "-e", "process.stderr.write('disk full'); process.exit(3)"] }
    }))
    const { url } = yield* startSidecar(env)
    return { url }
  })
)

const ID = "3f0c2a9e-7b1d-4c5e-8a6f-9d2b1c0e4f7a"

/** Submit over HTTP (no CLI start) and wait until the task has ended: its id. */
const submitted = (url: string, body: unknown) =>
  Effect.gen(function*() {
    const { json } = yield* request(`${url}/v0/tasks`, { method: "POST", body })
    yield* pollUntil(request(`${url}/v0/tasks/${json.id}`), (r) => r.json?.status !== "running")
    return json.id as string
  })

describe("sidecar CLI", () => {
  // Live services: the server, the CLI and their timeouts run on the real clock.
  layer(ServerLive, { timeout: "30 seconds", excludeTestServices: true })((it) => {
    it.effect("--help everywhere; a usage error exits 2 with only the CLI's message", () =>
      Effect.gen(function*() {
        const [help, submitHelp, usage] = yield* Effect.all([
          viaBin(["--help"]), // the executable package.json names, as `npx sidecar` runs it
          sidecar(["task", "submit", "--help"]),
          sidecar(["task", "submit", "--params", "{"])
        ], { concurrency: 3 })
        expect(help.code).toBe(0)
        for (const command of ["serve", "task submit", "task get", "task list", "task delete", "task wait", "probe"]) {
          expect(help.stdout).toContain(command)
        }
        expect(submitHelp.code).toBe(0)
        expect(submitHelp.stdout).toContain("sidecar task submit [flags]")
        expect(submitHelp.stdout).toMatch(/--type[\s\S]*--params[\s\S]*--wait[\s\S]*--url[\s\S]*SIDECAR_URL/)
        // not a terminal: no colour codes
        for (const run of [help, submitHelp, usage]) expect(run.stdout + run.stderr).not.toContain("\u001b[")
        expect(usage).toMatchObject({ code: 2, stdout: "" })
        expect(usage.stderr).toMatch(/Expected to find option: '--type'/)
        expect(usage.stderr).toMatch(/--params is not JSON/)
        expect(usage.stderr).not.toMatch(/ValidationError|_tag|^\s+at /m)
      }), slow)

    it.effect("an unreachable sidecar: exit 4 and one line saying so", () =>
      Effect.gen(function*() {
        const port = yield* closedPort
        const run = yield* sidecar(["probe", "--url", `http://127.0.0.1:${port}`])
        expect(run.code).toBe(4)
        expect(run.stdout).toBe("")
        expectReason(run, new RegExp(`^sidecar: cannot reach http://127.0.0.1:${port}: .*ECONNREFUSED`))
      }), slow)

    it.effect(
      "submit prints the id, --json {id, outcome}; a resubmit is deduplicated; wait reports the end",
      () =>
        Effect.gen(function*() {
          const { url } = yield* Server
          const submitted = yield* sidecar(["task", "submit", "--url", url, "--type", "mark-ready", "--id", ID])
          expect(submitted).toMatchObject({ code: 0, stdout: `started ${ID}\n` })
          const [again, waited] = yield* Effect.all([
            sidecar(["task", "submit", "--url", url, "--type", "mark-ready", "--id", ID, "--json"]),
            sidecar(["task", "wait", ID, "--url", url])
          ], { concurrency: 2 })
          expect(again.code).toBe(0)
          expect(JSON.parse(again.stdout)).toEqual({ id: ID, outcome: "deduplicated" })
          expect(waited.code).toBe(0)
          expect(waited.stdout).toMatch(
            new RegExp(`^${ID} completed after \\d+(ms|\\.\\ds) \\(mark-ready, run 1\\)\\n$`)
          )
        }),
      slow
    )

    it.effect(
      "get and list, as text and as the API's JSON; SIDECAR_URL when there is no --url",
      () =>
        Effect.gen(function*() {
          const { url } = yield* Server
          const id = yield* submitted(url, { type: "mark-not-ready", params: {} })
          const [got, table, listed] = yield* Effect.all([
            sidecar(["task", "get", id, "--url", url, "--json"]),
            sidecar(["task", "list"], { SIDECAR_URL: url }),
            sidecar(["task", "list", "--json"], { SIDECAR_URL: url })
          ], { concurrency: 3 })
          expect(got.code).toBe(0)
          expect(JSON.parse(got.stdout)).toEqual((yield* request(`${url}/v0/tasks/${id}`)).json)
          expect(table.code).toBe(0)
          expect(table.stdout).toMatch(/^ID +TYPE +STATUS +RUN +SUBMITTED +TOOK\n/)
          expect(table.stdout).toMatch(new RegExp(`^${id} +mark-not-ready +completed +1 +\\S+Z +\\S+$`, "m"))
          expect(listed.code).toBe(0)
          expect(JSON.parse(listed.stdout)).toEqual((yield* request(`${url}/v0/tasks`)).json)
        }),
      slow
    )

    it.effect(
      "list filters by --status, --type and --limit; runs shows the history; a bad --limit exits 2",
      () =>
        Effect.gen(function*() {
          const { url } = yield* Server
          const failing = { type: "run-command", params: { command: "fail" } }
          const id = yield* submitted(url, failing)
          yield* pollUntil(request(`${url}/v0/tasks/${id}`), (r) => r.json.status === "failed")
          yield* request(`${url}/v0/tasks`, { method: "POST", body: { id, ...failing } })
          yield* pollUntil(request(`${url}/v0/tasks/${id}`), (r) => r.json.status === "failed" && r.json.run === 2)
          const [failed, limited, history, bad] = yield* Effect.all([
            sidecar(["task", "list", "--status", "failed", "--type", "run-command", "--json", "--url", url]),
            sidecar(["task", "list", "--limit", "1", "--json", "--url", url]),
            sidecar(["task", "runs", id, "--url", url]),
            sidecar(["task", "list", "--limit", "0", "--url", url])
          ], { concurrency: 4 })
          expect(JSON.parse(failed.stdout)).toEqual(
            (yield* request(`${url}/v0/tasks?status=failed&type=run-command`)).json
          )
          expect(JSON.parse(failed.stdout).every((t: any) => t.status === "failed")).toBe(true)
          expect(JSON.parse(limited.stdout)).toHaveLength(1)
          expect(history.code).toBe(0)
          expect(history.stdout).toMatch(/^RUN +STATUS +STARTED BY +RESUMES +STARTED +TOOK +ERROR\n/)
          expect(history.stdout).toMatch(/^1 +failed +submit +0 +\S+Z +\S+ +run-command: fail: exited with code 3/m)
          expect(history.stdout).toMatch(/^2 +failed +resubmit +0 /m)
          expect(bad).toMatchObject({ code: 2, stdout: "" })
          expect(bad.stderr).toMatch(/--limit must be an integer from 1 to 1000/)
        }),
      slow
    )

    it.effect("delete prints what it deleted; a 404 prints the server's error, exit 3", () =>
      Effect.gen(function*() {
        const { url } = yield* Server
        const id = yield* submitted(url, { type: "mark-not-ready" })
        const deleted = yield* sidecar(["task", "delete", id, "--url", url])
        expect(deleted).toMatchObject({ code: 0, stdout: `deleted ${id}\n` })
        const gone = yield* sidecar(["task", "get", id, "--url", url])
        expect(gone).toMatchObject({ code: 3, stdout: "" })
        expectReason(gone, new RegExp(`^sidecar: task ${id} not found$`))
      }), slow)

    it.effect(
      "submit --wait: exit 0 when the task completes; exit 1 with its error shown when it fails",
      () =>
        Effect.gen(function*() {
          const { url } = yield* Server
          const [ok, failed] = yield* Effect.all([
            sidecar(["task", "submit", "--url", url, "--type", "mark-not-ready", "--wait", "--json"]),
            sidecar([
              "task",
              "submit",
              "--url",
              url,
              "--type",
              "run-command",
              "--params",
              `{"command":"fail"}`,
              "--wait"
            ])
          ], { concurrency: 2 })
          expect(ok.code).toBe(0)
          expect(JSON.parse(ok.stdout)).toMatchObject({ type: "mark-not-ready", status: "completed", run: 1 })

          expect(failed.code).toBe(1)
          const id = /^started (\S+)$/m.exec(failed.stdout)?.[1]
          expect(failed.stdout).toMatch(new RegExp(`^${id} failed after .*\\(run-command, run 1\\)$`, "m"))
          expect(failed.stdout).toMatch(/^ {2}error +run-command: .*exit.* 3.*disk full/m)
          expectReason(failed, new RegExp(`^sidecar: task ${id} failed$`))
        }),
      slow
    )

    it.effect("the server's 400 is printed as its error string, exit 3", () =>
      Effect.gen(function*() {
        const { url } = yield* Server
        const [badId, badType] = yield* Effect.all([
          sidecar(["task", "submit", "--url", url, "--type", "mark-ready", "--id", "not-a-uuid"]),
          sidecar(["task", "submit", "--url", url, "--type", "launch-missiles", "--json"])
        ], { concurrency: 2 })
        expect(badId).toMatchObject({ code: 3, stdout: "" })
        expectReason(badId, /^sidecar: invalid task id "not-a-uuid": must be a UUID/)
        expect(badType).toMatchObject({ code: 3, stdout: "" })
        expectReason(badType, /^sidecar: unknown task type: launch-missiles$/)
      }), slow)

    it.effect("probe: healthz, livez and status in one view; exit 1 while not ready", () =>
      Effect.gen(function*() {
        const { url } = yield* Server
        const readiness = (type: string, status: string) =>
          request(`${url}/v0/tasks`, { method: "POST", body: { type } }).pipe(
            Effect.andThen(pollUntil(request(`${url}/v0/status`), (r) => r.json?.status === status))
          )
        yield* readiness("mark-not-ready", "Initializing")
        const notReady = yield* sidecar(["probe", "--url", url])
        expect(notReady.code).toBe(1)
        expect(notReady.stdout).toMatch(/^healthz +503 not ready$/m)
        expect(notReady.stdout).toMatch(/^livez +200 live$/m)
        expect(notReady.stdout).toMatch(/^status +Initializing$/m)
        expectReason(notReady, /^sidecar: not ready$/)

        yield* readiness("mark-ready", "Ready")
        const ready = yield* sidecar(["probe", "--json"], { SIDECAR_URL: url })
        expect(ready).toMatchObject({ code: 0, stderr: "" })
        expect(JSON.parse(ready.stdout)).toEqual({ url, ready: true, live: true, status: "Ready" })
      }), slow)
  })
})
