// `npm run bench [-- options]`: the sidecar against the baseline yardstick, and next to the framework's floor,
// alternately, on this machine, now. The load generator (autocannon) runs in this process; the servers are child
// processes on 127.0.0.1.
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { measureModuleLoading, prepareModuleLoading } from "./modules.js"
import { formatSummary } from "./profile.js"
import { beforeAfterTable, judgeTargets, resultsTable, targetsTable, type VariantResult } from "./report.js"
import { type Bench, makeBench } from "./run.js"
import { fullSettings, quickSettings, scenarioNames, type Settings, variants } from "./scenarios.js"
import { compiledEntryOf, type Elsewhere, entryOf, formLabel, root, type ServerKind } from "./servers.js"
import { describeCode } from "./snapshot.js"
import { spread } from "./stats.js"

const usage = `npm run bench -- [options]
  --quick               1 repetition, 1-second loads, 3 startups, 10k submits for memory (about 1.5 minutes)
  --only a,b            only these scenarios: ${scenarioNames.join(", ")}
  --reps N              repetitions per server of each load scenario (default 3)
  --startup-reps N      startups per server (default 10)
  --seconds S           measured seconds per load run (default 5), after --warmup S (default 1)
  --submits N           submits before the memory figure (default 100000, once per server)
  --profile             afterwards, profile the sidecar (--cpu-prof, in the form measured) in every scenario whose
                        target was missed
  --profile-only a,b    skip the measurements; profile the sidecar, the baseline and the floor in these scenarios
  --keep-profiles DIR   keep the .cpuprofile files there
  --commit REF          measure that commit's src/ (git archive) instead of a copy of the working tree
  --tsx                 start the sidecar through tsx (node --import tsx bench/server.ts, as npm run dev does)
                        instead of as deployed (bench/server.ts bundled by scripts/bundle.mjs, node
                        dist/sidecar/server.mjs; a commit without migrations/index.ts cannot be bundled and is
                        compiled by tsc instead, node dist/bench/server.js); the startup scenario runs both forms
                        either way; the baseline and the floor follow the sidecar's form
  --before DIR          also run the sidecar built in the checkout DIR (the build before a change, with its own
                        node_modules), in the same alternation, and report each figure before and after; its bench
                        server is bundled there by its own scripts/bundle.mjs if it is not yet (dist/bench-before/)
                        and started with the node flags of its own npm start
  --before-node FILE    the node that runs it (default: DIR/node_modules/.bin/node, else the first node on the PATH
                        outside node_modules)
  --memory-limit MIB    run every server in a memory cgroup of MIB (root), as a pod's memory limit would: Node sizes
                        its heap from it
  --out FILE            also write the report (markdown) to FILE`

const args = process.argv.slice(2)
const flag = (name: string) => args.includes(name)
const option = (name: string): string | undefined => {
  const at = args.indexOf(name)
  return at >= 0 ? args[at + 1] : undefined
}
const number = (name: string, fallback: number) => {
  const value = option(name)
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number, not ${value}`)
  return n
}
const list = (name: string) => {
  const value = option(name)
  if (value === undefined) return undefined
  const names = value.split(",").map((s) => s.trim()).filter((s) => s !== "")
  const unknown = names.filter((n) => !scenarioNames.includes(n))
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(", ")}; known: ${scenarioNames.join(", ")}`)
  return names
}

if (flag("--help") || flag("-h")) {
  process.stdout.write(`${usage}\n`)
  process.exit(0)
}

const base = flag("--quick") ? quickSettings : fullSettings
const settings: Settings = {
  ...base,
  reps: number("--reps", base.reps),
  startupReps: number("--startup-reps", base.startupReps),
  seconds: number("--seconds", base.seconds),
  warmupSeconds: option("--warmup") === "0" ? 0 : number("--warmup", base.warmupSeconds),
  submits: number("--submits", base.submits),
  memoryLimitMiB: option("--memory-limit") === undefined ? undefined : number("--memory-limit", 0)
}
const only = list("--only")
const profileOnly = list("--profile-only")
const keepProfiles = option("--keep-profiles")
const out = option("--out")
const commit = option("--commit")
const beforeDir = option("--before")
const form = flag("--tsx") ? "tsx" : "compiled"

// Ctrl-C: exit through process.exit so the exit hooks kill our servers and remove the work folder.
process.once("SIGINT", () => process.exit(130))
process.once("SIGTERM", () => process.exit(143))

const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`)

const version = (pkg: string) =>
  (JSON.parse(readFileSync(`${root}node_modules/${pkg}/package.json`, "utf8")) as { version: string }).version

const machine = (bench: Bench) => {
  const model = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpus()[0]?.model ?? "?"
  const nproc = execFileSync("nproc", { encoding: "utf8" }).trim()
  return [
    `- machine: \`nproc\` = ${nproc}, CPU ${model}, ${
      Math.round(Number(/MemTotal:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? 0) / 1024 / 1024)
    } GiB RAM`,
    `- node ${process.version} (SQLite ${process.versions.sqlite}), effect ${
      version("effect")
    }, @effect/platform-node ${version("@effect/platform-node")}, autocannon ${version("autocannon")}, tsx ${
      version("tsx")
    }`,
    `- code measured: ${describeCode(commit)}`,
    `- sidecar started ${formLabel(form, bench.build)}: ${started(bench, "sidecar")}; the baseline and the floor the ` +
    `same way, ${command(bench, "baseline")} and ${command(bench, "floor")}`,
    ...(bench.build === "tsc"
      ? [
        `- NOT bundled: commit ${commit} has no migrations/index.ts (its Sql.ts reads the migrations folder at run time),` +
        " so it cannot be bundled; its \"as deployed\" form is the snapshot compiled by tsc with tsconfig.build.json's" +
        " options (plus the two servers' entries), as it was built before the bundle (b880c87)"
      ]
      : []),
    `- load average at start: ${loadavg().map((l) => l.toFixed(2)).join(", ")} (the machine is shared)`,
    `- settings: ${settings.reps} repetitions per server (startup: ${settings.startupReps}), ${settings.seconds} s measured after ${settings.warmupSeconds} s warm-up, ${settings.rows} seeded rows, ${settings.rehydrateRows} rows to rehydrate, ${settings.submits} submits for memory${
      settings.memoryLimitMiB === undefined ? "" : `, every server in a ${settings.memoryLimitMiB} MiB memory cgroup`
    }`
  ].join("\n")
}

/** The command that starts `kind` in the snapshot. */
const command = (bench: Bench, kind: ServerKind) =>
  bench.form === "tsx" ? `\`node --import tsx ${entryOf(kind)}\`` : `\`node ${compiledEntryOf(kind, bench.build)}\``

/** How the sidecar or the floor is made and started, for the report. */
const started = (bench: Bench, kind: "sidecar" | "floor") =>
  bench.form === "tsx"
    ? command(bench, kind)
    : `${entryOf(kind)} ${
      bench.build === "bundle"
        ? "bundled by scripts/bundle.mjs (as deployed: as `npm run build` bundles src/main.ts)"
        : "compiled by tsc"
    }, ${command(bench, kind)}`

/**
 * The build before (`--before DIR`): DIR's bench server, bundled there by DIR's own scripts/bundle.mjs with DIR's
 * node unless it is already, started by that node.
 */
const prepareBefore = (dir: string): Elsewhere & { readonly version: string } => {
  const node = option("--before-node") ??
    [
      join(dir, "node_modules/.bin/node"),
      ...(process.env.PATH ?? "").split(":").filter((p) => !p.includes("node_modules"))
        .map((p) => join(p, "node"))
    ].find((file) => existsSync(file))
  if (node === undefined) throw new Error("--before: no node found to run it; give --before-node")
  const entry = "dist/bench-before/server.mjs"
  if (!existsSync(join(dir, entry))) {
    log(`bundling ${dir}'s bench/server.ts with its own scripts/bundle.mjs and ${node}`)
    execFileSync(node, ["scripts/bundle.mjs", "bench/server.ts", "--outdir", "dist/bench-before"], {
      cwd: dir,
      stdio: "inherit"
    })
  }
  const version = execFileSync(node, ["--version"], { encoding: "utf8" }).trim()
  const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: dir, encoding: "utf8" }).trim()
  // started with the environment and flags its own `npm start` gives node before the entry point
  const start: string = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).scripts?.start ?? ""
  const words = start.split(/\s+/)
  const at = words.indexOf("node")
  const assignments = words.slice(0, Math.max(at, 0)).filter((w) => /^[A-Z_]+=/.test(w))
  const env = Object.fromEntries(assignments.map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)]))
  const flags = words.slice(at + 1, words.findIndex((w) => w.endsWith("main.mjs"))).filter((w) => w.startsWith("--"))
  return {
    cwd: dir,
    node,
    entry,
    flags,
    env,
    version: `${head}, ${[...assignments, `node ${version}`, ...flags].join(" ")}`
  }
}

/** The 1-minute load average every 10 s while the benchmark runs: the machine is shared, so it is part of the result. */
const loadSamples: Array<number> = []
const loadSampler = setInterval(() => loadSamples.push(loadavg()[0]!), 10_000)
loadSampler.unref()

const loadDuringRun = () => {
  const s = spread(loadSamples)
  return s.n === 0
    ? ""
    : `- load average (1 min) during the run, sampled every 10 s: median ${s.median.toFixed(2)}, min ${
      s.min.toFixed(2)
    }, max ${s.max.toFixed(2)} (${s.n} samples; nproc = ${cpus().length})`
}

const main = async () => {
  const before = beforeDir === undefined ? undefined : prepareBefore(beforeDir)
  const bench = makeBench(settings, { commit, form, before, progress: log })
  const report: Array<string> = []
  const started = performance.now()
  try {
    report.push(`## Run of ${new Date().toISOString()}`, "", machine(bench), "")
    log(`machine:\n${machine(bench)}`)

    if (profileOnly === undefined) {
      const selected = variants.filter((v) => only === undefined || only.includes(v.scenario))
      const results: Array<VariantResult> = []
      for (const variant of selected) {
        log(`== ${variant.name}`)
        results.push(await bench.run(variant, log))
      }
      report.push(
        "### Results",
        "",
        "Median over the repetitions, (min–max) across them. Latencies are per request as seen by the load",
        "generator. Server CPU per request is the server process's user+system time over the measured run divided",
        "by the answers; load generator CPU near 100% means the generator, not the server, was the limit.",
        "",
        "The floor (bench/floor/server.ts) is a no-op @effect/platform HttpApi server on the sidecar's HTTP stack",
        "(NodeHttpServer on node:http, spans and logging off): no database, no engine, fixed answers encoded through a",
        "Schema. It takes part in the load scenarios and the startup on a fresh database. It stores nothing and",
        "answers every submit 201, so for submit-new and submit-dedupe it is a floor under the sidecar, not a",
        "competitor of the baseline: floor ÷ baseline there bounds what an HttpApi server doing the same decoding and",
        "encoding reaches.",
        "",
        resultsTable(results, bench.form, bench.build),
        ""
      )
      if (before !== undefined) {
        report.push(
          `### Before and after: the sidecar built in ${before.cwd} (${before.version}) against this one`,
          "",
          beforeAfterTable(results),
          ""
        )
      }
      const outcomes = judgeTargets(results, bench.form, bench.build)

      if (only === undefined || only.includes("list-100")) {
        log("== EXPLAIN QUERY PLAN of Store.list(100)")
        // From the snapshot, so the plan is that of the Store being measured. bench/plan.ts reads the Store of this
        // checkout (src/store/, prepared statements); a commit measured with --commit may predate both, and its
        // figures are still worth the report.
        const plan = await (import(pathToFileURL(join(bench.tree, "bench/plan.ts")).href) as Promise<
          typeof import("./plan.js")
        >).then(({ listQueryPlan }) => listQueryPlan(bench.seededCopy())).catch((e: unknown) => {
          if (commit === undefined) throw e
          log(`query plan not captured: ${e instanceof Error ? e.message : String(e)}`)
          report.push(
            `The list query's plan was not captured: this checkout's bench/plan.ts cannot read the Store of ${commit}.`,
            ""
          )
          return undefined
        })
        if (plan !== undefined) {
          report.push(
            "### Query plan of the list query (captured from the sidecar's Store.list, 100 newest, on the seeded database)",
            "",
            "```",
            plan.sql,
            ...plan.plan.map((d) => `  ${d}`),
            "```",
            "",
            plan.indexServed
              ? "Index-served: the table is read in index order and the read stops at the limit." +
                (plan.plan.some((d) => d.includes("TEMP B-TREE FOR LAST TERM"))
                  ? " The temp B-tree \"for last term\" only orders rows with equal submitted_at by rowid; it never" +
                    " sorts the table."
                  : "")
              : "NOT index-served: the plan scans or sorts the whole table.",
            ""
          )
          outcomes.push({
            target: "list-100 is index-served (EXPLAIN QUERY PLAN)",
            baseline: "",
            sidecar: plan.indexServed ? "index scan" : "full scan/sort",
            ratio: "",
            met: plan.indexServed,
            scenario: "list-100"
          })
        }
      }

      if (only === undefined || only.includes("startup")) {
        log("== module loading")
        await bench.compile()
        await prepareModuleLoading(bench.tree, bench.build)
        const steps = await measureModuleLoading(
          bench.tree,
          bench.build,
          Math.max(3, Math.min(settings.startupReps, 5))
        )
        report.push(
          "### Where startup goes: the launcher and module loading (spawn to exit, importing only)",
          "",
          "| step | median ms | min–max |",
          "|---|---:|---:|",
          ...steps.map((s) =>
            `| ${s.label} | ${s.ms.median.toFixed(0)} | ${s.ms.min.toFixed(0)}–${s.ms.max.toFixed(0)} |`
          ),
          ""
        )
      }

      report.push(
        "### Targets",
        "",
        "The last three columns apply the same check to the floor where it ran: a target the floor misses cannot be",
        "met on this HTTP stack whatever the sidecar's own code does.",
        "",
        targetsTable(outcomes),
        ""
      )

      if (flag("--profile")) {
        const missed = [
          ...new Set(
            outcomes.filter((o) => o.met === false && scenarioNames.includes(o.scenario)).map((o) => o.scenario)
          )
        ]
        for (const scenario of missed) report.push(...(await profileScenario(bench, scenario, ["sidecar"])))
      }
    } else {
      for (const scenario of profileOnly) {
        report.push(...(await profileScenario(bench, scenario, ["sidecar", "baseline", "floor"])))
      }
    }
    report.push(`Total time ${((performance.now() - started) / 1000).toFixed(0)} s.`)
    const during = loadDuringRun()
    if (during !== "") report.push("", during)
  } finally {
    bench.close()
  }
  const text = report.join("\n")
  process.stdout.write(`${text}\n`)
  if (out !== undefined) writeFileSync(out, `${text}\n`)
}

/** The heaviest variant of a scenario, profiled once per server kind. */
const profileScenario = async (bench: Bench, scenario: string, kinds: ReadonlyArray<ServerKind>) => {
  // The variant a target is about: the heaviest load, and startup on a fresh database.
  const candidates = variants.filter((v) => v.scenario === scenario)
  const variant = candidates.find((v) => v.name === "startup, fresh database") ?? candidates[candidates.length - 1]!
  const lines: Array<string> = []
  // the floor stores nothing: it has no rows to resume, no memory figure and no start on 100k rows to profile
  for (const kind of kinds.filter((k) => k !== "floor" || variant.floor === true)) {
    const who = `${kind} ${formLabel(bench.form, bench.build)}`
    log(`== profiling ${variant.name} (${who})`)
    const { sample, summary } = await bench.profile(variant, kind, keepProfiles)
    const figures = variant.metrics.map((m) =>
      `${m.label} ${(sample[m.key] ?? Number.NaN).toFixed(m.digits)}${m.unit === "" ? "" : ` ${m.unit}`}`
    )
    lines.push(
      `### CPU profile: ${variant.name}, ${who}`,
      "",
      `The profiled run (profiling slows it): ${figures.join(", ")}.`,
      variant.scenario === "startup" || variant.scenario === "rehydrate" || variant.scenario === "memory"
        ? "The whole process life is included."
        : "Only the measured part is included (startup and warm-up are left out).",
      "",
      formatSummary(summary),
      ""
    )
  }
  return lines
}

main().catch((e) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
  process.exit(1)
})
