import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { uuid } from "../support/ids.js"
import { commandsFolder, post, request, startSidecar, taskRows } from "../support/sidecar.js"
import { pollUntil } from "../support/wait.js"

/**
 * A folder with a commands file: `long` appends its key to `starts` and runs until `release` exists; `quick`
 * exits at once.
 */
const workspace = Effect.gen(function*() {
  const { db, dir, env } = yield* commandsFolder("sidecar-crash-", (dir) => ({
    long: {
      argv: [
        "sh",
        "-c",
        `echo "$1" >> '${join(dir, "starts")}'; while [ ! -f '${join(dir, "release")}' ]; do sleep 0.05; done`,
        "long"
      ],
      allowArgs: true
    },
    quick: { argv: ["true"] }
  }))
  const starts = join(dir, "starts")
  const release = join(dir, "release")
  // released at the end whatever happens, so no orphan of a killed sidecar outlives the test
  yield* Effect.addFinalizer(() => Effect.sync(() => writeFileSync(release, "")))
  return {
    env,
    db,
    release: () => writeFileSync(release, ""),
    /** How many times each long task has started, by key. */
    startsOf: (key: string) =>
      existsSync(starts) ? readFileSync(starts, "utf8").split("\n").filter((line) => line === key).length : 0
  }
})

const allTerminal = (db: string) =>
  pollUntil(Effect.sync(() => taskRows(db)), (rs) => rs.every((r) => r.status !== "running"))

describe("crash recovery (kill -9)", () => {
  it.live("every acknowledged task survives; interrupted runs resume once with run unchanged, even through two crashes", () =>
    Effect.gen(function*() {
      const ws = yield* workspace
      const first = yield* startSidecar(ws.env)
      const longIds = [1, 2, 3, 4, 5].map((n) => uuid(n))
      for (const [i, id] of longIds.entries()) {
        expect(
          (yield* post(first.url, { id, type: "run-command", params: { command: "long", args: [`k${i}`] } })).status
        )
          .toBe(201)
      }
      const quickIds: Array<string> = []
      for (let i = 0; i < 20; i++) {
        const res = yield* post(first.url, { type: "run-command", params: { command: "quick" } })
        expect(res.status).toBe(201)
        quickIds.push(res.json.id)
      }
      yield* pollUntil(Effect.sync(() => longIds.map((_, i) => ws.startsOf(`k${i}`))), (n) => n.every((c) => c === 1))
      yield* first.stop("SIGKILL")

      // crash during rehydration: the second process dies right after it resumed the long runs
      const second = yield* startSidecar(ws.env)
      yield* pollUntil(Effect.sync(() => longIds.map((_, i) => ws.startsOf(`k${i}`))), (n) => n.every((c) => c === 2))
      yield* second.stop("SIGKILL")

      const third = yield* startSidecar(ws.env)
      const present = new Map(taskRows(ws.db).map((r) => [r.id, r]))
      for (const id of [...longIds, ...quickIds]) expect(present.has(id)).toBe(true)
      for (const id of longIds) expect(present.get(id)).toMatchObject({ status: "running", run: 1 })
      yield* pollUntil(Effect.sync(third.logs), (ls) => ls.filter((l) => l.message === "task resumed").length >= 5)

      ws.release()
      yield* allTerminal(ws.db)
      for (const id of longIds) {
        expect((yield* request(`${third.url}/v0/tasks/${id}`)).json).toMatchObject({ status: "completed", run: 1 })
      }
      // started once by each process that ran it: the first, the crashed second, the third
      expect(longIds.map((_, i) => ws.startsOf(`k${i}`))).toEqual([3, 3, 3, 3, 3])
      expect(taskRows(ws.db).filter((r) => r.status === "running")).toEqual([])
      expect(yield* third.stop()).toBe(0)
    }).pipe(Effect.scoped))

  it.live("killed in the middle of a burst of submits: every task answered 201/202 is in the database and finishes", () =>
    Effect.gen(function*() {
      const ws = yield* workspace
      const first = yield* startSidecar(ws.env)
      const acked = new Set<string>()
      const burst = Effect.forEach(
        Array.from({ length: 400 }, (_, i) => uuid(1000 + i)),
        (id) =>
          post(first.url, { id, type: "run-command", params: { command: "quick" } }).pipe(
            Effect.tap((res) => Effect.sync(() => (res.status === 201 || res.status === 202) && acked.add(id))),
            Effect.catchDefect(() => Effect.void) // the connection dies with the process
          ),
        { concurrency: 32, discard: true }
      )
      const killer = pollUntil(Effect.sync(() => acked.size), (n) => n >= 100).pipe(
        Effect.andThen(first.stop("SIGKILL"))
      )
      yield* Effect.all([burst, killer], { concurrency: 2, discard: true })
      expect(acked.size).toBeGreaterThanOrEqual(100)
      expect(acked.size).toBeLessThan(400)

      const second = yield* startSidecar(ws.env)
      const stored = new Set(taskRows(ws.db).map((r) => r.id))
      for (const id of acked) expect(stored.has(id)).toBe(true)
      yield* allTerminal(ws.db)
      expect(taskRows(ws.db).every((r) => r.status === "completed" && r.run === 1)).toBe(true)
      expect(yield* second.stop()).toBe(0)
    }).pipe(Effect.scoped))
})

describe("graceful shutdown (SIGTERM)", () => {
  it.live("exits 0 with runs left running and their children stopped; the next start runs each once more", () =>
    Effect.gen(function*() {
      const ws = yield* workspace
      const first = yield* startSidecar(ws.env)
      const ids = [1, 2, 3].map((n) => uuid(n))
      for (const [i, id] of ids.entries()) {
        yield* post(first.url, { id, type: "run-command", params: { command: "long", args: [`t${i}`] } })
      }
      yield* pollUntil(Effect.sync(() => ids.map((_, i) => ws.startsOf(`t${i}`))), (n) => n.every((c) => c === 1))
      expect(yield* first.stop("SIGTERM")).toBe(0)
      expect(taskRows(ws.db).map((r) => r.status)).toEqual(["running", "running", "running"])
      // the children were stopped with their runs: nothing is still holding the work
      expect(first.logs().filter((l) => l.message.startsWith("task interrupted")).length).toBe(3)

      const second = yield* startSidecar(ws.env)
      yield* pollUntil(Effect.sync(() => ids.map((_, i) => ws.startsOf(`t${i}`))), (n) => n.every((c) => c === 2))
      ws.release()
      yield* allTerminal(ws.db)
      expect(taskRows(ws.db).map((r) => [r.status, r.run])).toEqual([
        ["completed", 1],
        ["completed", 1],
        ["completed", 1]
      ])
      expect(ids.map((_, i) => ws.startsOf(`t${i}`))).toEqual([2, 2, 2])
      expect(yield* second.stop()).toBe(0)
    }).pipe(Effect.scoped))
})
