// Task ids for tests: valid UUIDs, numbered, so that a test can name many and an answer shows which one it is.
import type { TaskId } from "../../src/Domain.js"

/** The `n`th test id, `00000000-0000-4000-<group>-<n, 12 digits>`; another group keeps a test's ids apart. */
export const uuid = (n: number, group = "8000") => `00000000-0000-4000-${group}-${String(n).padStart(12, "0")}`

/** uuid(n) as the TaskId a Task or a Store row takes. */
export const taskId = (n: number) => uuid(n) as TaskId
