// Running variants against the servers, alternately, in one work folder that is removed afterwards.
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { type ProfileSummary, readProfile, summarise } from "./profile.js"
import type { VariantResult } from "./report.js"
import { type RunContext, runFolder, type Sample, type Settings, type Variant } from "./scenarios.js"
import { seedDatabase } from "./schema.js"
import {
  type Build,
  type Elsewhere,
  formLabel,
  makeWorkDir,
  otherForm,
  type ServerKind,
  serverKinds,
  type SidecarForm
} from "./servers.js"
import { buildOf, buildSnapshot, snapshot } from "./snapshot.js"

export interface Bench {
  readonly settings: Settings
  /** The snapshot the servers run from. */
  readonly tree: string
  /** How the sidecar is started (its other form only where a variant asks for both). */
  readonly form: SidecarForm
  /** How the compiled form is made: bundled by scripts/bundle.mjs, or by tsc for a commit that cannot be bundled. */
  readonly build: Build
  /**
   * Bundle (or compile) the snapshot for the compiled form if it is not yet; the compiled form starts this at once.
   * Resolves with the ms it took, 0 if it had been started before.
   */
  readonly compile: () => Promise<number>
  /** Run every repetition of `variant`: baseline, sidecar[, floor], baseline, sidecar[, floor], ... */
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

export interface BenchOptions {
  /** Measure that commit's src/ rather than the working tree's. */
  readonly commit?: string | undefined
  /** How to start the sidecar: compiled (as deployed: bundled; the default) or through tsx. */
  readonly form?: SidecarForm | undefined
  /** Also run the sidecar built before (another checkout), in the same alternation. */
  readonly before?: Elsewhere | undefined
  readonly progress?: ((line: string) => void) | undefined
}

export const makeBench = (settings: Settings, options: BenchOptions = {}): Bench => {
  const form = options.form ?? "compiled"
  const work = makeWorkDir()
  let built: Promise<number> | undefined
  let tree: string
  let build: Build
  const compile = async () => {
    if (built !== undefined) return built.then(() => 0)
    built = buildSnapshot(tree, build).then((ms) => {
      options.progress?.(
        `${
          build === "bundle"
            ? "bundled the snapshot's servers with scripts/bundle.mjs"
            : "compiled the snapshot with tsc"
        } in ${(ms / 1000).toFixed(1)} s`
      )
      return ms
    })
    return built
  }
  try {
    tree = snapshot(join(work.dir, "tree"), options.commit)
    build = buildOf(tree)
    // Started at once, and awaited before any run (`ready`), so the bundler's CPU never overlaps a measured run. A
    // failure is reported where it is awaited (its rejection has a handler meanwhile).
    if (form === "compiled") compile().catch(() => undefined)
  } catch (e) {
    work.remove()
    throw e
  }
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
  const context = (runForm: SidecarForm = form, elsewhere?: Elsewhere): RunContext => ({
    settings,
    dir: runFolder(work.dir, ++runs),
    shared: work.dir,
    tree,
    form: runForm,
    build,
    prepare: async (f) => {
      if (f === "compiled") await compile()
    },
    template,
    cpuProfileDir: undefined,
    window: { measuredFromMs: 0 },
    elsewhere
  })

  // The compiled form's bundle was started at once: done before the first measured run, so that its CPU overlaps none.
  const ready = async () => {
    if (form === "compiled") await compile()
  }

  const run = async (variant: Variant, progress: (line: string) => void = () => undefined) => {
    await ready()
    const alt = variant.bothForms === true ? { form: otherForm(form), samples: [] } : undefined
    const before = options.before === undefined ? undefined : { samples: [] as Array<Sample>, at: options.before }
    const result: VariantResult = {
      variant,
      samples: { baseline: [], sidecar: [], floor: [] },
      ...(alt === undefined ? {} : { alt }),
      ...(before === undefined ? {} : { before: { samples: before.samples } }),
      failures: []
    }
    // baseline, sidecar, [floor,] [the sidecar in its other form,] [the sidecar before,] baseline, sidecar, ...
    type Runner = readonly [ServerKind, SidecarForm, Array<Sample>, string, Elsewhere?]
    const runners: ReadonlyArray<Runner> = [
      ...serverKinds.filter((kind) => kind !== "floor" || variant.floor === true).map((
        kind
      ): Runner => [kind, form, result.samples[kind], kind]),
      ...(alt === undefined
        ? []
        : [["sidecar", alt.form, alt.samples, `sidecar ${formLabel(alt.form, build)}`] as const]),
      ...(before === undefined ? [] : [["sidecar", form, before.samples, "sidecar before", before.at] as const])
    ]
    const reps = variant.reps(settings)
    for (let rep = 1; rep <= reps; rep++) {
      for (const [kind, runForm, samples, label, elsewhere] of runners) {
        const ctx = context(runForm, elsewhere)
        try {
          const sample = await variant.run(kind, ctx)
          samples.push(sample)
          progress(`${variant.name} ${rep}/${reps} ${label}: ${brief(sample)}`)
        } catch (e) {
          const message = `${label}: ${e instanceof Error ? e.message : String(e)}`
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
    await ready()
    const ctx = context()
    const dir = join(ctx.dir, "profile")
    mkdirSync(dir)
    const sample = await variant.run(kind, { ...ctx, cpuProfileDir: dir })
    const file = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).map((f) => join(dir, f))[0]
    if (file === undefined || !existsSync(file)) throw new Error(`no CPU profile was written for ${variant.name}`)
    try {
      // Read while the snapshot's bundles and their source maps are there: the frames are mapped back to sources.
      const cpuProfile = readProfile(file)
      if (keepIn !== undefined) {
        mkdirSync(keepIn, { recursive: true })
        // The measured part's start is in the name: `bench/profile.ts FILE --from-ms N` summarises the same samples.
        // Kept as mapped, as the snapshot (and its source maps) goes when the benchmark ends.
        const from = Math.round(ctx.window.measuredFromMs)
        writeFileSync(
          join(keepIn, `${variant.scenario}-${kind}-${runs}-from-ms-${from}.cpuprofile`),
          JSON.stringify(cpuProfile)
        )
      }
      return { summary: summarise(cpuProfile, 25, ctx.window.measuredFromMs), sample }
    } finally {
      rmSync(ctx.dir, { recursive: true, force: true })
    }
  }

  const seededCopy = () => {
    const file = join(context().dir, "plan.db")
    copyFileSync(template(settings.rows, "completed"), file)
    return file
  }

  return { settings, tree, form, build, compile, run, profile, seededCopy, close: work.remove }
}
