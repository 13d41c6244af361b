// The servers run from a snapshot of the code taken when the benchmark starts, so that a run measures one version
// even while src/ is being edited, and a commit can be measured as it was. The sidecar runs as it is deployed: the
// snapshot bundled by this checkout's scripts/bundle.mjs (esbuild, as `npm run build` bundles src/main.ts), started
// with plain node. A commit from before the bundle (no migrations/index.ts) is compiled by tsc instead, as it was
// built then.
import { execFileSync } from "node:child_process"
import { cpSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs"
import { basename, join } from "node:path"
import { pathToFileURL } from "node:url"
import { type Build, bundleDirOf, compiledDir, entryOf, root, serverKinds } from "./servers.js"

/**
 * Copy src/, migrations/ and package.json from the working tree, or from `commit` (git archive), into `dir`;
 * bench/ always comes from the working tree (it is the harness); node_modules is linked, not copied.
 */
export const snapshot = (dir: string, commit?: string): string => {
  mkdirSync(dir, { recursive: true })
  const parts = ["src", "migrations", "package.json"]
  if (commit === undefined) {
    for (const part of parts) cpSync(join(root, part), join(dir, part), { recursive: true })
  } else {
    const archive = execFileSync("git", ["archive", "--format=tar", commit, ...parts], {
      cwd: root,
      maxBuffer: 256 << 20
    })
    execFileSync("tar", ["-x", "-C", dir], { input: archive })
  }
  cpSync(join(root, "bench"), join(dir, "bench"), { recursive: true })
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir")
  return dir
}

/**
 * How the snapshot `dir` is made into JavaScript for plain node. Bundled when its migrations are imported
 * statically (migrations/index.ts, since b880c87), so that the bundle carries them; before that, Sql.ts read the
 * migrations folder at run time, which a bundle does not have: such a commit is compiled by tsc, as it was deployed.
 */
export const buildOf = (dir: string): Build => (existsSync(join(dir, "migrations", "index.ts")) ? "bundle" : "tsc")

/** scripts/bundle.mjs's `bundle`. */
type BundleFn = (
  entryPoints: ReadonlyArray<string>,
  outdir: string,
  cwd?: string,
  options?: { readonly train?: boolean }
) => Promise<unknown>

/**
 * The servers' bundles: the sidecar's entry, the yardstick's and the floor's, each bundled alone into a folder of its
 * own, as scripts/bundle.mjs bundles src/main.ts.
 */
export const serverBundles: ReadonlyArray<readonly [entry: string, outdir: string]> = serverKinds.map((kind) => [
  entryOf(kind),
  bundleDirOf(kind)
])

/**
 * Bundle each `[entry, outdir]` of the snapshot `dir` (paths relative to it) with this checkout's
 * scripts/bundle.mjs, one `bundle()` call per entry, exactly as `npm run build` bundles the product: the snapshot's
 * own src/ and migrations/ go into the bundle, the packages come from node_modules (linked into the snapshot).
 * Each entry becomes `<outdir>/<name>.mjs`, the loader of its bundle `<name>.cjs` and
 * of the code cache of a training start (as the product). Returns the ms it took.
 */
export const bundleSnapshot = async (
  dir: string,
  bundles: ReadonlyArray<readonly [entry: string, outdir: string]>,
  options: { readonly train?: boolean } = {}
): Promise<number> => {
  const started = performance.now()
  const { bundle } = (await import(pathToFileURL(join(root, "scripts", "bundle.mjs")).href)) as { bundle: BundleFn }
  for (const [entry, outdir] of bundles) {
    try {
      await bundle([entry], outdir, dir, options)
    } catch (e) {
      throw new Error(
        `scripts/bundle.mjs could not bundle the snapshot's ${entry}:\n${e instanceof Error ? e.message : String(e)}`
      )
    }
    const out = join(outdir, basename(entry).replace(/\.ts$/, ".mjs"))
    if (!existsSync(join(dir, out))) throw new Error(`scripts/bundle.mjs emitted no ${out}`)
  }
  return performance.now() - started
}

/** Make the snapshot runnable by plain node in the way `build` says (the servers' bundles, or tsc); the ms it took. */
export const buildSnapshot = async (dir: string, build: Build): Promise<number> =>
  build === "bundle" ? bundleSnapshot(dir, serverBundles) : compileSnapshot(dir)

/**
 * For a commit that cannot be bundled (see `buildOf`), the files compiled besides src/ and migrations/: the three
 * servers' entries (the yardstick and the floor run compiled like the sidecar) and the schema the yardstick imports.
 */
const benchEntries = [...serverKinds.map(entryOf), "bench/schema.ts"]

/**
 * For a commit that cannot be bundled (see `buildOf`): compile the snapshot `dir` into `dir/dist` as `npm run build`
 * compiled the product before the bundle (tsc with the compiler options of this checkout's tsconfig.build.json:
 * ES2022, NodeNext modules, source maps), with bench/server.ts added so that `node dist/bench/server.js` imports
 * `dist/src/index.js`, the migrations land in `dist/migrations` where the compiled Sql.js looks for them, and
 * package.json (imported by src/Api.ts) in `dist/`, as in the image then.
 *
 * Emit only: `--noCheck --noResolve` and no ambient types, so tsc reads the snapshot's own files and none of the
 * declaration files under node_modules (2 s instead of 10 s here). The emitted JavaScript is the same, byte for byte,
 * as a full `tsc -p tsconfig.build.json` (compared when this was written): the project compiles with
 * isolatedModules and verbatimModuleSyntax, so no file's output depends on types or on other files. Type errors are
 * `npm run typecheck`'s business, not the benchmark's. Returns the ms it took.
 */
export const compileSnapshot = (dir: string): number => {
  const started = performance.now()
  const config = join(dir, "tsconfig.bench.json")
  writeFileSync(
    config,
    `${
      JSON.stringify(
        {
          extends: join(root, "tsconfig.build.json"),
          compilerOptions: { outDir: compiledDir, rootDir: ".", types: [] },
          include: ["src/**/*.ts", "migrations/**/*.ts", "package.json", ...benchEntries]
        },
        null,
        2
      )
    }\n`
  )
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc")
  try {
    execFileSync(process.execPath, [tsc, "-p", config, "--noCheck", "--noResolve"], {
      cwd: dir,
      encoding: "utf8",
      stdio: "pipe"
    })
  } catch (e) {
    // tsc exits non-zero on any diagnostic; without type checking those are syntax or emit errors, so the
    // JavaScript may be missing or wrong: refuse to measure it.
    const out = e as { stdout?: string; stderr?: string }
    throw new Error(`tsc could not compile the snapshot:\n${`${out.stdout ?? ""}${out.stderr ?? ""}`.slice(0, 4000)}`)
  }
  for (const entry of ["bench/server.js", "bench/floor/server.js", "src/index.js", "package.json"]) {
    if (!existsSync(join(dir, compiledDir, entry))) throw new Error(`tsc emitted no ${compiledDir}/${entry}`)
  }
  return performance.now() - started
}

/** What is being measured, for the report: the commit, and whether the working tree differed from it. */
export const describeCode = (commit?: string): string => {
  const raw = (...args: Array<string>) => execFileSync("git", args, { cwd: root, encoding: "utf8" })
  const git = (...args: Array<string>) => raw(...args).trim()
  try {
    if (commit !== undefined) {
      return `commit ${git("rev-parse", "--short", commit)} (git archive); src/ last changed in ${
        git("log", "-1", "--format=%h %s", commit, "--", "src", "migrations")
      }`
    }
    // Not trimmed: each porcelain line starts with two status columns, the first often a space.
    const dirty = raw("status", "--porcelain", "--", "src", "migrations", "package.json").split("\n").filter((l) =>
      l !== ""
    )
    return `working tree at commit ${git("log", "-1", "--format=%h %s")}${
      dirty.length === 0 ? "" : `, with uncommitted changes in ${dirty.map((l) => l.slice(3)).join(", ")}`
    }`
  } catch {
    return "not a git checkout"
  }
}
