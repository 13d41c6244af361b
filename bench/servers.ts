// Starting, watching and stopping the servers as child processes, the way a user starts the sidecar.
import { type ChildProcess, spawn } from "node:child_process"
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync
} from "node:fs"
import { request } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export const root = fileURLToPath(new URL("..", import.meta.url))

/** Where the snapshot's runnable JavaScript goes, inside the snapshot (snapshot.ts). */
export const compiledDir = "dist"

/**
 * How the snapshot is made into JavaScript that plain node runs. `bundle`: as the product is built since b880c87,
 * each server's entry bundled on its own by scripts/bundle.mjs (esbuild) into `dist/<kind>/server.mjs`. `tsc`: for
 * a commit that cannot be bundled (no migrations/index.ts: its Sql.ts reads the migrations folder at run time), the
 * snapshot compiled file by file by tsc, as that commit was built and deployed, `dist/bench/server.js`.
 */
export type Build = "bundle" | "tsc"

/**
 * Which server: the sidecar (bench/server.ts), the yardstick (bench/baseline/server.ts), or the framework's floor
 * (bench/floor/server.ts: a no-op HttpApi server on the sidecar's HTTP stack, no database).
 */
export type ServerKind = "baseline" | "sidecar" | "floor"
/** In the order each repetition runs them. */
export const serverKinds: ReadonlyArray<ServerKind> = ["baseline", "sidecar", "floor"]

/**
 * How the sidecar is started. `compiled`: as deployed (deploy/Dockerfile), plain node on JavaScript made from the
 * snapshot: the bundle (`node dist/sidecar/server.mjs`) or, for an old commit, tsc's output (`Build`). `tsx`: the
 * TypeScript through tsx's loader, as `npm run dev` does (`node --import tsx bench/server.ts`). The yardstick and the
 * floor run in the sidecar's form (bundled or compiled the same way, or through tsx), so the three differ only in what
 * the server does, not in how it is loaded.
 */
export type SidecarForm = "compiled" | "tsx"
export const otherForm = (form: SidecarForm): SidecarForm => (form === "compiled" ? "tsx" : "compiled")
export const formLabel = (form: SidecarForm, build: Build = "bundle") =>
  form === "tsx"
    ? "via tsx (npm run dev)"
    : build === "bundle"
    ? "bundled, plain node (as deployed)"
    : "compiled by tsc, plain node (as deployed before the bundle)"

/** Each server's entry in the snapshot, as TypeScript. */
export const entryOf = (kind: ServerKind): string =>
  kind === "baseline" ? "bench/baseline/server.ts" : kind === "floor" ? "bench/floor/server.ts" : "bench/server.ts"

/** Where `kind`'s bundle goes (one bundle per server, each built alone as scripts/bundle.mjs builds the product). */
export const bundleDirOf = (kind: ServerKind): string => `${compiledDir}/${kind}`

/** What plain node runs for `kind` in the snapshot, relative to it. */
export const compiledEntryOf = (kind: ServerKind, build: Build): string =>
  build === "bundle" ? `${bundleDirOf(kind)}/server.mjs` : `${compiledDir}/${entryOf(kind).replace(/\.ts$/, ".js")}`

/** Whether servers started in `form` need the snapshot bundled or compiled. */
export const needsCompile = (form: SidecarForm): boolean => form === "compiled"

/** The node arguments that start `kind` in the snapshot. */
export const launchArgs = (kind: ServerKind, form: SidecarForm, build: Build): ReadonlyArray<string> =>
  form === "compiled"
    ? [...(kind === "sidecar" ? deployedNodeFlags : []), compiledEntryOf(kind, build)]
    : ["--import", "tsx", entryOf(kind)]

/** The V8 flags the image and `npm start` give the sidecar (deploy/Dockerfile, package.json; test/Deploy.test.ts). */
export const deployedNodeFlags: ReadonlyArray<string> = ["--max-semi-space-size=8", "--max-old-space-size=256"]
/** The environment they give it besides. */
export const deployedNodeEnv: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: "2" }

/**
 * A sidecar built in another checkout, with its own node (`--before`): the build before a change, measured in the
 * same alternation as this one. `entry` is its bench server's loader, relative to `cwd`.
 */
export interface Elsewhere {
  readonly cwd: string
  readonly node: string
  readonly entry: string
  /** The node flags its own `npm start` gives it, and the environment. */
  readonly flags: ReadonlyArray<string>
  readonly env: Readonly<Record<string, string>>
}

export interface StartOptions {
  /** The checkout to run from (a snapshot of this one; see snapshot.ts). */
  readonly cwd: string
  /** How to start the servers. */
  readonly form: SidecarForm
  /** How the snapshot was made into JavaScript, for the compiled form. */
  readonly build: Build
  /** The SQLite file (it need not exist). */
  readonly db: string
  /** Where the child's stdout and stderr go (the JSON log lines). */
  readonly logFile: string
  /** Write a CPU profile into this folder when the server exits. */
  readonly cpuProfileDir?: string | undefined
  /** Give up when it has not listened after this long. */
  readonly timeoutMs?: number
  /** Start that sidecar instead of the snapshot's. */
  readonly elsewhere?: Elsewhere | undefined
  /** Start it in a memory cgroup of this many MiB (see `memoryCgroup`). */
  readonly memoryLimitMiB?: number | undefined
}

export interface Server {
  readonly kind: ServerKind
  readonly form: SidecarForm
  readonly pid: number
  readonly url: string
  /** performance.now() when spawned, and when its "Listening on" line appeared. */
  readonly spawnedAt: number
  readonly listeningAt: number
  readonly child: ChildProcess
  /** Resident and peak resident memory now, in MiB (/proc/<pid>/status VmRSS, VmHWM). */
  readonly memory: () => { readonly rssMiB: number; readonly hwmMiB: number }
  /** CPU time used so far (user + system), in ms. */
  readonly cpuMs: () => number
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`; resolves with the exit code. */
  readonly stop: (graceMs?: number) => Promise<number | null>
}

const live = new Set<ChildProcess>()

// If the orchestrator dies, its servers must not outlive it: only our own children, by pid.
const killAll = () => {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
}
process.once("exit", killAll)

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const readStatusKiB = (pid: number, field: string): number => {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m === null ? 0 : Number(m[1])
  } catch {
    return 0
  }
}

const clockTicks = 100 // USER_HZ on Linux

/** utime + stime of a process from /proc/<pid>/stat, in ms. */
export const processCpuMs = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the parenthesised command name, which may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks
  } catch {
    return 0
  }
}

/**
 * The `cgroup.procs` file of a memory cgroup limited to `limitMiB`, made once (cgroup v2, or v1's memory controller;
 * needs root). Node sizes its heap from the limit it finds there, as it does in a pod with a memory limit.
 */
const memoryCgroup = (limitMiB: number): string => {
  const bytes = String(limitMiB * 1024 * 1024)
  const name = `sidecar-bench-${limitMiB}m`
  const v2 = "/sys/fs/cgroup"
  try {
    if (existsSync(`${v2}/cgroup.controllers`) && readFileSync(`${v2}/cgroup.controllers`, "utf8").includes("memory")) {
      writeFileSync(`${v2}/cgroup.subtree_control`, "+memory")
      mkdirSync(`${v2}/${name}`, { recursive: true })
      writeFileSync(`${v2}/${name}/memory.max`, bytes)
      return `${v2}/${name}/cgroup.procs`
    }
    const v1 = `${v2}/memory`
    mkdirSync(`${v1}/${name}`, { recursive: true })
    writeFileSync(`${v1}/${name}/memory.limit_in_bytes`, bytes)
    return `${v1}/${name}/cgroup.procs`
  } catch (e) {
    throw new Error(
      `--memory-limit needs a memory cgroup this process may create (root; cgroup v2 or v1's memory controller): ${
        e instanceof Error ? e.message : String(e)
      }`
    )
  }
}

/** Spawn `kind` on 127.0.0.1 with a free port and wait for its "Listening on" log line. */
export const startServer = async (kind: ServerKind, options: StartOptions): Promise<Server> => {
  const log = openSync(options.logFile, "w")
  const spawnedAt = performance.now()
  const elsewhere = options.elsewhere
  const node = elsewhere?.node ?? process.execPath
  // In a cgroup, a shell joins it and then becomes node (exec): the pid measured is node's all the same.
  const [command, prefix] = options.memoryLimitMiB === undefined
    ? [node, []]
    : ["/bin/sh", ["-c", "echo $$ > \"$0\" && exec \"$@\"", memoryCgroup(options.memoryLimitMiB), node]]
  const child = spawn(
    command,
    [
      ...prefix,
      ...(options.cpuProfileDir === undefined
        ? []
        : ["--cpu-prof", "--cpu-prof-dir", options.cpuProfileDir, "--cpu-prof-interval", "250"]),
      ...(elsewhere === undefined
        ? launchArgs(kind, options.form, options.build)
        : [...elsewhere.flags, elsewhere.entry])
    ],
    {
      cwd: elsewhere?.cwd ?? options.cwd,
      env: {
        ...process.env,
        ...(elsewhere?.env ?? (kind === "sidecar" && options.form === "compiled" ? deployedNodeEnv : {})),
        SIDECAR_HOST: "127.0.0.1",
        SIDECAR_PORT: "0",
        SIDECAR_DB: options.db
      },
      // A file rather than a pipe: a busy load generator must not be able to block the server's log writes.
      stdio: ["ignore", log, log]
    }
  )
  closeSync(log)
  live.add(child)
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      live.delete(child)
      resolve(code)
    })
  )
  const pid = child.pid!
  const url = await waitForListening(options.logFile, child, options.timeoutMs ?? 60_000)
  const listeningAt = performance.now()
  const stop = async (graceMs = 15_000) => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
    const code = await exited
    clearTimeout(timer)
    return code
  }
  return {
    kind,
    form: options.form,
    pid,
    url,
    spawnedAt,
    listeningAt,
    child,
    memory: () => ({ rssMiB: readStatusKiB(pid, "VmRSS") / 1024, hwmMiB: readStatusKiB(pid, "VmHWM") / 1024 }),
    cpuMs: () => processCpuMs(pid),
    stop
  }
}

const listening = /"message":"Listening on (http:\/\/[^"]+)"/

/** Tail the log file until the server says where it listens; fail if it exits or takes too long first. */
const waitForListening = async (logFile: string, child: ChildProcess, timeoutMs: number): Promise<string> => {
  const fd = openSync(logFile, "r")
  const deadline = performance.now() + timeoutMs
  const buffer = Buffer.alloc(64 * 1024)
  let text = ""
  try {
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null)
      if (n > 0) {
        text += buffer.toString("utf8", 0, n)
        const m = listening.exec(text)
        if (m !== null) return m[1]!
        continue
      }
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`server exited (${child.exitCode ?? child.signalCode}) before listening:\n${text.slice(-2000)}`)
      }
      if (performance.now() > deadline) {
        child.kill("SIGKILL")
        throw new Error(`server did not listen within ${timeoutMs} ms:\n${text.slice(-2000)}`)
      }
      await sleep(2)
    }
  } finally {
    closeSync(fd)
  }
}

/** One GET without keep-alive; resolves with the status code (0 when the connection failed). */
export const getStatus = (url: string): Promise<number> =>
  new Promise((resolve) => {
    const req = request(url, { agent: false }, (res) => {
      res.resume()
      res.on("end", () => resolve(res.statusCode ?? 0))
    })
    req.on("error", () => resolve(0))
    req.end()
  })

/** One GET returning the parsed JSON body. */
export const getJson = (url: string): Promise<unknown> =>
  new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = ""
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk))
      res.on("end", () => {
        try {
          resolve(JSON.parse(body))
        } catch (e) {
          reject(e)
        }
      })
    })
    req.on("error", reject)
    req.end()
  })

/** One POST of a JSON body; resolves with the status code. */
export const postJson = (url: string, body: unknown): Promise<number> =>
  new Promise((resolve, reject) => {
    const text = JSON.stringify(body)
    const req = request(
      url,
      {
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(text) }
      },
      (res) => {
        res.resume()
        res.on("end", () => resolve(res.statusCode ?? 0))
      }
    )
    req.on("error", reject)
    req.end(text)
  })

/** A scratch folder for one run, removed by `remove` (and on exit if the run is cut short). */
export const makeWorkDir = (): { readonly dir: string; readonly remove: () => void } => {
  const dir = mkdtempSync(join(tmpdir(), "sidecar-bench-"))
  const remove = () => rmSync(dir, { recursive: true, force: true })
  process.once("exit", remove)
  return { dir, remove }
}

export { sleep }
