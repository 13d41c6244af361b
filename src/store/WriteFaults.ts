import { Effect } from "effect"
import type { Metrics } from "../Metrics.js"
import { primaryCode, ResultCode } from "./Connection.js"
import { StorageProblem, type StorageReason } from "./DatabaseFile.js"

/** What kind of storage failure `error` is, by SQLite's primary result code. */
const sqliteReason = (error: unknown): StorageReason | undefined => {
  switch (primaryCode(error)) {
    case ResultCode.FULL:
      return "full"
    case ResultCode.READONLY:
      return "read-only"
    case ResultCode.BUSY:
    case ResultCode.LOCKED:
      return "locked"
    case ResultCode.IOERR:
      return "io-error"
    case ResultCode.CORRUPT:
    case ResultCode.NOTADB:
      return "corrupt"
    default:
      return undefined
  }
}

/**
 * Refused writes, counted by reason, the start and end of refusing them logged once each. An I/O error or full disk
 * is told as the volume's own problem, when it has one: what an operator acts on.
 */
export const makeWriteFaults = (metrics: Metrics["Service"], volumeProblem: () => StorageProblem | undefined) => {
  let current: { reason: StorageReason; since: number; refused: number } | undefined

  const reasonOf = (error: unknown): { reason: StorageReason; problem?: StorageProblem } | undefined => {
    if (error instanceof StorageProblem) return { reason: error.reason }
    const reason = sqliteReason(error)
    if (reason !== "io-error" && reason !== "full") return reason === undefined ? undefined : { reason }
    const problem = volumeProblem()
    return problem === undefined ? { reason } : { reason: problem.reason, problem }
  }

  return {
    /** Whether the last write was refused. */
    failing: () => current !== undefined,
    /** Count a write refused with `error`; the volume's problem, if found, for later writes to refuse at once. */
    refused: (error: unknown): Effect.Effect<StorageProblem | undefined> =>
      Effect.suspend(() => {
        const found = reasonOf(error)
        if (found === undefined) return Effect.succeed(undefined)
        metrics.refusedWrite(found.reason)
        const problem = Effect.succeed(found.problem)
        if (current !== undefined && current.reason === found.reason) {
          current.refused++
          return problem
        }
        current = { reason: found.reason, since: Date.now(), refused: 1 }
        return Effect.andThen(
          Effect.logWarning("the database refuses writes; submits answer 503 until it takes them again").pipe(
            Effect.annotateLogs({ reason: found.reason, error: error instanceof Error ? error.message : String(error) })
          ),
          problem
        )
      }),
    /** A write went through. */
    accepted: Effect.suspend(() => {
      const ended = current
      current = undefined
      return ended === undefined ? Effect.void : Effect.logInfo("the database takes writes again").pipe(
        Effect.annotateLogs({
          reason: ended.reason,
          refusedWrites: ended.refused,
          faultSeconds: (Date.now() - ended.since) / 1000
        })
      )
    })
  } as const
}
