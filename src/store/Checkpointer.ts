import { Duration, Effect, Layer } from "effect"
import { Worker } from "node:worker_threads"
import { Sqlite } from "./Connection.js"
import { isPlainFile } from "./DatabaseFile.js"

const startAfter = Duration.seconds(1)
const intervalMillis = 200
/** A WAL past this is checkpointed in full and restarted, and cut back to it. */
export const restartBytes = 64 * 1024 * 1024
/** How long a RESTART waits for the writer's transaction. */
const restartWaitMillis = 1_000
/** The main connection's own checkpoints (in WAL pages) while no worker runs. */
export const mainConnectionCheckpoint = 10_000

// CommonJS; its connection opens the file only if it exists (mode=rw).
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
 * WAL checkpoints off the event loop, in a worker thread with a connection of its own: PASSIVE (never waiting for a
 * writer), RESTART past restartBytes (holding writers off, like any lock). A commit is in the WAL before it is
 * answered either way. If the worker stops, the main connection checkpoints itself again.
 */
export const checkpointInBackground = Effect.gen(function*() {
  const { db, filename, memory } = yield* Sqlite
  if (!isPlainFile(filename) || memory) return
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
      // never keeps an otherwise idle process alive
      worker.unref()
      let running = true
      const stopped = (why: string) => {
        if (running) run(fallBack(why))
        running = false
      }
      // a failure repeated at every tick is said once
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
        // the worker closes its connection first, so that the main one, closing last, removes the WAL
        worker.postMessage("stop")
        return exited
      }
      return stop
    }),
    (stop) => Effect.promise(stop)
  )
})

/** `checkpointInBackground` while the layer lives, from a second after it is built. */
export const BackgroundCheckpoints = Layer.effectDiscard(
  Effect.forkScoped(Effect.delay(checkpointInBackground, startAfter))
)
