import { Clock, Duration, Effect, Schedule } from "effect"
import type { FileChecks, StorageProblem } from "./DatabaseFile.js"

/** A bad file shows within about this long, at no file I/O per probe. */
const checkInterval = Duration.millis(500)

/** The file's health, as last checked. */
export interface FileHealth {
  readonly problem: () => StorageProblem | undefined
  /** A refused write found `problem`: the verdict until the next check. */
  readonly found: (problem: StorageProblem) => void
  /** Throws what is wrong, for a write to refuse. */
  readonly assertWritable: () => void
}

/** Check `file` now, then in the background while the scope lasts. */
export const watchFileHealth = (file: FileChecks) =>
  Effect.gen(function*() {
    let fileProblem: StorageProblem | undefined = undefined
    const checkFile = Effect.matchEffect(file.healthy, {
      onFailure: (e) => Effect.sync(() => (fileProblem = e)),
      onSuccess: () => Effect.sync(() => (fileProblem = undefined))
    })
    yield* checkFile
    // on the real clock: the file's health is a matter of wall time
    yield* checkFile.pipe(
      Effect.repeat(Schedule.spaced(checkInterval)),
      Effect.provideService(Clock.Clock, Clock.Clock.defaultValue()),
      Effect.forkScoped
    )
    const health: FileHealth = {
      problem: () => fileProblem,
      found: (problem) => {
        fileProblem = problem
      },
      assertWritable: () => {
        // an accepted task must land in the file the next start opens
        file.assertSameFile()
        if (fileProblem !== undefined) throw fileProblem
      }
    }
    return health
  })
