// How much of a startup is node, tsx and module loading rather than the server's own work: each server's modules
// imported by the launcher it is started with, and nothing else, timed from spawn to exit.
import { spawn } from "node:child_process"
import { compiledDir, type ServerKind } from "./servers.js"
import { type Spread, spread } from "./stats.js"

export interface LoadStep {
  readonly label: string
  readonly kind?: ServerKind
  readonly args: ReadonlyArray<string>
}

/** Needs the snapshot compiled (bench.compile()): two steps import its dist/. */
export const loadSteps: ReadonlyArray<LoadStep> = [
  { label: "node alone (`node -e 0`)", args: ["-e", "0"] },
  { label: "node + tsx registered (`node --import tsx -e 0`)", args: ["--import", "tsx", "-e", "0"] },
  {
    label: "baseline's modules via tsx, as the baseline starts (node:http, better-sqlite3, bench/schema.ts)",
    kind: "baseline",
    args: ["--import", "tsx", "--input-type=module", "-e", "await import('node:http'); await import('./bench/schema.ts')"]
  },
  {
    label: "baseline's modules compiled, plain node (for comparison only: the baseline is not run so)",
    kind: "baseline",
    args: ["--input-type=module", "-e", `await import('node:http'); await import('./${compiledDir}/bench/schema.js')`]
  },
  {
    label: "sidecar's modules via tsx (src/index.ts: effect, @effect/platform(-node), @effect/sql; npm start)",
    kind: "sidecar",
    args: ["--import", "tsx", "--input-type=module", "-e", "await import('./src/index.ts')"]
  },
  {
    label: "sidecar's modules compiled, plain node (dist/src/index.js, as deployed)",
    kind: "sidecar",
    args: ["--input-type=module", "-e", `await import('./${compiledDir}/src/index.js')`]
  },
  {
    label: "the npm packages alone, plain node (effect, @effect/platform(-node), @effect/sql(-sqlite-node))",
    args: [
      "--input-type=module",
      "-e",
      "await Promise.all(['effect', '@effect/platform', '@effect/platform-node', '@effect/sql', '@effect/sql-sqlite-node']" +
      ".map((m) => import(m)))"
    ]
  }
]

const timeOnce = (cwd: string, args: ReadonlyArray<string>): Promise<number> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(process.execPath, args, { cwd, stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.once("exit", (code) =>
      code === 0 ? resolve(performance.now() - started) : reject(new Error(`${args.join(" ")} exited ${code}: ${stderr}`))
    )
  })

/** Spawn-to-exit time of each step, `reps` times each, the steps interleaved so drift hits them alike. */
export const measureModuleLoading = async (
  cwd: string,
  reps: number
): Promise<ReadonlyArray<LoadStep & { readonly ms: Spread }>> => {
  const times = loadSteps.map(() => [] as Array<number>)
  for (let i = 0; i < reps; i++) {
    for (const [j, step] of loadSteps.entries()) times[j]!.push(await timeOnce(cwd, step.args))
  }
  return loadSteps.map((step, j) => ({ ...step, ms: spread(times[j]!) }))
}
