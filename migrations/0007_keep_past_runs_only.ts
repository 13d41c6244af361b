import { Effect } from "effect"
import { SqlClient } from "effect/sql"

// History at less cost per task. 0005 kept every run in task_runs, the current one included, through triggers that
// wrote task_runs on every insert and every completion: a second B-tree write, and a trigger program, on each of
// them (twice the SQLite time of a submit and of a completion, measured). The current run is the task_results row
// itself; only a run that a re-execution replaces needs a row of its own. So task_past_runs keeps the runs before
// the current one, a trigger moves a run there when `run` changes, the current run's resume count moves to
// task_results, and task_runs becomes a view of both with the same columns as before.
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE task_results ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0`
  yield* sql`UPDATE task_results SET resumes = r.resumes FROM task_runs r
    WHERE r.task_id = task_results.id AND r.run = task_results.run AND r.resumes <> 0`
  for (const trigger of ["task_runs_open", "task_runs_reopen", "task_runs_close", "task_runs_forget"]) {
    yield* sql`DROP TRIGGER IF EXISTS ${sql(trigger)}`
  }
  yield* sql`ALTER TABLE task_runs RENAME TO task_past_runs`
  yield* sql`DELETE FROM task_past_runs
    WHERE EXISTS (SELECT 1 FROM task_results t WHERE t.id = task_past_runs.task_id AND t.run = task_past_runs.run)`
  yield* sql`CREATE VIEW task_runs AS
    SELECT task_id, run, status, error, result, started_at, completed_at, started_by, resumes FROM task_past_runs
    UNION ALL
    SELECT id, run, status, error, result, submitted_at, completed_at,
      CASE WHEN run > 1 THEN 'resubmit' ELSE 'submit' END, resumes FROM task_results`
  yield* sql`CREATE TRIGGER task_runs_archive AFTER UPDATE OF run ON task_results WHEN NEW.run <> OLD.run BEGIN
    INSERT OR REPLACE INTO task_past_runs
      (task_id, run, status, error, result, started_at, completed_at, started_by, resumes)
    VALUES (OLD.id, OLD.run, OLD.status, OLD.error, OLD.result, OLD.submitted_at, OLD.completed_at,
      CASE WHEN OLD.run > 1 THEN 'resubmit' ELSE 'submit' END, OLD.resumes);
  END`
  yield* sql`CREATE TRIGGER task_runs_forget AFTER DELETE ON task_results BEGIN
    DELETE FROM task_past_runs WHERE task_id = OLD.id;
  END`
})
