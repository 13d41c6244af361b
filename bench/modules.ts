// How much of a startup is node, tsx and module loading rather than the server's own work: each server's modules
// imported by the launcher it is started with, and nothing else, timed from spawn to exit.
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { type Build, compiledDir, type ServerKind } from "./servers.js"
import { bundleSnapshot } from "./snapshot.js"
import { type Spread, spread } from "./stats.js"

export interface LoadStep {
  readonly label: string
  readonly kind?: ServerKind
  readonly args: ReadonlyArray<string>
}

/**
 * The sidecar's modules as deployed, without starting it: src/index.ts bundled alone by scripts/bundle.mjs, as
 * bench/server.ts is (the server's bundle cannot be loaded without starting the server). The entry keeps every
 * export, so it holds a little more than the server's bundle (15 KB more of 2.3 MB when this was written); like it,
 * it leaves what is imported on demand (the CLI, the Swagger page) unrun until imported. Loading it is not a start,
 * so it has no code cache (a training start would start nothing): this step is module loading compiled from source.
 */
export const indexBundle = [["src/index.ts", `${compiledDir}/modules`]] as const

const sidecarCompiled = (build: Build): LoadStep =>
  build === "bundle"
    ? {
      label: "sidecar's modules bundled, plain node (src/index.ts bundled alone by scripts/bundle.mjs, as deployed; " +
        "`node dist/modules/index.mjs`, no code cache)",
      kind: "sidecar",
      args: [`${indexBundle[0][1]}/index.mjs`]
    }
    : {
      label: "sidecar's modules compiled by tsc, plain node (dist/src/index.js, as deployed before the bundle)",
      kind: "sidecar",
      args: ["--input-type=module", "-e", `await import('./${compiledDir}/src/index.js')`]
    }

/**
 * Needs the snapshot prepared for the compiled form (bench.compile()), and `prepareModuleLoading`: one step loads
 * the sidecar's modules as deployed (bundled, or compiled by tsc for a commit from before the bundle).
 */
export const loadSteps = (cwd: string, build: Build): ReadonlyArray<LoadStep> => [
  { label: "node alone (`node -e 0`)", args: ["-e", "0"] },
  { label: "node + tsx registered (`node --import tsx -e 0`)", args: ["--import", "tsx", "-e", "0"] },
  {
    label: "baseline's modules via tsx, as the baseline starts with --tsx (node:http, node:sqlite, bench/schema.ts)",
    kind: "baseline",
    args: [
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      "await import('node:http'); await import('./bench/schema.ts')"
    ]
  },
  {
    label: "sidecar's modules via tsx (src/index.ts and the packages it imports; npm run dev)",
    kind: "sidecar",
    args: ["--import", "tsx", "--input-type=module", "-e", "await import('./src/index.ts')"]
  },
  sidecarCompiled(build),
  {
    label: `the npm packages alone, unbundled, plain node (${effectPackages(cwd).join(", ")})`,
    args: [
      "--input-type=module",
      "-e",
      `await Promise.all(${JSON.stringify(effectPackages(cwd))}.map((m) => import(m)))`
    ]
  }
]

/** The Effect packages the checkout at `cwd` depends on at run time (not its test or dev ones). */
const effectPackages = (cwd: string): ReadonlyArray<string> =>
  Object.keys(JSON.parse(readFileSync(join(cwd, "package.json"), "utf8")).dependencies ?? {})
    .filter((name) => name === "effect" || name.startsWith("@effect/"))

/** Bundle src/index.ts for the bundled step (tsc's output already has dist/src/index.js); the ms it took. */
export const prepareModuleLoading = (cwd: string, build: Build): Promise<number> =>
  build === "bundle" ? bundleSnapshot(cwd, indexBundle, { train: false }) : Promise.resolve(0)

const timeOnce = (cwd: string, args: ReadonlyArray<string>): Promise<number> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, args, { cwd, stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.once("exit", (code) =>
      code === 0
        ? resolve(performance.now() - started)
        : reject(new Error(`${args.join(" ")} exited ${code}: ${stderr}`)))
  })

/** Spawn-to-exit time of each step, `reps` times each, the steps interleaved so drift hits them alike. */
export const measureModuleLoading = async (
  cwd: string,
  build: Build,
  reps: number
): Promise<ReadonlyArray<LoadStep & { readonly ms: Spread }>> => {
  const steps = loadSteps(cwd, build)
  const times = steps.map(() => [] as Array<number>)
  for (let i = 0; i < reps; i++) {
    for (const [j, step] of steps.entries()) times[j]!.push(await timeOnce(cwd, step.args))
  }
  return steps.map((step, j) => ({ ...step, ms: spread(times[j]!) }))
}
