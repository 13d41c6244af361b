import { Effect } from "effect"
import { accessSync, constants, promises as fs, statSync } from "node:fs"
import { dirname } from "node:path"

/** The least free space a database volume may have and still count as healthy. */
const minFreeBytes = 64 * 1024
/** The first 16 bytes of every SQLite database file. */
export const sqliteHeader = Buffer.from("SQLite format 3\0", "latin1")

/** Whether `filename` names a file on disk (not ":memory:", "" for a temporary database, or a "file:" URI). */
export const isPlainFile = (filename: string) =>
  filename !== "" && filename !== ":memory:" && !filename.startsWith("file:")

/**
 * Checks of the database file itself, which a query may not reach (SQLite answers from its page cache): it must be
 * the file we opened (not replaced or removed), start with SQLite's header, and sit on a writable, non-full volume.
 */
export const fileChecks = (file: string): {
  /** Throws unless `file` is still the file that was opened when the checks were made. */
  readonly assertSameFile: () => void
  readonly healthy: Effect.Effect<void, unknown>
} => {
  if (!isPlainFile(file)) {
    return { assertSameFile: () => {}, healthy: Effect.void }
  }
  const opened = statSync(file)
  const fail = (message: string) => Effect.fail(new Error(message))
  const assertSameFile = () => {
    const now = statSync(file, { throwIfNoEntry: false })
    if (now === undefined || now.ino !== opened.ino || now.dev !== opened.dev) {
      throw new Error(`the database file ${file} was removed or replaced underneath the process`)
    }
  }
  const healthy = Effect.gen(function*() {
    yield* Effect.try({ try: assertSameFile, catch: (e) => e })
    const header = Buffer.alloc(sqliteHeader.length)
    yield* Effect.tryPromise(async () => {
      const handle = await fs.open(file, "r")
      try {
        await handle.read(header, 0, header.length, 0)
      } finally {
        await handle.close()
      }
    })
    if (!header.equals(sqliteHeader)) return yield* fail(`the database file ${file} is corrupt (no SQLite header)`)
    const dir = dirname(file)
    yield* Effect.try({
      try: () => accessSync(dir, constants.W_OK),
      catch: (e) => new Error(`the database folder ${dir} is not writable: ${(e as Error).message}`)
    })
    const space = yield* Effect.tryPromise(() => fs.statfs(dir))
    if (space.bavail * space.bsize < minFreeBytes) return yield* fail(`the database volume at ${dir} is full`)
  })
  return { assertSameFile, healthy }
}
