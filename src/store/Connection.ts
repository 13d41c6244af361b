import { Context, Effect, Layer, Semaphore, Stream } from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient, type SqlConnection, SqlError, Statement } from "effect/sql"
import { DatabaseSync, type StatementSync } from "node:sqlite"

/** The sidecar's one SQLite connection. */
export interface Connection {
  readonly db: DatabaseSync
  readonly filename: string
  readonly memory: boolean
  /**
   * `run` inside BEGIN IMMEDIATE ... COMMIT, rolled back if it throws, a failed COMMIT included: nothing in it is
   * reported written unless committed.
   */
  readonly transaction: <A>(run: () => A) => A
  /** `run`'s reads on one snapshot, under one WAL read lock (BEGIN ... COMMIT); inside a transaction, that one's. */
  readonly reading: <A>(run: () => A) => A
}

/** The Connection, as a service; effect/sql's SqlClient runs on it too. */
export class Sqlite extends Context.Service<Sqlite, Connection>()("sidecar/Sqlite") {}

/** SQLite's primary result codes that the sidecar tells apart. */
export const ResultCode = {
  BUSY: 5,
  LOCKED: 6,
  READONLY: 8,
  IOERR: 10,
  CORRUPT: 11,
  FULL: 13,
  CANTOPEN: 14,
  CONSTRAINT: 19,
  NOTADB: 26
} as const

const codeNames = new Map<number, string>(Object.entries(ResultCode).map(([name, code]) => [code, `SQLITE_${name}`]))

const errcodeOf = (error: unknown): number | undefined => {
  const errcode = (error as { errcode?: unknown } | undefined)?.errcode
  return typeof errcode === "number" ? errcode : undefined
}

/** The primary result code (an extended code's low byte) of a SQLite error; undefined for any other error. */
export const primaryCode = (error: unknown): number | undefined => {
  const errcode = errcodeOf(error)
  return errcode === undefined ? undefined : errcode & 0xff
}

const sqliteCode = (error: unknown): string | undefined => {
  const errcode = errcodeOf(error)
  return errcode === undefined ? undefined : codeNames.get(errcode & 0xff) ?? `SQLITE_ERROR_${errcode}`
}

/** An error as a StoreError says it: SQLite's result code, then its words. */
export const describeError = (error: unknown): string => {
  const message = error instanceof Error ? error.message : String(error)
  const code = sqliteCode(error)
  return code === undefined ? message : `${code}: ${message}`
}

/** Whether `error` is SQLite's "another connection holds the lock" (BUSY or LOCKED). */
export const isBusy = (error: unknown) => {
  const code = primaryCode(error)
  return code === ResultCode.BUSY || code === ResultCode.LOCKED
}

export const open = (filename: string, options?: { readonly readOnly?: boolean }): DatabaseSync =>
  new DatabaseSync(filename, { readOnly: options?.readOnly ?? false })

const readingOn = (db: DatabaseSync) => {
  const begin = db.prepare("BEGIN")
  const end = db.prepare("COMMIT")
  return <A>(run: () => A): A => {
    if (db.isTransaction) return run()
    begin.run()
    try {
      return run()
    } finally {
      end.run()
    }
  }
}

const transactionOn = (db: DatabaseSync) => {
  const begin = db.prepare("BEGIN IMMEDIATE")
  const commit = db.prepare("COMMIT")
  const rollback = db.prepare("ROLLBACK")
  return <A>(run: () => A): A => {
    begin.run()
    try {
      const result = run()
      commit.run()
      return result
    } catch (e) {
      if (db.isTransaction) rollback.run()
      throw e
    }
  }
}

/** effect/sql's statements kept prepared, by text. */
const maxPrepared = 200

const failed = (cause: unknown) =>
  new SqlError.SqlError({ reason: SqlError.classifySqliteError(cause, { message: "Failed to execute statement" }) })

const make = (filename: string) =>
  Effect.gen(function*() {
    const db = yield* Effect.acquireRelease(
      Effect.sync(() => open(filename)),
      (db) => Effect.sync(() => db.close())
    )
    const memory = filename === ":memory:" || filename === ""
    if (!memory) db.exec("PRAGMA journal_mode = WAL")

    const prepared = new Map<string, StatementSync>()
    const prepare = (sql: string) => {
      let statement = prepared.get(sql)
      if (statement === undefined) {
        if (prepared.size >= maxPrepared) prepared.clear()
        statement = db.prepare(sql)
        prepared.set(sql, statement)
      }
      return statement
    }
    const bindable = (params: ReadonlyArray<unknown>) => params as Array<any>
    const rows = (s: StatementSync, params: ReadonlyArray<unknown>, arrays: boolean) => {
      s.setReturnArrays(arrays)
      return s.all(...bindable(params))
    }
    const run = (statement: () => StatementSync, params: ReadonlyArray<unknown>, raw: boolean) =>
      Effect.try({
        try: (): any => {
          const s = statement()
          if (s.columns().length > 0) return rows(s, params, false)
          const result = s.run(...bindable(params))
          return raw ? result : []
        },
        catch: failed
      })
    const values = (statement: () => StatementSync, params: ReadonlyArray<unknown>) =>
      Effect.try({
        try: () => {
          const s = statement()
          if (s.columns().length === 0) {
            s.run(...bindable(params))
            return []
          }
          return rows(s, params, true) as unknown as Array<Array<unknown>>
        },
        catch: failed
      })

    const connection: SqlConnection.Connection = {
      execute: (sql, params, transformRows) => {
        const result = run(() => prepare(sql), params, false)
        return transformRows === undefined ? result : Effect.map(result, transformRows)
      },
      executeRaw: (sql, params) => run(() => prepare(sql), params, true),
      executeValues: (sql, params) => values(() => prepare(sql), params),
      executeValuesUnprepared: (sql, params) => values(() => db.prepare(sql), params),
      executeUnprepared: (sql, params, transformRows) => {
        const result = run(() => db.prepare(sql), params, false)
        return transformRows === undefined ? result : Effect.map(result, transformRows)
      },
      executeStream: () => Stream.die(new Error("executeStream is not supported"))
    }

    // for effect/sql's callers: one statement or transaction at a time
    const { acquirer, borrower, isTransaction, onCommitFailure, transactionAcquirer } = SqlClient.makeSqliteAcquirers({
      connection: Effect.succeed(connection),
      semaphore: yield* Semaphore.make(1),
      isTransaction: () => db.isTransaction
    })
    const client = yield* SqlClient.make({
      driver: "sidecar-node-sqlite",
      acquirer,
      borrower,
      compiler: Statement.makeCompilerSqlite(),
      transactionAcquirer,
      onCommitFailure,
      isTransaction,
      beginTransaction: "BEGIN IMMEDIATE",
      spanAttributes: [["db.system.name", "sqlite"]]
    })
    const connectionOf: Connection = { db, filename, memory, transaction: transactionOn(db), reading: readingOn(db) }
    return Context.make(Sqlite, connectionOf).pipe(Context.add(SqlClient.SqlClient, client))
  })

/** SQLite on `filename` (":memory:" allowed, WAL otherwise), as Sqlite and as SqlClient. */
export const sqliteLayer = (filename: string) =>
  Layer.effectContext(make(filename)).pipe(Layer.provide(Reactivity.layer))
