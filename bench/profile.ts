// Summarise a V8 .cpuprofile (node --cpu-prof): where the server's CPU time went, by function, by module group,
// and under a few markers (logging, schema, SQLite, spans, the semaphore). Also runnable on its own:
//   node --import tsx bench/profile.ts path/to/file.cpuprofile [--top 25] [--from-ms 0]
import { existsSync, readFileSync } from "node:fs"
import { SourceMap } from "node:module"
import { fileURLToPath, pathToFileURL } from "node:url"
import { root } from "./servers.js"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}

export interface CpuProfile {
  readonly startTime: number
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

export interface Row {
  readonly name: string
  readonly ms: number
  readonly percent: number
}

export interface ProfileSummary {
  /** CPU time sampled, idle excluded, in ms. */
  readonly busyMs: number
  readonly idleMs: number
  readonly functions: ReadonlyArray<Row>
  readonly groups: ReadonlyArray<Row>
  readonly markers: ReadonlyArray<Row>
}

const rootUrl = pathToFileURL(root).href

/**
 * A short, stable location for a frame's script. A package's file is named without its dist/esm/ (as loaded
 * unbundled) or src/ (mapped back from the bundle through the package's own source map): effect/ParseResult.js or
 * effect/ParseResult.ts.
 */
const shortUrl = (url: string) => {
  const modules = url.lastIndexOf("/node_modules/")
  if (modules >= 0) return url.slice(modules + "/node_modules/".length).replace(/\/(dist\/(esm|cjs)|src)\//, "/")
  if (url.startsWith(rootUrl)) return url.slice(rootUrl.length)
  // A snapshot of the code (snapshot.ts): the path inside it; compiled by tsc (an old commit), the path inside its
  // dist/ (src/Engine.js, whose line numbers are those of tsc's output); bundled, mapped back to src/Engine.ts.
  const snapshot = /^file:\/\/.*\/tree\/(?:dist\/)?((?:src|bench|migrations)\/.*)$/.exec(url)
  return snapshot === null ? url : snapshot[1]!
}

/** The module group a script belongs to; the effect package is split where its parts matter here. */
const groupOf = (url: string): string => {
  if (url.startsWith("node:")) {
    const path = url.slice("node:".length).replace(/^internal\//, "")
    const first = path.split("/")[0]!
    return `node:${first.startsWith("_http") || first === "http" ? "http" : first.replace(/^_/, "")}`
  }
  const short = shortUrl(url)
  if (short.startsWith("src/")) return "sidecar src/"
  if (short.startsWith("bench/")) return "bench/"
  if (short.startsWith("migrations/")) return "migrations/"
  if (short.startsWith("effect/")) {
    if (/^effect\/(ParseResult|Schema|SchemaAST)\.[jt]s/.test(short) || short.includes("internal/schema/")) {
      return "effect Schema (decode/encode)"
    }
    if (/logger|Logger/.test(short)) return "effect Logger"
    if (/tracer|Tracer/.test(short)) return "effect Tracer (spans)"
    return "effect runtime & core"
  }
  const m = /^(@[^/]+\/[^/]+|[^/]+)\//.exec(short)
  return m === null ? (short === "" ? "(native)" : short) : m[1]!
}

/**
 * Markers: the share of samples with at least one frame of this kind on the stack (inclusive time). Only code that
 * is entered synchronously and returns (logger, ParseResult, the SQLite driver) is measured this way: a fiber's
 * steps run under whatever node frame resumed it, so "under node:http" would count most of the application.
 */
const markers: ReadonlyArray<readonly [string, (frame: CallFrame) => boolean]> = [
  [
    "logging (effect Logger, src/Logging's JSON lines, console, stdout writes)",
    (f) => /effect\/(?:dist\/esm|src)\/(internal\/logger|Logger)/.test(f.url) || /\/src\/Logging\.(ts|js)$/.test(f.url)
  ],
  ["schema decode/encode (ParseResult)", (f) => /effect\/(?:dist\/esm|src)\/ParseResult\.[jt]s/.test(f.url)],
  [
    "DateTime parse/format (effect DateTime)",
    (f) => /effect\/(?:dist\/esm|src)\/internal\/dateTime\.[jt]s/.test(f.url)
  ],
  ["SQLite (@effect/sql)", (f) => /@effect\/sql/.test(f.url)],
  [
    "node:sqlite statement calls (native)",
    (f) => f.url === "" && /^(run|all|get|iterate|prepare)$/.test(f.functionName)
  ],
  // Not tracer.js's `context`: the runtime runs every fiber through it, spans or not.
  [
    "making and ending spans (withSpan, Effect.fn, NativeSpan)",
    (f) =>
      /effect\/(?:dist\/esm|src)\/internal\/(tracer|core-effect|fiberRuntime)\.[jt]s/.test(f.url) &&
      /^(unsafeMakeSpan|makeSpan|useSpan|withSpan|addSpanStackTrace|NativeSpan|end|attribute|endSpan)$/.test(
        f.functionName
      )
  ],
  [
    "semaphore (take/release/withPermits)",
    (f) =>
      /effect\/(?:dist\/esm|src)\/internal\/effect\/circular\.[jt]s/.test(f.url) &&
      /take|release|withPermits|updateTaken|Semaphore/.test(f.functionName)
  ],
  ["tsx / esbuild (module transform)", (f) => /\/(tsx|esbuild)\//.test(f.url)],
  ["module loading (node:internal/modules)", (f) => f.url.startsWith("node:internal/modules")]
]

const special = new Set(["(idle)", "(program)", "(garbage collector)", "(root)"])

/**
 * Aggregate a profile's samples into self time by function and module group, and inclusive time by marker;
 * only the samples taken `fromMs` or more after the profile started (to leave out startup and warm-up).
 */
export const summarise = (profile: CpuProfile, top = 20, fromMs = 0): ProfileSummary => {
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const child of node.children ?? []) parent.set(child, node.id)
  }
  const selfByFunction = new Map<string, number>()
  const selfByGroup = new Map<string, number>()
  const byMarker = new Map<string, number>()
  let busy = 0
  let idle = 0
  let elapsed = 0
  profile.samples.forEach((id, i) => {
    const dt = (profile.timeDeltas[i] ?? 0) / 1000
    elapsed += dt
    if (elapsed < fromMs) return
    const node = byId.get(id)!
    const frame = node.callFrame
    if (frame.functionName === "(idle)") {
      idle += dt
      return
    }
    busy += dt
    const name = special.has(frame.functionName)
      ? frame.functionName
      : `${frame.functionName || "(anonymous)"} ${
        frame.url === "" ? "(native)" : `${shortUrl(frame.url)}:${frame.lineNumber + 1}`
      }`
    selfByFunction.set(name, (selfByFunction.get(name) ?? 0) + dt)
    // A native frame's time belongs to the module that called it.
    let owner: ProfileNode | undefined = node
    while (owner !== undefined && owner.callFrame.url === "" && !special.has(owner.callFrame.functionName)) {
      const p = parent.get(owner.id)
      owner = p === undefined ? undefined : byId.get(p)
    }
    const group = owner === undefined
      ? "(native)"
      : special.has(owner.callFrame.functionName)
      ? owner.callFrame.functionName
      : groupOf(owner.callFrame.url)
    selfByGroup.set(group, (selfByGroup.get(group) ?? 0) + dt)
    const seen = new Set<string>()
    for (let n: ProfileNode | undefined = node; n !== undefined;) {
      for (const [label, matches] of markers) if (!seen.has(label) && matches(n.callFrame)) seen.add(label)
      const p = parent.get(n.id)
      n = p === undefined ? undefined : byId.get(p)
    }
    for (const label of seen) byMarker.set(label, (byMarker.get(label) ?? 0) + dt)
  })
  const rows = (map: Map<string, number>, limit: number) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([name, ms]) => ({ name, ms, percent: (ms / busy) * 100 }))
  return {
    busyMs: busy,
    idleMs: idle,
    functions: rows(selfByFunction, top),
    groups: rows(selfByGroup, 1000),
    markers: markers.map(([label]) => ({
      name: label,
      ms: byMarker.get(label) ?? 0,
      percent: ((byMarker.get(label) ?? 0) / busy) * 100
    }))
  }
}

/**
 * The profile with a bundle's frames (scripts/bundle.mjs's output, dist/<server>/server.cjs in the snapshot, run by
 * its loader, or the ES module bundles of earlier builds) mapped back through the bundle's source map, while it is
 * there, to where each function was written: the snapshot's src/Engine.ts, or a package's own source
 * (effect/src/ParseResult.ts: esbuild follows the packages' source maps), so that the groups and markers see
 * modules, not one file. tsc's output and unbundled packages are left as they
 * are. Frames the map does not cover keep the bundle's location.
 */
export const unbundle = (profile: CpuProfile): CpuProfile => {
  const maps = new Map<string, SourceMap | undefined>()
  const mapOf = (url: string) => {
    if (!maps.has(url)) {
      let map: SourceMap | undefined
      try {
        const file = `${url.startsWith("file:") ? fileURLToPath(url) : url}.map`
        if (existsSync(file)) map = new SourceMap(JSON.parse(readFileSync(file, "utf8")))
      } catch {
        map = undefined
      }
      maps.set(url, map)
    }
    return maps.get(url)
  }
  return {
    ...profile,
    nodes: profile.nodes.map((node) => {
      const frame = node.callFrame
      if (!/^(file:|\/).*\.[cm]js$/.test(frame.url) || frame.url.includes("/node_modules/")) return node
      const entry = mapOf(frame.url)?.findEntry(frame.lineNumber, frame.columnNumber)
      if (entry === undefined || !("originalSource" in entry)) return node
      return {
        ...node,
        callFrame: {
          ...frame,
          url: new URL(entry.originalSource, frame.url.startsWith("file:") ? frame.url : pathToFileURL(frame.url)).href,
          lineNumber: entry.originalLine,
          columnNumber: entry.originalColumn
        }
      }
    })
  }
}

/** A .cpuprofile, a bundle's frames mapped back to their sources (`unbundle`). */
export const readProfile = (file: string): CpuProfile => unbundle(JSON.parse(readFileSync(file, "utf8")) as CpuProfile)

const table = (title: string, rows: ReadonlyArray<Row>) =>
  [
    `| ${title} | ms | % of busy |`,
    "|---|---:|---:|",
    ...rows.map((r) => `| ${r.name.replaceAll("|", "\\|")} | ${r.ms.toFixed(0)} | ${r.percent.toFixed(1)} |`)
  ].join("\n")

/** The summary as markdown tables. */
export const formatSummary = (summary: ProfileSummary): string =>
  [
    `CPU busy ${summary.busyMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms (percentages are of busy time).`,
    "",
    table("self time by function (top)", summary.functions),
    "",
    table("self time by module group (natives count for their caller)", summary.groups.filter((g) => g.percent >= 0.5)),
    "",
    table("inclusive time under (overlapping)", summary.markers.filter((m) => m.ms > 0))
  ].join("\n")

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2]
  if (file === undefined) {
    process.stderr.write("usage: node --import tsx bench/profile.ts file.cpuprofile [--top N] [--from-ms MS]\n")
    process.exit(2)
  }
  const at = (name: string, fallback: number) => {
    const i = process.argv.indexOf(name)
    return i > 0 ? Number(process.argv[i + 1]) : fallback
  }
  process.stdout.write(`${formatSummary(summarise(readProfile(file), at("--top", 25), at("--from-ms", 0)))}\n`)
}
