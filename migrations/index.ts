import m0001 from "./0001_create_task_results.js"
import m0002 from "./0002_add_run_column.js"
import m0003 from "./0003_add_result_column.js"
import m0004 from "./0004_adopt_go_sidecar.js"
import m0005 from "./0005_create_task_runs.js"
import m0006 from "./0006_index_task_filters.js"
import m0007 from "./0007_keep_past_runs_only.js"
import m0008 from "./0008_create_retention_grace.js"
import m0009 from "./0009_fewer_index_writes_per_task.js"
import m0010 from "./0010_lists_in_index_order.js"

/**
 * Every migration, keyed `<id>_<name>` as its file is named, imported statically so that the bundled server carries
 * them (test/Migrations.test.ts checks that this lists every file of the folder). A new migration is a new file here.
 */
export const migrations = {
  "1_create_task_results": m0001,
  "2_add_run_column": m0002,
  "3_add_result_column": m0003,
  "4_adopt_go_sidecar": m0004,
  "5_create_task_runs": m0005,
  "6_index_task_filters": m0006,
  "7_keep_past_runs_only": m0007,
  "8_create_retention_grace": m0008,
  "9_fewer_index_writes_per_task": m0009,
  "10_lists_in_index_order": m0010
}
