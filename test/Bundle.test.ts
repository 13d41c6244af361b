// scripts/bundle.mjs: the stand-ins its loaders hand the bundle for Node modules a server does not use.
import { describe, expect, it } from "@effect/vitest"
import { build } from "esbuild"
import { createRequire } from "node:module"
import * as Tls from "node:tls"
import * as Zlib from "node:zlib"

type StandIn = (
  requireModule: (id: string) => unknown,
  id: string,
  names: ReadonlyArray<string>,
  functions?: ReadonlyArray<string>
) => any
const { standIn } = (await import("../scripts/bundle.mjs" as string)) as { standIn: StandIn }

const requireHere = createRequire(import.meta.url)

/** A require that records what it was asked for. */
const counting = () => {
  const required: Array<string> = []
  return {
    required,
    requireModule: (id: string) => {
      required.push(id)
      return requireHere(id)
    }
  }
}

describe("a module's stand-in", () => {
  it("is enumerated without requiring the module, which it requires once, on first use", () => {
    const { required, requireModule } = counting()
    const tls = standIn(requireModule, "node:tls", Object.keys(Tls))
    expect(Object.keys(tls)).toEqual(Object.keys(Tls))
    expect("connect" in tls).toBe(true)
    expect(Object.getOwnPropertyDescriptor(tls, "connect")?.enumerable).toBe(true)
    expect(required).toEqual([])

    expect(tls.connect).toBe(Tls.connect)
    expect(tls.TLSSocket).toBe(Tls.TLSSocket)
    expect(required).toEqual(["node:tls"])
  })

  it("answers a plain function taken before the module is loaded with one that requires it when called", () => {
    const { required, requireModule } = counting()
    const zlib = standIn(requireModule, "node:zlib", Object.keys(Zlib), ["gzipSync"])
    // what a module's top level does: `const { gzipSync } = require("zlib")`
    const { gzipSync } = zlib
    expect(typeof gzipSync).toBe("function")
    expect(zlib.gzipSync).toBe(gzipSync)
    expect(required).toEqual([])

    expect(Zlib.gunzipSync(gzipSync("a body")).toString()).toBe("a body")
    expect(required).toEqual(["node:zlib"])
    expect(zlib.gzipSync).toBe(Zlib.gzipSync)
  })

  it("requires the module for a member not named a function, such as a class", () => {
    const { required, requireModule } = counting()
    const zlib = standIn(requireModule, "node:zlib", Object.keys(Zlib), ["gzipSync"])
    expect(zlib.Gzip).toBe(Zlib.Gzip)
    expect(required).toEqual(["node:zlib"])
  })

  it("writes through to the module", () => {
    const module = { value: 1 }
    const standing = standIn(() => module, "a-module", ["value"])
    standing.value = 2
    expect(module.value).toBe(2)
    expect(standing.value).toBe(2)
  })

  it("serves esbuild's interop: a bundle that imports the module requires it when it first uses it", async () => {
    const { outputFiles } = await build({
      stdin: {
        contents: `import * as Tls from "node:tls"\nimport { connect } from "node:tls"\n` +
          `export const use = () => [Tls.connect, connect]`,
        // an ES module of a "type": "module" package, as @effect/platform-node's are
        sourcefile: "importer.mjs",
        loader: "js"
      },
      bundle: true,
      format: "cjs",
      platform: "node",
      write: false
    })
    const { required, requireModule } = counting()
    const tls = standIn(requireModule, "node:tls", Object.keys(Tls))
    const module = { exports: {} as { use: () => Array<unknown> } }
    new Function("require", "module", "exports", outputFiles[0]!.text)(
      (id: string) => id === "node:tls" ? tls : requireHere(id),
      module,
      module.exports
    )
    expect(required).toEqual([])
    expect(module.exports.use()).toEqual([Tls.connect, Tls.connect])
    expect(required).toEqual(["node:tls"])
  })
})
