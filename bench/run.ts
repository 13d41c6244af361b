// Running variants against both servers, alternately, in one work folder that is removed afterwards.
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from "node:fs"
import { join } from "node:path"
import { type ProfileSummary, readProfile, summarise } from "./profile.js"
import type { VariantResult } from "./report.js"
import { type RunContext, runFolder, type Sample, type Settings, type Variant } from "./scenarios.js"
import { seedDatabase } from "./schema.js"
import { makeWorkDir, type ServerKind, serverKinds } from "./servers.js"
import { snapshot } from "./snapshot.js"

export interface Bench {
  readonly settings: Settings
  /** The snapshot the servers run from. */
  readonly tree: string
  /** Run every repetition of `variant`: baseline, sidecar, baseline, sidecar, ... */
  readonly run: (variant: Variant, progress?: (line: string) => void) => Promise<VariantResult>
  /** One run of `variant` against `kind` with --cpu-prof: its figures and the summary of the profile it left. */
  readonly profile: (
    variant: Variant,
    kind: ServerKind,
    keepIn?: string
  ) => Promise<{ readonly summary: ProfileSummary; readonly sample: Sample }>
  /** A copy of the seeded 100k-row database, for the query plan. */
  readonly seededCopy: () => string
  readonly close: () => void
}

const brief = (sample: Sample) =>
  Object.entries(sample).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(2)}`).join(" ")

/** `commit`: measure that commit's src/ rather than the working tree's. */
export const makeBench = (settings: Settings, commit?: string): Bench => {
  const work = makeWorkDir()
  const tree = snapshot(join(work.dir, "tree"), commit)
  const templates = new Map<string, string>()
  // Seeded once per benchmark run and copied for each server run: both servers start from the same bytes.
  const template = (rows: number, status: "completed" | "running") => {
    const key = `${status}-${rows}`
    let file = templates.get(key)
    if (file === undefined) {
      mkdirSync(join(work.dir, "templates"), { recursive: true })
      file = join(work.dir, "templates", `${key}.db`)
      seedDatabase(file, rows, status)
      templates.set(key, file)
    }
    return file
  }
  let runs = 0
  const context = (cpuProfileDir?: string): RunContext => ({
    settings,
    dir: runFolder(work.dir, ++runs),
    shared: work.dir,
    tree,
    template,
    cpuProfileDir,
    window: { measuredFromMs: 0 }
  })

  const run = async (variant: Variant, progress: (line: string) => void = () => undefined) => {
    const result: VariantResult = { variant, samples: { baseline: [], sidecar: [] }, failures: [] }
    const reps = variant.reps(settings)
    for (let rep = 1; rep <= reps; rep++) {
      for (const kind of serverKinds) {
        const ctx = context()
        try {
          const sample = await variant.run(kind, ctx)
          result.samples[kind].push(sample)
          progress(`${variant.name} ${rep}/${reps} ${kind}: ${brief(sample)}`)
        } catch (e) {
          const message = `${kind}: ${e instanceof Error ? e.message : String(e)}`
          result.failures.push(message)
          progress(`${variant.name} ${rep}/${reps} FAILED ${message}`)
        } finally {
          rmSync(ctx.dir, { recursive: true, force: true })
        }
      }
    }
    return result
  }

  const profile = async (variant: Variant, kind: ServerKind, keepIn?: string) => {
    const ctx = context()
    const dir = join(ctx.dir, "profile")
    mkdirSync(dir)
    const sample = await variant.run(kind, { ...ctx, cpuProfileDir: dir })
    const file = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).map((f) => join(dir, f))[0]
    if (file === undefined || !existsSync(file)) throw new Error(`no CPU profile was written for ${variant.name}`)
    try {
      if (keepIn !== undefined) {
        mkdirSync(keepIn, { recursive: true })
        // The measured part's start is in the name: `bench/profile.ts FILE --from-ms N` summarises the same samples.
        const from = Math.round(ctx.window.measuredFromMs)
        copyFileSync(file, join(keepIn, `${variant.scenario}-${kind}-${runs}-from-ms-${from}.cpuprofile`))
      }
      return { summary: summarise(readProfile(file), 25, ctx.window.measuredFromMs), sample }
    } finally {
      rmSync(ctx.dir, { recursive: true, force: true })
    }
  }

  const seededCopy = () => {
    const file = join(context().dir, "plan.db")
    copyFileSync(template(settings.rows, "completed"), file)
    return file
  }

  return { settings, tree, run, profile, seededCopy, close: work.remove }
}
