import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Duration, Effect, Fiber, Schema } from "effect"
import { TestClock } from "effect/testing"
import type { Server, ServerResponse } from "node:http"
import { createServer, request } from "node:http"
import type { AddressInfo } from "node:net"
import { Engine } from "../../src/engine/Engine.js"
import { TaskHandlers } from "../../src/engine/TaskHandlers.js"
import { TaskError } from "../../src/Errors.js"
import { settled } from "../support/engine.js"
import { EngineTest } from "../support/layers.js"
import { closedPort } from "../support/system.js"
import { eventually } from "../support/wait.js"

const submit = (params: unknown) => Effect.flatMap(Engine, (e) => e.submit({ type: "await-http", params }))

/** When the sleeps in progress on the TestClock are due (TestClock itself does not tell). */
class Sleeps extends Context.Service<Sleeps, { readonly due: () => ReadonlyArray<number> }>()("test/Sleeps") {}

/** Run `effect`, and everything it starts, on the test's TestClock with its sleeps in progress shown by Sleeps. */
const trackingSleeps = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  TestClock.testClockWith((clock) => {
    const due: Array<number> = []
    const sleep = (duration: Duration.Duration) =>
      Effect.suspend(() => {
        const at = clock.currentTimeMillisUnsafe() + Duration.toMillis(duration)
        due.push(at)
        return Effect.ensuring(clock.sleep(duration), Effect.sync(() => due.splice(due.indexOf(at), 1)))
      })
    return effect.pipe(
      Effect.provideService(Sleeps, { due: () => due }),
      Effect.provideService(Clock.Clock, { ...clock, sleep })
    )
  })

/** Wait (on the real clock) until a sleep due at `at` on the TestClock is in progress. */
const sleepingUntil = (at: number) => eventually(Sleeps.useSync((sleeps) => sleeps.due().includes(at)))

/**
 * Wait until the run is between attempts, its next one due `intervalMs` from now (on the TestClock), then move the
 * clock there. Attempts themselves take real time, so the clock must not move while one is in flight.
 */
const nextAttempt = (intervalMs: number) =>
  Effect.gen(function*() {
    yield* sleepingUntil((yield* Clock.currentTimeMillis) + intervalMs)
    yield* TestClock.adjust(Duration.millis(intervalMs))
  })

interface TestServer {
  readonly url: string
  /** Requests received so far, and their paths in order. */
  readonly requests: () => number
  readonly paths: ReadonlyArray<string>
  /** Requests not answered yet whose connection is still open. */
  readonly open: () => number
}

/** A loopback server on a free port answering the nth request with `answer` (/barrier: 204); closed with the scope. */
const serve = (answer: (n: number, res: ServerResponse) => void) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly server: Server; readonly test: TestServer }>((resume) => {
      const paths: Array<string> = []
      let open = 0
      const server = createServer((req, res) => {
        paths.push(req.url ?? "")
        open += 1
        res.once("close", () => {
          open -= 1
        })
        if (req.url === "/barrier") res.writeHead(204).end()
        else answer(paths.length, res)
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        const url = `http://127.0.0.1:${port}/health`
        resume(Effect.succeed({ server, test: { url, requests: () => paths.length, paths, open: () => open } }))
      })
    }),
    ({ server }) =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ test }) => test))

const status = (code: number) => (res: ServerResponse) => res.writeHead(code).end()
const hang = () => {}

/** One plain request of the test's own, answered after everything the server was sent before it. */
const roundTrip = (url: string) =>
  Effect.callback<void>((resume) => {
    request(url.replace("/health", "/barrier"), (res) => {
      res.resume()
      res.once("end", () => resume(Effect.void))
    }).once("error", () => resume(Effect.void)).end()
  })

describe("await-http", () => {
  it.effect("completes once the URL answers 200, after 503s, counting the attempts", () =>
    Effect.gen(function*() {
      const server = yield* serve((n, res) => status(n <= 3 ? 503 : 200)(res))
      const { id } = yield* submit({ url: server.url, intervalSeconds: 30 })
      for (let i = 0; i < 3; i++) yield* nextAttempt(30_000)
      const task = yield* settled(id)
      expect(task).toMatchObject({ status: "completed", result: { status: 200, attempts: 4, elapsedMs: 90_000 } })
      expect(server.requests()).toBe(4)
    }).pipe(Effect.provide(EngineTest), trackingSleeps))

  it.effect("waits for expectStatus, not just any success", () =>
    Effect.gen(function*() {
      const server = yield* serve((n, res) => status(n === 1 ? 200 : 204)(res))
      const { id } = yield* submit({ url: server.url, expectStatus: 204, intervalSeconds: 30 })
      yield* nextAttempt(30_000)
      expect(yield* settled(id)).toMatchObject({ status: "completed", result: { status: 204, attempts: 2 } })
    }).pipe(Effect.provide(EngineTest), trackingSleeps))

  it.effect("does not follow redirects: the status awaited is the URL's own", () =>
    Effect.gen(function*() {
      const server = yield* serve((_n, res) => res.writeHead(302, { location: "/ok" }).end())
      const { id } = yield* submit({ url: server.url, expectStatus: 302 })
      expect(yield* settled(id)).toMatchObject({ status: "completed", result: { status: 302, attempts: 1 } })
      expect(server.paths).toEqual(["/health"])
    }).pipe(Effect.provide(EngineTest), trackingSleeps))

  it.effect("fails, retryably, naming the last status once the timeout passes", () =>
    Effect.gen(function*() {
      const server = yield* serve((_n, res) => status(503)(res))
      const { id } = yield* submit({ url: server.url, intervalSeconds: 30, timeoutSeconds: 75 })
      yield* nextAttempt(30_000)
      yield* nextAttempt(30_000)
      // the third attempt is done when the fourth is due; the deadline comes first
      yield* sleepingUntil((yield* Clock.currentTimeMillis) + 30_000)
      yield* TestClock.adjust("15 seconds")
      const task = yield* settled(id)
      expect(task).toMatchObject({
        status: "failed",
        error: `await-http: ${server.url}: no 200 within 75 s (3 attempts); last: status 503`
      })
      expect(server.requests()).toBe(3)
    }).pipe(Effect.provide(EngineTest), trackingSleeps))

  it.effect("fails naming the network error when nothing listens", () =>
    Effect.gen(function*() {
      const url = `http://127.0.0.1:${yield* closedPort}/health`
      const { id } = yield* submit({ url, intervalSeconds: 20, timeoutSeconds: 30 })
      yield* sleepingUntil(20_000)
      yield* TestClock.adjust("30 seconds")
      const task = yield* settled(id)
      expect(task.status).toBe("failed")
      // the second attempt may or may not have finished when the deadline passed
      expect(task.error).toMatch(new RegExp(`^await-http: ${url}: no 200 within 30 s \\(\\d attempts?\\); last: `))
      expect(task.error).toMatch(/last: connect ECONNREFUSED 127\.0\.0\.1:\d+$/)
    }).pipe(Effect.provide(EngineTest), trackingSleeps))

  it.effect("the timeout's TaskError is retryable and names the URL as its operation", () =>
    Effect.gen(function*() {
      const url = `http://127.0.0.1:${yield* closedPort}/health`
      const { context, handlers } = yield* TaskHandlers
      const handler = handlers.get("await-http")!
      const params = yield* Schema.decodeUnknownEffect(handler.params)({ url, intervalSeconds: 20, timeoutSeconds: 20 })
      const run = yield* Effect.forkChild(Effect.flip(Effect.provide(handler.run(params), context)))
      yield* sleepingUntil(20_000)
      yield* TestClock.adjust("20 seconds")
      const error = yield* Fiber.join(run)
      expect(error).toBeInstanceOf(TaskError)
      expect(error).toMatchObject({ task: "await-http", operation: url, retryable: true })
    }).pipe(Effect.provide(EngineTest), trackingSleeps))

  it.effect("a server that never answers does not stall the loop: attempts are cut off, and so is the last", () =>
    Effect.gen(function*() {
      const server = yield* serve(hang)
      const { id } = yield* submit({ url: server.url, intervalSeconds: 30, timeoutSeconds: 35 })
      yield* eventually(Effect.sync(() => server.open() === 1))
      // each attempt gets as long as the interval, within 1 to 10 s
      yield* TestClock.adjust("10 seconds")
      yield* eventually(Effect.sync(() => server.open() === 0))
      yield* nextAttempt(20_000)
      yield* eventually(Effect.sync(() => server.requests() === 2 && server.open() === 1))
      // the deadline passes with the second attempt still waiting for an answer
      yield* TestClock.adjust("5 seconds")
      const task = yield* settled(id)
      expect(task).toMatchObject({
        status: "failed",
        error: `await-http: ${server.url}: no 200 within 35 s (1 attempt); last: no answer within 10 s`
      })
      yield* eventually(Effect.sync(() => server.open() === 0))
    }).pipe(Effect.provide(EngineTest), trackingSleeps))

  it.effect("invalid params are rejected at submit, naming the field", () =>
    Effect.gen(function*() {
      const url = "http://127.0.0.1:1/health"
      const cases: Array<[unknown, string]> = [
        [{ url: "not a url" }, "url: must be an absolute http:// or https:// URL"],
        [{ url: "/health" }, "url: must be an absolute http:// or https:// URL"],
        [{ url: "ftp://example.com/x" }, "url: must be an http:// or https:// URL, not ftp://"],
        [{ url: "http://user:secret@example.com/" }, "url: must not carry credentials"],
        [{}, "url: Missing key"],
        [{ url, expectStatus: 42 }, "expectStatus: Expected a value between 100 and 599, got 42"],
        [{ url, expectStatus: 200.5 }, "expectStatus: Expected an integer, got 200.5"],
        [{ url, intervalSeconds: -1 }, "intervalSeconds: Expected a value between 0.01 and 3600, got -1"],
        [{ url, intervalSeconds: 7200 }, "intervalSeconds: Expected a value between 0.01 and 3600, got 7200"],
        [{ url, timeoutSeconds: 100000 }, "timeoutSeconds: Expected a value between 0.01 and 86400"],
        [{ url, intervalSeconds: 10, timeoutSeconds: 5 }, "intervalSeconds: must not be more than timeoutSeconds (5)"],
        [{ url, method: "POST" }, "method: Unexpected key with value \"POST\""]
      ]
      for (const [params, message] of cases) {
        const error = yield* Effect.flip(submit(params))
        expect(error._tag).toBe("InvalidParams")
        expect(error.message).toContain(`invalid params for await-http: ${message}`)
      }
      // a short timeout alone is fine: the interval then defaults to it
      yield* submit({ url, timeoutSeconds: 1 })
      expect((yield* Effect.flatMap(Engine, (e) => e.list())).length).toBe(1)
    }).pipe(Effect.provide(EngineTest), trackingSleeps))

  it.effect("deleting a running task aborts its request in flight and stops its polling", () =>
    Effect.gen(function*() {
      const server = yield* serve(hang)
      const { id } = yield* submit({ url: server.url, intervalSeconds: 30 })
      yield* eventually(Effect.sync(() => server.open() === 1))
      yield* Effect.flatMap(Engine, (e) => e.remove(id))
      yield* eventually(Effect.sync(() => server.open() === 0))
      // past the next attempt's time: a loop still alive would send its request now
      yield* TestClock.adjust("1 minute")
      yield* roundTrip(server.url)
      expect(server.paths).toEqual(["/health", "/barrier"])
    }).pipe(Effect.provide(EngineTest), trackingSleeps))
})
