// The real layers composed for in-process tests: SQLite in a temp file or in memory, the Engine with the built-in
// handlers and the `test` ones (driven through Probe), and the HTTP API over it on a test server.
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Context, DateTime, Deferred, Effect, FileSystem, Layer, Schema } from "effect"
import { HttpClient } from "effect/http"
import { Engine } from "../../src/engine/Engine.js"
import { Readiness } from "../../src/engine/Readiness.js"
import { taskHandler, TaskHandlers } from "../../src/engine/TaskHandlers.js"
import { TaskError } from "../../src/Errors.js"
import { builtinHandlers } from "../../src/handlers/Builtins.js"
import { Commands } from "../../src/handlers/RunCommand.js"
import { HttpLive } from "../../src/http/Http.js"
import { Metrics } from "../../src/Metrics.js"
import { Shutdown } from "../../src/Shutdown.js"
import { sqlLayer } from "../../src/store/Database.js"
import { Store } from "../../src/store/Store.js"

/** A fresh SQLite file in a temp folder, removed with the layer; built exactly as in production. */
export const SqlTest = Layer.unwrap(
  Effect.gen(function*() {
    const dir = yield* (yield* FileSystem.FileSystem).makeTempDirectoryScoped({ prefix: "sidecar-test-" })
    return sqlLayer(`${dir}/sidecar.db`)
  })
).pipe(Layer.provide(NodeServices.layer))

/** In-memory SQLite, for tests that need no file. */
export const SqlMemory = sqlLayer(":memory:")

/**
 * What the `test` handler does and what it saw, per key: how many times it ran, whether its runs were
 * interrupted, and a latch a test can hold closed to keep a run going.
 */
export class Probe extends Context.Service<Probe>()("test/Probe", {
  make: Effect.sync(() => {
    const runs = new Map<string, number>()
    const interruptions = new Map<string, number>()
    const latches = new Map<string, Deferred.Deferred<void>>()
    const latch = (key: string) => {
      let d = latches.get(key)
      if (d === undefined) {
        d = Deferred.makeUnsafe<void>()
        latches.set(key, d)
      }
      return d
    }
    return {
      /** Runs of `key` that have started so far. */
      runs: (key: string) => runs.get(key) ?? 0,
      interruptions: (key: string) => interruptions.get(key) ?? 0,
      /** Let held runs of `key` finish (and every later one, until `hold` again). */
      release: (key: string) => Deferred.succeed(latch(key), undefined),
      /** Make the next runs of `key` wait for `release`. */
      hold: (key: string) => Effect.sync(() => latches.set(key, Deferred.makeUnsafe<void>())),
      started: (key: string) => Effect.sync(() => runs.set(key, (runs.get(key) ?? 0) + 1)),
      interrupted: (key: string) => Effect.sync(() => interruptions.set(key, (interruptions.get(key) ?? 0) + 1)),
      wait: (key: string) => Deferred.await(latch(key))
    }
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}

/** Params of the `test` handler: what the run should do once its key's latch opens. */
export const ProbeParams = Schema.Struct({
  key: Schema.String,
  hold: Schema.optionalKey(Schema.Boolean),
  fail: Schema.optionalKey(Schema.String),
  crash: Schema.optionalKey(Schema.String)
})

export const probeHandler = taskHandler({
  name: "test",
  params: ProbeParams,
  run: ({ crash, fail, hold, key }) =>
    Effect.gen(function*() {
      const probe = yield* Probe
      yield* probe.started(key)
      yield* Effect.logDebug("test handler ran")
      if (hold === true) yield* probe.wait(key).pipe(Effect.onInterrupt(() => probe.interrupted(key)))
      if (crash !== undefined) throw new Error(crash)
      if (fail !== undefined) {
        return yield* new TaskError({
          task: "test",
          operation: key,
          message: fail,
          hint: "release it",
          retryable: true
        })
      }
      return { key, run: probe.runs(key) }
    })
})

/** A handler with a timeout: its runs wait on their key's latch, and give up after 1 s. */
export const timedHandler = taskHandler({
  name: "test-timed",
  params: Schema.Struct({ key: Schema.String }),
  timeout: "1 second",
  run: ({ key }) => Effect.flatMap(Probe, (probe) => Effect.andThen(probe.started(key), probe.wait(key)))
})

/** A handler with a result schema: the result is stored encoded, and a result that does not fit fails the run. */
export const typedHandler = taskHandler({
  name: "test-typed",
  params: Schema.Struct({ n: Schema.Number }),
  result: Schema.Struct({ doubled: Schema.Int, at: Schema.DateTimeUtcFromString }),
  run: ({ n }) => Effect.map(DateTime.now, (at) => ({ doubled: n * 2, at }))
})

// Writes its pid to the file named by its first arg, then waits; with "ignore-term" it also ignores SIGTERM.
const pidThenWait = `
  const [file, mode] = process.argv.slice(1)
  if (mode === "ignore-term") process.on("SIGTERM", () => {})
  require("fs").writeFileSync(file, String(process.pid))
  setInterval(() => {}, 1000)`

/** Commands for run-command tests: plain argv, no shell involved unless a test asks for one. */
export const testCommands = Commands.fromRecord({
  ok: { argv: ["node", "-e", "process.stdout.write('out'); process.stderr.write('err')"] },
  fails: { argv: ["node", "-e", "process.stderr.write('disk full'); process.exit(3)"] },
  echo: { argv: ["node", "-e", "process.stdout.write(process.argv.slice(1).join(' '))"], allowArgs: true },
  chatty: { argv: ["node", "-e", "process.stdout.write('x'.repeat(100000) + 'END')"] },
  slow: { argv: ["node", "-e", pidThenWait], timeoutSeconds: 5, allowArgs: true },
  // a shell whose background child writes its pid: killing the group must reach it too
  group: { argv: ["sh", "-c", "sleep 120 & echo $! > \"$0\"; wait"], allowArgs: true },
  missing: { argv: ["/nonexistent/binary"] }
})

export const HandlersTest = TaskHandlers.layer(...builtinHandlers, probeHandler, timedHandler, typedHandler).pipe(
  Layer.provide(testCommands)
)

/**
 * The real Store with a yield after every read, so that concurrent submits really interleave between the read
 * and the write of their decision (with plain SQLite calls a fiber rarely yields there on its own).
 */
export const InterleavingStore = Layer.effect(
  Store,
  Effect.map(Store.make, (real) => Store.of({ ...real, get: (id) => Effect.tap(real.get(id), () => Effect.yieldNow) }))
)

/** The real Engine over `sql`, with the built-in handlers plus `test`; Probe, Readiness and Metrics are shared out. */
export const engineOver = <E, R>(sql: Layer.Layer<any, E, R>) =>
  Engine.layer.pipe(
    Layer.provideMerge(HandlersTest),
    Layer.provideMerge(Layer.mergeAll(Probe.layer, Readiness.layer, Metrics.layer, Shutdown.layer)),
    Layer.provideMerge(sql)
  )

/** The real Engine over in-memory SQLite. */
export const EngineTest = engineOver(SqlMemory)

/** The whole HTTP API on a test server (a real socket on a free loopback port) over engineOver(sql). */
export const serverOver = <E, R>(sql: Layer.Layer<any, E, R>) =>
  HttpLive.pipe(Layer.provideMerge(engineOver(sql)), Layer.provideMerge(NodeHttpServer.layerTest))

/** The whole HTTP API on a test server over in-memory SQLite. */
export const HttpTest = serverOver(SqlMemory)

/** GET `url` from the test server: the status and the parsed JSON. */
export const getJson = (url: string) =>
  Effect.flatMap(
    HttpClient.HttpClient,
    (client) =>
      Effect.flatMap(
        client.get(url),
        (res) => Effect.map(res.json, (json) => ({ status: res.status, json: json as any }))
      )
  )

/** engineOver, with the real Store replaced by `store` (usually the real one with one method overridden). */
export const engineWithStore = <E1, R1, E, R>(store: Layer.Layer<Store, E1, R1>, sql: Layer.Layer<any, E, R>) =>
  Layer.effect(Engine, Engine.make).pipe(
    Layer.provide(store),
    Layer.provideMerge(HandlersTest),
    Layer.provideMerge(Layer.mergeAll(Probe.layer, Readiness.layer, Metrics.layer, Shutdown.layer)),
    Layer.provideMerge(sql)
  )

/**
 * Run `effect` against a fresh Engine and Readiness (what a restarted process would build) over the SqlClient and
 * Probe the test already has. The engine is shut down when `effect` ends.
 */
export const withFreshEngine = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provide(
    effect,
    Engine.layer.pipe(
      Layer.provideMerge(HandlersTest),
      Layer.provideMerge(Layer.merge(Readiness.layer, Metrics.layer))
    )
  )
