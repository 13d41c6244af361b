// Writes migrations/baseline.ts: the schema that every migration, run by the migrator on an empty database, leaves
// behind, for a new database to be created in one step (src/store/Database.ts). Run after adding a migration:
//   npm run baseline
import { SqliteMigrator } from "@effect/sql-sqlite-node"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { writeFileSync } from "node:fs"
import { migrations } from "../migrations/index.js"
import { sqliteLayer } from "../src/store/Connection.js"

// what the migrations leave in an empty database: sqlite_master's statements in creation order, and user_version
const migrated = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const applied = yield* SqliteMigrator.run({ loader: SqliteMigrator.fromRecord(migrations) })
  const statements = yield* sql<{ sql: string }>`SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid`
  const [version] = yield* sql<{ user_version: number }>`PRAGMA user_version`
  return {
    through: Math.max(...applied.map(([id]) => id)),
    userVersion: version!.user_version,
    statements: statements.map((row) => row.sql)
  }
}).pipe(Effect.provide(sqliteLayer(":memory:")))

const schema = await Effect.runPromise(migrated)
writeFileSync(
  new URL("../migrations/baseline.ts", import.meta.url),
  `// Written by scripts/baseline.ts (npm run baseline) from the migrations 1 to ${schema.through}; ` +
    `test/store/Migrations.test.ts\n// checks that it matches them.\n\n` +
    `/** The schema the migrations through \`through\` leave in an empty database, in the order SQLite created it. */\n` +
    `export const baseline = {\n  through: ${schema.through},\n  userVersion: ${schema.userVersion},\n` +
    `  statements: [\n${schema.statements.map((s) => `    ${JSON.stringify(s)}`).join(",\n")}\n  ]\n}\n`
)
