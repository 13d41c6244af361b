import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { HttpClient } from "effect/http"
import { TestClock } from "effect/testing"
import { Shutdown } from "../../src/Shutdown.js"
import { held, settled, submit } from "../support/engine.js"
import { getJson, HttpTest } from "../support/layers.js"
import { eventually, untilSleeping } from "../support/wait.js"

const ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

describe("waiting without polling", () => {
  it.effect("?wait answers as soon as the run ends, woken by it, not by a timer; many waiters share it", () =>
    Effect.gen(function*() {
      const probe = yield* held("w", ID)
      const waiters = yield* Effect.forEach(
        Array.from({ length: 100 }),
        () => Effect.forkChild(getJson(`/v0/tasks/${ID}?wait=60`))
      )
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      expect(waiters.every((w) => w.pollUnsafe() === undefined)).toBe(true)
      yield* probe.release("w") // no clock moves: only the run's end can answer them
      for (const waiter of waiters) {
        const res = yield* Fiber.join(waiter)
        expect(res).toMatchObject({ status: 200, json: { id: ID, status: "completed" } })
      }
    }).pipe(Effect.provide(HttpTest)))

  it.effect("when the wait is over first, the answer is the current state; a terminal task answers at once", () =>
    Effect.gen(function*() {
      const probe = yield* held("s", ID)
      const waiter = yield* Effect.forkChild(getJson(`/v0/tasks/${ID}?wait=5`))
      expect(yield* untilSleeping(5_000)).toBe(true)
      yield* TestClock.adjust("5 seconds")
      expect(yield* Fiber.join(waiter)).toMatchObject({ status: 200, json: { status: "running" } })
      yield* probe.release("s")
      yield* settled(ID)
      expect((yield* getJson(`/v0/tasks/${ID}?wait=60`)).json.status).toBe("completed")
      expect((yield* getJson(`/v0/tasks/${ID}?wait=0`)).json.status).toBe("completed")
    }).pipe(Effect.provide(HttpTest)))

  it.effect("shutdown answers waiters at once, so they do not hold up the server's drain", () =>
    Effect.gen(function*() {
      const probe = yield* held("d", ID)
      const waiter = yield* Effect.forkChild(getJson(`/v0/tasks/${ID}?wait=60`))
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      yield* Effect.flatMap(Shutdown, (s) => s.begin)
      expect(yield* Fiber.join(waiter)).toMatchObject({ status: 200, json: { status: "running" } })
      yield* probe.release("d")
    }).pipe(Effect.provide(HttpTest)))

  it.effect("a waiter whose client hangs up is released (sidecar_task_waiters goes back down)", () =>
    Effect.gen(function*() {
      const probe = yield* held("gone", ID)
      const waitersNow = Effect.flatMap(
        HttpClient.HttpClient,
        (client) => Effect.flatMap(client.get("/v0/metrics"), (res) => res.text)
      ).pipe(
        Effect.map((text) => Number(/^sidecar_task_waiters (\d+)$/m.exec(text)?.[1]))
      )
      const until = (done: (n: number) => boolean) => eventually(Effect.map(waitersNow, done), "10 seconds")
      const clients = yield* Effect.forEach(
        Array.from({ length: 20 }),
        () => Effect.forkChild(getJson(`/v0/tasks/${ID}?wait=60`))
      )
      yield* until((n) => n === 20)
      yield* Effect.forEach(clients, Fiber.interrupt) // each closes its connection
      yield* until((n) => n === 0)
      yield* probe.release("gone")
    }).pipe(Effect.provide(HttpTest)))

  it.effect("wait is a number of seconds from 0 to 60, fractions too; anything else, or another parameter, is a 400", () =>
    Effect.gen(function*() {
      yield* submit({ id: ID, type: "mark-not-ready" })
      for (const wait of ["61", "-1", "60.5", "abc", "", "1e1", " 5", "1.2345"]) {
        const res = yield* getJson(`/v0/tasks/${ID}?wait=${encodeURIComponent(wait)}`)
        expect(res.status, wait).toBe(400)
        expect(res.json, wait).toEqual({
          _tag: "InvalidRequest",
          error: "wait: must be a number of seconds from 0 to 60"
        })
      }
      for (const wait of ["0", "0.5", "1.25", "60"]) {
        expect((yield* getJson(`/v0/tasks/${ID}?wait=${wait}`)).status, wait).toBe(200)
      }
      const extra = yield* getJson(`/v0/tasks/${ID}?wiat=5`)
      expect(extra).toEqual({ status: 400, json: { _tag: "InvalidRequest", error: "wiat: unknown query parameter" } })
      const unknown = yield* getJson(`/v0/tasks/00000000-0000-4000-8000-000000000000?wait=1`)
      expect(unknown.status).toBe(404)
    }).pipe(Effect.provide(HttpTest)))
})
