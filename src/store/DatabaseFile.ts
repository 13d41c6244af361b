import { Effect } from "effect"
import { accessSync, constants, promises as fs, statfsSync, statSync } from "node:fs"
import { dirname } from "node:path"

/** The least free space on which the database still takes new tasks. */
const minFreeBytes = 64 * 1024
export const sqliteHeader = Buffer.from("SQLite format 3\0", "latin1")

/** Whether `filename` names a file on disk (not ":memory:", "", or a "file:" URI). */
export const isPlainFile = (filename: string) =>
  filename !== "" && filename !== ":memory:" && !filename.startsWith("file:")

/** Why the database cannot be written, in words an operator acts on. */
export type StorageReason = "full" | "read-only" | "replaced" | "corrupt" | "locked" | "io-error"

export class StorageProblem extends Error {
  constructor(readonly reason: StorageReason, message: string) {
    super(message)
  }
}

/** Checks of the file itself, which a query may not reach (SQLite answers from its page cache). */
export interface FileChecks {
  /** Throws unless `file` is still the file opened. */
  readonly assertSameFile: () => void
  /** What is wrong with the file's place or volume, without reading the file. */
  readonly volumeProblem: () => StorageProblem | undefined
  /** All the checks, the file's header read too. */
  readonly healthy: Effect.Effect<void, StorageProblem>
}

export const fileChecks = (file: string): FileChecks => {
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
