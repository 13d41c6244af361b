// The sidecar as a child process, started from the bundle as the image starts it, and requests to it: through
// fetch, exactly as given with node:http, or as raw bytes on a socket.
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Deferred, Duration, Effect, FileSystem } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { writeFileSync } from "node:fs"
import * as Http from "node:http"
import * as Net from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { openDatabase } from "./sqlite.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
/** The node flags the image and `npm start` run it with, and the environment. */
export const deployedNodeFlags: ReadonlyArray<string> = ["--max-semi-space-size=8", "--max-old-space-size=256"]
export const deployedNodeEnv: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: "2" }
/** The sidecar's entry point, bundled by test/support/globalSetup.ts before the tests start. */
export const sidecarMain = fileURLToPath(new URL("../../dist/main.mjs", import.meta.url))

/**
 * A temp folder for one sidecar, removed with the scope: `commands(dir)` written as its commands file, and the
 * environment that starts a sidecar on them with its database in the folder.
 */
export const commandsFolder = (prefix: string, commands: (dir: string) => Record<string, unknown>) =>
  Effect.gen(function*() {
    const dir = yield* Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix }))
    const file = join(dir, "commands.json")
    writeFileSync(file, JSON.stringify(commands(dir)))
    const db = join(dir, "sidecar.db")
    return { dir, db, env: { SIDECAR_DB: db, SIDECAR_COMMANDS: file } }
  }).pipe(Effect.provide(NodeServices.layer))

export interface Sidecar {
  readonly url: string
  readonly child: ChildProcess
  /** Every JSON log line printed so far. */
  readonly logs: () => ReadonlyArray<{ message: string; annotations: Record<string, unknown> }>
  /** Everything printed on stderr so far. */
  readonly stderr: () => string
  /** Send `signal` and wait (bounded) for the exit code. */
  readonly stop: (signal?: NodeJS.Signals) => Effect.Effect<number | null>
}

/**
 * Start the real sidecar as its image does (`node dist/main.mjs`, no npm in between so signals reach it)
 * on 127.0.0.1 and a free port; wait until it listens. Killed with the scope if still running.
 */
export const startSidecar = (env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const child = spawn(process.execPath, [...deployedNodeFlags, sidecarMain], {
        cwd: root,
        env: { ...process.env, ...deployedNodeEnv, SIDECAR_HOST: "127.0.0.1", SIDECAR_PORT: "0", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const lines: Array<{ message: string; annotations: Record<string, unknown> }> = []
      const listening = yield* Deferred.make<string, Error>()
      const exited = yield* Deferred.make<number | null>()
      let buffer = ""
      let stderr = ""
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        buffer += chunk
        let newline: number
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline)
          buffer = buffer.slice(newline + 1)
          try {
            const parsed = JSON.parse(line)
            lines.push(parsed)
            const m = /^Listening on (http:\/\/\S+)$/.exec(parsed.message)
            if (m) Deferred.doneUnsafe(listening, Effect.succeed(m[1]!))
          } catch {
            // not a log line
          }
        }
      })
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk
      })
      child.once("exit", (code) => {
        Deferred.doneUnsafe(exited, Effect.succeed(code))
        Deferred.doneUnsafe(
          listening,
          Effect.fail(new Error(`sidecar exited with ${code} before listening: ${stderr}`))
        )
      })
      const url = yield* Deferred.await(listening).pipe(
        Effect.timeoutOrElse({
          duration: "30 seconds",
          orElse: () => Effect.fail(new Error(`sidecar did not listen: ${stderr}`))
        })
      )
      const stop = (signal: NodeJS.Signals = "SIGTERM") =>
        Effect.sync(() => child.exitCode === null && child.kill(signal)).pipe(
          Effect.andThen(Deferred.await(exited)),
          Effect.timeoutOrElse({
            duration: "20 seconds",
            orElse: () => Effect.fail(new Error("sidecar did not exit"))
          }),
          Effect.orDie
        )
      return { url, child, logs: () => lines, stderr: () => stderr, stop } satisfies Sidecar
    }),
    (sidecar) => Effect.sync(() => sidecar.child.exitCode === null && sidecar.child.kill("SIGKILL"))
  )

/** Run the sidecar's entry point to completion (for startup failures): exit code and stderr. */
export const runToExit = (env: Record<string, string>) =>
  Effect.callback<{ code: number | null; stderr: string }>((resume) => {
    const child = spawn(process.execPath, [...deployedNodeFlags, sidecarMain], {
      cwd: root,
      env: { ...process.env, ...deployedNodeEnv, SIDECAR_HOST: "127.0.0.1", SIDECAR_PORT: "0", ...env },
      stdio: ["ignore", "ignore", "pipe"]
    })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.once("exit", (code) => resume(Effect.succeed({ code, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  }).pipe(Effect.timeout("30 seconds"), Effect.orDie)

/** GET/POST/DELETE against a running sidecar with fetch; answers status and parsed JSON (if any). */
export const request = (url: string, init?: { method?: string; body?: unknown }) =>
  Effect.promise(async () => {
    const res = await fetch(url, {
      method: init?.method ?? "GET",
      ...(init?.body === undefined
        ? {}
        : { body: JSON.stringify(init.body), headers: { "content-type": "application/json" } })
    })
    const text = await res.text()
    return { status: res.status, json: text === "" ? undefined : JSON.parse(text) as any }
  })

/** Submit `body` to a running sidecar: POST /v0/tasks, as `request` answers it. */
export const post = (url: string, body: unknown) => request(`${url}/v0/tasks`, { method: "POST", body })

/**
 * GET a task of a running sidecar once its run has ended, or at the latest after `seconds` (then as it is): the
 * server holds the answer until then (`?wait`). A task that is gone answers 404 at once.
 */
export const settled = (url: string, id: string, seconds = 15) => request(`${url}/v0/tasks/${id}?wait=${seconds}`)

/** An answer read to its end, or the error code of a connection that ended without one. */
export type Exchange =
  | {
    readonly _tag: "Answer"
    readonly status: number
    readonly headers: Http.IncomingHttpHeaders
    readonly body: string
  }
  | { readonly _tag: "Failed"; readonly code: string }

const errorCode = (error: Error) => (error as NodeJS.ErrnoException).code ?? error.message

/**
 * Send one request exactly as given, with node:http on a fresh connection (`Connection: close`, the path not
 * normalised as fetch would): `body` goes with a Content-Length, `chunks` with chunked transfer-encoding, written as
 * the socket takes them and no longer once an answer has come. A request with no answer in `within` fails the test.
 */
export const send = (
  url: string,
  request: {
    readonly method: string
    readonly path: string
    readonly headers?: Record<string, string>
    readonly body?: Uint8Array
    readonly chunks?: Iterable<Uint8Array>
  },
  within: Duration.Input = "15 seconds"
) =>
  Effect.callback<Exchange>((resume) => {
    const { hostname, port } = new URL(url)
    let settled = false
    const settle = (exchange: Exchange) => {
      if (settled) return
      settled = true
      resume(Effect.succeed(exchange))
    }
    const req = Http.request({
      host: hostname,
      port,
      method: request.method,
      path: request.path,
      headers: request.headers ?? {},
      agent: false
    })
    req.on("response", (res) => {
      const parts: Array<Buffer> = []
      res.on("data", (part: Buffer) => parts.push(part))
      res.on("end", () => {
        const body = Buffer.concat(parts).toString()
        settle({ _tag: "Answer", status: res.statusCode ?? 0, headers: res.headers, body })
      })
      res.on("error", (error) => settle({ _tag: "Failed", code: errorCode(error) }))
    })
    req.on("error", (error) => settle({ _tag: "Failed", code: errorCode(error) }))
    if (request.body !== undefined) {
      req.setHeader("content-length", request.body.length)
      req.end(request.body)
    } else if (request.chunks !== undefined) {
      const chunks = request.chunks[Symbol.iterator]()
      const pump = () => {
        for (let next = chunks.next(); !next.done && req.writable && !settled; next = chunks.next()) {
          if (!req.write(next.value)) {
            req.once("drain", pump)
            return
          }
        }
        req.end()
      }
      pump()
    } else {
      req.end()
    }
    return Effect.sync(() => req.destroy())
  }).pipe(
    Effect.timeoutOrElse({
      duration: within,
      orElse: () => Effect.fail(new Error(`no answer to ${request.method} ${request.path.slice(0, 200)} in time`))
    }),
    Effect.orDie
  )

/** Whether `text` holds a whole HTTP response (headers, then as many bytes as its Content-Length says). */
const wholeResponse = (text: string) => {
  const end = text.indexOf("\r\n\r\n")
  if (end < 0) return false
  const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))
  return length !== null && text.length - end - 4 >= Number(length[1])
}

/**
 * Write raw bytes on a fresh TCP connection and read until the server closes it, or, with `untilAnswered`, until
 * one whole response has come (a client that keeps its connection, as curl does, is done then); `halfClose` ends
 * the writing side at once (a client giving up mid-request). Answers everything the server wrote, as latin1 text.
 */
export const sendRaw = (
  url: string,
  bytes: string | Uint8Array,
  options: {
    readonly halfClose?: boolean
    readonly untilAnswered?: boolean
    readonly within?: Duration.Input
  } = {}
) =>
  Effect.callback<{ readonly text: string; readonly code?: string }>((resume) => {
    const { hostname, port } = new URL(url)
    const parts: Array<Buffer> = []
    let code: string | undefined
    const socket = Net.connect(Number(port), hostname)
    socket.on("data", (part: Buffer) => {
      parts.push(part)
      if (options.untilAnswered === true && wholeResponse(Buffer.concat(parts).toString("latin1"))) socket.destroy()
    })
    socket.on("error", (error) => (code = errorCode(error)))
    socket.on("close", () => {
      const text = Buffer.concat(parts).toString("latin1")
      resume(Effect.succeed(code === undefined ? { text } : { text, code }))
    })
    if (options.halfClose === true) socket.end(bytes)
    else socket.write(bytes)
    return Effect.sync(() => socket.destroy())
  }).pipe(
    Effect.timeoutOrElse({
      duration: options.within ?? "15 seconds",
      orElse: () => Effect.fail(new Error("the server kept the connection open"))
    }),
    Effect.orDie
  )

/** Every task row of a sidecar's database file, read through a read-only connection of its own (WAL lets it in). */
export const taskRows = (file: string) => {
  const conn = openDatabase(file, { readonly: true })
  try {
    return conn.prepare("SELECT id, status, run FROM task_results").all() as Array<
      { id: string; status: string; run: number }
    >
  } finally {
    conn.close()
  }
}
