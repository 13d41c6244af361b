// Part store/: the database. Sqlite.ts, the one SQLite connection; Sql.ts, its setup and the migrator; Checkpointer.ts,
// WAL checkpoints off the event loop; DatabaseFile.ts, checks of the file itself; Store.ts, the only module that
// speaks SQL. Imports only the shared modules of src/
// (Config, Domain, Errors, Logging, Metrics, Shutdown).
import { Clock, Context, DateTime, Duration, Effect, Layer, Option, Schedule } from "effect"
import type { RunStart, TaskFilter, TaskId, TaskStatus } from "../Domain.js"
import { Task, TaskRun } from "../Domain.js"
import { StoreError } from "../Errors.js"
import { Metrics } from "../Metrics.js"
import { fileChecks, type StorageProblem } from "./DatabaseFile.js"
import { describeError, isBusy, Sqlite } from "./Sqlite.js"
import { makeWriteFaults } from "./WriteFaults.js"

/** A row of `task_results` as SQLite returns it. */
export type TaskRow = {
  readonly id: string
  readonly type: string
  readonly status: string
  readonly run: number
  readonly params: string | null
  readonly error: string
  readonly result: string | null
  readonly submitted_at: string
  readonly completed_at: string | null
}

/**
 * The same row as the Store reads it for answers: its columns in `columns` order, not an object. better-sqlite3 makes
 * a row into an object key by key, which was a third of what reading the 100 newest cost.
 */
type RawTaskRow = readonly [
  id: string,
  type: string,
  status: string,
  run: number,
  params: string | null,
  error: string,
  result: string | null,
  submitted_at: string,
  completed_at: string | null
]

/** A row of the `task_runs` view. */
type RunRow = {
  readonly run: number
  readonly status: string
  readonly error: string
  readonly result: string | null
  readonly started_at: string
  readonly completed_at: string | null
  readonly started_by: string
  readonly resumes: number
}

/** A prepared statement of node:sqlite, typed by its rows; parameters are positional and never undefined. */
interface Prepared<Row> {
  readonly all: (...params: ReadonlyArray<SqlValue>) => Array<Row>
  readonly get: (...params: ReadonlyArray<SqlValue>) => Row | undefined
  readonly run: (...params: ReadonlyArray<SqlValue>) => { readonly changes: number | bigint }
}
type SqlValue = string | number | null

/** How a run ended, as written by the conditional completion. */
export interface Completion {
  readonly status: Exclude<TaskStatus, "running">
  readonly error?: string | undefined
  readonly result?: unknown
  readonly completedAt: DateTime.Utc
}

/** One run's completion, for `completeAll`. */
export interface Finished {
  readonly id: TaskId
  readonly run: number
  readonly completion: Completion
}

/** A submit as the store decides it: `params` already JSON (or null), `submittedAt` already RFC 3339. */
export interface Submission {
  readonly id: TaskId
  readonly type: string
  readonly params: string | null
  readonly submittedAt: string
}

/** What a submit decided: the run it started, or, when it did nothing, the task as it found it. */
export type Decision =
  | { readonly _tag: "Started"; readonly run: number }
  | { readonly _tag: "Deduplicated"; readonly type: string; readonly status: TaskStatus; readonly run: number }

/** A run a previous process left `running`: what resuming it needs. */
export interface RunningTask {
  readonly id: TaskId
  readonly type: string
  readonly run: number
  readonly params: unknown
}

const columns = "id, type, status, run, params, error, result, submitted_at, completed_at"

// JSON NULL, {} and "" are all "nothing" on the wire: the Go original omitted them.
/** A value as stored: JSON text, or NULL for nothing. */
export const encodeJson = (value: unknown): string | null =>
  value === undefined || value === null || isEmptyObject(value) ? null : JSON.stringify(value)
const decodeJson = (text: string | null): unknown => {
  if (text === null || text === "") return undefined
  try {
    const value: unknown = JSON.parse(text)
    return value === null || isEmptyObject(value) ? undefined : value
  } catch {
    return text
  }
}
const isEmptyObject = (value: unknown) =>
  typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 0

/** A task as `TaskResult` JSON, the encoded side of `Task`. */
export type TaskJson = typeof Task.Encoded

/**
 * The row as TaskResult JSON, without going through `Task`: the stored timestamps are already RFC 3339 UTC in the
 * form `Task` encodes (rows adopted from the Go sidecar were rewritten so by migration 0004), and parsing them only to
 * format them again was most of the cost of a list.
 */
const toJson = (
  [id, type, status, run, storedParams, error, storedResult, submittedAt, completedAt]: RawTaskRow
): TaskJson => {
  const params = decodeJson(storedParams)
  const result = decodeJson(storedResult)
  return {
    id,
    type,
    status: status as TaskStatus,
    run,
    ...(params === undefined ? {} : { params }),
    ...(error === "" || error === null ? {} : { error }),
    ...(result === undefined ? {} : { result }),
    submittedAt,
    ...(completedAt === null || completedAt === "" ? {} : { completedAt })
  }
}

const fromRow = (row: RawTaskRow): Task => {
  const { completedAt, submittedAt, ...rest } = toJson(row)
  return new Task(
    {
      ...rest,
      id: rest.id as TaskId,
      submittedAt: DateTime.makeUnsafe(submittedAt),
      ...(completedAt === undefined ? {} : { completedAt: DateTime.makeUnsafe(completedAt) })
    },
    { disableChecks: true }
  )
}

const fromRunRow = (row: RunRow): TaskRun => {
  const result = decodeJson(row.result)
  return new TaskRun(
    {
      run: row.run,
      status: row.status as TaskStatus,
      ...(row.error === "" ? {} : { error: row.error }),
      ...(result === undefined ? {} : { result }),
      startedAt: DateTime.makeUnsafe(row.started_at),
      ...(row.completed_at === null || row.completed_at === ""
        ? {}
        : { completedAt: DateTime.makeUnsafe(row.completed_at) }),
      startedBy: row.started_by as RunStart,
      resumes: row.resumes
    },
    { disableChecks: true }
  )
}

/**
 * How long a statement waits for another connection's write lock before it fails. SQLite's own busy_timeout would
 * wait by sleeping inside the (synchronous) driver call, freezing the event loop and with it every probe; so the
 * connection runs with busy_timeout 0 and the wait happens here, asynchronously, between retries.
 */
export const busyTimeout = Duration.seconds(5)

// Every millisecond at first: the lock is most often the checkpointer's RESTART (11-20 ms), and doubling waits from
// 2 ms overshot its end by up to as long again, for every request in flight. Then less and less often.
const whileBusy = Schedule.spaced("1 millis").pipe(
  Schedule.upTo({ duration: "40 millis" }),
  Schedule.concat(Schedule.min([Schedule.exponential("2 millis"), Schedule.spaced("50 millis")])),
  Schedule.upTo({ duration: busyTimeout })
)

/**
 * How a write the sidecar has already promised (a run's outcome, a resumption's count) is retried when the database
 * refuses it: soon at first, then every second, until it is written or its fiber is interrupted.
 */
export const untilWritten = Schedule.min([Schedule.exponential("50 millis"), Schedule.spaced("1 second")])

const saveSql = `INSERT INTO task_results (${columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (id) DO UPDATE SET type = excluded.type, status = excluded.status, run = excluded.run,
    params = excluded.params, error = excluded.error, result = excluded.result,
    submitted_at = excluded.submitted_at, completed_at = excluded.completed_at,
    resumes = CASE WHEN excluded.run = run THEN resumes ELSE 0 END`
// The whole submit rule in one statement: a new id is inserted at run 1; a failed task's row becomes its next run
// (the trigger of migration 0007 keeps the run it replaces); any other row is left alone and nothing is returned.
const decideSql = `INSERT INTO task_results (${columns}) VALUES (?, ?, 'running', 1, ?, '', NULL, ?, NULL)
  ON CONFLICT (id) DO UPDATE SET type = excluded.type, status = 'running', run = run + 1, params = excluded.params,
    error = '', result = NULL, submitted_at = excluded.submitted_at, completed_at = NULL, resumes = 0
  WHERE status = 'failed'
  RETURNING run`
const getSql = `SELECT ${columns} FROM task_results WHERE id = ?`
const foundSql = `SELECT type, status, run FROM task_results WHERE id = ?`
const completeSql = `UPDATE task_results SET status = ?, error = ?, result = ?, completed_at = ?
  WHERE id = ? AND run = ? AND status = 'running'`
const removeSql = `DELETE FROM task_results WHERE id = ? RETURNING ${columns}`
const runsSql = `SELECT run, status, error, result, started_at, completed_at, started_by, resumes FROM task_runs
  WHERE task_id = ? ORDER BY run`
// SQLite uses a partial index only for a query whose WHERE has the index's own condition among its terms (it does not
// infer `status <> 'completed'` from `status = 'running'`): queries by a status other than completed carry it too.
const notCompleted = "status <> 'completed'"
const runningSql = `SELECT id, type, run, params FROM task_results WHERE status = 'running' AND ${notCompleted}
  ORDER BY submitted_at, rowid`
/** Ids a resumption count's statement takes at most (SQLite allows 32,766 bound values a statement). */
const maxResumedPerStatement = 500
const resumedSql = (ids: number) =>
  `UPDATE task_results SET resumes = resumes + 1 WHERE id IN (${
    Array(ids).fill("?").join(", ")
  }) AND status = 'running'`
const pingSql = `SELECT count(*) FROM (SELECT 1 FROM task_results LIMIT 1)`
/** How a list filters by status: not at all, for completed (the submitted_at index), or for another (the status index). */
type StatusFilter = "any" | "completed" | "other"
const listSql = (status: StatusFilter, hasType: boolean) => {
  const where = [
    ...(status === "any" ? [] : ["status = ?"]),
    ...(status === "other" ? [notCompleted] : []),
    ...(hasType ? ["type = ?"] : [])
  ]
  return `SELECT ${columns} FROM task_results ${where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`}
    ORDER BY submitted_at DESC, rowid DESC LIMIT ?`
}
// `+status` keeps the plan on the type index, which reads only the tasks of these types: with a full status index
// (before migration 0009) and two types or more, SQLite picked that index and sorted every completed task (100 ms on
// 100k rows, at each start and each retention pass).
const lastCompletedSql = (
  types: number
) => `SELECT ${columns} FROM task_results WHERE +status = 'completed' AND type IN (${Array(types).fill("?").join(", ")})
    ORDER BY completed_at DESC, rowid DESC LIMIT 1`
/**
 * What retention may delete: ended before the cutoff (given twice), and none of `keep` ids. Found through the
 * submitted_at index: a task that ended before the cutoff was submitted before it (should the clock have stepped
 * back between the two, the task goes once the cutoff passes its submission instead).
 */
const prunableWhere = (keep: number) =>
  `submitted_at < ? AND status <> 'running' AND completed_at < ? ${
    keep === 0 ? "" : `AND id NOT IN (${Array(keep).fill("?").join(", ")})`
  }`
const pruneSql = (
  keep: number
) => `DELETE FROM task_results WHERE rowid IN (SELECT rowid FROM task_results WHERE ${prunableWhere(keep)} LIMIT ?)
    RETURNING id`
const countPrunableSql = (keep: number) => `SELECT count(*) AS n FROM task_results WHERE ${prunableWhere(keep)}`
// The grace before the first prune of tasks no retention has pruned yet (migration 0008): its end, the one stored or
// else the one proposed, stored now.
const graceSql = "UPDATE retention_grace SET ends_at = coalesce(ends_at, ?) RETURNING history, ends_at"
const endGraceSql = "DELETE FROM retention_grace"

/**
 * How often the database file and volume are checked in the background. Liveness and writes go by the latest
 * verdict, so a corrupted or full volume shows within about this long, at no file I/O per probe.
 */
const fileCheckInterval = Duration.millis(500)

/**
 * The only module that speaks SQL: `task_results` in, `Task` out. Its statements are prepared once and run
 * synchronously on the one connection: a statement, or a batch in one transaction, is never interleaved with another.
 */
export class Store extends Context.Service<Store>()("sidecar/Store", {
  make: Effect.gen(function*() {
    const { db, filename, transaction } = yield* Sqlite
    const file = fileChecks(filename)
    const faults = makeWriteFaults(yield* Metrics, file.volumeProblem)
    // The last verdict on the file: writes refuse while it is bad, rather than land somewhere no restart will find.
    let fileProblem: StorageProblem | undefined = undefined
    const checkFile = Effect.matchEffect(file.healthy, {
      onFailure: (e) => Effect.sync(() => (fileProblem = e)),
      onSuccess: () => Effect.sync(() => (fileProblem = undefined))
    })
    yield* checkFile
    // On the real clock whatever clock the program runs on: the file's health is a matter of wall time, and a test
    // that moves its clock by days must not run thousands of checks.
    yield* checkFile.pipe(
      Effect.repeat(Schedule.spaced(fileCheckInterval)),
      Effect.provideService(Clock.Clock, Clock.Clock.defaultValue()),
      Effect.forkScoped
    )
    /** Throws what is wrong with the file, so that a write refuses rather than land where no restart looks. */
    const assertWritable = () => {
      // an accepted task must land in the file the next start will open, not in one unlinked underneath us
      file.assertSameFile()
      if (fileProblem !== undefined) throw fileProblem
    }

    /** A write that failed: counted and told of as a refused write, and the volume's problem kept when found. */
    const refuse = (op: string, e: unknown) =>
      Effect.flatMap(faults.refused(e), (problem) => {
        if (problem !== undefined) fileProblem = problem
        return Effect.fail(StoreError.of(op, describeError(e)))
      })
    const wrote = <A>(a: A) => (faults.failing() ? Effect.as(faults.accepted, a) : Effect.succeed(a))

    /**
     * Run one storage step: wait out another writer's lock (up to busyTimeout), name the step in errors. One step of
     * the fiber, as the statement itself is: the retry comes in only once a statement found the database busy, which
     * most never do. A write (`write`) is refused while the file's last check found it unwritable, and its
     * failures and recovery are counted and told of (see WriteFaults).
     */
    const step = <A>(op: string, run: () => A, write = false): Effect.Effect<A, StoreError> =>
      Effect.suspend(() => {
        try {
          if (!write) return Effect.succeed(run())
          assertWritable()
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
    /** `step` for a statement that writes. */
    const write = <A>(op: string, run: () => A) => step(op, run, true)

    /** A statement whose rows are `Row` objects, or with `arrays`, `Row` column arrays. */
    const prepare = <Row = never>(sql: string, arrays = false): Prepared<Row> => {
      const statement = db.prepare(sql)
      if (arrays) statement.setReturnArrays(true)
      return statement as unknown as Prepared<Row>
    }
    const statements = {
      save: prepare(saveSql),
      decide: prepare<{ run: number }>(decideSql),
      get: prepare<RawTaskRow>(getSql, true),
      found: prepare<{ type: string; status: TaskStatus; run: number }>(foundSql),
      complete: prepare(completeSql),
      remove: prepare<RawTaskRow>(removeSql, true),
      runs: prepare<RunRow>(runsSql),
      running: prepare<Pick<TaskRow, "id" | "type" | "run" | "params">>(runningSql),
      ping: prepare<[number]>(pingSql, true),
      list: (["any", "completed", "other"] as const).flatMap((s) =>
        [false, true].map((t) => prepare<RawTaskRow>(listSql(s, t), true))
      ),
      grace: prepare<{ history: string; ends_at: string }>(graceSql),
      endGrace: prepare(endGraceSql)
    }
    // Prepared on first use: their text depends on how many values the call has.
    const byArity = <Row>(make: (n: number) => string, arrays = false) => {
      const prepared = new Map<number, Prepared<Row>>()
      return (n: number) => {
        let statement = prepared.get(n)
        if (statement === undefined) prepared.set(n, statement = prepare<Row>(make(n), arrays))
        return statement
      }
    }
    const lastCompletedOf = byArity<RawTaskRow>(lastCompletedSql, true)
    const pruneOf = byArity<{ id: string }>(pruneSql)
    const countPrunableOf = byArity<{ n: number }>(countPrunableSql)
    const resumedOf = byArity<never>(resumedSql)

    // Statements with RETURNING are run to their end (`all`), never stepped once (`get`): outside a transaction, SQLite
    // commits such a statement when it is reset, and a commit that fails there (a full volume) is not reported.
    const decideOne = (s: Submission): Decision => {
      const started = statements.decide.all(s.id, s.type, s.params, s.submittedAt)[0]
      return started !== undefined
        ? { _tag: "Started", run: started.run }
        : { _tag: "Deduplicated", ...statements.found.get(s.id)! }
    }
    const decideBatch = (batch: ReadonlyArray<Submission>) => transaction(() => batch.map(decideOne))
    /**
     * Decide each submit, in order, in one transaction: a new run (1 for a new id, the next for a failed task), or,
     * for a task running or completed, nothing (and how it was found).
     */
    const decideAll = (batch: ReadonlyArray<Submission>) =>
      write("submit", (): ReadonlyArray<Decision> => {
        // one statement commits on its own; a transaction would only add its BEGIN and COMMIT
        return batch.length === 1 ? [decideOne(batch[0]!)] : decideBatch(batch)
      })

    const completeOne = ({ completion: c, id, run }: Finished) =>
      statements.complete.run(
        c.status,
        c.error ?? "",
        encodeJson(c.result),
        DateTime.formatIso(c.completedAt),
        id,
        run
      ).changes > 0
    const completeBatch = (batch: ReadonlyArray<Finished>) => transaction(() => batch.map(completeOne))
    /**
     * Record how each run ended, in one transaction, only where the row still belongs to that run and is still
     * running: a late completion of a superseded or deleted run never overwrites anything. True where written.
     */
    const completeAll = (batch: ReadonlyArray<Finished>) =>
      write(
        "complete",
        (): ReadonlyArray<boolean> => batch.length === 1 ? [completeOne(batch[0]!)] : completeBatch(batch)
      )
    /** `completeAll` of one run. */
    const complete = (id: TaskId, run: number, completion: Completion) =>
      Effect.map(completeAll([{ id, run, completion }]), (written) => written[0]!)

    /** Insert the task, or replace every column of the row with its id (a changed `run` keeps the replaced one). */
    const save = (task: Task) =>
      write("save", () => {
        statements.save.run(
          task.id,
          task.type,
          task.status,
          task.run,
          encodeJson(task.params),
          task.error ?? "",
          encodeJson(task.result),
          DateTime.formatIso(task.submittedAt),
          task.completedAt === undefined ? null : DateTime.formatIso(task.completedAt)
        )
      })

    const getRow = (id: string) => step("get", () => Option.fromUndefinedOr(statements.get.get(id)))
    /** The task with exactly this id. */
    const get = (id: string) => Effect.map(getRow(id), Option.map(fromRow))
    /** The task with exactly this id, as TaskResult JSON. */
    const getJson = (id: string) => Effect.map(getRow(id), Option.map(toJson))

    const listRows = (filter: TaskFilter) =>
      step("list", () =>
        statements.list[
          (filter.status === undefined ? 0 : filter.status === "completed" ? 2 : 4) +
          (filter.type === undefined ? 0 : 1)
        ]!.all(
          ...(filter.status === undefined ? [] : [filter.status]),
          ...(filter.type === undefined ? [] : [filter.type]),
          filter.limit
        ))
    /** The most recently submitted tasks that pass `filter`, newest first. */
    const list = (filter: TaskFilter) => Effect.map(listRows(filter), (rows) => rows.map(fromRow))
    /** The same, as TaskResult JSON. */
    const listJson = (filter: TaskFilter) => Effect.map(listRows(filter), (rows) => rows.map(toJson))

    /** Every run of the task, oldest first. */
    const runs = (id: string) => step("runs", () => statements.runs.all(id).map(fromRunRow))

    /** Every task a previous process left `running`, oldest first. */
    const listRunning = step("listRunning", () =>
      statements.running.all().map((row): RunningTask => ({
        id: row.id as TaskId,
        type: row.type,
        run: row.run,
        params: decodeJson(row.params)
      })))

    const resumedBatch = (ids: ReadonlyArray<TaskId>) =>
      transaction(() => {
        for (let at = 0; at < ids.length; at += maxResumedPerStatement) {
          const chunk = ids.slice(at, at + maxResumedPerStatement)
          resumedOf(chunk.length).run(...chunk)
        }
      })
    /** Count one more resumption by crash recovery of each of these tasks that is still `running`, in one transaction. */
    const resumed = (ids: ReadonlyArray<TaskId>) => write("resumed", () => resumedBatch(ids))

    /** The most recently completed task among `types` (by completedAt). */
    const lastCompleted = (types: ReadonlyArray<string>) =>
      step(
        "lastCompleted",
        () => Option.map(Option.fromUndefinedOr(lastCompletedOf(types.length).get(...types)), fromRow)
      )

    /** Delete the task (and, by trigger, its past runs); the task it was, if there was one. */
    const remove = (id: string) =>
      write("remove", () => Option.map(Option.fromUndefinedOr(statements.remove.all(id)[0]), fromRow))

    /**
     * Delete up to `batch` tasks (and their runs) that ended before `before`, never one still running nor one of
     * `keep`. Answers how many went; the caller repeats while batches come back full.
     */
    const prune = (before: DateTime.Utc, keep: ReadonlyArray<string>, batch: number) =>
      write("prune", () => {
        const cutoff = DateTime.formatIso(before)
        return pruneOf(keep.length).all(cutoff, cutoff, ...keep, batch).length
      })

    /**
     * Succeeds when the database answers a query on the task table and the file's latest check found it to be the
     * file this process opened, intact. A full or read-only volume is not a failure here: it refuses writes, but a
     * restart would not free the volume.
     */
    const ping = step("ping", () => {
      statements.ping.get()
      if (fileProblem !== undefined && (fileProblem.reason === "replaced" || fileProblem.reason === "corrupt")) {
        throw fileProblem
      }
    })

    /**
     * The grace before the first prune of tasks no retention has pruned yet (migration 0008), when there is one to
     * wait for: where the tasks came from, and its end, the one stored or else `proposed`, stored now, so that a
     * restart neither restarts nor skips it.
     */
    const grace = (proposed: DateTime.Utc) =>
      write("grace", () =>
        Option.map(
          Option.fromUndefinedOr(statements.grace.all(DateTime.formatIso(proposed))[0]),
          (row) => ({ history: row.history, endsAt: DateTime.makeUnsafe(row.ends_at) })
        ))
    /** The grace is over: later starts prune without waiting. */
    const endGrace = write("endGrace", () => void statements.endGrace.run())
    /** How many tasks `prune` would delete with these arguments, all batches together. */
    const countPrunable = (before: DateTime.Utc, keep: ReadonlyArray<string>) =>
      step("countPrunable", () => {
        const cutoff = DateTime.formatIso(before)
        return countPrunableOf(keep.length).get(cutoff, cutoff, ...keep)!.n
      })

    return {
      save,
      decideAll,
      get,
      getJson,
      list,
      listJson,
      runs,
      listRunning,
      resumed,
      complete,
      completeAll,
      lastCompleted,
      remove,
      prune,
      ping,
      grace,
      endGrace,
      countPrunable
    } as const
  })
}) {
  /** The Store over the Sqlite connection, counting refused writes in the sidecar's Metrics. */
  static readonly layer = Layer.effect(this, this.make)
}
