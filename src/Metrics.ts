import { Context, Effect, Layer } from "effect"
import * as Prometheus from "prom-client"

export type SubmitKind = "started" | "deduplicated" | "re-executed"

/** The HTTP route a path belongs to: a label with few values, whatever the ids and junk paths sent. */
export const routeOf = (path: string): string =>
  path === "/v0/tasks" ? path
  : path.startsWith("/v0/tasks/") && !path.slice("/v0/tasks/".length).includes("/") ? "/v0/tasks/:id"
  : knownRoutes.has(path) ? path
  : "other"
const knownRoutes = new Set([
  "/v0/healthz",
  "/v0/startupz",
  "/v0/livez",
  "/v0/status",
  "/v0/metrics",
  "/v0/openapi.json",
  "/docs"
])

/**
 * A metric's child for one combination of label values, made on first use and kept: prom-client would otherwise hash
 * the labels at every use. Label values here are few (task types, routes, statuses), so the children are too.
 */
const children = <C>(make: (...values: Array<string>) => C) => {
  const made = new Map<string, C>()
  return (...values: Array<string>): C => {
    const key = values.join("\u0000")
    let child = made.get(key)
    if (child === undefined) made.set(key, child = make(...values))
    return child
  }
}

/**
 * The sidecar's Prometheus metrics, in a registry of its own. prom-client formats the exposition. What the engine
 * records is a plain function, called within the synchronous steps in which it settles a submit or ends a run (an
 * effect apiece cost a run more than prom-client does); the rest are effects, to compose with the HTTP layer.
 */
export class Metrics extends Context.Service<Metrics>()("sidecar/Metrics", {
  make: Effect.sync(() => {
    const registry = new Prometheus.Registry()
    const submitted = new Prometheus.Counter({
      name: "sidecar_tasks_submitted_total",
      help: "Accepted submits, by task type and what the submit decided",
      labelNames: ["type", "outcome"],
      registers: [registry]
    })
    const finished = new Prometheus.Counter({
      name: "sidecar_task_runs_finished_total",
      help: "Runs that ended, by task type and final status",
      labelNames: ["type", "status"],
      registers: [registry]
    })
    const duration = new Prometheus.Histogram({
      name: "sidecar_task_duration_seconds",
      help: "How long runs took, by task type and final status",
      labelNames: ["type", "status"],
      buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60, 300, 1800],
      registers: [registry]
    })
    const running = new Prometheus.Gauge({
      name: "sidecar_tasks_running",
      help: "Runs in progress in this process",
      registers: [registry]
    })
    const waiters = new Prometheus.Gauge({
      name: "sidecar_task_waiters",
      help: "Requests waiting (?wait=) for a task to end",
      registers: [registry]
    })
    const crashes = new Prometheus.Counter({
      name: "sidecar_handler_crashes_total",
      help: "Runs failed by a handler defect (a throw or a die), by task type",
      labelNames: ["type"],
      registers: [registry]
    })
    const requests = new Prometheus.Counter({
      name: "sidecar_http_requests_total",
      help: "HTTP requests answered, by route, method and status",
      labelNames: ["route", "method", "status"],
      registers: [registry]
    })
    const rejections = new Prometheus.Counter({
      name: "sidecar_authn_rejections_total",
      help: "Requests refused by trusted-header authentication, by reason",
      labelNames: ["reason"],
      registers: [registry]
    })
    const pingFailures = new Prometheus.Counter({
      name: "sidecar_store_ping_failures_total",
      help: "Liveness checks of the database that failed",
      registers: [registry]
    })
    const refusals = new Prometheus.Counter({
      name: "sidecar_store_writes_refused_total",
      help: "Database writes refused, by reason: full, read-only, replaced, corrupt, locked, io-error",
      labelNames: ["reason"],
      registers: [registry]
    })
    const submittedAs = children((type, outcome) => submitted.labels(type, outcome))
    const finishedAs = children((type, status) => finished.labels(type, status))
    const durationOf = children((type, status) => duration.labels(type, status))
    // Routes are few (routeOf), and so are the methods and statuses Node's parser lets through.
    const requestsOf = children((route, method, status) => requests.labels(route, method, status))
    return {
      submitted: (type: string, outcome: SubmitKind): void => submittedAs(type, outcome).inc(),
      runStarted: (): void => running.inc(),
      runEnded: (): void => running.dec(),
      finished: (type: string, status: "completed" | "failed", seconds: number): void => {
        finishedAs(type, status).inc()
        durationOf(type, status).observe(seconds)
      },
      crashed: (type: string): void => crashes.inc({ type }),
      refusedWrite: (reason: string): void => refusals.inc({ reason }),
      /** Count `wait` as a waiter while it runs, however it ends (a client that hangs up interrupts it). */
      waiting: <A, E, R>(wait: Effect.Effect<A, E, R>) =>
        Effect.acquireUseRelease(Effect.sync(() => waiters.inc()), () => wait, () => Effect.sync(() => waiters.dec())),
      request: (path: string, method: string, status: number) =>
        Effect.sync(() => requestsOf(routeOf(path), method, String(status)).inc()),
      rejected: (reason: string) => Effect.sync(() => rejections.inc({ reason })),
      pingFailed: Effect.sync(() => pingFailures.inc()),
      /** Add the process's own metrics (CPU, memory, event loop lag, file descriptors); once, in the server. */
      collectProcessMetrics: Effect.sync(() => Prometheus.collectDefaultMetrics({ register: registry })),
      /** The Prometheus text exposition of everything above. */
      exposition: Effect.promise(() => registry.metrics()),
      contentType: registry.contentType
    } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
