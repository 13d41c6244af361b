import { Effect } from "effect"
import { accessSync, constants, promises as fs, statfsSync, statSync } from "node:fs"
import { dirname } from "node:path"

/** The least free space a database volume may have and still take new tasks. */
const minFreeBytes = 64 * 1024
/** The first 16 bytes of every SQLite database file. */
export const sqliteHeader = Buffer.from("SQLite format 3\0", "latin1")

/** Whether `filename` names a file on disk (not ":memory:", "" for a temporary database, or a "file:" URI). */
export const isPlainFile = (filename: string) =>
  filename !== "" && filename !== ":memory:" && !filename.startsWith("file:")

/**
 * Why the database cannot be written, in words an operator acts on: the volume is full or read-only (a restart
 * does not help: free space, or make it writable), the file was replaced or corrupted (a restart opens what is
 * there now), another connection holds the lock, or the disk failed otherwise.
 */
export type StorageReason = "full" | "read-only" | "replaced" | "corrupt" | "locked" | "io-error"

/** What the checks found wrong with the file or its volume. */
export class StorageProblem extends Error {
  constructor(readonly reason: StorageReason, message: string) {
    super(message)
  }
}

/**
 * Checks of the database file itself, which a query may not reach (SQLite answers from its page cache): it must be
 * the file we opened (not replaced or removed), start with SQLite's header, and sit on a writable, non-full volume.
 */
export const fileChecks = (file: string): {
  /** Throws unless `file` is still the file that was opened when the checks were made. */
  readonly assertSameFile: () => void
  /** What is wrong with the file's place or its volume now, without reading the file: a few system calls. */
  readonly volumeProblem: () => StorageProblem | undefined
  /** All the checks; fails with the first problem found. */
  readonly healthy: Effect.Effect<void, StorageProblem>
} => {
  if (!isPlainFile(file)) {
    return { assertSameFile: () => {}, volumeProblem: () => undefined, healthy: Effect.void }
  }
  const opened = statSync(file)
  const dir = dirname(file)
  const assertSameFile = () => {
    const now = statSync(file, { throwIfNoEntry: false })
    if (now === undefined || now.ino !== opened.ino || now.dev !== opened.dev) {
      throw new StorageProblem("replaced", `the database file ${file} was removed or replaced underneath the process`)
    }
  }
  const volumeProblem = (): StorageProblem | undefined => {
    try {
      assertSameFile()
      try {
        accessSync(dir, constants.W_OK)
      } catch (e) {
        return new StorageProblem(
          (e as NodeJS.ErrnoException).code === "EROFS" ? "read-only" : "io-error",
          `the database folder ${dir} is not writable: ${(e as Error).message}`
        )
      }
      const space = statfsSync(dir)
      if (space.bavail * space.bsize < minFreeBytes) {
        return new StorageProblem("full", `the database volume at ${dir} is full`)
      }
      return undefined
    } catch (e) {
      return e instanceof StorageProblem
        ? e
        : new StorageProblem("io-error", `the database folder ${dir}: ${(e as Error).message}`)
    }
  }
  const healthy = Effect.gen(function*() {
    const problem = volumeProblem()
    if (problem !== undefined) return yield* Effect.fail(problem)
    const header = Buffer.alloc(sqliteHeader.length)
    yield* Effect.tryPromise({
      try: async () => {
        const handle = await fs.open(file, "r")
        try {
          await handle.read(header, 0, header.length, 0)
        } finally {
          await handle.close()
        }
      },
      catch: (e) => new StorageProblem("io-error", `the database file ${file} cannot be read: ${(e as Error).message}`)
    })
    if (!header.equals(sqliteHeader)) {
      return yield* Effect.fail(
        new StorageProblem("corrupt", `the database file ${file} is corrupt (no SQLite header)`)
      )
    }
  })
  return { assertSameFile, volumeProblem, healthy }
}
