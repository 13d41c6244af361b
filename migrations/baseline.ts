// Written by scripts/baseline.ts (npm run baseline) from the migrations 1 to 10; test/store/Migrations.test.ts
// checks that it matches them.

/** The schema the migrations through `through` leave in an empty database, in the order SQLite created it. */
export const baseline = {
  through: 10,
  userVersion: 0,
  statements: [
    "CREATE TABLE \"effect_sql_migrations\" (\n  migration_id integer PRIMARY KEY NOT NULL,\n  created_at datetime NOT NULL DEFAULT current_timestamp,\n  name VARCHAR(255) NOT NULL\n)",
    "CREATE TABLE task_results (\n    id TEXT PRIMARY KEY,\n    type TEXT,\n    status TEXT,\n    params TEXT,\n    error TEXT NOT NULL DEFAULT '',\n    submitted_at TEXT,\n    completed_at TEXT\n  , run INTEGER NOT NULL DEFAULT 1, result TEXT, resumes INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE \"task_past_runs\" (\n    task_id TEXT NOT NULL,\n    run INTEGER NOT NULL,\n    status TEXT NOT NULL,\n    error TEXT NOT NULL DEFAULT '',\n    result TEXT,\n    started_at TEXT NOT NULL,\n    completed_at TEXT,\n    started_by TEXT NOT NULL,\n    resumes INTEGER NOT NULL DEFAULT 0,\n    PRIMARY KEY (task_id, run)\n  ) WITHOUT ROWID",
    "CREATE VIEW task_runs AS\n    SELECT task_id, run, status, error, result, started_at, completed_at, started_by, resumes FROM task_past_runs\n    UNION ALL\n    SELECT id, run, status, error, result, submitted_at, completed_at,\n      CASE WHEN run > 1 THEN 'resubmit' ELSE 'submit' END, resumes FROM task_results",
    "CREATE TRIGGER task_runs_archive AFTER UPDATE OF run ON task_results WHEN NEW.run <> OLD.run BEGIN\n    INSERT OR REPLACE INTO task_past_runs\n      (task_id, run, status, error, result, started_at, completed_at, started_by, resumes)\n    VALUES (OLD.id, OLD.run, OLD.status, OLD.error, OLD.result, OLD.submitted_at, OLD.completed_at,\n      CASE WHEN OLD.run > 1 THEN 'resubmit' ELSE 'submit' END, OLD.resumes);\n  END",
    "CREATE TRIGGER task_runs_forget AFTER DELETE ON task_results BEGIN\n    DELETE FROM task_past_runs WHERE task_id = OLD.id;\n  END",
    "CREATE TABLE retention_grace (\n    id INTEGER PRIMARY KEY CHECK (id = 1),\n    history TEXT NOT NULL,\n    ends_at TEXT\n  )",
    "CREATE INDEX idx_task_results_submitted_at ON task_results (submitted_at)",
    "CREATE INDEX idx_task_results_type_submitted_at ON task_results (type, submitted_at)",
    "CREATE INDEX idx_task_results_unfinished_submitted_at ON task_results (status, submitted_at)\n    WHERE status <> 'completed'"
  ]
}
