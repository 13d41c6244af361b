/**
 * THE YARDSTICK, NOT THE PRODUCT. A deliberately minimal server that does what the sidecar does for the
 * benchmarked requests, with nothing between node:http and one node:sqlite connection: what this machine
 * allows for these durable semantics. The benchmark compares the sidecar against it in the same run. It is never
 * shipped; nothing in src/ imports it.
 *
 * Same table (schema.ts replays migrations/), same pragmas (WAL, synchronous=NORMAL, busy_timeout 5 s), same
 * environment variables and the same "Listening on" log line. Semantics kept from the README:
 * - the row is committed before the answer is sent;
 * - new id: insert `running`, run 1, 201; running or completed: 202; failed: run + 1, back to running, 201;
 * - the no-op run's completion is written after the answer, only if the row still belongs to that run;
 * - rows left `running` are resumed at startup, before listening, with their run unchanged.
 * Only the no-op task type exists. Submits need no semaphore: each one is a single synchronous turn of the event
 * loop, so no two can interleave.
 */
import { randomUUID } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { DatabaseSync } from "node:sqlite"
import { columns, createSchema, noopType, type TaskRow } from "../schema.js"

const port = Number(process.env["SIDECAR_PORT"] ?? "7777")
const host = process.env["SIDECAR_HOST"] ?? "0.0.0.0"
const file = process.env["SIDECAR_DB"] ?? "./data/sidecar.db"
const maxBodyBytes = 1024 * 1024
const uuid = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

const db = new DatabaseSync(file, { timeout: 5000 })
db.exec("PRAGMA journal_mode = WAL")
db.exec("PRAGMA synchronous = NORMAL")
createSchema(db)

const rows = <Params extends Array<string>>(sql: string) => {
  const statement = db.prepare(sql)
  return {
    get: (...params: Params) => statement.get(...params) as unknown as TaskRow | undefined,
    all: (...params: Params) => statement.all(...params) as unknown as Array<TaskRow>
  }
}
const selectOne = rows<[string]>(`SELECT ${columns} FROM task_results WHERE id = ?`)
const selectNewest = rows<[]>(`SELECT ${columns} FROM task_results ORDER BY submitted_at DESC, rowid DESC LIMIT 100`)
const selectRunning = rows<[]>(
  `SELECT ${columns} FROM task_results WHERE status = 'running' ORDER BY submitted_at, rowid`
)
// The same upsert as the sidecar's Store.save: a re-run replaces every column.
const save = db.prepare(
  `INSERT INTO task_results (${columns}) VALUES (?, ?, 'running', ?, ?, '', NULL, ?, NULL)
   ON CONFLICT (id) DO UPDATE SET type = excluded.type, status = excluded.status, run = excluded.run,
     params = excluded.params, error = excluded.error, result = excluded.result,
     submitted_at = excluded.submitted_at, completed_at = excluded.completed_at`
)
const complete = db.prepare(
  `UPDATE task_results SET status = ?, error = ?, result = NULL, completed_at = ?
   WHERE id = ? AND run = ? AND status = 'running'`
)
const ping = db.prepare("SELECT count(*) FROM (SELECT 1 FROM task_results LIMIT 1)")

const isEmptyObject = (value: unknown) =>
  typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 0
const noParams = (params: unknown) => params === undefined || params === null || isEmptyObject(params)
const toJson = (
  value: unknown
) => (value === undefined || value === null || isEmptyObject(value) ? null : JSON.stringify(value))
const fromJson = (text: string | null): unknown => {
  if (text === null || text === "") return undefined
  try {
    const value: unknown = JSON.parse(text)
    return value === null || isEmptyObject(value) ? undefined : value
  } catch {
    return text
  }
}

/** The wire form of a task: empty optional keys left out, as the sidecar does. */
const toWire = (row: TaskRow) => {
  const params = fromJson(row.params)
  const result = fromJson(row.result)
  return {
    id: row.id,
    type: row.type,
    status: row.status,
    run: row.run,
    ...(params === undefined ? {} : { params }),
    ...(row.error === "" || row.error === null ? {} : { error: row.error }),
    ...(result === undefined ? {} : { result }),
    submittedAt: row.submitted_at,
    ...(row.completed_at === null || row.completed_at === "" ? {} : { completedAt: row.completed_at })
  }
}

const send = (res: ServerResponse, status: number, body?: unknown) => {
  if (body === undefined) {
    res.writeHead(status, { "content-length": 0 }).end()
    return
  }
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text)
}

/** The no-op run: its completion is written after the answer, and only if the row is still on that run. */
const execute = (id: string, run: number) =>
  setImmediate(() => {
    complete.run("completed", "", new Date().toISOString(), id, run)
  })

const submit = (res: ServerResponse, text: string) => {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (e) {
    return send(res, 400, { error: `invalid request body: ${String(e)}` })
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return send(res, 400, { error: "expected an object" })
  }
  const { id: given, params, type } = body as Record<string, unknown>
  if (given !== undefined && given !== null && typeof given !== "string") {
    return send(res, 400, { error: "id: expected a string" })
  }
  if (typeof type !== "string") return send(res, 400, { error: "type: expected a string" })
  const id = given === undefined || given === null || given === "" ? randomUUID() : given
  if (!uuid.test(id)) return send(res, 400, { error: `invalid task id: ${id}` })
  if (type !== noopType) return send(res, 400, { error: `unknown task type: ${type}` })
  if (!noParams(params)) return send(res, 400, { error: "this task type takes no params" })
  const existing = selectOne.get(id)
  if (existing !== undefined && existing.status !== "failed") return send(res, 202, { id })
  const run = existing === undefined ? 1 : existing.run + 1
  save.run(id, type, run, toJson(params), new Date().toISOString())
  send(res, 201, { id })
  execute(id, run)
}

const readBody = (req: IncomingMessage, res: ServerResponse, then: (res: ServerResponse, text: string) => void) => {
  if (Number(req.headers["content-length"] ?? 0) > maxBodyBytes) {
    return send(res, 413, { error: `request body too large (limit ${maxBodyBytes} bytes)` })
  }
  const chunks: Array<Buffer> = []
  let size = 0
  req.on("data", (chunk: Buffer) => {
    size += chunk.length
    if (size > maxBodyBytes) {
      send(res, 413, { error: `request body too large (limit ${maxBodyBytes} bytes)` })
      req.destroy()
    } else {
      chunks.push(chunk)
    }
  })
  req.on("end", () => {
    if (size <= maxBodyBytes) then(res, Buffer.concat(chunks).toString("utf8"))
  })
}

const server = createServer((req, res) => {
  const url = req.url ?? "/"
  const path = url.includes("?") ? url.slice(0, url.indexOf("?")) : url
  try {
    if (req.method === "POST" && path === "/v0/tasks") return readBody(req, res, submit)
    if (req.method === "GET") {
      if (path === "/v0/livez") {
        ping.get()
        return send(res, 200)
      }
      if (path === "/v0/tasks") return send(res, 200, selectNewest.all().map(toWire))
      if (path.startsWith("/v0/tasks/")) {
        const id = decodeURIComponent(path.slice("/v0/tasks/".length))
        const row = selectOne.get(id)
        return row === undefined ? send(res, 404, { error: `task not found: ${id}` }) : send(res, 200, toWire(row))
      }
    }
    send(res, 404, { error: `no route for ${req.method} ${url}` })
  } catch (e) {
    send(res, 503, { error: `database: ${String(e)}` })
  }
})

// Crash recovery before listening, as the sidecar does: same run, since finishing an interrupted run is not a new one.
const running = selectRunning.all()
for (const row of running) {
  if (row.type === noopType) execute(row.id, row.run)
  else {
    complete.run(
      "failed",
      `no handler registered for task type: ${row.type}`,
      new Date().toISOString(),
      row.id,
      row.run
    )
  }
}

server.listen(port, host, () => {
  const address = server.address()
  const bound = typeof address === "object" && address !== null ? address.port : port
  process.stdout.write(
    `${JSON.stringify({ message: `Listening on http://${host}:${bound}`, rehydrated: running.length })}\n`
  )
})

let stopping = false
const stop = () => {
  if (stopping) process.exit(1)
  stopping = true
  server.close(() => {
    db.close()
    process.exit(0)
  })
  server.closeIdleConnections()
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
