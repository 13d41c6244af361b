// The server as it is deployed and started: src/main.ts bundled with esbuild into dist/main.mjs, plus chunks for
// what only some commands load (the CLI and its HTTP client, await-http's HTTP client). A start then reads one file
// of the server's own code instead of resolving and compiling some 900 modules: most of a start on Node 20.
// better-sqlite3 stays outside: it is a native addon, loaded from node_modules.
//   node scripts/bundle.mjs [entry ...] [--outdir DIR]      (default: src/main.ts into dist/)
import { build } from "esbuild"
import { rmSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

/**
 * @effect/platform-node's server module imports its client module (for its test layer), which imports undici: a
 * megabyte of CommonJS that esbuild must keep, side effects unknown, wherever it is imported. Declared free of side
 * effects, undici goes only where it is used: the chunks of the CLI's client and of await-http, loaded on demand.
 */
const undiciOnDemand = {
  name: "undici-on-demand",
  setup: (build) =>
    build.onResolve({ filter: /^undici$/ }, async (args) => {
      if (args.pluginData === "resolving") return undefined
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: "resolving"
      })
      return { ...resolved, sideEffects: false }
    })
}

/** Bundle `entryPoints` (paths relative to `cwd`) into `outdir`, each entry `<name>.mjs`. */
export const bundle = (entryPoints, outdir, cwd = process.cwd()) => {
  // chunks are named by content: those of an earlier build would pile up
  rmSync(join(cwd, outdir), { recursive: true, force: true })
  return build({
    absWorkingDir: cwd,
    entryPoints,
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    external: ["better-sqlite3"],
    sourcemap: "linked",
    // CommonJS packages in the bundle (prom-client, ws...) require Node's built-in modules.
    banner: { js: "import { createRequire as __sidecarRequire } from \"node:module\"; const require = __sidecarRequire(import.meta.url);" },
    logLevel: "warning",
    metafile: true,
    plugins: [undiciOnDemand]
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const at = args.indexOf("--outdir")
  const outdir = at >= 0 ? args[at + 1] : "dist"
  const entries = args.filter((a, i) => a !== "--outdir" && i !== at + 1)
  await bundle(entries.length > 0 ? entries : ["src/main.ts"], outdir)
}
