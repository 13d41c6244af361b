import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHttpServer } from "../src/http/NodeServer.js"
import { send } from "./support/sidecar.js"

describe("shutdown", () => {
  // Found in CI: the platform removes its request listener before it closes the server, so a request on a keep-alive
  // connection in between got no answer and held the close, and the whole shutdown, until the watchdog (exit 1).
  it.effect("a request no handler serves (before the API is added, or once it is removed) gets a 503 and a close", () =>
    Effect.gen(function*() {
      const server = createHttpServer()
      yield* Effect.acquireRelease(
        Effect.callback<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const { port } = server.address() as { port: number }
      const url = `http://127.0.0.1:${port}`
      const unserved = yield* send(url, { method: "GET", path: "/v0/livez" }, "5 seconds")
      expect(unserved).toMatchObject({ _tag: "Answer", status: 503, headers: { connection: "close" } })
      if (unserved._tag === "Answer") expect(JSON.parse(unserved.body).error).toMatch(/shutting down/)
      // with a handler in place (the platform's), the fallback stays out of the way
      server.on("request", (_request, response) => response.end("served"))
      expect(yield* send(url, { method: "GET", path: "/v0/livez" }, "5 seconds")).toMatchObject({
        status: 200,
        body: "served"
      })
    }))
})
