import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Result } from "effect"
import { TestClock } from "effect/testing"
import { closeSync, copyFileSync, openSync, readSync, renameSync, unlinkSync, writeFileSync, writeSync } from "node:fs"
import { join } from "node:path"
import { Engine } from "../../src/engine/Engine.js"
import { Readiness } from "../../src/engine/Readiness.js"
import { StoreError } from "../../src/Errors.js"
import { Metrics } from "../../src/Metrics.js"
import { Sqlite } from "../../src/store/Connection.js"
import { sqlLayer } from "../../src/store/Database.js"
import { Store } from "../../src/store/Store.js"
import { settled } from "../support/engine.js"
import { engineOver, engineWithStore, HandlersTest, Probe, SqlTest, withFreshEngine } from "../support/layers.js"
import { openDatabase } from "../support/sqlite.js"
import { tmpfs } from "../support/system.js"

const ID = "7d3f1c2e-8a9b-4c5d-9e0f-1a2b3c4d5e6f"
const dbFile = Effect.map(Sqlite, (c) => c.filename)
const submit = (id?: string) =>
  Effect.flatMap(Engine, (e) => e.submit({ ...(id === undefined ? {} : { id }), type: "mark-not-ready" }))
const livez = Effect.flatMap(Engine, (e) => e.livez)
/**
 * livez once the background check of the file has seen what the test did: asked every 20 ms, on the real clock, for
 * up to 5 s, until it fails (`failing`) or succeeds; the last answer.
 */
const livezOnceChecked = (failing: boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 250; i++) {
      const answer = yield* Effect.result(livez)
      if (Result.isFailure(answer) === failing) return yield* Effect.fromResult(answer)
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.die(new Error(`livez did not ${failing ? "fail" : "recover"} within 5 s`))
  }).pipe(TestClock.withLive)

describe("another connection holds the write lock", () => {
  it.effect("submits fail with a StoreError once the busy timeout passes, queued ones too; reads and livez go on", () =>
    Effect.gen(function*() {
      const engine = yield* Engine
      const file = yield* dbFile
      yield* submit(ID)
      const other = yield* Effect.acquireRelease(
        Effect.sync(() => openDatabase(file)),
        (db) => Effect.sync(() => db.close())
      )
      other.exec("BEGIN IMMEDIATE")
      const pending = yield* Effect.forEach([1, 2, 3], () => Effect.forkChild(submit()))
      // let the first submit reach its write and the others queue on the gate
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      expect(pending.map((f) => f.pollUnsafe())).toEqual([undefined, undefined, undefined])

      // WAL lets readers through while the writer waits, without blocking the event loop
      yield* livez
      expect((yield* engine.get(ID)).id).toBe(ID)

      // step the clock past the busy timeout (each retry schedules the next as it fails)
      for (let i = 0; i < 120 && pending.some((f) => f.pollUnsafe() === undefined); i++) {
        yield* TestClock.adjust("100 millis")
      }
      for (const fiber of pending) {
        const exit = yield* Fiber.await(fiber)
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isFailure(exit)) expect(String(exit.cause)).toMatch(/StoreError.*(SQLITE_BUSY|for its turn)/s)
      }
      expect((yield* engine.list()).length).toBe(1)

      other.exec("ROLLBACK")
      // recovers without a restart
      expect((yield* submit())._tag).toBe("Started")
      expect((yield* engine.list()).length).toBe(2)
    }).pipe(Effect.provide(engineOver(SqlTest))))
})

describe("storage broken underneath the process", () => {
  it.effect("the database file replaced: livez fails naming it, submits refuse", () =>
    Effect.gen(function*() {
      const file = yield* dbFile
      yield* submit(ID)
      yield* livez
      copyFileSync(file, `${file}.copy`)
      renameSync(`${file}.copy`, file)
      expect((yield* Effect.flip(livezOnceChecked(true))).message).toMatch(/removed or replaced/)
      expect((yield* Effect.flip(submit()))._tag).toBe("StoreError")
    }).pipe(Effect.provide(engineOver(SqlTest))))

  it.effect("the database file corrupted in place: livez fails; submits refuse until it is sound again", () =>
    Effect.gen(function*() {
      const file = yield* dbFile
      yield* submit(ID)
      const header = Buffer.alloc(16)
      const fd = openSync(file, "r+")
      readSync(fd, header, 0, 16, 0)
      writeSync(fd, Buffer.from("garbage garbage!"), 0, 16, 0)
      expect((yield* Effect.flip(livezOnceChecked(true))).message).toMatch(/corrupt/)
      expect((yield* Effect.flip(submit()))._tag).toBe("StoreError")
      writeSync(fd, header, 0, 16, 0)
      closeSync(fd)
      yield* livezOnceChecked(false)
      expect((yield* submit())._tag).toBe("Started")
    }).pipe(Effect.provide(engineOver(SqlTest))))

  it.effect("a full volume: submits answer StoreError while livez stays up; both recover when space frees", () =>
    Effect.gen(function*() {
      const dir = yield* tmpfs("4m")
      yield* Effect.gen(function*() {
        yield* submit(ID)
        const filler = join(dir, "filler")
        try {
          writeFileSync(filler, Buffer.alloc(8 << 20))
        } catch {
          // ENOSPC: the volume is now full
        }
        const refused = yield* Effect.flip(Effect.forEach(Array.from({ length: 200 }), () => submit()))
        expect(refused.message).toMatch(/SQLITE_FULL|full/)
        // a restart would not free the volume: liveness stays up
        yield* livez
        expect((yield* Effect.flip(submit()))._tag).toBe("StoreError")
        unlinkSync(filler)
        // taken again once the background check sees the space (every 0.5 s), without a restart
        let accepted = yield* Effect.result(submit())
        for (let i = 0; i < 250 && Result.isFailure(accepted); i++) {
          yield* TestClock.withLive(Effect.sleep("20 millis"))
          accepted = yield* Effect.result(submit())
        }
        expect(Result.isSuccess(accepted)).toBe(true)
        expect(yield* Effect.flatMap(Engine, (e) => e.get(ID))).toMatchObject({ id: ID })
      }).pipe(Effect.provide(engineOver(sqlLayer(join(dir, "sidecar.db")))))
    }))
})

describe("a run whose completion cannot be written", () => {
  /** The real Store, with its completion writes failing the first `failures` times. */
  const flakyCompletions = (failures: number) =>
    Layer.effect(
      Store,
      Effect.map(Store, (real) => {
        let left = failures
        return Store.of({
          ...real,
          completeAll: (batch) =>
            Effect.suspend(() =>
              left-- > 0
                ? Effect.fail(new StoreError({ op: "complete", error: "store complete failed: injected" }))
                : real.completeAll(batch)
            )
        })
      })
    ).pipe(Layer.provide(Store.layer))

  it.effect("is retried until it is written", () =>
    Effect.gen(function*() {
      const engine = yield* Engine
      const { id } = yield* submit()
      const done = yield* Effect.forkChild(engine.join(id))
      for (let i = 0; i < 20 && done.pollUnsafe() === undefined; i++) yield* TestClock.adjust("500 millis")
      expect((yield* engine.get(id)).status).toBe("completed")
    }).pipe(Effect.provide(engineWithStore(flakyCompletions(3), SqlTest))))

  it.effect("stays running until it is written; stopped meanwhile, the next start runs it again", () =>
    Effect.gen(function*() {
      const id = yield* Effect.gen(function*() {
        const engine = yield* Engine
        const { id } = yield* submit()
        const done = yield* Effect.forkChild(engine.join(id))
        // ten minutes of refused writes: the run neither ends nor gives up, and its row stays running
        for (let i = 0; i < 10; i++) yield* TestClock.adjust("1 minute")
        expect(done.pollUnsafe()).toBeUndefined()
        expect((yield* engine.get(id)).status).toBe("running")
        return id
      }).pipe(Effect.provide(
        Layer.effect(Engine, Engine.make).pipe(
          Layer.provide(flakyCompletions(1_000_000)),
          Layer.provide(HandlersTest),
          Layer.provide(Layer.merge(Readiness.layer, Metrics.layer))
        )
      ))
      const resumed = yield* withFreshEngine(settled(id))
      expect(resumed).toMatchObject({ status: "completed", run: 1 })
    }).pipe(Effect.provide(Layer.merge(SqlTest, Probe.layer))))
})
