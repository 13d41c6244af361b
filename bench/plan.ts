// The query plan of the list endpoint's query, taken from the sidecar's own Store (not a copy of its SQL): the
// statement Store.list runs for the 100 newest tasks is captured as it executes, then explained on the same database.
import { Effect, Layer, References } from "effect"
import { Metrics } from "../src/Metrics.js"
import { type Connection, Sqlite } from "../src/store/Connection.js"
import { sqlLayer } from "../src/store/Database.js"
import { Store } from "../src/store/Store.js"

export interface QueryPlan {
  readonly sql: string
  readonly plan: ReadonlyArray<string>
  /** Read in index order and stopped at the limit: no full scan and no sort of the whole table. */
  readonly indexServed: boolean
}

/** The connection, with every statement the Store prepares recording its text and parameters when it is run. */
const recording = (connection: Connection, ran: Array<readonly [string, ReadonlyArray<unknown>]>): Connection => ({
  ...connection,
  db: new Proxy(connection.db, {
    get: (target, key) => {
      const value = Reflect.get(target, key, target)
      if (key !== "prepare") return typeof value === "function" ? value.bind(target) : value
      return (text: string) => {
        const statement = target.prepare(text)
        return new Proxy(statement, {
          get: (s, k) => {
            const method = Reflect.get(s, k, s)
            if (typeof method !== "function") return method
            return k === "all" || k === "get" || k === "run"
              ? (...params: Array<unknown>) => {
                ran.push([text, params])
                return method.apply(s, params)
              }
              : method.bind(s)
          }
        })
      }
    }
  })
})

export const listQueryPlan = (file: string): Promise<QueryPlan> =>
  Effect.gen(function*() {
    const db = yield* Sqlite
    const ran: Array<readonly [string, ReadonlyArray<unknown>]> = []
    const store = yield* Effect.provide(
      Effect.service(Store),
      Store.layer.pipe(Layer.provide([Layer.succeed(Sqlite, recording(db, ran)), Metrics.layer]))
    )
    ran.length = 0
    // Store.list has taken the limit, and later a filter with a limit: either form, so any snapshot can be explained.
    const list = store.list as unknown as (arg: number | { readonly limit: number }) => Effect.Effect<unknown, unknown>
    yield* list({ limit: 100 }).pipe(Effect.catch(() => list(100)), Effect.orDie)
    const captured = ran.find(([text]) => /^\s*SELECT/i.test(text))
    if (captured === undefined) return yield* Effect.die(new Error("Store.list ran no statement"))
    const [text, params] = captured
    const plan =
      (db.db.prepare(`EXPLAIN QUERY PLAN ${text}`).all(...(params as Array<string | number | null>)) as Array<
        { detail: string }
      >).map((r) => r.detail)
    const indexServed = plan.some((d) => /^SCAN task_results USING (COVERING )?INDEX/.test(d)) &&
      !plan.some((d) => d === "USE TEMP B-TREE FOR ORDER BY" || /^SCAN task_results$/.test(d))
    return { sql: text.replace(/\s+/g, " ").trim(), plan, indexServed }
  }).pipe(
    Effect.scoped,
    Effect.provide(sqlLayer(file)),
    Effect.provideService(References.MinimumLogLevel, "None"),
    Effect.runPromise
  )
