// The scenarios: each is run against the baseline and the sidecar (and, where it means something, the framework's
// floor), alternately, on identical databases, and returns one sample of named figures per run. A server is started
// afresh for every run so no run inherits another's table or heap.
import { randomUUID } from "node:crypto"
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { type LoadOptions, type LoadResult, runLoad } from "./load.js"
import { noopType, seededId } from "./schema.js"
import {
  type Build,
  type Elsewhere,
  getJson,
  getStatus,
  needsCompile,
  postJson,
  type Server,
  type ServerKind,
  type SidecarForm,
  sleep,
  startServer
} from "./servers.js"

export interface Settings {
  /** Repetitions of each load scenario per server. */
  readonly reps: number
  /** Startups per server (the figure is their median). */
  readonly startupReps: number
  /** Seconds of measured load per run, after `warmupSeconds` of the same load that is not counted. */
  readonly seconds: number
  readonly warmupSeconds: number
  /** Completed rows already in the table for get-one, list-100 and startup. */
  readonly rows: number
  /** Rows left running for rehydrate. */
  readonly rehydrateRows: number
  /** Submits before the memory figure, and how many times that is done per server (it is the longest run). */
  readonly submits: number
  readonly memoryReps: number
  /** Run every server in a memory cgroup of this many MiB, as a pod's limit would (`--memory-limit`). */
  readonly memoryLimitMiB?: number | undefined
}

export const fullSettings: Settings = {
  reps: 3,
  startupReps: 10,
  seconds: 5,
  warmupSeconds: 1,
  rows: 100_000,
  rehydrateRows: 10_000,
  submits: 100_000,
  memoryReps: 1
}

export const quickSettings: Settings = {
  reps: 1,
  startupReps: 3,
  seconds: 1,
  warmupSeconds: 0.5,
  rows: 100_000,
  rehydrateRows: 10_000,
  submits: 10_000,
  memoryReps: 1
}

/** What a run needs from the orchestrator: a folder of its own, the seeded templates, and profiling. */
export interface RunContext {
  readonly settings: Settings
  /** A new empty folder for this run, removed after it. */
  readonly dir: string
  /** A folder that lives as long as the benchmark run, for files several runs share. */
  readonly shared: string
  /** The snapshot of the code the servers run from. */
  readonly tree: string
  /** How this run starts the sidecar. */
  readonly form: SidecarForm
  /** How the compiled form was made from the snapshot (bundled, or by tsc for an old commit). */
  readonly build: Build
  /** Make sure the snapshot is bundled (or compiled) when `form` needs it (done once per benchmark run). */
  readonly prepare: (form: SidecarForm) => Promise<void>
  /** A template database with `rows` rows in `status`, made once per benchmark run and copied per server run. */
  readonly template: (rows: number, status: "completed" | "running") => string
  /** Set when this run should leave a CPU profile of the server in this folder. */
  readonly cpuProfileDir?: string | undefined
  /** Set by the run: when (ms after the spawn) the measured part began, so a profile can leave out the rest. */
  readonly window: { measuredFromMs: number }
  /** Set for the runs of the build before (`--before`): the sidecar started is that one. */
  readonly elsewhere?: Elsewhere | undefined
}

/** One run's figures, by metric key. */
export type Sample = Record<string, number>

export interface Metric {
  readonly key: string
  readonly label: string
  readonly unit: string
  readonly better: "higher" | "lower" | "none"
  readonly digits: number
}

export interface Variant {
  readonly scenario: string
  readonly name: string
  readonly metrics: ReadonlyArray<Metric>
  readonly reps: (settings: Settings) => number
  /** Also run the sidecar in its other form (compiled and tsx), in the same alternation. */
  readonly bothForms?: boolean
  /**
   * Also run the framework's floor (bench/floor/server.ts), third in each repetition. Only where its figure means
   * something: it has no database, so not for rehydrate, memory or startup on seeded rows.
   */
  readonly floor?: boolean
  readonly run: (kind: ServerKind, ctx: RunContext) => Promise<Sample>
}

const m = (key: string, label: string, unit: string, better: Metric["better"], digits = 0): Metric => ({
  key,
  label,
  unit,
  better,
  digits
})

const rps = m("rps", "requests/s", "req/s", "higher")
const p50 = m("p50", "latency p50", "ms", "lower", 2)
const p90 = m("p90", "latency p90", "ms", "lower", 2)
const p99 = m("p99", "latency p99", "ms", "lower", 2)
const non2xx = m("non2xx", "non-2xx + errors", "", "lower")
const cpuPerRequest = m("cpuUs", "server CPU per request", "µs", "lower")
const generatorCpu = m("genCpu", "load generator CPU", "% of a core", "none")
const loadMetrics = [rps, p50, p90, p99, non2xx, cpuPerRequest, generatorCpu]

/** Start `kind` on `db`, run `use`, and always stop it (gracefully, so a CPU profile gets written). */
const withServer = async <A>(
  kind: ServerKind,
  ctx: RunContext,
  db: string,
  use: (server: Server) => Promise<A>
): Promise<A> => {
  const elsewhere = kind === "sidecar" ? ctx.elsewhere : undefined
  if (elsewhere === undefined && needsCompile(ctx.form)) await ctx.prepare(ctx.form)
  const server = await startServer(kind, {
    elsewhere,
    cwd: ctx.tree,
    form: ctx.form,
    build: ctx.build,
    db,
    logFile: join(ctx.dir, `${kind}.log`),
    cpuProfileDir: ctx.cpuProfileDir,
    memoryLimitMiB: ctx.settings.memoryLimitMiB
  })
  try {
    return await use(server)
  } finally {
    await server.stop()
  }
}

const freshDb = (ctx: RunContext) => join(ctx.dir, "fresh.db")

/** A name for the server as this run starts it, for files several runs share. */
const who = (kind: ServerKind, ctx: RunContext) =>
  kind !== "sidecar" ? kind : ctx.elsewhere !== undefined ? "sidecar-before" : `sidecar-${ctx.form}`

const seededCopy = (ctx: RunContext, rows: number, status: "completed" | "running") => {
  const db = join(ctx.dir, `seeded-${status}.db`)
  copyFileSync(ctx.template(rows, status), db)
  return db
}

/**
 * The seeded rows as `kind` left them after one untimed start, copied for this run: as on a restarted pod, the
 * sidecar's migrations (indexes built on the seeded schema) are applied and checkpointed before it is measured. Rows
 * to be `running` are set so afterwards, as a crash leaves them.
 */
const openedSeededCopy = async (kind: ServerKind, ctx: RunContext, rows: number, status: "completed" | "running") => {
  // the floor has no database
  if (kind === "floor") return seededCopy(ctx, rows, status)
  const opened = join(ctx.shared, `seeded-opened-${rows}-${status}-${who(kind, ctx)}.db`)
  if (!existsSync(opened)) {
    copyFileSync(ctx.template(rows, "completed"), opened)
    await withServer(kind, { ...ctx, cpuProfileDir: undefined }, opened, async () => undefined)
    const conn = new DatabaseSync(opened)
    if (status === "running") conn.exec("UPDATE task_results SET status = 'running', completed_at = NULL")
    conn.exec("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
  }
  const db = join(ctx.dir, `seeded-${status}.db`)
  copyFileSync(opened, db)
  return db
}

/** Warm the server up with the same load, then measure: throughput, latency, server CPU and peak memory. */
const measuredLoad = async (server: Server, ctx: RunContext, load: Omit<LoadOptions, "url">) => {
  if (ctx.settings.warmupSeconds > 0) await runLoad({ ...load, url: server.url, seconds: ctx.settings.warmupSeconds })
  ctx.window.measuredFromMs = performance.now() - server.spawnedAt
  const cpuBefore = server.cpuMs()
  let peakRss = 0
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, server.memory().rssMiB)), 100)
  let result: LoadResult
  try {
    result = await runLoad({ ...load, url: server.url, seconds: load.seconds ?? ctx.settings.seconds })
  } finally {
    clearInterval(sampler)
  }
  const memory = server.memory()
  return {
    result,
    sample: {
      responses: result.responses,
      rps: result.requestsPerSecond,
      p50: result.p50,
      p90: result.p90,
      p99: result.p99,
      non2xx: result.non2xx + result.errors,
      cpuUs: ((server.cpuMs() - cpuBefore) * 1000) / Math.max(1, result.responses),
      genCpu: result.generatorCpuPercent,
      peakRss: Math.max(peakRss, memory.rssMiB),
      hwm: memory.hwmMiB
    } satisfies Sample
  }
}

const newSubmit = () => JSON.stringify({ id: randomUUID(), type: noopType })

const submitNew = (connections: number): Variant => ({
  scenario: "submit-new",
  name: `submit-new c=${connections}`,
  metrics: connections === 64
    ? [
      ...loadMetrics,
      m("peakRss", "peak RSS (sampled VmRSS)", "MiB", "lower", 1),
      m("hwm", "VmHWM at end", "MiB", "lower", 1)
    ]
    : loadMetrics,
  reps: (s) => s.reps,
  floor: true,
  run: (kind, ctx) =>
    withServer(
      kind,
      ctx,
      freshDb(ctx),
      async (server) =>
        (await measuredLoad(server, ctx, { connections, method: "POST", path: "/v0/tasks", body: newSubmit })).sample
    )
})

/** Poll GET /v0/tasks/{id} until the task has ended. */
const awaitCompleted = async (url: string, id: string) => {
  for (let i = 0; i < 1000; i++) {
    const task = (await getJson(`${url}/v0/tasks/${id}`)) as { status?: string }
    if (task.status === "completed") return
    await sleep(5)
  }
  throw new Error(`task ${id} did not complete`)
}

const submitDedupe: Variant = {
  scenario: "submit-dedupe",
  name: "submit-dedupe c=64",
  metrics: [...loadMetrics, m("non202", "answers other than 202", "", "lower")],
  reps: (s) => s.reps,
  floor: true,
  run: (kind, ctx) =>
    withServer(kind, ctx, freshDb(ctx), async (server) => {
      const id = randomUUID()
      const status = await postJson(`${server.url}/v0/tasks`, { id, type: noopType })
      if (status !== 201) throw new Error(`first submit answered ${status}`)
      await awaitCompleted(server.url, id)
      const body = JSON.stringify({ id, type: noopType })
      const { result, sample } = await measuredLoad(server, ctx, {
        connections: 64,
        method: "POST",
        path: "/v0/tasks",
        body
      })
      // The floor keeps nothing, so it answers every submit 201: the count would say nothing (n/a in the report).
      return kind === "floor" ? sample : { ...sample, non202: result.responses - (result.statusCodes["202"] ?? 0) }
    })
}

/**
 * Before a load on the seeded rows: the server must serve them (the newest 100 in a list, any one by id). Otherwise
 * the load measures 404s and empty lists, as it did when the sidecar pruned seeded rows older than its retention.
 */
const assertServesSeeded = async (server: Server, rows: number) => {
  const list = await getJson(`${server.url}/v0/tasks`)
  const one = await getStatus(`${server.url}/v0/tasks/${seededId(Math.floor(rows / 2))}`)
  if (!Array.isArray(list) || list.length !== Math.min(100, rows) || one !== 200) {
    throw new Error(
      `the ${server.kind} does not serve the seeded rows: the list has ${
        Array.isArray(list) ? list.length : "no"
      } tasks, ` +
        `GET of a seeded id answered ${one}`
    )
  }
}

const getOne: Variant = {
  scenario: "get-one",
  name: "get-one c=16 (100k rows)",
  metrics: loadMetrics,
  reps: (s) => s.reps,
  floor: true,
  run: async (kind, ctx) =>
    withServer(kind, ctx, await openedSeededCopy(kind, ctx, ctx.settings.rows, "completed"), async (server) => {
      await assertServesSeeded(server, ctx.settings.rows)
      return (await measuredLoad(server, ctx, {
        connections: 16,
        path: "/v0/tasks",
        pathFor: () => `/v0/tasks/${seededId(Math.floor(Math.random() * ctx.settings.rows))}`
      })).sample
    })
}

const list100: Variant = {
  scenario: "list-100",
  name: "list-100 c=16 (100k rows)",
  metrics: loadMetrics,
  reps: (s) => s.reps,
  floor: true,
  run: async (kind, ctx) =>
    withServer(kind, ctx, await openedSeededCopy(kind, ctx, ctx.settings.rows, "completed"), async (server) => {
      await assertServesSeeded(server, ctx.settings.rows)
      return (await measuredLoad(server, ctx, { connections: 16, path: "/v0/tasks" })).sample
    })
}

const livez: Variant = {
  scenario: "livez",
  name: "livez c=16",
  metrics: loadMetrics,
  reps: (s) => s.reps,
  floor: true,
  run: (kind, ctx) =>
    withServer(
      kind,
      ctx,
      freshDb(ctx),
      async (server) => (await measuredLoad(server, ctx, { connections: 16, path: "/v0/livez" })).sample
    )
}

/**
 * Spawn, wait for the listen line, then poll GET /v0/livez until the first 200; times from the spawn. With
 * `seededRows`, the server must still serve them afterwards (checked after the timing).
 */
const timeStartup = (kind: ServerKind, ctx: RunContext, db: string, seededRows?: number) =>
  withServer(kind, ctx, db, async (server) => {
    for (;;) {
      if ((await getStatus(`${server.url}/v0/livez`)) === 200) break
      if (performance.now() - server.spawnedAt > 60_000) throw new Error("livez never answered 200")
    }
    const sample = {
      startup: performance.now() - server.spawnedAt,
      listen: server.listeningAt - server.spawnedAt,
      hwm: server.memory().hwmMiB
    }
    if (seededRows !== undefined) await assertServesSeeded(server, seededRows)
    return sample
  })

const startupMetrics = [
  m("startup", "spawn to first 200 from livez", "ms", "lower"),
  m("listen", "spawn to the Listening log line", "ms", "lower"),
  m("hwm", "VmHWM at first 200", "MiB", "lower", 1)
]

const startupFresh: Variant = {
  scenario: "startup",
  name: "startup, fresh database",
  metrics: startupMetrics,
  reps: (s) => s.startupReps,
  bothForms: true,
  floor: true,
  run: async (kind, ctx) => {
    // One untimed start first, as startups are compared warm: tsx has its compile cache for the snapshot, and the
    // bundle (or compiled files) in the page cache.
    const warm = join(ctx.shared, `startup-fresh-warm-${who(kind, ctx)}`)
    if (!existsSync(warm)) {
      await withServer(kind, { ...ctx, cpuProfileDir: undefined }, join(ctx.dir, "warm.db"), async () => undefined)
      writeFileSync(warm, "")
    }
    return timeStartup(kind, ctx, freshDb(ctx))
  }
}

const startupSeeded: Variant = {
  scenario: "startup",
  name: "startup, 100k rows",
  metrics: startupMetrics,
  reps: (s) => s.startupReps,
  bothForms: true,
  run: async (kind, ctx) => {
    // A restarted pod's database has been opened by this server before: one untimed start first, which also lets
    // the sidecar record its migrations. Nothing changes the rows afterwards, so every timed start sees the same file.
    const db = join(ctx.shared, `startup-seeded-${who(kind, ctx)}.db`)
    if (!existsSync(db)) {
      copyFileSync(ctx.template(ctx.settings.rows, "completed"), db)
      await withServer(kind, { ...ctx, cpuProfileDir: undefined }, db, async () => undefined)
    }
    return timeStartup(kind, ctx, db, ctx.settings.rows)
  }
}

/** Open read-only (after the server created the WAL files) and count the rows still running. */
const countRunning = (db: string) => {
  const conn = new DatabaseSync(db, { readOnly: true })
  const stmt = conn.prepare("SELECT count(*) AS n FROM task_results WHERE status = 'running'")
  return { count: () => (stmt.get() as { n: number }).n, conn }
}

const rehydrate: Variant = {
  scenario: "rehydrate",
  name: "rehydrate 10k running rows",
  metrics: [
    m("rehydrate", "spawn to all rows terminal", "ms", "lower"),
    m("listen", "spawn to the Listening log line", "ms", "lower"),
    m("wrong", "rows not completed with run 1", "", "lower")
  ],
  reps: (s) => s.reps,
  run: async (kind, ctx) => {
    const rows = ctx.settings.rehydrateRows
    const db = await openedSeededCopy(kind, ctx, rows, "running")
    return withServer(kind, ctx, db, async (server) => {
      const { conn, count } = countRunning(db)
      try {
        while (count() > 0) {
          if (performance.now() - server.spawnedAt > 120_000) throw new Error("rows still running after 120 s")
          await sleep(5)
        }
        const done = performance.now() - server.spawnedAt
        const right = (conn.prepare("SELECT count(*) AS n FROM task_results WHERE status = 'completed' AND run = 1")
          .get() as { n: number }).n
        return { rehydrate: done, listen: server.listeningAt - server.spawnedAt, wrong: rows - right }
      } finally {
        conn.close()
      }
    })
  }
}

const memory: Variant = {
  scenario: "memory",
  name: "memory: 100k submits c=64",
  metrics: [
    m("rssAfter", "RSS after all submits completed", "MiB", "lower", 1),
    m("hwm", "VmHWM over the whole run", "MiB", "lower", 1),
    rps,
    p99,
    non2xx
  ],
  reps: (s) => s.memoryReps,
  run: (kind, ctx) => {
    const db = freshDb(ctx)
    return withServer(kind, ctx, db, async (server) => {
      const result = await runLoad({
        url: server.url,
        connections: 64,
        method: "POST",
        path: "/v0/tasks",
        body: newSubmit,
        amount: ctx.settings.submits,
        maxSeconds: 600
      })
      const { conn, count } = countRunning(db)
      try {
        const deadline = performance.now() + 60_000
        while (count() > 0 && performance.now() < deadline) await sleep(20)
      } finally {
        conn.close()
      }
      const mem = server.memory()
      return {
        rssAfter: mem.rssMiB,
        hwm: mem.hwmMiB,
        rps: result.requestsPerSecond,
        p99: result.p99,
        non2xx: result.non2xx + result.errors + Math.max(0, ctx.settings.submits - result.responses)
      }
    })
  }
}

export const variants: ReadonlyArray<Variant> = [
  submitNew(1),
  submitNew(16),
  submitNew(64),
  submitDedupe,
  getOne,
  list100,
  livez,
  startupFresh,
  startupSeeded,
  rehydrate,
  memory
]

export const scenarioNames = [...new Set(variants.map((v) => v.scenario))]

/** Every file a run left in `dir` (CPU profiles). */
export const filesIn = (dir: string) => readdirSync(dir).map((f) => join(dir, f))

/** A fresh folder for one run inside the benchmark's work folder. */
export const runFolder = (workDir: string, n: number) => {
  const dir = join(workDir, `run-${n}`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir)
  return dir
}
