import { Effect } from "effect"
import { SqlClient } from "effect/sql"

// One row per run of a task, kept by triggers on task_results: a run is opened when a row is inserted or its `run`
// changes, closed when its status changes within the same run, and forgotten with the task. Each write to
// task_results thus stays one statement, atomic with its history, with no transaction for the Store to manage.
// Tasks that exist already get their current run: earlier ones were overwritten before this table existed.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS task_runs (
    task_id TEXT NOT NULL,
    run INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    result TEXT,
    started_at TEXT NOT NULL,
    completed_at TEXT,
    started_by TEXT NOT NULL,
    resumes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, run)
  ) WITHOUT ROWID`
  yield* sql`INSERT OR IGNORE INTO task_runs (task_id, run, status, error, result, started_at, completed_at, started_by)
    SELECT id, run, status, error, result, submitted_at, completed_at, CASE WHEN run > 1 THEN 'resubmit' ELSE 'submit' END
    FROM task_results`
  yield* sql`CREATE TRIGGER IF NOT EXISTS task_runs_open AFTER INSERT ON task_results BEGIN
    INSERT OR REPLACE INTO task_runs (task_id, run, status, error, result, started_at, completed_at, started_by)
    VALUES (NEW.id, NEW.run, NEW.status, NEW.error, NEW.result, NEW.submitted_at, NEW.completed_at,
      CASE WHEN NEW.run > 1 THEN 'resubmit' ELSE 'submit' END);
  END`
  yield* sql`CREATE TRIGGER IF NOT EXISTS task_runs_reopen AFTER UPDATE OF run ON task_results
    WHEN NEW.run <> OLD.run BEGIN
    INSERT OR REPLACE INTO task_runs (task_id, run, status, error, result, started_at, completed_at, started_by)
    VALUES (NEW.id, NEW.run, NEW.status, NEW.error, NEW.result, NEW.submitted_at, NEW.completed_at,
      CASE WHEN NEW.run > 1 THEN 'resubmit' ELSE 'submit' END);
  END`
  yield* sql`CREATE TRIGGER IF NOT EXISTS task_runs_close AFTER UPDATE OF status, error, result, completed_at
    ON task_results WHEN NEW.run = OLD.run BEGIN
    UPDATE task_runs SET status = NEW.status, error = NEW.error, result = NEW.result, completed_at = NEW.completed_at
    WHERE task_id = NEW.id AND run = NEW.run;
  END`
  yield* sql`CREATE TRIGGER IF NOT EXISTS task_runs_forget AFTER DELETE ON task_results BEGIN
    DELETE FROM task_runs WHERE task_id = OLD.id;
  END`
})
