import * as NodeServices from "@effect/platform-node/NodeServices"
import { expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, FileSystem, Layer, Logger } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import { Engine } from "../../src/engine/Engine.js"
import { sqlLayer } from "../../src/store/Database.js"
import { engineOver, Probe, SqlMemory } from "../support/layers.js"

const withRetentionHours = (hours: string, sql: Layer.Layer<any, any, never> = SqlMemory) =>
  engineOver(sql).pipe(
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { SIDECAR_RETENTION_HOURS: hours } })))
  )

const count = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<{ tasks: number; runs: number }>`SELECT (SELECT count(*) FROM task_results) AS tasks,
    (SELECT count(*) FROM task_runs) AS runs`.pipe(Effect.map((rows) => rows[0]!))
)

it.effect("steady traffic over 12 hours with 1 h retention: the table stays bounded, and nothing it must keep goes", () =>
  Effect.gen(function*() {
    const engine = yield* Engine
    const probe = yield* Probe
    const ready = yield* engine.submit({ type: "mark-ready" })
    yield* engine.join(ready.id)
    yield* probe.hold("forever")
    const held = yield* engine.submit({ type: "test", params: { key: "forever", hold: true } })

    // a task a minute, submitted five at a time
    let most = 0
    for (let minute = 5; minute <= 12 * 60; minute += 5) {
      for (let i = 0; i < 5; i++) yield* engine.join((yield* engine.submit({ type: "test", params: { key: "m" } })).id)
      yield* TestClock.adjust("5 minutes")
      const { runs, tasks } = yield* count
      most = Math.max(most, tasks)
      expect(runs).toBe(tasks) // runs go with their tasks
    }
    // an hour of traffic, plus what arrives within one prune interval (6 min), plus the two kept rows
    expect(most).toBeLessThanOrEqual(60 + 10 + 2)
    expect(most).toBeGreaterThanOrEqual(60)
    // the running task and the mark-ready readiness is derived from outlive the retention
    expect((yield* engine.get(held.id)).status).toBe("running")
    expect((yield* engine.get(ready.id)).status).toBe("completed")
    expect(yield* engine.ready).toBe(true)
    yield* probe.release("forever")
  }).pipe(Effect.provide(withRetentionHours("1"))))

it.effect("SIDECAR_RETENTION_HOURS=0 keeps everything", () =>
  Effect.gen(function*() {
    const engine = yield* Engine
    for (let i = 0; i < 10; i++) {
      yield* engine.join((yield* engine.submit({ type: "mark-not-ready" })).id)
      yield* TestClock.adjust("30 days")
    }
    expect((yield* count).tasks).toBe(10)
  }).pipe(Effect.provide(withRetentionHours("0"))))

it.effect("a database this sidecar created has no grace and no warning: a restart prunes what aged at once", () =>
  Effect.gen(function*() {
    const dir = yield* (yield* FileSystem.FileSystem).makeTempDirectoryScoped({ prefix: "sidecar-retention-" })
    const levels: Array<string> = []
    const logged = Logger.layer([Logger.make(({ logLevel }) => void levels.push(logLevel))])
    const start = <A, E>(use: Effect.Effect<A, E, Engine | SqlClient.SqlClient>) =>
      use.pipe(Effect.provide(withRetentionHours("1", sqlLayer(`${dir}/sidecar.db`))), Effect.provide(logged))

    yield* start(Effect.gen(function*() {
      const engine = yield* Engine
      for (const key of ["a", "b"]) yield* engine.join((yield* engine.submit({ type: "test", params: { key } })).id)
    }))
    yield* TestClock.adjust("2 hours")
    const left = yield* start(Effect.andThen(TestClock.adjust("1 second"), count))
    expect(left.tasks).toBe(0)
    expect(levels).not.toContain("Warn")
  }).pipe(Effect.scoped, Effect.provide(NodeServices.layer)))
