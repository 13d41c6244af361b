import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { groupCommit } from "../../src/engine/GroupCommit.js"

/** One call of `write`: the items it was given, and the fiber it ran in. */
interface Written {
  readonly batch: ReadonlyArray<number>
  readonly fiber: number
}

/**
 * A group commit over a `write` that records its calls and answers each item times ten; an item listed in `gate`
 * waits for that Deferred first, one in `failing` fails its whole batch.
 */
const recording = (
  gate: ReadonlyMap<number, Deferred.Deferred<void>> = new Map(),
  failing: ReadonlySet<number> = new Set()
) =>
  Effect.gen(function*() {
    const writes: Array<Written> = []
    const commit = yield* groupCommit((batch: ReadonlyArray<number>) =>
      Effect.gen(function*() {
        for (const item of batch) {
          const latch = gate.get(item)
          if (latch !== undefined) yield* Deferred.await(latch)
        }
        if (batch.some((item) => failing.has(item))) return yield* Effect.fail(`batch ${batch.join(",")} failed`)
        writes.push({ batch: [...batch], fiber: yield* Effect.fiberId })
        return batch.map((item) => item * 10)
      })
    )
    return { commit, writes }
  })

/** The next turn of the event loop: whatever the group commit scheduled for the end of this one has run. */
const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

describe("groupCommit", () => {
  it.effect("a caller alone writes its item itself, at once, in its own fiber", () =>
    Effect.gen(function*() {
      const { commit, writes } = yield* recording()
      const me = yield* Effect.fiberId
      expect(yield* commit(1)).toBe(10)
      expect(writes).toEqual([{ batch: [1], fiber: me }])
      yield* nextTurn
      expect(yield* commit(2)).toBe(20)
      expect(writes.map((w) => w.batch)).toEqual([[1], [2]])
      expect(writes[1]!.fiber).toEqual(me)
    }))

  it.effect("items that come together are written together, until a turn brings one item again", () =>
    Effect.gen(function*() {
      const { commit, writes } = yield* recording()
      const callers = yield* Effect.forEach([1, 2, 3], (item) => Effect.forkChild(commit(item)))
      expect(yield* Effect.forEach(callers, Fiber.join)).toEqual([10, 20, 30])
      // the first came alone and wrote itself; the two that came in the same turn waited for one batch
      expect(writes.map((w) => w.batch)).toEqual([[1], [2, 3]])
      expect(writes[0]!.fiber).toEqual(callers[0]!.id)
      expect([callers[1]!.id, callers[2]!.id]).not.toContainEqual(writes[1]!.fiber)

      // the last turn brought three items: a lone one waits for its batch
      yield* nextTurn
      const me = yield* Effect.fiberId
      expect(yield* commit(4)).toBe(40)
      expect(writes[2]).toMatchObject({ batch: [4] })
      expect(writes[2]!.fiber).not.toEqual(me)
      // after a turn of one item, a lone caller writes itself again
      yield* nextTurn
      expect(yield* commit(5)).toBe(50)
      expect(writes[3]).toEqual({ batch: [5], fiber: me })
    }))

  it.effect("what comes while a caller writes alone is written after it, as one batch, in arrival order", () =>
    Effect.gen(function*() {
      const latch = yield* Deferred.make<void>()
      const { commit, writes } = yield* recording(new Map([[1, latch]]))
      const first = yield* Effect.forkChild(commit(1))
      const later = yield* Effect.forEach([2, 3, 4], (item) => Effect.forkChild(commit(item)))
      yield* nextTurn
      expect(writes).toEqual([])
      yield* Deferred.succeed(latch, undefined)
      expect(yield* Fiber.join(first)).toBe(10)
      expect(yield* Effect.forEach(later, Fiber.join)).toEqual([20, 30, 40])
      expect(writes.map((w) => w.batch)).toEqual([[1], [2, 3, 4]])
    }))

  it.effect("a failed write fails every caller of its batch, and the next batch is written", () =>
    Effect.gen(function*() {
      const { commit, writes } = yield* recording(new Map(), new Set([1, 3]))
      expect(yield* Effect.flip(commit(1))).toBe("batch 1 failed")
      yield* nextTurn
      const callers = yield* Effect.forEach([2, 3], (item) => Effect.forkChild(commit(item)))
      // 2 wrote itself (the last turn brought one item), 3 waited for a batch of its own and failed it
      expect(yield* Fiber.join(callers[0]!)).toBe(20)
      expect(yield* Effect.flip(Fiber.join(callers[1]!))).toBe("batch 3 failed")
      yield* nextTurn
      yield* nextTurn
      expect(yield* commit(4)).toBe(40)
      expect(writes.map((w) => w.batch)).toEqual([[2], [4]])
    }))

  it.effect("a caller interrupted before its item was written is taken out, and nothing of it is written", () =>
    Effect.gen(function*() {
      const latch = yield* Deferred.make<void>()
      const { commit, writes } = yield* recording(new Map([[1, latch]]))
      const first = yield* Effect.forkChild(commit(1))
      const second = yield* Effect.forkChild(commit(2))
      const third = yield* Effect.forkChild(commit(3))
      // one queued behind the write under way, and the lone writer itself while its write waits
      yield* Fiber.interrupt(second)
      yield* Fiber.interrupt(first)
      expect(Exit.hasInterrupts(yield* Fiber.await(first))).toBe(true)
      expect(yield* Fiber.join(third)).toBe(30)
      expect(writes.map((w) => w.batch)).toEqual([[3]])
      yield* nextTurn
      yield* nextTurn
      expect(yield* commit(4)).toBe(40)
    }))
})
