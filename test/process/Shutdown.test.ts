import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { commandsFolder, request, startSidecar } from "../support/sidecar.js"
import { openDatabase } from "../support/sqlite.js"
import { isAlive } from "../support/system.js"
import { pollUntil } from "../support/wait.js"

/** A sidecar whose `stubborn` command ignores SIGTERM and writes its pid, with the given shutdown timeout. */
const stubbornSidecar = (shutdownTimeoutSeconds: number) =>
  Effect.gen(function*() {
    const { db, dir, env } = yield* commandsFolder("sidecar-stop-", (dir) => ({
      stubborn: {
        argv: [
          "node",
          "-e",
          `process.on("SIGTERM", () => {}); require("fs").writeFileSync(${
            JSON.stringify(join(dir, "pid"))
          }, String(process.pid)); setInterval(() => {}, 1000)`
        ]
      }
    }))
    const pidFile = join(dir, "pid")
    const sidecar = yield* startSidecar({
      ...env,
      SIDECAR_SHUTDOWN_TIMEOUT_SECONDS: String(shutdownTimeoutSeconds)
    })
    const submitted = yield* request(`${sidecar.url}/v0/tasks`, {
      method: "POST",
      body: { type: "run-command", params: { command: "stubborn" } }
    })
    expect(submitted.status).toBe(201)
    yield* pollUntil(Effect.sync(() => existsSync(pidFile) && readFileSync(pidFile, "utf8") !== ""), (ok) => ok)
    return { sidecar, db, id: submitted.json.id as string, child: Number(readFileSync(pidFile, "utf8")) }
  })

describe("shutdown", () => {
  it.live("SIGTERM: a child ignoring SIGTERM is killed after the grace, the database closes cleanly, exit 0 in time", () =>
    Effect.gen(function*() {
      const { child, db, id, sidecar } = yield* stubbornSidecar(3)
      const signalled = Date.now()
      expect(yield* sidecar.stop("SIGTERM")).toBe(0)
      // the bound the operator configured (SIDECAR_SHUTDOWN_TIMEOUT_SECONDS=3), not a benchmark
      expect(Date.now() - signalled).toBeLessThan(3000)
      yield* pollUntil(Effect.sync(() => isAlive(child)), (alive) => !alive, "2 seconds")
      // closed cleanly: the WAL was checkpointed into the database and removed
      expect(existsSync(`${db}-wal`)).toBe(false)
      const conn = openDatabase(db, { readonly: true })
      expect(conn.prepare("SELECT status, run FROM task_results WHERE id = ?").get(id)).toEqual({
        status: "running",
        run: 1
      })
      conn.close()
      const stopping = sidecar.logs().filter((l) => l.message.startsWith("task interrupted"))
      expect(stopping.map((l) => l.annotations.taskId)).toEqual([id])
      // the operator's log tells a stop from a crash: the signal when it came, a last line once all is closed
      const messages = sidecar.logs().map((l) => l.message)
      expect(sidecar.logs().find((l) => l.message === "shutting down")?.annotations).toEqual({
        signal: "SIGTERM",
        timeoutSeconds: 3
      })
      expect(messages.indexOf("shutting down")).toBeLessThan(messages.indexOf(stopping[0]!.message))
      expect(messages.at(-1)).toBe("sidecar stopped")
    }).pipe(Effect.scoped))

  it.live("a second signal exits at once, without waiting for the grace", () =>
    Effect.gen(function*() {
      // 10 s: the child's grace is then 3 s (0.9 s under a 3 s timeout), time enough to see the first signal taken
      // and send the second on a busy machine
      const { child, sidecar } = yield* stubbornSidecar(10)
      sidecar.child.kill("SIGTERM")
      // the first signal is being handled once the server stops listening; the run's child then holds the shutdown
      // up for its grace period (it ignores SIGTERM), and a second signal must not wait for that
      yield* pollUntil(Effect.exit(request(`${sidecar.url}/v0/livez`)), Exit.isFailure)
      expect(sidecar.child.exitCode).toBeNull()
      const exited = yield* sidecar.stop("SIGTERM")
      // killed by the signal: no graceful exit code (the log says how far the shutdown got, should it fail)
      expect(exited, sidecar.logs().map((l) => l.message).join(" | ")).toBeNull()
      expect(sidecar.child.signalCode).toBe("SIGTERM")
      process.kill(-child, "SIGKILL") // its own process group, left behind by the abrupt exit
    }).pipe(Effect.scoped))
})
