// The volume under the database fills up or turns read-only while clients submit and runs complete, then recovers:
// every answer is 201, 202 or 503 with a JSON error; submits are accepted again soon after, with no restart; every
// task answered 201 is there and ends, in this process and the next. Only the HTTP API and the file system are used,
// so the guarantee is checked whatever SQLite driver the sidecar runs on.
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref } from "effect"
import { closeSync, existsSync, openSync, statfsSync, unlinkSync, writeSync } from "node:fs"
import * as Http from "node:http"
import { join } from "node:path"
import { request, settled, type Sidecar, startSidecar } from "../support/sidecar.js"
import { tmpfs, toggleReadOnlyVolume } from "../support/system.js"
import { pollUntil } from "../support/wait.js"

/**
 * Fill the volume at `dir` with one file, up to `left` bytes short of full: what the database then appends meets a
 * full volume of its own accord, in the middle of whatever it writes. Answers how to free the space again.
 */
const fillUp = (dir: string, left: number) => {
  const filler = join(dir, "filler")
  const fd = openSync(filler, "w")
  const block = Buffer.alloc(4096)
  try {
    while (statfsSync(dir).bavail * statfsSync(dir).bsize > left + block.length) writeSync(fd, block)
  } catch {
    // ENOSPC: the database took the rest meanwhile
  } finally {
    closeSync(fd)
  }
  return () => unlinkSync(filler)
}

/** An HTTP server that answers 503 until `open`, then 200: a latch the await-http tasks wait on. */
const gate = Effect.acquireRelease(
  Effect.callback<{ url: string; open: () => void; server: Http.Server }>((resume) => {
    let isOpen = false
    const server = Http.createServer((_req, res) => {
      res.statusCode = isOpen ? 200 : 503
      res.end()
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      resume(Effect.succeed({ url: `http://127.0.0.1:${port}/`, open: () => (isOpen = true), server }))
    })
  }),
  ({ server }) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
)

interface Answer {
  readonly status: number
  readonly json: any
}

const submit = (url: string, body: unknown) =>
  request(`${url}/v0/tasks`, { method: "POST", body }).pipe(
    Effect.map((r): Answer => r),
    Effect.catchDefect((e) => Effect.succeed<Answer>({ status: 0, json: String(e) }))
  )

/**
 * `clients` concurrent clients submitting new tasks one after another until `stop`: most are mark-not-ready (done at
 * once), every fourth await-http on `gateUrl` (done once the gate opens). Every answer is kept, with its task's id.
 */
const load = (url: string, gateUrl: string, clients: number, stop: Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    const answers = yield* Ref.make<Array<Answer & { id: string; type: string }>>([])
    let n = 0
    const client = Effect.gen(function*() {
      while (!(yield* Deferred.isDone(stop))) {
        const id = crypto.randomUUID()
        const body = n++ % 4 === 0
          ? { id, type: "await-http", params: { url: gateUrl, intervalSeconds: 0.05, timeoutSeconds: 300 } }
          : { id, type: "mark-not-ready" }
        const answer = yield* submit(url, body)
        yield* Ref.update(answers, (all) => [...all, { ...answer, id, type: body.type }])
      }
    })
    const fiber = yield* Effect.forkChild(
      Effect.all(Array.from({ length: clients }, () => client), { concurrency: "unbounded" })
    )
    return { answers, fiber }
  })

const count = (answers: ReadonlyArray<Answer>, status: number) => answers.filter((a) => a.status === status).length

/** Of `ids`, those not found completed or failed (each waited for up to 10 s), with what was found. */
const notEnded = (url: string, ids: ReadonlyArray<string>) =>
  Effect.map(
    Effect.forEach(
      ids,
      (id) => Effect.map(settled(url, id, 10), (r) => ({ id, code: r.status, status: r.json?.status })),
      { concurrency: 16 }
    ),
    (found) => found.filter((s) => s.code !== 200 || (s.status !== "completed" && s.status !== "failed"))
  )

/**
 * The scenario both faults share: load, the fault while the load goes on and held runs complete, recovery, checks,
 * a restart, checks again.
 */
const underFault = (
  dir: string,
  clients: number,
  fault: { readonly enter: () => void; readonly leave: () => void; readonly reason: string }
) =>
  Effect.gen(function*() {
    const env = { SIDECAR_DB: join(dir, "sidecar.db"), SIDECAR_RETENTION_HOURS: "0" }
    const { open, url: gateUrl } = yield* gate
    const sidecar: Sidecar = yield* startSidecar(env)
    const stop = yield* Deferred.make<void>()
    const { answers, fiber } = yield* load(sidecar.url, gateUrl, clients, stop)

    const accepted = () => Effect.map(Ref.get(answers), (all) => count(all, 201))
    yield* pollUntil(accepted(), (n) => n >= 150, "30 seconds").pipe(Effect.orDie)
    fault.enter()
    // under the fault: submits refused with 503 and a JSON error, while the held runs end and must write that
    const refusedFrom = count(yield* Ref.get(answers), 503)
    yield* pollUntil(Ref.get(answers), (all) => count(all, 503) >= refusedFrom + 200, "30 seconds").pipe(Effect.orDie)
    open()
    const refusedBefore = count(yield* Ref.get(answers), 503)
    yield* pollUntil(Ref.get(answers), (all) => count(all, 503) >= refusedBefore + 200, "30 seconds").pipe(Effect.orDie)
    // the held runs have ended, but their outcomes wait for the volume: their rows stay running
    const held = (yield* Ref.get(answers)).filter((a) => a.status === 201 && a.type === "await-http")
    const heldNow = yield* Effect.forEach(held, (a) => request(`${sidecar.url}/v0/tasks/${a.id}`), { concurrency: 8 })
    expect(heldNow.every((r) => r.status === 200 && r.json.status === "running")).toBe(true)
    // liveness stays up: restarting the container would not free the volume
    expect((yield* request(`${sidecar.url}/v0/livez`)).status).toBe(200)
    const metrics = yield* Effect.promise(() => fetch(`${sidecar.url}/v0/metrics`).then((r) => r.text()))
    expect(metrics).toMatch(new RegExp(`sidecar_store_writes_refused_total\\{reason="${fault.reason}"\\} [1-9]`))

    fault.leave()
    const healed = Date.now()
    yield* pollUntil(
      Effect.map(Ref.get(answers), (all) => all.slice(-8).some((a) => a.status === 201)),
      (ok) => ok,
      "2 seconds"
    ).pipe(Effect.orDie)
    const recoveredInMs = Date.now() - healed
    yield* Deferred.succeed(stop, undefined)
    yield* Fiber.join(fiber)

    const all = yield* Ref.get(answers)
    const bad = all.filter((a) => a.status !== 201 && a.status !== 202 && a.status !== 503)
    expect(bad.slice(0, 5)).toEqual([])
    const unexplained = all.filter((a) => a.status === 503 && typeof a.json?.error !== "string")
    expect(unexplained.slice(0, 5)).toEqual([])
    expect(count(all, 503)).toBeGreaterThanOrEqual(400)
    expect(recoveredInMs).toBeLessThan(2000)

    const ids = all.filter((a) => a.status === 201).map((a) => a.id)
    expect((yield* notEnded(sidecar.url, ids)).slice(0, 5)).toEqual([])

    // the fault and its end are said once each, not once a request: a second fault only should the reason change,
    // or should a write still fit while the volume fills (the filler leaves more than the sidecar's own floor)
    const said = sidecar.logs().map((l) => l.message).filter((m) => /^the database (refuses|takes) writes/.test(m))
    expect(said[0]).toMatch(/^the database refuses writes/)
    expect(said.at(-1)).toMatch(/^the database takes writes again/)
    expect(said.filter((m, i) => i > 0 && m === said[i - 1] && m.startsWith("the database takes"))).toEqual([])
    expect(said.length).toBeLessThanOrEqual(4)

    expect(yield* sidecar.stop("SIGTERM")).toBe(0)
    const again = yield* startSidecar(env)
    expect((yield* notEnded(again.url, ids)).slice(0, 5)).toEqual([])
    expect(ids.length).toBeGreaterThan(150)
    expect(yield* again.stop("SIGTERM")).toBe(0)
  })

describe("the database volume", () => {
  // One client's submits are written one at a time, concurrent clients' in batches (see GroupCommit): both ways.
  for (const clients of [1, 8]) {
    it.live(
      `fills up under ${clients} client(s) submitting while runs complete, then frees: nothing answered 201 is lost`,
      () =>
        Effect.gen(function*() {
          const dir = yield* tmpfs("6m")
          let free: (() => void) | undefined
          yield* underFault(dir, clients, {
            reason: "full",
            enter: () => (free = fillUp(dir, 128 * 1024)),
            leave: () => free!()
          })
          expect(existsSync(join(dir, "filler"))).toBe(false)
        }).pipe(Effect.scoped),
      120_000
    )

    it.live(
      `turns read-only under ${clients} client(s) submitting while runs complete, then writable: nothing answered 201 is lost`,
      () =>
        Effect.gen(function*() {
          const volume = yield* toggleReadOnlyVolume
          yield* underFault(volume.dir, clients, { reason: "read-only", enter: volume.enter, leave: volume.leave })
        }).pipe(Effect.scoped),
      120_000
    )
  }
})
