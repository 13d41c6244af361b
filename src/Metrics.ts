// Prometheus metrics in one registry, recorded one way: a plain function of the Metrics service, called in the
// synchronous step where the event happens (engine, HTTP middleware and store alike), so that recording adds no effect
// on the hot paths. Labelled series stay plain numbers until scraped. Effects only where a call cannot do: `waiting`
// (a gauge held across a wait), `exposition`, `collectProcessMetrics`.
import { Context, Effect, Layer } from "effect"
import * as Prometheus from "prom-client"

export type SubmitKind = "started" | "deduplicated" | "re-executed"

/** A path's route: a label with few values, whatever the ids and junk paths. */
export const routeOf = (path: string): string =>
  path === "/v0/tasks" ?
    path
    : path.startsWith("/v0/tasks/") && !path.slice("/v0/tasks/".length).includes("/") ?
    "/v0/tasks/:id"
    : knownRoutes.has(path) ?
    path
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

interface Series<V> {
  readonly labels: Record<string, string>
  readonly value: V
}

/** A labelled metric's series, one map per label: cheaper than prom-client's. */
const seriesOf = <V>(labelNames: ReadonlyArray<string>, initial: () => V) => {
  const root = new Map<string, any>()
  const all: Array<Series<V>> = []
  const find = (values: ReadonlyArray<string>): V => {
    let level = root
    for (let i = 0; i < values.length - 1; i++) {
      let next = level.get(values[i]!)
      if (next === undefined) level.set(values[i]!, next = new Map())
      level = next
    }
    const last = values[values.length - 1]!
    let series: Series<V> | undefined = level.get(last)
    if (series === undefined) {
      series = { labels: Object.fromEntries(labelNames.map((name, i) => [name, values[i]!])), value: initial() }
      level.set(last, series)
      all.push(series)
    }
    return series.value
  }
  return { find, all }
}

/** A metric whose values prom-client asks for only when scraped. */
const register = (
  registry: Prometheus.Registry,
  name: string,
  help: string,
  type: "counter" | "histogram",
  values: () => ReadonlyArray<unknown>
) =>
  registry.registerMetric(
    {
      name,
      help,
      get: async () => ({ name, help, type, aggregator: "sum", values: values() })
    } as unknown as Prometheus.Metric
  )

const counter = (registry: Prometheus.Registry, name: string, help: string, labelNames: ReadonlyArray<string>) => {
  const series = seriesOf(labelNames, () => ({ count: 0 }))
  register(
    registry,
    name,
    help,
    "counter",
    () => series.all.map(({ labels, value }) => ({ labels, value: value.count }))
  )
  return (...values: ReadonlyArray<string>): void => void series.find(values).count++
}

const histogram = (
  registry: Prometheus.Registry,
  name: string,
  help: string,
  labelNames: ReadonlyArray<string>,
  buckets: ReadonlyArray<number>
) => {
  const series = seriesOf(labelNames, () => ({ buckets: buckets.map(() => 0), sum: 0, count: 0 }))
  register(registry, name, help, "histogram", () =>
    series.all.flatMap(({ labels, value }) => {
      let cumulative = 0
      return [
        ...buckets.map((bound, i) => ({
          metricName: `${name}_bucket`,
          labels: { le: bound, ...labels },
          value: cumulative += value.buckets[i]!
        })),
        { metricName: `${name}_bucket`, labels: { le: "+Inf", ...labels }, value: value.count },
        { metricName: `${name}_sum`, labels, value: value.sum },
        { metricName: `${name}_count`, labels, value: value.count }
      ]
    }))
  return (observed: number, ...values: ReadonlyArray<string>): void => {
    const value = series.find(values)
    const at = buckets.findIndex((bound) => observed <= bound)
    if (at >= 0) value.buckets[at]!++
    value.sum += observed
    value.count++
  }
}

/** The sidecar's metrics (see the top of this module). */
export class Metrics extends Context.Service<Metrics>()("sidecar/Metrics", {
  make: Effect.sync(() => {
    const registry = new Prometheus.Registry()
    const submitted = counter(
      registry,
      "sidecar_tasks_submitted_total",
      "Accepted submits, by task type and what the submit decided",
      ["type", "outcome"]
    )
    const finished = counter(
      registry,
      "sidecar_task_runs_finished_total",
      "Runs that ended, by task type and final status",
      ["type", "status"]
    )
    const duration = histogram(
      registry,
      "sidecar_task_duration_seconds",
      "How long runs took, by task type and final status",
      ["type", "status"],
      [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60, 300, 1800]
    )
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
    const crashes = counter(
      registry,
      "sidecar_handler_crashes_total",
      "Runs failed by a handler defect (a throw or a die), by task type",
      ["type"]
    )
    // few values: routes (routeOf), methods and statuses
    const requests = counter(
      registry,
      "sidecar_http_requests_total",
      "HTTP requests answered, by route, method and status",
      ["route", "method", "status"]
    )
    const rejections = counter(
      registry,
      "sidecar_authn_rejections_total",
      "Requests refused by trusted-header authentication, by reason",
      ["reason"]
    )
    const pingFailures = new Prometheus.Counter({
      name: "sidecar_store_ping_failures_total",
      help: "Liveness checks of the database that failed",
      registers: [registry]
    })
    const refusals = counter(
      registry,
      "sidecar_store_writes_refused_total",
      "Database writes refused, by reason: full, read-only, replaced, corrupt, locked, io-error",
      ["reason"]
    )
    return {
      submitted: (type: string, outcome: SubmitKind): void => submitted(type, outcome),
      runStarted: (): void => running.inc(),
      runEnded: (): void => running.dec(),
      finished: (type: string, status: "completed" | "failed", seconds: number): void => {
        finished(type, status)
        duration(seconds, type, status)
      },
      crashed: (type: string): void => crashes(type),
      refusedWrite: (reason: string): void => refusals(reason),
      /** Count `wait` as a waiter while it runs, however it ends. */
      waiting: <A, E, R>(wait: Effect.Effect<A, E, R>) =>
        Effect.acquireUseRelease(Effect.sync(() => waiters.inc()), () => wait, () => Effect.sync(() => waiters.dec())),
      request: (path: string, method: string, status: number): void => requests(routeOf(path), method, String(status)),
      rejected: (reason: string): void => rejections(reason),
      pingFailed: (): void => pingFailures.inc(),
      /** Add the process's own metrics; once, in the server. */
      collectProcessMetrics: Effect.sync(() => Prometheus.collectDefaultMetrics({ register: registry })),
      /** The Prometheus text exposition of everything above. */
      exposition: Effect.promise(() => registry.metrics()),
      contentType: registry.contentType
    } as const
  })
}) {
  static readonly layer = Layer.effect(this, this.make)
}
