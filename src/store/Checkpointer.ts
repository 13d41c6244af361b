import { Duration, Effect, Layer } from "effect"
import { Worker } from "node:worker_threads"
import { isPlainFile } from "./DatabaseFile.js"
import { Sqlite } from "./Sqlite.js"

/** How long after the server listens the checkpointer starts. */
const startAfter = Duration.seconds(1)
/** How often the checkpointer looks at the WAL. */
const intervalMillis = 200
/**
 * A WAL larger than this is checkpointed in full and restarted, writers held off meanwhile (see below); the WAL file
 * is cut back to it after each checkpoint (the connection's journal_size_limit).
 */
export const restartBytes = 64 * 1024 * 1024
/** How long that full checkpoint waits for the writer's current transaction. */
const restartWaitMillis = 1_000
/** The main connection's own checkpoints, when the checkpointer is not running: every 10,000 WAL pages. */
export const mainConnectionCheckpoint = 10_000

// The worker's program, CommonJS; its connection opens the file only if it exists (mode=rw).
const program = `
const { parentPort, workerData } = require("node:worker_threads")
const { statSync } = require("node:fs")
const { pathToFileURL } = require("node:url")
const { DatabaseSync } = require("node:sqlite")
const url = pathToFileURL(workerData.file)
url.searchParams.set("mode", "rw")
const db = new DatabaseSync(url, { timeout: workerData.restartWaitMillis })
const walState = () => {
  try {
    const { mtimeMs, size } = statSync(workerData.file + "-wal")
    return { mtimeMs, size }
  } catch {
    return { mtimeMs: 0, size: 0 }
  }
}
const passive = db.prepare("PRAGMA wal_checkpoint(PASSIVE)")
const restart = db.prepare("PRAGMA wal_checkpoint(RESTART)")
// the WAL as it was when a checkpoint last copied all of it: unchanged since, there is nothing to do
let done = { mtimeMs: -1, size: -1 }
const tick = () => {
  const wal = walState()
  if (wal.size === 0 || (wal.size === done.size && wal.mtimeMs === done.mtimeMs)) return
  try {
    const { checkpointed, log } = (wal.size > workerData.restartBytes ? restart : passive).get()
    if (log === checkpointed) done = wal
  } catch (e) {
    parentPort.postMessage({ failed: String(e && e.message ? e.message : e) })
  }
}
const timer = setInterval(tick, workerData.intervalMillis)
parentPort.on("message", () => {
  clearInterval(timer)
  db.close()
  parentPort.close()
})
parentPort.postMessage({ started: true })
`

/**
 * WAL checkpoints off the event loop. SQLite checkpoints in the connection that commits, synchronously: every
 * 10,000 pages a commit copied the WAL into the database file and fsynced it, tens of milliseconds in which the
 * sidecar answered nothing (submit-new c=64: p99 40 ms, against 24 ms with no checkpoint at all). So a worker thread,
 * with a connection of its own, checkpoints every 200 ms (PASSIVE: it never waits for, nor holds up, a writer), and
 * the main connection stops checkpointing once the worker runs. Should a steady stream of writes keep the WAL from
 * ever being checkpointed to its end (it restarts only then: measured, it grew by up to 40 MB a second), a WAL over
 * 64 MB is checkpointed in full and restarted (RESTART), so that the next commit writes it from its start again (and
 * the connection's journal_size_limit cuts it back): that holds writers off while it runs (11-20 ms measured), which
 * the Store waits out as it waits out any other writer's lock. Under steady submits the WAL then stays at 64-70 MB.
 * At 16 MB, submit-new c=64 met a RESTART every 0.7 s, each holding up every request in flight.
 *
 * Durability is the same either way: a commit is in the WAL before it is answered. If the worker cannot start or
 * stops, the main connection checkpoints again, as it did before, and a warning says so.
 */
export const checkpointInBackground = Effect.gen(function*() {
  const { db, filename, memory } = yield* Sqlite
  if (!isPlainFile(filename) || memory) return
  /** The connection checkpoints itself again, as it did before the worker ran. */
  const handBack = () => {
    if (db.isOpen) db.exec(`PRAGMA wal_autocheckpoint = ${mainConnectionCheckpoint}`)
  }
  const fallBack = (why: string) =>
    Effect.andThen(
      Effect.sync(handBack),
      Effect.logWarning(`background checkpoints stopped (${why}); the database connection checkpoints itself again`)
    )
  const run = Effect.runForkWith(yield* Effect.context<never>())
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      const worker = new Worker(program, {
        eval: true,
        workerData: {
          file: filename,
          intervalMillis,
          restartBytes,
          restartWaitMillis
        }
      })
      // a checkpointer must not keep a process alive that has nothing else to do
      worker.unref()
      // whether the worker is still meant to run: it stops once, by the layer's end or by failing
      let running = true
      const stopped = (why: string) => {
        if (running) run(fallBack(why))
        running = false
      }
      // a failure that repeats at every tick (a full volume, say) is said once
      let lastFailure: string | undefined
      worker.on("message", (message: { started?: true; failed?: string }) => {
        if (message.started && running && db.isOpen) db.exec("PRAGMA wal_autocheckpoint = 0")
        else if (message.failed !== undefined && message.failed !== lastFailure) {
          lastFailure = message.failed
          run(Effect.logWarning(`background checkpoint failed: ${message.failed}`))
        }
      })
      worker.on("error", (error: Error) => stopped(error.message))
      const exited = new Promise<void>((resolve) =>
        worker.once("exit", (code) => {
          stopped(`the worker exited with code ${code}`)
          resolve()
        })
      )
      const stop = () => {
        running = false
        // what the server still writes while it drains
        handBack()
        // the worker closes its connection, so that the main one, closing last, checkpoints and removes the WAL
        worker.postMessage("stop")
        return exited
      }
      return stop
    }),
    (stop) => Effect.promise(stop)
  )
})

/**
 * `checkpointInBackground` for as long as the layer lives, from a second after it is built: the worker's start (a
 * thread, its own V8, the driver) competed with the server's first work and made crash recovery of 10k runs 3-7 %
 * slower, while the connection's own checkpoints in that second are at most one.
 */
export const BackgroundCheckpoints = Layer.effectDiscard(
  Effect.forkScoped(Effect.delay(checkpointInBackground, startAfter))
)
