import { SqliteClient } from "@effect/sql-sqlite-node"
import { Clock, DateTime, Duration, Effect, Option, Ref, Schedule } from "effect"
import { fileChecks } from "./DatabaseFile.js"
import type { RunStart, TaskFilter, TaskId, TaskStatus } from "./Domain.js"
import { Task, TaskRun } from "./Domain.js"
import { StoreError } from "./Errors.js"

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

/** A row of `task_runs`. */
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

/** How a run ended, as written by the conditional completion. */
export interface Completion {
  readonly status: Exclude<TaskStatus, "running">
  readonly error?: string | undefined
  readonly result?: unknown
  readonly completedAt: DateTime.Utc
}

const columns = "id, type, status, run, params, error, result, submitted_at, completed_at"

// JSON NULL, {} and "" are all "nothing" on the wire: the Go original omitted them.
const encodeJson = (value: unknown): string | null =>
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

const toRow = (task: Task): TaskRow => ({
  id: task.id,
  type: task.type,
  status: task.status,
  run: task.run,
  params: encodeJson(task.params),
  error: task.error ?? "",
  result: encodeJson(task.result),
  submitted_at: DateTime.formatIso(task.submittedAt),
  completed_at: task.completedAt === undefined ? null : DateTime.formatIso(task.completedAt)
})

/** A task as `TaskResult` JSON, the encoded side of `Task`. */
export type TaskJson = typeof Task.Encoded

/**
 * The row as TaskResult JSON, without going through `Task`: the stored timestamps are already RFC 3339 UTC in the
 * form `Task` encodes (rows adopted from the Go sidecar were rewritten so by migration 0004), and parsing them only to
 * format them again was most of the cost of a list.
 */
const toJson = (row: TaskRow): TaskJson => {
  const params = decodeJson(row.params)
  const result = decodeJson(row.result)
  return {
    id: row.id,
    type: row.type,
    status: row.status as TaskStatus,
    run: row.run,
    ...(params === undefined ? {} : { params }),
    ...(row.error === "" || row.error === null ? {} : { error: row.error }),
    ...(result === undefined ? {} : { result }),
    submittedAt: row.submitted_at,
    ...(row.completed_at === null || row.completed_at === "" ? {} : { completedAt: row.completed_at })
  }
}

const fromRow = (row: TaskRow): Task => {
  const { completedAt, submittedAt, ...rest } = toJson(row)
  return new Task({
    ...rest,
    id: rest.id as TaskId,
    submittedAt: DateTime.unsafeMake(submittedAt),
    ...(completedAt === undefined ? {} : { completedAt: DateTime.unsafeMake(completedAt) })
  }, true)
}

const fromRunRow = (row: RunRow): TaskRun => {
  const result = decodeJson(row.result)
  return new TaskRun({
    run: row.run,
    status: row.status as TaskStatus,
    ...(row.error === "" ? {} : { error: row.error }),
    ...(result === undefined ? {} : { result }),
    startedAt: DateTime.unsafeMake(row.started_at),
    ...(row.completed_at === null || row.completed_at === "" ? {} : { completedAt: DateTime.unsafeMake(row.completed_at) }),
    startedBy: row.started_by as RunStart,
    resumes: row.resumes
  }, true)
}

/**
 * How long a statement waits for another connection's write lock before it fails. SQLite's own busy_timeout would
 * wait by sleeping inside the (synchronous) driver call, freezing the event loop and with it every probe; so the
 * connection runs with busy_timeout 0 and the wait happens here, asynchronously, between retries.
 */
export const busyTimeout = Duration.seconds(5)

const isBusy = (e: unknown) => {
  const code = ((e as { cause?: unknown })?.cause as { code?: unknown } | undefined)?.code
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))
}
const whileBusy = Schedule.exponential("2 millis").pipe(
  Schedule.union(Schedule.spaced("50 millis")),
  Schedule.upTo(busyTimeout)
)

// The statements of the request path are constant text run with `sql.unsafe`: compiling a tagged template costs more
// than running the statement (about 60 µs against 40 µs a call on the machine the benchmarks ran on).
const saveSql = `INSERT INTO task_results (${columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (id) DO UPDATE SET type = excluded.type, status = excluded.status, run = excluded.run,
    params = excluded.params, error = excluded.error, result = excluded.result,
    submitted_at = excluded.submitted_at, completed_at = excluded.completed_at`
const getSql = `SELECT ${columns} FROM task_results WHERE id = ?`
const completeSql = `UPDATE task_results SET status = ?, error = ?, result = ?, completed_at = ?
  WHERE id = ? AND run = ? AND status = 'running' RETURNING id`
const removeSql = `DELETE FROM task_results WHERE id = ? RETURNING ${columns}`
const runsSql = `SELECT run, status, error, result, started_at, completed_at, started_by, resumes FROM task_runs
  WHERE task_id = ? ORDER BY run`
const listSql = (filter: TaskFilter) => {
  const where = [
    ...(filter.status === undefined ? [] : ["status = ?"]),
    ...(filter.type === undefined ? [] : ["type = ?"])
  ]
  return `SELECT ${columns} FROM task_results ${where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`}
    ORDER BY submitted_at DESC, rowid DESC LIMIT ?`
}

/** How often the database file and volume are checked in the background, between liveness probes. */
const fileCheckInterval = Duration.seconds(2)

/** The only module that speaks SQL: `task_results` in, `Task` out. */
export class Store extends Effect.Service<Store>()("sidecar/Store", {
  scoped: Effect.gen(function*() {
    const sql = yield* SqliteClient.SqliteClient
    const file = fileChecks(sql.config.filename)
    // The last verdict on the file: writes refuse while it is bad, rather than land somewhere no restart will find.
    const fileProblem = yield* Ref.make(Option.none<unknown>())
    const checkFile = file.healthy.pipe(
      Effect.tapBoth({
        onFailure: (e) => Ref.set(fileProblem, Option.some(e)),
        onSuccess: () => Ref.set(fileProblem, Option.none())
      })
    )
    // On the real clock whatever clock the program runs on: the file's health is a matter of wall time, and a test
    // that moves its clock by days must not run thousands of checks.
    yield* checkFile.pipe(
      Effect.ignore,
      Effect.repeat(Schedule.spaced(fileCheckInterval)),
      Effect.withClock(Clock.make()),
      Effect.forkScoped
    )
    const writable = Effect.zipRight(
      file.sameFile,
      Effect.flatMap(Ref.get(fileProblem), Option.match({ onNone: () => Effect.void, onSome: Effect.fail }))
    )
    /**
     * Run one storage step: wait out another writer's lock (up to busyTimeout), name the step in errors. The retry
     * is set up only once a statement found the database busy: most never do.
     */
    const step = (op: string) => <A, E>(effect: Effect.Effect<A, E>) =>
      effect.pipe(
        Effect.catchIf(isBusy, () => Effect.retry(effect, { schedule: whileBusy, while: isBusy })),
        StoreError.wrap(op)
      )

    /**
     * Insert the task, or replace every column of the row with its id. Triggers (migration 0005) open the history
     * row of a new run in the same statement.
     */
    const save = (task: Task) => {
      const row = toRow(task)
      return sql.unsafe(saveSql, [
        row.id,
        row.type,
        row.status,
        row.run,
        row.params,
        row.error,
        row.result,
        row.submitted_at,
        row.completed_at
      ]).pipe(
        // an accepted task must land in the file the next start will open, not in one unlinked underneath us
        (write) => Effect.zipRight(writable, write),
        Effect.asVoid,
        step("save")
      )
    }

    const getRow = (id: string) =>
      sql.unsafe<TaskRow>(getSql, [id]).pipe(Effect.map((rows) => Option.fromNullable(rows[0])), step("get"))
    /** The task with exactly this id. */
    const get = (id: string) => Effect.map(getRow(id), Option.map(fromRow))
    /** The task with exactly this id, as TaskResult JSON. */
    const getJson = (id: string) => Effect.map(getRow(id), Option.map(toJson))

    const listRows = (filter: TaskFilter) =>
      sql.unsafe<TaskRow>(listSql(filter), [
        ...(filter.status === undefined ? [] : [filter.status]),
        ...(filter.type === undefined ? [] : [filter.type]),
        filter.limit
      ]).pipe(step("list"))
    /** The most recently submitted tasks that pass `filter`, newest first. */
    const list = (filter: TaskFilter) => Effect.map(listRows(filter), (rows) => rows.map(fromRow))
    /** The same, as TaskResult JSON. */
    const listJson = (filter: TaskFilter) => Effect.map(listRows(filter), (rows) => rows.map(toJson))

    /** Every run of the task, oldest first. */
    const runs = (id: string) =>
      sql.unsafe<RunRow>(runsSql, [id]).pipe(
        Effect.map((rows) => rows.map(fromRunRow)),
        step("runs")
      )

    /** Count one more resumption by crash recovery of every run still `running`, in one statement. */
    const resumedRunning = sql`UPDATE task_runs SET resumes = resumes + 1
      WHERE (task_id, run) IN (SELECT id, run FROM task_results WHERE status = 'running')`.pipe(
      Effect.asVoid,
      step("resumedRunning")
    )

    /** Every task a previous process left `running`, oldest first. */
    const listRunning = sql<TaskRow>`SELECT ${sql.literal(columns)} FROM task_results
      WHERE status = 'running' ORDER BY submitted_at, rowid`.pipe(
      Effect.map((rows) => rows.map(fromRow)),
      step("listRunning")
    )

    /**
     * Record how run `run` of `id` ended, only if the row still belongs to that run and is still running:
     * a late completion of a superseded or deleted run never overwrites anything. True when written.
     */
    const complete = (id: TaskId, run: number, completion: Completion) =>
      sql.unsafe(completeSql, [
        completion.status,
        completion.error ?? "",
        encodeJson(completion.result),
        DateTime.formatIso(completion.completedAt),
        id,
        run
      ]).pipe(
        Effect.map((rows) => rows.length > 0),
        step("complete")
      )

    /** The most recently completed task among `types` (by completedAt). */
    const lastCompleted = (types: ReadonlyArray<string>) =>
      sql<TaskRow>`SELECT ${sql.literal(columns)} FROM task_results
        WHERE status = 'completed' AND ${sql.in("type", types)}
        ORDER BY completed_at DESC, rowid DESC LIMIT 1`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), fromRow)),
        step("lastCompleted")
      )

    /** Delete the task (and, by trigger, its runs); the task it was, if there was one. */
    const remove = (id: string) =>
      sql.unsafe<TaskRow>(removeSql, [id]).pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), fromRow)),
        step("remove")
      )

    /**
     * Delete up to `batch` tasks (and their runs) that ended before `before`, never one still running nor one of
     * `keep`. Answers how many went; the caller repeats while batches come back full.
     */
    const prune = (before: DateTime.Utc, keep: ReadonlyArray<string>, batch: number) =>
      sql<{ id: string }>`DELETE FROM task_results WHERE rowid IN (
          SELECT rowid FROM task_results
          WHERE status <> 'running' AND completed_at < ${DateTime.formatIso(before)}
            ${keep.length === 0 ? sql`` : sql`AND id NOT IN ${sql.in(keep)}`}
          LIMIT ${batch}
        ) RETURNING id`.pipe(Effect.map((gone) => gone.length), step("prune"))

    /** Succeeds when the database answers a query on the task table and its file and volume are sound. */
    const ping = sql`SELECT count(*) FROM (SELECT 1 FROM task_results LIMIT 1)`.pipe(
      Effect.zipRight(checkFile),
      step("ping")
    )

    return { save, get, getJson, list, listJson, runs, listRunning, resumedRunning, complete, lastCompleted, remove, prune, ping } as const
  })
}) {}
