import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { settled, submit } from "../support/engine.js"
import { getJson, HttpTest } from "../support/layers.js"

describe("list that scales", () => {
  it.effect("?status, ?type and ?limit filter the newest-first list; the plain form keeps 100", () =>
    Effect.gen(function*() {
      const ids: Array<string> = []
      for (let i = 0; i < 130; i++) {
        ids.push(
          (yield* submit({ type: "test", params: i % 3 === 0 ? { key: `k${i}`, fail: "x" } : { key: `k${i}` } })).id
        )
        yield* TestClock.adjust("1 second")
      }
      ids.push((yield* submit({ type: "mark-not-ready" })).id)
      yield* Effect.forEach(ids, settled)
      const all = (yield* getJson("/v0/tasks")).json as Array<any>
      expect(all).toHaveLength(100)
      const failed = (yield* getJson("/v0/tasks?status=failed&limit=1000")).json as Array<any>
      expect(failed).toHaveLength(44)
      expect(failed.every((t) => t.status === "failed")).toBe(true)
      const times = failed.map((t) => Date.parse(t.submittedAt))
      expect([...times].sort((a, b) => b - a)).toEqual(times)
      expect((yield* getJson("/v0/tasks?type=mark-not-ready")).json.map((t: any) => t.type)).toEqual(["mark-not-ready"])
      expect((yield* getJson("/v0/tasks?type=test&status=completed&limit=5")).json).toHaveLength(5)
      expect((yield* getJson("/v0/tasks?limit=1")).json[0].type).toBe("mark-not-ready")
      for (const query of ["limit=0", "limit=1001", "limit=ten", "limit=2.5", "status=done", "status=", "type="]) {
        const res = yield* getJson(`/v0/tasks?${query}`)
        expect(res.status, query).toBe(400)
        expect(typeof res.json.error, query).toBe("string")
      }
    }).pipe(Effect.provide(HttpTest)))
})
