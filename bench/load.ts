// The load generator: autocannon, driven from this (the orchestrator's) process, never the server's.
import autocannon from "autocannon"
import { percentile } from "./stats.js"

export interface LoadOptions {
  readonly url: string
  readonly connections: number
  /** Seconds to run; or `amount` requests in all (then `maxSeconds` bounds it). */
  readonly seconds?: number
  readonly amount?: number
  readonly maxSeconds?: number
  readonly method?: "GET" | "POST"
  readonly path: string
  /** A fixed body, or one made per request (fresh ids). */
  readonly body?: string | (() => string)
  /** A path made per request (random rows). */
  readonly pathFor?: () => string
}

export interface LoadResult {
  readonly responses: number
  readonly seconds: number
  readonly requestsPerSecond: number
  /** Latencies in ms, with sub-millisecond resolution (autocannon's own histogram keeps whole milliseconds). */
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly non2xx: number
  /** Connection errors and timeouts. */
  readonly errors: number
  readonly statusCodes: Readonly<Record<string, number>>
  /** CPU used by this (the load generator's) process per second of the run, in percent of one core. */
  readonly generatorCpuPercent: number
}

/** Run one load and measure it. Latencies are taken from every response, not sampled. */
export const runLoad = (options: LoadOptions): Promise<LoadResult> =>
  new Promise((resolve, reject) => {
    const latencies: Array<number> = []
    const statusCodes: Record<string, number> = {}
    let non2xx = 0
    const body = options.body
    const pathFor = options.pathFor
    const setup = typeof body === "function" || pathFor !== undefined
    const req: autocannon.Request = {
      method: options.method ?? "GET",
      path: options.path,
      ...(options.method === "POST" ? { headers: { "content-type": "application/json" } } : {}),
      ...(typeof body === "string" ? { body } : {}),
      ...(setup
        ? {
          setupRequest: (r: autocannon.Request) => ({
            ...r,
            ...(typeof body === "function" ? { body: body() } : {}),
            ...(pathFor === undefined ? {} : { path: pathFor() })
          })
        }
        : {})
    }
    const cpuBefore = process.cpuUsage()
    const started = performance.now()
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        pipelining: 1,
        ...(options.amount === undefined ? { duration: options.seconds ?? 5 } : { amount: options.amount }),
        requests: [req],
        timeout: 30
      },
      (err: unknown, result: autocannon.Result) => {
        clearTimeout(guard)
        if (err) return reject(err)
        const seconds = (performance.now() - started) / 1000
        const cpu = process.cpuUsage(cpuBefore)
        latencies.sort((a, b) => a - b)
        resolve({
          responses: latencies.length,
          seconds,
          requestsPerSecond: latencies.length / seconds,
          p50: percentile(latencies, 50),
          p90: percentile(latencies, 90),
          p99: percentile(latencies, 99),
          non2xx,
          errors: result.errors + result.timeouts,
          statusCodes,
          generatorCpuPercent: ((cpu.user + cpu.system) / 1000 / (seconds * 1000)) * 100
        })
      }
    )
    instance.on("response", (_client, statusCode, _bytes, responseTime) => {
      latencies.push(responseTime)
      statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1
      if (statusCode < 200 || statusCode > 299) non2xx++
    })
    // A run by amount is still bounded in time.
    const guard = setTimeout(() => instance.stop(), (options.maxSeconds ?? 300) * 1000)
  })
