import { Deferred, Duration, Effect, Schedule } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))

export interface Sidecar {
  readonly url: string
  readonly child: ChildProcess
  /** Every JSON log line printed so far. */
  readonly logs: () => ReadonlyArray<{ message: string; annotations: Record<string, unknown> }>
  /** Send `signal` and wait (bounded) for the exit code. */
  readonly stop: (signal?: NodeJS.Signals) => Effect.Effect<number | null>
}

/**
 * Start the real sidecar as a user does (`node --import tsx src/main.ts`, no npm in between so signals reach it)
 * on 127.0.0.1 and a free port; wait until it listens. Killed with the scope if still running.
 */
export const startSidecar = (env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
        cwd: root,
        env: { ...process.env, SIDECAR_HOST: "127.0.0.1", SIDECAR_PORT: "0", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const lines: Array<{ message: string; annotations: Record<string, unknown> }> = []
      const listening = yield* Deferred.make<string, Error>()
      const exited = yield* Deferred.make<number | null>()
      let buffer = ""
      let stderr = ""
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        buffer += chunk
        let newline: number
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline)
          buffer = buffer.slice(newline + 1)
          try {
            const parsed = JSON.parse(line)
            lines.push(parsed)
            const m = /^Listening on (http:\/\/\S+)$/.exec(parsed.message)
            if (m) Deferred.unsafeDone(listening, Effect.succeed(m[1]!))
          } catch {
            // not a log line
          }
        }
      })
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk
      })
      child.once("exit", (code) => {
        Deferred.unsafeDone(exited, Effect.succeed(code))
        Deferred.unsafeDone(listening, Effect.fail(new Error(`sidecar exited with ${code} before listening: ${stderr}`)))
      })
      const url = yield* Deferred.await(listening).pipe(
        Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(`sidecar did not listen: ${stderr}`) })
      )
      const stop = (signal: NodeJS.Signals = "SIGTERM") =>
        Effect.sync(() => child.exitCode === null && child.kill(signal)).pipe(
          Effect.zipRight(Deferred.await(exited)),
          Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("sidecar did not exit") }),
          Effect.orDie
        )
      return { url, child, logs: () => lines, stop } satisfies Sidecar
    }),
    (sidecar) => Effect.sync(() => sidecar.child.exitCode === null && sidecar.child.kill("SIGKILL"))
  )

/** Run the sidecar's entry point to completion (for startup failures): exit code and stderr. */
export const runToExit = (env: Record<string, string>) =>
  Effect.async<{ code: number | null; stderr: string }>((resume) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: root,
      env: { ...process.env, SIDECAR_HOST: "127.0.0.1", SIDECAR_PORT: "0", ...env },
      stdio: ["ignore", "ignore", "pipe"]
    })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.once("exit", (code) => resume(Effect.succeed({ code, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  }).pipe(Effect.timeout("30 seconds"), Effect.orDie)

/** GET/POST/DELETE against a running sidecar with fetch; answers status and parsed JSON (if any). */
export const request = (url: string, init?: { method?: string; body?: unknown }) =>
  Effect.promise(async () => {
    const res = await fetch(url, {
      method: init?.method ?? "GET",
      ...(init?.body === undefined
        ? {}
        : { body: JSON.stringify(init.body), headers: { "content-type": "application/json" } })
    })
    const text = await res.text()
    return { status: res.status, json: text === "" ? undefined : JSON.parse(text) as any }
  })

/** Poll `effect` on the real clock until `done` holds, for at most `within`. */
export const pollUntil = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  done: (a: A) => boolean,
  within: Duration.DurationInput = "15 seconds"
) =>
  effect.pipe(
    Effect.repeat({ schedule: Schedule.spaced("25 millis"), until: done }),
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error("condition not reached in time") })
  )
