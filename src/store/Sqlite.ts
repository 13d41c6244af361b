import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient, type SqlConnection, Statement } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { SqliteClient } from "@effect/sql-sqlite-node"
import Database from "better-sqlite3"
import { Context, Effect, Layer, Scope, Stream } from "effect"

/**
 * The sidecar's one SQLite connection, for the Store's statements: prepared once and run synchronously, they cost what
 * SQLite costs. @effect/sql-sqlite-node's client prepares and runs every statement through an Effect cache and a
 * semaphore, and measured 53 µs a lookup by id against 12 µs for the same prepared statement called directly; it
 * gives no access to its connection, so the sidecar opens the connection here and serves @effect/sql from it too.
 */
export class Sqlite extends Context.Tag("sidecar/Sqlite")<Sqlite, Database.Database>() {}

/** Statements @effect/sql sends (the migrator's, tagged templates), prepared once per text; few distinct ones. */
const maxPrepared = 200

const failed = (cause: unknown) => new SqlError({ cause, message: "Failed to execute statement" })

const make = (filename: string) =>
  Effect.gen(function*() {
    const db = yield* Effect.acquireRelease(
      Effect.sync(() => new Database(filename)),
      (db) => Effect.sync(() => db.close())
    )
    db.pragma("journal_mode = WAL")

    const prepared = new Map<string, Database.Statement>()
    const prepare = (sql: string) => {
      let statement = prepared.get(sql)
      if (statement === undefined) {
        if (prepared.size >= maxPrepared) prepared.clear()
        statement = db.prepare(sql)
        prepared.set(sql, statement)
      }
      return statement
    }
    const run = (statement: () => Database.Statement, params: ReadonlyArray<unknown>, raw: boolean) =>
      Effect.try({
        try: (): ReadonlyArray<any> | Database.RunResult => {
          const s = statement()
          if (s.reader) return s.all(...params)
          const result = s.run(...params)
          return raw ? result : []
        },
        catch: failed
      })

    const connection: SqlConnection.Connection = {
      execute: (sql, params, transformRows) => {
        const rows = run(() => prepare(sql), params, false) as Effect.Effect<ReadonlyArray<any>, SqlError>
        return transformRows === undefined ? rows : Effect.map(rows, transformRows)
      },
      executeRaw: (sql, params) => run(() => prepare(sql), params, true),
      executeValues: (sql, params) =>
        Effect.try({
          try: () => {
            const s = prepare(sql)
            if (!s.reader) {
              s.run(...params)
              return []
            }
            try {
              return s.raw(true).all(...params) as Array<Array<unknown>>
            } finally {
              s.raw(false)
            }
          },
          catch: failed
        }),
      executeUnprepared: (sql, params, transformRows) => {
        const rows = run(() => db.prepare(sql), params, false) as Effect.Effect<ReadonlyArray<any>, SqlError>
        return transformRows === undefined ? rows : Effect.map(rows, transformRows)
      },
      executeStream: () => Stream.dieMessage("executeStream is not supported")
    }

    // @effect/sql's own discipline for its callers: one statement or transaction at a time on the connection.
    const semaphore = yield* Effect.makeSemaphore(1)
    const transactionAcquirer = Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        restore(semaphore.take(1)),
        Effect.flatMap(Effect.scope, (scope) => Scope.addFinalizer(scope, semaphore.release(1)))
      ).pipe(Effect.as(connection))
    )
    const client = yield* SqlClient.make({
      acquirer: semaphore.withPermits(1)(Effect.succeed(connection)),
      compiler: Statement.makeCompilerSqlite(),
      transactionAcquirer,
      spanAttributes: [["db.system.name", "sqlite"]]
    })
    const sqlite = Object.assign(client, {
      [SqliteClient.TypeId]: SqliteClient.TypeId,
      config: { filename },
      export: Effect.try({ try: () => db.serialize(), catch: failed }),
      backup: (destination: string) => Effect.tryPromise({ try: () => db.backup(destination), catch: failed }),
      loadExtension: (path: string) => Effect.try({ try: () => db.loadExtension(path), catch: failed })
    }) as unknown as SqliteClient.SqliteClient
    return Context.make(Sqlite, db).pipe(
      Context.add(SqliteClient.SqliteClient, sqlite),
      Context.add(SqlClient.SqlClient, sqlite)
    )
  })

/**
 * SQLite on `filename` (":memory:" allowed, WAL otherwise), as the Store's connection and as @effect/sql's
 * `SqlClient` and `SqliteClient` (for the migrator, and for anyone's tagged-template statements) over that one
 * connection. Closed with the layer.
 */
export const sqliteLayer = (filename: string) =>
  Layer.scopedContext(make(filename)).pipe(Layer.provide(Reactivity.layer))
