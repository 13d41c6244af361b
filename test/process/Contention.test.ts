import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { uuid } from "../support/ids.js"
import { commandsFolder, post, request, settled, type Sidecar, startSidecar, taskRows } from "../support/sidecar.js"
import { pollUntil } from "../support/wait.js"

/** One sidecar for the whole file, with `flaky` (fails until `flag` exists, logging each start), `quick`, `fails`. */
class Server extends Context.Service<Server, {
  readonly sidecar: Sidecar
  readonly db: string
  readonly flag: string
  readonly flakyStarts: () => number
}>()("test/ContentionServer") {}

const ServerLive = Layer.effect(
  Server,
  Effect.gen(function*() {
    const { db, dir, env } = yield* commandsFolder("sidecar-race-", (dir) => ({
      flaky: { argv: ["sh", "-c", `echo start >> '${join(dir, "flaky-starts")}'; test -f '${join(dir, "flag")}'`] },
      quick: { argv: ["true"] },
      fails: { argv: ["false"] }
    }))
    const starts = join(dir, "flaky-starts")
    const flag = join(dir, "flag")
    const sidecar = yield* startSidecar(env)
    const flakyStarts = () => (existsSync(starts) ? readFileSync(starts, "utf8").split("\n").length - 1 : 0)
    return { sidecar, db, flag, flakyStarts }
  })
)

const withServer = layer(ServerLive, { timeout: "60 seconds", excludeTestServices: true })
withServer("exactly once under contention (real server process)", (it) => {
  it.effect("200 concurrent submits of one failed id: one re-execution, run + 1, exactly one 201", () =>
    Effect.gen(function*() {
      const { db, flag, flakyStarts, sidecar } = yield* Server
      const id = uuid(1, "9000")
      const body = { id, type: "run-command", params: { command: "flaky" } }
      expect((yield* post(sidecar.url, body)).status).toBe(201)
      expect((yield* settled(sidecar.url, id)).json).toMatchObject({ status: "failed", run: 1 })
      expect(flakyStarts()).toBe(1)

      writeFileSync(flag, "")
      const answers = yield* Effect.forEach(Array.from({ length: 200 }), () => post(sidecar.url, body), {
        concurrency: "unbounded"
      })
      expect(answers.every((a) => (a.status === 201 || a.status === 202) && a.json.id === id)).toBe(true)
      expect(answers.filter((a) => a.status === 201)).toHaveLength(1)
      expect((yield* settled(sidecar.url, id)).json).toMatchObject({ status: "completed", run: 2 })
      expect(flakyStarts()).toBe(2)
      expect(taskRows(db).filter((r) => r.id === id)).toEqual([{ id, status: "completed", run: 2 }])
    }))

  it.effect(
    "1000 concurrent submits of distinct ids: all stored, all finish, ids unique",
    () =>
      Effect.gen(function*() {
        const { db, sidecar } = yield* Server
        const answers = yield* Effect.forEach(
          Array.from({ length: 1000 }, (_, i) => i % 2 === 0 ? { id: uuid(10_000 + i, "9000") } : {}),
          (extra) => post(sidecar.url, { ...extra, type: "mark-not-ready" }),
          { concurrency: "unbounded" }
        )
        expect(answers.every((a) => a.status === 201)).toBe(true)
        const ids = answers.map((a) => a.json.id as string)
        expect(new Set(ids).size).toBe(1000)
        const mine = () => taskRows(db).filter((r) => ids.includes(r.id))
        yield* pollUntil(Effect.sync(mine), (rs) => rs.length === 1000 && rs.every((r) => r.status === "completed"))
      }),
    { timeout: 90_000 }
  )

  it.effect("DELETE racing a run's completion never leaves or brings back the row", () =>
    Effect.gen(function*() {
      const { db, sidecar } = yield* Server
      const ids = Array.from({ length: 40 }, (_, i) => uuid(20_000 + i, "9000"))
      yield* Effect.forEach(ids, (id) =>
        Effect.gen(function*() {
          expect((yield* post(sidecar.url, { id, type: "run-command", params: { command: "quick" } })).status)
            .toBe(201)
          expect((yield* request(`${sidecar.url}/v0/tasks/${id}`, { method: "DELETE" })).status).toBe(204)
          expect((yield* request(`${sidecar.url}/v0/tasks/${id}`)).status).toBe(404)
        }), { concurrency: 8, discard: true })
      // anything still in flight would have written by now: DELETE waits for the run to stop
      expect(taskRows(db).filter((r) => ids.includes(r.id))).toEqual([])
    }))

  it.effect("resubmit racing DELETE of a failed task: either order is consistent, never a run over a newer one", () =>
    Effect.gen(function*() {
      const { db, sidecar } = yield* Server
      const ids = Array.from({ length: 30 }, (_, i) => uuid(30_000 + i, "9000"))
      const outcomes = yield* Effect.forEach(ids, (id) =>
        Effect.gen(function*() {
          const body = { id, type: "run-command", params: { command: "fails" } }
          yield* post(sidecar.url, body)
          yield* settled(sidecar.url, id)
          const [resubmit, remove] = yield* Effect.all([
            post(sidecar.url, { ...body, params: { command: "quick" } }),
            request(`${sidecar.url}/v0/tasks/${id}`, { method: "DELETE" })
          ], { concurrency: 2 })
          expect(resubmit.status).toBe(201)
          expect(remove.status).toBe(204)
          const after = yield* settled(sidecar.url, id)
          // DELETE first: the resubmit started afresh at run 1. Resubmit first: run 2 was deleted with its row.
          if (after.status === 200) expect(after.json).toMatchObject({ status: "completed", run: 1 })
          return after.status
        }), { concurrency: 6 })
      expect(outcomes.every((s) => s === 200 || s === 404)).toBe(true)
      expect(taskRows(db).filter((r) => ids.includes(r.id) && (r.run !== 1 || r.status === "running"))).toEqual([])
    }))
})
