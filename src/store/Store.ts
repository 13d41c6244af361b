// Part store/: the database. Store.ts, the only SQL, with Rows.ts and Retry.ts; Connection.ts, the one connection;
// Database.ts, its setup and migrations; DatabaseFile.ts, FileHealth.ts and WriteFaults.ts, a failing file or volume;
// Checkpointer.ts, WAL checkpoints. Imports only the shared modules of src/.
import { Context, DateTime, Effect, Layer, Option, type Scope } from "effect"
import type { Task, TaskFilter, TaskId, TaskRun, TaskStatus } from "../Domain.js"
import { StoreError } from "../Errors.js"
import { Metrics } from "../Metrics.js"
import { describeError, isBusy, Sqlite } from "./Connection.js"
import { fileChecks } from "./DatabaseFile.js"
import { watchFileHealth } from "./FileHealth.js"
import { whileBusy } from "./Retry.js"
import {
  columns,
  decodeJson,
  encodeJson,
  fromRow,
  fromRunRow,
  type RawTaskRow,
  type RunRow,
  type TaskJson,
  type TaskRow,
  toJson
} from "./Rows.js"
import { makeWriteFaults } from "./WriteFaults.js"

/** Tasks and their runs. No statement, nor batch in its transaction, is interleaved with another. */
export interface StoreService {
  /** Decide submits in one transaction: a new run, or nothing for a task running or completed. */
  readonly decideAll: (batch: ReadonlyArray<Submission>) => Effect.Effect<ReadonlyArray<Decision>, StoreError>
  /** Record how runs ended, in one transaction, only where the row is still that run's and running. */
  readonly completeAll: (batch: ReadonlyArray<Finished>) => Effect.Effect<ReadonlyArray<boolean>, StoreError>
  /** The task with exactly this id. */
  readonly get: (id: string) => Effect.Effect<Option.Option<Task>, StoreError>
  /** The tasks with exactly these ids, in their order, as TaskResult JSON; several are read in one read transaction. */
  readonly getJsonAll: (
    ids: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<Option.Option<TaskJson>>, StoreError>
  /** The newest tasks that pass `filter`. */
  readonly list: (filter: TaskFilter) => Effect.Effect<Array<Task>, StoreError>
  /** The same, as TaskResult JSON. */
  readonly listJson: (filter: TaskFilter) => Effect.Effect<Array<TaskJson>, StoreError>
  /** Every run of the task, oldest first. */
  readonly runs: (id: string) => Effect.Effect<Array<TaskRun>, StoreError>
  /** Every task left `running`, oldest first. */
  readonly listRunning: Effect.Effect<Array<RunningTask>, StoreError>
  /** Count one more resumption of each of these tasks still `running`. */
  readonly resumed: (ids: ReadonlyArray<TaskId>) => Effect.Effect<void, StoreError>
  /** The most recently completed task among `types`. */
  readonly lastCompleted: (types: ReadonlyArray<string>) => Effect.Effect<Option.Option<Task>, StoreError>
  /** Delete the task (and, by trigger, its past runs); the task it was. */
  readonly remove: (id: string) => Effect.Effect<Option.Option<Task>, StoreError>
  /** The grace before tasks no retention has pruned yet are first pruned (migration 0008). */
  readonly grace: (proposed: DateTime.Utc) => Effect.Effect<Option.Option<Grace>, StoreError>
  /** The grace is over: later starts prune without waiting. */
  readonly endGrace: Effect.Effect<void, StoreError>
  /** Delete up to `batch` tasks that ended before `before`, none of `keep`; how many went. */
  readonly prune: (
    before: DateTime.Utc,
    keep: ReadonlyArray<string>,
    batch: number
  ) => Effect.Effect<number, StoreError>
  /** How many tasks `prune` would delete in all. */
  readonly countPrunable: (before: DateTime.Utc, keep: ReadonlyArray<string>) => Effect.Effect<number, StoreError>
  /** Succeeds when the database answers and its file is the one opened, intact. */
  readonly ping: Effect.Effect<void, StoreError>
}

/** A submit, its `params` JSON, `submittedAt` RFC 3339. */
export interface Submission {
  readonly id: TaskId
  readonly type: string
  readonly params: string | null
  readonly submittedAt: string
}

/** The run a submit started, or the task as it found it. */
export type Decision =
  | { readonly _tag: "Started"; readonly run: number }
  | { readonly _tag: "Deduplicated"; readonly type: string; readonly status: TaskStatus; readonly run: number }

export interface Completion {
  readonly status: Exclude<TaskStatus, "running">
  readonly error?: string | undefined
  readonly result?: unknown
  readonly completedAt: DateTime.Utc
}

export interface Finished {
  readonly id: TaskId
  readonly run: number
  readonly completion: Completion
}

export interface RunningTask {
  readonly id: TaskId
  readonly type: string
  readonly run: number
  readonly params: unknown
}

export interface Grace {
  readonly history: string
  readonly endsAt: DateTime.Utc
}

interface Prepared<Row> {
  readonly all: (...params: ReadonlyArray<SqlValue>) => Array<Row>
  readonly get: (...params: ReadonlyArray<SqlValue>) => Row | undefined
  readonly run: (...params: ReadonlyArray<SqlValue>) => { readonly changes: number | bigint }
}
type SqlValue = string | number | null

const placeholders = (n: number) => Array(n).fill("?").join(", ")

export class Store extends Context.Service<Store, StoreService>()("sidecar/Store") {
  static readonly make: Effect.Effect<StoreService, never, Sqlite | Metrics | Scope.Scope> = Effect.gen(function*() {
    const { db, filename, reading, transaction } = yield* Sqlite
    const file = fileChecks(filename)
    const faults = makeWriteFaults(yield* Metrics, file.volumeProblem)
    const health = yield* watchFileHealth(file)

    const refuse = (op: string, e: unknown) =>
      Effect.flatMap(faults.refused(e), (problem) => {
        if (problem !== undefined) health.found(problem)
        return Effect.fail(StoreError.of(op, describeError(e)))
      })
    const wrote = <A>(a: A) => (faults.failing() ? Effect.as(faults.accepted, a) : Effect.succeed(a))

    /** One step of the fiber: `run` synchronously, retried only if the database is busy; a write gated and counted. */
    const step = <A>(op: string, run: () => A, write = false): Effect.Effect<A, StoreError> =>
      Effect.suspend(() => {
        try {
          if (!write) return Effect.succeed(run())
          health.assertWritable()
          return wrote(run())
        } catch (e) {
          if (!isBusy(e)) return write ? refuse(op, e) : Effect.fail(StoreError.of(op, describeError(e)))
          return Effect.try({ try: run, catch: (e) => e }).pipe(
            Effect.retry({ schedule: whileBusy, while: isBusy }),
            Effect.matchEffect({
              onFailure: (e) => (write ? refuse(op, e) : Effect.fail(StoreError.of(op, describeError(e)))),
              onSuccess: (a) => (write ? wrote(a) : Effect.succeed(a))
            })
          )
        }
      })
    const write = <A>(op: string, run: () => A) => step(op, run, true)

    const prepare = <Row = never>(sql: string, arrays = false): Prepared<Row> => {
      const statement = db.prepare(sql)
      if (arrays) statement.setReturnArrays(true)
      return statement as unknown as Prepared<Row>
    }
    /** Prepared on first use, once per number of values. */
    const byArity = <Row>(make: (n: number) => string, arrays = false) => {
      const prepared = new Map<number, Prepared<Row>>()
      return (n: number) => {
        let statement = prepared.get(n)
        if (statement === undefined) prepared.set(n, statement = prepare<Row>(make(n), arrays))
        return statement
      }
    }

    // Statements with RETURNING run to their end (`all`), never stepped once (`get`): outside a transaction, SQLite
    // commits such a statement when it is reset, and a commit that fails there (a full volume) is not reported.

    // The whole submit rule in one statement: a new id is inserted at run 1; a failed task's row becomes its next run
    // (the trigger of migration 0007 keeps the run it replaces); any other row is left alone and nothing is returned.
    const decideSql = prepare<{ run: number }>(
      `INSERT INTO task_results (${columns}) VALUES (?, ?, 'running', 1, ?, '', NULL, ?, NULL)
  ON CONFLICT (id) DO UPDATE SET type = excluded.type, status = 'running', run = run + 1, params = excluded.params,
    error = '', result = NULL, submitted_at = excluded.submitted_at, completed_at = NULL, resumes = 0
  WHERE status = 'failed'
  RETURNING run`
    )
    const foundSql = prepare<{ type: string; status: TaskStatus; run: number }>(
      `SELECT type, status, run FROM task_results WHERE id = ?`
    )
    const decideOne = (s: Submission): Decision => {
      const started = decideSql.all(s.id, s.type, s.params, s.submittedAt)[0]
      return started !== undefined
        ? { _tag: "Started", run: started.run }
        : { _tag: "Deduplicated", ...foundSql.get(s.id)! }
    }
    const decideBatch = (batch: ReadonlyArray<Submission>) => transaction(() => batch.map(decideOne))
    const decideAll = (batch: ReadonlyArray<Submission>) =>
      write("submit", (): ReadonlyArray<Decision> => {
        // one statement commits on its own; a transaction would only add its BEGIN and COMMIT
        return batch.length === 1 ? [decideOne(batch[0]!)] : decideBatch(batch)
      })

    // a late completion of a superseded or deleted run never overwrites anything
    const completeSql = prepare(`UPDATE task_results SET status = ?, error = ?, result = ?, completed_at = ?
  WHERE id = ? AND run = ? AND status = 'running'`)
    const completeOne = ({ completion: c, id, run }: Finished) =>
      completeSql.run(
        c.status,
        c.error ?? "",
        encodeJson(c.result),
        DateTime.formatIso(c.completedAt),
        id,
        run
      ).changes > 0
    const completeBatch = (batch: ReadonlyArray<Finished>) => transaction(() => batch.map(completeOne))
    const completeAll = (batch: ReadonlyArray<Finished>) =>
      write(
        "complete",
        (): ReadonlyArray<boolean> => batch.length === 1 ? [completeOne(batch[0]!)] : completeBatch(batch)
      )

    const getSql = prepare<RawTaskRow>(`SELECT ${columns} FROM task_results WHERE id = ?`, true)
    const rowOf = (id: string) => Option.fromUndefinedOr(getSql.get(id))
    const get = (id: string) => Effect.map(step("get", () => rowOf(id)), Option.map(fromRow))
    const jsonOf = (id: string) => Option.map(rowOf(id), toJson)
    // several reads share one read lock; one alone takes its own, as a statement does
    const getJsonAll = (ids: ReadonlyArray<string>) =>
      step("get", () => ids.length === 1 ? [jsonOf(ids[0]!)] : reading(() => ids.map(jsonOf)))

    // the partial status index serves only queries that state its condition
    const notCompleted = "status <> 'completed'"
    // by status (any, completed, another) and, in each, by type or not
    const listSql = (["any", "completed", "other"] as const).flatMap((status) =>
      [false, true].map((hasType) => {
        const where = [
          ...(status === "any" ? [] : ["status = ?"]),
          ...(status === "other" ? [notCompleted] : []),
          ...(hasType ? ["type = ?"] : [])
        ]
        return prepare<RawTaskRow>(
          `SELECT ${columns} FROM task_results ${where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`}
    ORDER BY submitted_at DESC, rowid DESC LIMIT ?`,
          true
        )
      })
    )
    const listRows = (filter: TaskFilter) =>
      step("list", () =>
        listSql[
          (filter.status === undefined ? 0 : filter.status === "completed" ? 2 : 4) +
          (filter.type === undefined ? 0 : 1)
        ]!.all(
          ...(filter.status === undefined ? [] : [filter.status]),
          ...(filter.type === undefined ? [] : [filter.type]),
          filter.limit
        ))
    const list = (filter: TaskFilter) => Effect.map(listRows(filter), (rows) => rows.map(fromRow))
    const listJson = (filter: TaskFilter) => Effect.map(listRows(filter), (rows) => rows.map(toJson))

    const runsSql = prepare<RunRow>(
      `SELECT run, status, error, result, started_at, completed_at, started_by, resumes FROM task_runs
  WHERE task_id = ? ORDER BY run`
    )
    const runs = (id: string) => step("runs", () => runsSql.all(id).map(fromRunRow))

    const runningSql = prepare<Pick<TaskRow, "id" | "type" | "run" | "params">>(
      `SELECT id, type, run, params FROM task_results WHERE status = 'running' AND ${notCompleted}
  ORDER BY submitted_at, rowid`
    )
    const listRunning = step("listRunning", () =>
      runningSql.all().map((row): RunningTask => ({
        id: row.id as TaskId,
        type: row.type,
        run: row.run,
        params: decodeJson(row.params)
      })))

    // SQLite allows 32,766 values a statement
    const maxResumedPerStatement = 500
    const resumedSql = byArity<never>((ids) =>
      `UPDATE task_results SET resumes = resumes + 1 WHERE id IN (${placeholders(ids)}) AND status = 'running'`
    )
    const resumedBatch = (ids: ReadonlyArray<TaskId>) =>
      transaction(() => {
        for (let at = 0; at < ids.length; at += maxResumedPerStatement) {
          const chunk = ids.slice(at, at + maxResumedPerStatement)
          resumedSql(chunk.length).run(...chunk)
        }
      })
    const resumed = (ids: ReadonlyArray<TaskId>) => write("resumed", () => resumedBatch(ids))

    // `+status` keeps the plan on the type index
    const lastCompletedSql = byArity<RawTaskRow>(
      (types) => `SELECT ${columns} FROM task_results WHERE +status = 'completed' AND type IN (${placeholders(types)})
    ORDER BY completed_at DESC, rowid DESC LIMIT 1`,
      true
    )
    const lastCompleted = (types: ReadonlyArray<string>) =>
      step(
        "lastCompleted",
        () => Option.map(Option.fromUndefinedOr(lastCompletedSql(types.length).get(...types)), fromRow)
      )

    const removeSql = prepare<RawTaskRow>(`DELETE FROM task_results WHERE id = ? RETURNING ${columns}`, true)
    const remove = (id: string) =>
      write("remove", () => Option.map(Option.fromUndefinedOr(removeSql.all(id)[0]), fromRow))

    // the end stored, or else `proposed`, stored now: a restart neither restarts nor skips the grace
    const graceSql = prepare<{ history: string; ends_at: string }>(
      "UPDATE retention_grace SET ends_at = coalesce(ends_at, ?) RETURNING history, ends_at"
    )
    const grace = (proposed: DateTime.Utc) =>
      write("grace", () =>
        Option.map(
          Option.fromUndefinedOr(graceSql.all(DateTime.formatIso(proposed))[0]),
          (row): Grace => ({ history: row.history, endsAt: DateTime.makeUnsafe(row.ends_at) })
        ))
    const endGraceSql = prepare("DELETE FROM retention_grace")
    const endGrace = write("endGrace", () => void endGraceSql.run())

    // Through the submitted_at index: a task that ended before the cutoff (given twice) was submitted before it (or,
    // had the clock stepped back, goes once the cutoff passes its submission).
    const prunableWhere = (keep: number) =>
      `submitted_at < ? AND status <> 'running' AND completed_at < ? ${
        keep === 0 ? "" : `AND id NOT IN (${placeholders(keep)})`
      }`
    const pruneSql = byArity<{ id: string }>((keep) => {
      const where = prunableWhere(keep)
      return `DELETE FROM task_results WHERE rowid IN (SELECT rowid FROM task_results WHERE ${where} LIMIT ?)
    RETURNING id`
    })
    const prune = (before: DateTime.Utc, keep: ReadonlyArray<string>, batch: number) =>
      write("prune", () => {
        const cutoff = DateTime.formatIso(before)
        return pruneSql(keep.length).all(cutoff, cutoff, ...keep, batch).length
      })
    const countPrunableSql = byArity<{ n: number }>((keep) =>
      `SELECT count(*) AS n FROM task_results WHERE ${prunableWhere(keep)}`
    )
    const countPrunable = (before: DateTime.Utc, keep: ReadonlyArray<string>) =>
      step("countPrunable", () => {
        const cutoff = DateTime.formatIso(before)
        return countPrunableSql(keep.length).get(cutoff, cutoff, ...keep)!.n
      })

    // a full or read-only volume refuses writes, but a restart would not free it: no failure here
    const pingSql = prepare<[number]>(`SELECT count(*) FROM (SELECT 1 FROM task_results LIMIT 1)`, true)
    const ping = step("ping", () => {
      pingSql.get()
      const problem = health.problem()
      if (problem !== undefined && (problem.reason === "replaced" || problem.reason === "corrupt")) throw problem
    })

    return {
      decideAll,
      completeAll,
      get,
      getJsonAll,
      list,
      listJson,
      runs,
      listRunning,
      resumed,
      lastCompleted,
      remove,
      grace,
      endGrace,
      prune,
      countPrunable,
      ping
    }
  })

  static readonly layer = Layer.effect(this, this.make)
}
