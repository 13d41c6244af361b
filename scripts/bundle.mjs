// The server as it is deployed and started: src/main.ts bundled with esbuild into dist/main.mjs, plus chunks for
// what only some commands load (the CLI and its HTTP client, await-http's HTTP client). A start then reads one file
// of the server's own code instead of resolving and compiling some 900 modules: most of a start on Node 20.
// better-sqlite3 stays outside: it is a native addon, loaded from node_modules.
//   node scripts/bundle.mjs [entry ...] [--outdir DIR]      (default: src/main.ts into dist/)
import { build } from "esbuild"
import { rmSync } from "node:fs"
import { readFile } from "node:fs/promises"
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

/**
 * `import { Effect, Schema } from "effect"` (the house style) names the package's index, whose `export * as Effect`
 * makes esbuild keep every export of every module named so: the whole of effect's Schema, Stream... in each start.
 * Rewritten, while bundling, to one `import * as Effect from "effect/Effect"` per module, esbuild keeps only what is
 * used (the start loads 1.1 MB instead of 1.8). Only the barrels below, only their capitalised module names; the
 * rewritten imports stay on the line they came from, so the source map still points at the right lines.
 */
const barrels = ["effect", "@effect/sql", "@effect/sql-sqlite-node", "@effect/cli"]
const barrelImport = new RegExp(`^import (type )?\\{([^}]*)\\} from "(${barrels.join("|")})"`, "gm")
export const importModulesNotBarrels = (source) =>
  source.replace(barrelImport, (whole, allTypes, names, pkg) => {
    const kept = []
    const modules = []
    for (const spec of names.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
      const type = allTypes !== undefined || spec.startsWith("type ")
      const name = spec.replace(/^type /, "")
      if (/^[A-Z]\w*$/.test(name)) modules.push(`import ${type ? "type " : ""}* as ${name} from "${pkg}/${name}"`)
      else kept.push(spec)
    }
    if (kept.length > 0) modules.push(`import ${allTypes ?? ""}{ ${kept.join(", ")} } from "${pkg}"`)
    return modules.join("; ") + "\n".repeat(whole.split("\n").length - 1)
  })
const modulesNotBarrels = {
  name: "modules-not-barrels",
  setup: (build) =>
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (args.path.includes("/node_modules/")) return undefined
      return { contents: importModulesNotBarrels(await readFile(args.path, "utf8")), loader: "ts" }
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
    plugins: [undiciOnDemand, modulesNotBarrels]
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const at = args.indexOf("--outdir")
  const outdir = at >= 0 ? args[at + 1] : "dist"
  const entries = args.filter((a, i) => a !== "--outdir" && i !== at + 1)
  await bundle(entries.length > 0 ? entries : ["src/main.ts"], outdir)
}
