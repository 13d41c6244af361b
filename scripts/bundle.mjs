// The server as it is deployed and started: src/main.ts bundled with esbuild into one CommonJS file, dist/main.cjs,
// run by its loader dist/main.mjs from the code cache of a training start (see `loaderSource`). A start then reads
// one file of the server's own code instead of resolving and compiling each module, and compiles none of it itself.
// The bundle needs nothing from node_modules: SQLite is Node's own (node:sqlite).
//   node scripts/bundle.mjs [entry ...] [--outdir DIR]      (default: src/main.ts into dist/)
import { build } from "esbuild"
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { basename, join, resolve } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

/**
 * @effect/platform-node's modules import undici: a megabyte of CommonJS that esbuild must keep, side effects unknown,
 * wherever it is imported. Declared free of side effects, undici goes only where it is used: nowhere (the CLI's client
 * and await-http use Node's fetch).
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
 * Swagger UI's page (JavaScript and CSS in effect, one module of two strings) would be half the bundle, and a start
 * reads the whole bundle. It goes into `<outdir>/swagger-ui.json` instead, read when GET /docs first imports it.
 */
const swaggerUiBeside = (outdir) => ({
  name: "swagger-ui-beside",
  setup: (build) =>
    build.onLoad({ filter: /[\\/]effect[\\/]dist[\\/]http-api[\\/]internal[\\/]httpApiSwagger\.js$/ }, async (args) => {
      const { javascript, css } = await import(pathToFileURL(args.path).href)
      writeFileSync(join(outdir, "swagger-ui.json"), JSON.stringify({ javascript, css }))
      return {
        contents: `import { readFileSync } from "node:fs"
import { join } from "node:path"
const page = JSON.parse(readFileSync(join(__dirname, "swagger-ui.json"), "utf8"))
export const javascript = page.javascript
export const css = page.css`,
        loader: "js"
      }
    })
})

/**
 * `import { Effect, Schema } from "effect"` (the house style) names the package's index, whose `export * as Effect`
 * makes esbuild keep every export of every module named so: the whole of effect's Schema, Stream... in each start.
 * Rewritten, while bundling, to one `import * as Effect from "effect/Effect"` per module, esbuild keeps only what is
 * used. Only the barrels below, only their capitalised module names; the rewritten imports stay on the line they came
 * from, so the source map still points at the right lines.
 */
const barrels = [
  "effect",
  "effect/http",
  "effect/http-api",
  "effect/sql",
  "effect/cli",
  "effect/reactivity",
  "@effect/sql-sqlite-node"
]
const barrelImport = new RegExp(`^import (type )?\\{([^}]*)\\} from "(${barrels.join("|")})"`, "gm")
export const importModulesNotBarrels = (source) =>
  source.replace(barrelImport, (whole, allTypes, names, pkg) => {
    const kept = []
    const modules = []
    for (const spec of names.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
      const type = allTypes !== undefined || spec.startsWith("type ")
      // `Name` or `Name as Alias`
      const named = /^([A-Z]\w*)(?: as (\w+))?$/.exec(spec.replace(/^type /, ""))
      if (named !== null) {
        modules.push(`import ${type ? "type " : ""}* as ${named[2] ?? named[1]} from "${pkg}/${named[1]}"`)
      } else kept.push(spec)
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

/**
 * The entry's loader, `<name>.mjs`: what `node dist/main.mjs` runs. It compiles the bundle `<name>.cjs` from the code
 * cache V8 wrote at the end of a training start (`trainCodeCache`), so that a start neither parses the bundle nor
 * compiles, function by function, the code a start runs: on Node 20 a cache can only be given to a classic script
 * (`vm.Script`), hence the CommonJS bundle. V8 refuses a cache made by another node or with other V8 flags, and the
 * loader then compiles from source as before, saying so on stderr. The cache's name carries the bundle's hash, so
 * a cache is only ever read with the bundle it was made from.
 */
const loaderSource = (
  name,
  cacheName
) => `// Written by scripts/bundle.mjs: runs ${name}.cjs from V8's code cache when there is a usable one.
import { readFileSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import { Script } from "node:vm"

// package.json's engines, checked before anything needs what an older node lacks (node:sqlite, say)
const minimum = ${JSON.stringify(minimumNode)}
const [major, minor, patch] = process.versions.node.split(".").map(Number)
if (major < minimum[0] || (major === minimum[0] && (minor < minimum[1] || (minor === minimum[1] && patch < minimum[2])))) {
  process.stderr.write(\`sidecar: needs Node.js \${minimum.join(".")} or later, but runs on \${process.version} (\${process.execPath}); start it with npm start, or install Node.js 26\\n\`)
  process.exit(1)
}

const bundle = fileURLToPath(new URL(${JSON.stringify(`./${name}.cjs`)}, import.meta.url))
const cache = fileURLToPath(new URL(${JSON.stringify(`./${cacheName}`)}, import.meta.url))
// not kept once compiled (the loader's module scope lives as long as the process)
const readCache = () => {
  try {
    return readFileSync(cache)
  } catch {
    return undefined
  }
}
const script = new Script(readFileSync(bundle, "utf8"), { filename: bundle, cachedData: readCache() })
if (script.cachedDataRejected === true) {
  process.stderr.write(${
    JSON.stringify(
      `${name}.cjs: its code cache (${cacheName}) was made by another node or with other V8 flags; compiling from source (a slower start)\n`
    )
  })
}
if (process.env[${JSON.stringify(trainingVariable)}] === "1") {
  process.once("exit", () => writeFileSync(cache, script.createCachedData()))
}
const bundleRequire = createRequire(bundle)
const standIn = ${standIn.toString()}
// Node's modules a server does not use (see \`onDemand\` in scripts/bundle.mjs)
const standIns = new Map(
  Object.entries(${onDemand}).map(([name, [names, functions]]) => [name, standIn(bundleRequire, \`node:\${name}\`, names, functions)])
)
const bundleRequireOnDemand = (id) => standIns.get(id.replace(/^node:/, "")) ?? bundleRequire(id)
const module = { exports: {} }
script.runInThisContext()(bundleRequireOnDemand, module, module.exports, bundle, fileURLToPath(new URL(".", import.meta.url)))
`

/**
 * What requiring `id` gives, required with `requireModule` when one of its members is first used; `names`, its
 * enumerable members, are answered without requiring it. A member named in `functions` is answered, until then, with a
 * function that requires the module when called: a module's top level may take a function out of another
 * (`const { createHash } = require("crypto")`) and never call it. Each loader carries this function's text.
 */
export const standIn = (requireModule, id, names, functions = []) => {
  let loaded
  const load = () => loaded ??= requireModule(id)
  // one caller per member, so that the same member read twice is the same function
  const callers = new Map()
  const caller = (key) => {
    if (!callers.has(key)) callers.set(key, (...args) => Reflect.apply(load()[key], loaded, args))
    return callers.get(key)
  }
  const member = (key) => loaded === undefined && functions.includes(key) ? caller(key) : load()[key]
  const write = (key, value) => Reflect.set(load(), key, value)
  return new Proxy(
    {},
    {
      get: (_, key) => member(key),
      set: (_, key, value) => write(key, value),
      has: (_, key) => loaded === undefined ? names.includes(key) : key in loaded,
      ownKeys: () => loaded === undefined ? names : Reflect.ownKeys(loaded),
      // what enumerating the module (esbuild's interop copying its names) asks
      getOwnPropertyDescriptor: (_, key) =>
        loaded === undefined && !names.includes(key)
          ? undefined
          : { configurable: true, enumerable: true, get: () => member(key), set: (value) => write(key, value) }
    }
  )
}

/**
 * Node's own modules that @effect/platform-node, ws and prom-client import for what the server never does (TLS, HTTPS,
 * web streams, a terminal, random bytes for a temporary file or a WebSocket, compression), yet Node initialises each
 * when it is required: the loader hands the bundle a stand-in for each, which requires the module when one of its
 * members is first used. Their names, and which are plain functions (named in lower case, called without `new`), are
 * listed from the node that builds, so that enumerating a stand-in (esbuild's interop does) need not load it.
 */
export const onDemandModules = ["https", "tls", "stream/web", "readline", "crypto", "zlib"]
const requireHere = createRequire(import.meta.url)
const onDemand = JSON.stringify(Object.fromEntries(onDemandModules.map((id) => {
  const module = requireHere(`node:${id}`)
  const names = Object.keys(module)
  return [id, [names, names.filter((name) => /^[a-z]/.test(name) && typeof module[name] === "function")]]
})))

/** The lowest Node.js version package.json's engines allows ("node": ">=X.Y.Z"), as [X, Y, Z]. */
const minimumNode = (() => {
  const engines = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).engines.node
  const version = /^>=\s*(\d+)\.(\d+)\.(\d+)$/.exec(engines)
  if (version === null) throw new Error(`package.json engines.node must read ">=X.Y.Z", not ${engines}`)
  return version.slice(1).map(Number)
})()

/** Set for a training start: its loader writes the code cache when the process exits. */
const trainingVariable = "SIDECAR_CODE_CACHE_TRAINING"

/**
 * Start `loader` once as a server on a fresh database in a temporary folder (as a first start in a pod), ask it for
 * /v0/livez once it listens, and stop it with SIGTERM: its loader writes the code cache of everything that start
 * compiled. Servers print `Listening on <url>` (the sidecar and the bench's floor alike). A start that fails leaves
 * no cache (the loader then compiles from source), and says why; the build goes on.
 */
const trainCodeCache = (loader, cwd) =>
  new Promise((resolve) => {
    const dir = mkdtempSync(join(tmpdir(), "sidecar-code-cache-"))
    const child = spawn(process.execPath, [loader], {
      cwd,
      env: {
        ...process.env,
        [trainingVariable]: "1",
        SIDECAR_HOST: "127.0.0.1",
        SIDECAR_PORT: "0",
        SIDECAR_DB: join(dir, "training.db")
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    let asked = false
    const giveUp = setTimeout(() => child.kill("SIGKILL"), 30_000)
    const onOutput = (chunk) => {
      output += chunk
      const listening = /Listening on (http:\/\/[^"\s]+)/.exec(output)
      if (listening === null || asked) return
      asked = true
      fetch(`${listening[1]}/v0/livez`).then((res) => res.arrayBuffer()).catch(() => undefined).finally(() =>
        child.kill("SIGTERM")
      )
    }
    child.stdout.setEncoding("utf8").on("data", onOutput)
    child.stderr.setEncoding("utf8").on("data", onOutput)
    child.on("exit", (code, signal) => {
      clearTimeout(giveUp)
      rmSync(dir, { recursive: true, force: true })
      const trained = asked && signal === null
      if (!trained) {
        process.stderr.write(
          `scripts/bundle.mjs: no code cache for ${loader} (its training start ended: code ${code}, ${signal}):\n${output}\n`
        )
      }
      resolve(trained)
    })
  })

/**
 * Bundle each of `entryPoints` (paths relative to `cwd`) into `outdir` as one CommonJS file, `<name>.cjs`, with its
 * loader `<name>.mjs` and, after a training start, its code cache. Code that only some commands use (the CLI,
 * Swagger UI's page) is in the bundle but neither compiled nor run by a start: esbuild runs a dynamically imported
 * module when it is first imported, and V8 compiles a function when it is first called.
 */
export const bundle = async (entryPoints, outdir, cwd = process.cwd(), { train = true } = {}) => {
  // relative to cwd, or absolute
  const dir = resolve(cwd, outdir)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const results = []
  for (const entry of entryPoints) {
    const name = basename(entry).replace(/\.[cm]?[jt]s$/, "")
    const result = await build({
      absWorkingDir: cwd,
      entryPoints: [entry],
      outfile: join(dir, `${name}.cjs`),
      bundle: true,
      format: "cjs",
      platform: "node",
      target: "node26",
      sourcemap: "linked",
      // The bundle is the function its loader calls, written so by esbuild, so that the loader need not copy its text
      // to wrap it. The sources are ES modules, always strict: so is their bundle, CommonJS packages in it included.
      banner: {
        js: "(function (require, module, exports, __filename, __dirname) {\"use strict\";" +
          "const __bundleUrl = require(\"node:url\").pathToFileURL(__filename).href;"
      },
      footer: { js: "})" },
      // a module's own URL is the bundle's (for resolving a package from where the code is, as the sources do)
      define: { "import.meta.url": "__bundleUrl" },
      logLevel: "warning",
      metafile: true,
      plugins: [undiciOnDemand, modulesNotBarrels, swaggerUiBeside(dir)]
    })
    const hash = createHash("sha256").update(readFileSync(join(dir, `${name}.cjs`))).digest("hex").slice(0, 16)
    const loader = join(dir, `${name}.mjs`)
    writeFileSync(loader, loaderSource(name, `${name}.${hash}.codecache`))
    if (train) await trainCodeCache(loader, cwd)
    results.push(result)
  }
  return results
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const at = args.indexOf("--outdir")
  const outdir = at >= 0 ? args[at + 1] : "dist"
  const entries = args.filter((a, i) => a !== "--outdir" && i !== at + 1)
  await bundle(entries.length > 0 ? entries : ["src/main.ts"], outdir)
}
