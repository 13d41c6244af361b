import { DateTime, Schema } from "effect"
import { Task, TaskRun } from "../Domain.js"

/** "850ms", "4.2s", "3m04s", "2h05m" */
export const duration = (ms: number): string => {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  const s = Math.floor(ms / 1000)
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
}

/** RFC 3339 UTC to the second: "2026-11-27T20:26:05Z" */
export const time = (t: DateTime.Utc): string => DateTime.formatIso(t).replace(/\.\d+Z$/, "Z")

/** How long a task ran, or has run until `now`. */
export const elapsed = (task: Task, now = Date.now()): number =>
  (task.completedAt === undefined ? now : DateTime.toEpochMillis(task.completedAt)) -
  DateTime.toEpochMillis(task.submittedAt)

/** Columns padded to their widest cell; the last column is not padded. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ").trimEnd()
  return [line(header), ...rows.map(line)].join("\n")
}

/** Two columns, names on the left. */
export const fields = (pairs: ReadonlyArray<readonly [string, string]>): string => {
  const width = Math.max(...pairs.map(([k]) => k.length))
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")
}

const compact = (value: unknown) => JSON.stringify(value)

/** Every field of one task, one per line. */
export const taskFields = (task: Task): string =>
  fields([
    ["id", task.id],
    ["type", task.type],
    ["status", task.status],
    ["run", String(task.run)],
    ["submitted", time(task.submittedAt)],
    ...(task.completedAt === undefined
      ? [["running for", duration(elapsed(task))] as const]
      : [["ended", `${time(task.completedAt)} (took ${duration(elapsed(task))})`] as const]),
    ...(task.params === undefined ? [] : [["params", compact(task.params)] as const]),
    ...(task.result === undefined ? [] : [["result", compact(task.result)] as const]),
    ...(task.error === undefined ? [] : [["error", task.error] as const])
  ])

export const taskTable = (tasks: ReadonlyArray<Task>): string =>
  tasks.length === 0 ? "no tasks" : table(
    ["ID", "TYPE", "STATUS", "RUN", "SUBMITTED", "TOOK"],
    tasks.map((t) => [
      t.id,
      t.type,
      t.status,
      String(t.run),
      time(t.submittedAt),
      t.completedAt === undefined ? "-" : duration(elapsed(t))
    ])
  )

export const runTable = (runs: ReadonlyArray<TaskRun>): string =>
  table(
    ["RUN", "STATUS", "STARTED BY", "RESUMES", "STARTED", "TOOK", "ERROR"],
    runs.map((r) => [
      String(r.run),
      r.status,
      r.startedBy,
      String(r.resumes),
      time(r.startedAt),
      r.completedAt === undefined
        ? "-"
        : duration(DateTime.toEpochMillis(r.completedAt) - DateTime.toEpochMillis(r.startedAt)),
      r.error ?? ""
    ])
  )

const encodeRuns = Schema.encodeSync(Schema.Array(TaskRun))
/** Runs as the HTTP API sends them, for --json. */
export const runsJson = (runs: ReadonlyArray<TaskRun>): unknown => encodeRuns(runs)

/** The line a finished wait ends with, plus the result or the error. */
export const summary = (task: Task): string =>
  [
    `${task.id} ${task.status} after ${duration(elapsed(task))} (${task.type}, run ${task.run})`,
    ...(task.result === undefined ? [] : [`  result  ${compact(task.result)}`]),
    ...(task.error === undefined ? [] : [`  error   ${task.error}`])
  ].join("\n")

/** One line while waiting: "running 4.2s (run-command, run 1)". */
export const progress = (task: Task, now = Date.now()): string =>
  `${task.id} ${task.status} ${duration(elapsed(task, now))} (${task.type}, run ${task.run})`

const encodeTasks = Schema.encodeSync(Schema.Array(Task))

/** Tasks as the HTTP API sends them (TaskResult JSON), for --json. */
export const taskJson = (task: Task): unknown => encodeTasks([task])[0]
export const tasksJson = (tasks: ReadonlyArray<Task>): unknown => encodeTasks(tasks)

export const json = (value: unknown): string => JSON.stringify(value, null, 2)

/** What `probe` saw; `notReady` and `notLive` hold a 503's error. */
export interface ProbeView {
  readonly url: string
  readonly notReady: string | undefined
  readonly notLive: string | undefined
  readonly status: string
}

export const probeFields = (view: ProbeView): string =>
  fields([
    ["url", view.url],
    ["healthz", view.notReady === undefined ? "200 ready" : `503 ${view.notReady}`],
    ["livez", view.notLive === undefined ? "200 live" : `503 ${view.notLive}`],
    ["status", view.status]
  ])

export const probeJson = (view: ProbeView) => ({
  url: view.url,
  ready: view.notReady === undefined,
  live: view.notLive === undefined,
  status: view.status,
  ...(view.notLive === undefined ? {} : { error: view.notLive })
})
