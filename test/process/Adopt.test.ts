import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeGoFile, refusal } from "../fixtures/goSidecar.js"
import { runToExit } from "../support/sidecar.js"
import { filesBeside, openDatabase, sha256, tempDb } from "../support/sqlite.js"

describe("a Go sidecar database newer than version 5", () => {
  it.live("the sidecar process says so in one line on stderr and exits 1", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      makeGoFile(file, 5)
      const db = openDatabase(file)
      db.exec("PRAGMA user_version = 6")
      db.close()
      const hash = sha256(file)
      const { code, stderr } = yield* runToExit({ SIDECAR_DB: file })
      expect(code).toBe(1)
      expect(stderr).toBe(`sidecar: cannot start: ${refusal(file, 6)}\n`)
      expect(sha256(file)).toBe(hash)
      expect(filesBeside(file)).toEqual(["sidecar.db"])
    }).pipe(Effect.scoped))
})
