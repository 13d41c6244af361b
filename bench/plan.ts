// The query plan of the list endpoint's query, taken from the sidecar's own Store (not a copy of its SQL): the
// statement Store.list runs for the 100 newest tasks is captured as it executes, then explained on the same database.
import { SqlClient, Statement } from "@effect/sql"
import { Effect, Layer, Logger, LogLevel } from "effect"
import { sqlLayer } from "../src/Sql.js"
import { Store } from "../src/Store.js"

export interface QueryPlan {
  readonly sql: string
  readonly plan: ReadonlyArray<string>
  /** Read in index order and stopped at the limit: no full scan and no sort of the whole table. */
  readonly indexServed: boolean
}

export const listQueryPlan = (file: string): Promise<QueryPlan> =>
  Effect.gen(function*() {
    const store = yield* Store
    const sql = yield* SqlClient.SqlClient
    let captured: readonly [string, ReadonlyArray<unknown>] | undefined
    const capture = Statement.withTransformer((statement) => {
      captured = statement.compile()
      return Effect.succeed(statement)
    })
    // Store.list has taken the limit, and later a filter with a limit: either form, so any snapshot can be explained.
    const list = store.list as unknown as (arg: number | { readonly limit: number }) => Effect.Effect<unknown, unknown>
    yield* list({ limit: 100 }).pipe(capture, Effect.orElse(() => list(100).pipe(capture)), Effect.orDie)
    if (captured === undefined) return yield* Effect.dieMessage("Store.list ran no statement")
    const [text, params] = captured
    const rows = yield* sql.unsafe<{ detail: string }>(`EXPLAIN QUERY PLAN ${text}`, params)
    const plan = rows.map((r) => r.detail)
    const indexServed = plan.some((d) => /^SCAN task_results USING (COVERING )?INDEX/.test(d)) &&
      !plan.some((d) => d === "USE TEMP B-TREE FOR ORDER BY" || /^SCAN task_results$/.test(d))
    return { sql: text.replace(/\s+/g, " ").trim(), plan, indexServed }
  }).pipe(
    Effect.provide(Store.Default.pipe(Layer.provideMerge(sqlLayer(file)))),
    Effect.provide(Logger.minimumLogLevel(LogLevel.None)),
    Effect.runPromise
  )
