import * as NodeServices from "@effect/platform-node/NodeServices"
import { describe, expect, it } from "@effect/vitest"
import { Effect, FileSystem, Option } from "effect"
import { TestClock } from "effect/testing"
import { existsSync, readFileSync } from "node:fs"
import { Engine } from "../../src/engine/Engine.js"
import { Commands } from "../../src/handlers/RunCommand.js"
import { settled } from "../support/engine.js"
import { EngineTest } from "../support/layers.js"
import { isAlive } from "../support/system.js"
import { eventually } from "../support/wait.js"

const run = (command: string, args?: Array<string>) =>
  Effect.flatMap(Engine, (e) => e.submit({ type: "run-command", params: { command, ...(args ? { args } : {}) } }))
const pidIn = (file: string) => Number(readFileSync(file, "utf8").trim())
const tempFile = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped()).pipe(
  Effect.map((dir) => `${dir}/pid`),
  Effect.provide(NodeServices.layer)
)

describe("run-command", () => {
  it.live("exit 0 completes with the exit code and output tails", () =>
    Effect.gen(function*() {
      const task = yield* settled((yield* run("ok")).id)
      expect(task).toMatchObject({ status: "completed", result: { exitCode: 0, stdout: "out", stderr: "err" } })
    }).pipe(Effect.provide(EngineTest)))

  it.live("args are appended to argv for an entry that allows them", () =>
    Effect.gen(function*() {
      const task = yield* settled((yield* run("echo", ["a", "b c"])).id)
      expect(task.result).toMatchObject({ stdout: "a b c" })
    }).pipe(Effect.provide(EngineTest)))

  it.live("output is kept as a bounded tail", () =>
    Effect.gen(function*() {
      const task = yield* settled((yield* run("chatty")).id)
      const stdout = (task.result as { stdout: string }).stdout
      expect(stdout.length).toBe(4096)
      expect(stdout.endsWith("END")).toBe(true)
    }).pipe(Effect.provide(EngineTest)))

  it.live("a non-zero exit fails the run with the exit code and the stderr tail", () =>
    Effect.gen(function*() {
      const task = yield* settled((yield* run("fails")).id)
      expect(task).toMatchObject({ status: "failed", error: "run-command: fails: exited with code 3: disk full" })
    }).pipe(Effect.provide(EngineTest)))

  it.live("a binary that cannot start fails the run with a hint", () =>
    Effect.gen(function*() {
      const task = yield* settled((yield* run("missing")).id)
      expect(task.status).toBe("failed")
      expect(task.error).toMatch(/^run-command: missing: cannot start \/nonexistent\/binary: .*ENOENT.*\[hint: /)
    }).pipe(Effect.provide(EngineTest)))

  it.effect("unknown names and args for an entry without allowArgs are rejected at submit", () =>
    Effect.gen(function*() {
      const unknown = yield* Effect.flip(run("rm-rf"))
      expect(unknown._tag).toBe("InvalidParams")
      expect(unknown.message).toContain("command: unknown command: rm-rf")
      const args = yield* Effect.flip(run("ok", ["--evil"]))
      expect(args.message).toContain("args: command ok does not accept args")
      expect((yield* Effect.flip(Effect.flatMap(Engine, (e) => e.submit({ type: "run-command" }))))._tag)
        .toBe("InvalidParams")
      expect(yield* Effect.flatMap(Engine, (e) => e.list())).toEqual([])
    }).pipe(Effect.provide(EngineTest)))

  it.effect("a run that outlives timeoutSeconds fails and its child is killed", () =>
    Effect.gen(function*() {
      const pidFile = yield* tempFile
      const { id } = yield* run("slow", [pidFile])
      yield* eventually(Effect.sync(() => existsSync(pidFile) && readFileSync(pidFile, "utf8") !== ""), "10 seconds")
      yield* TestClock.adjust("5 seconds")
      const task = yield* settled(id)
      expect(task).toMatchObject({ status: "failed", error: "run-command: slow: timed out after 5 s" })
      expect(isAlive(pidIn(pidFile))).toBe(false)
    }).pipe(Effect.provide(EngineTest)))

  it.live("deleting a running task kills its whole process group before answering", () =>
    Effect.gen(function*() {
      const pidFile = yield* tempFile
      const { id } = yield* run("group", [pidFile])
      yield* eventually(
        Effect.sync(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== ""),
        "10 seconds"
      )
      const grandchild = pidIn(pidFile)
      expect(isAlive(grandchild)).toBe(true)
      yield* Effect.flatMap(Engine, (e) => e.remove(id))
      yield* eventually(Effect.sync(() => !isAlive(grandchild)), "2 seconds")
    }).pipe(Effect.provide(EngineTest)))

  it.live("a child that ignores SIGTERM gets SIGKILL after the grace period", () =>
    Effect.gen(function*() {
      const pidFile = yield* tempFile
      const { id } = yield* run("slow", [pidFile, "ignore-term"])
      yield* eventually(Effect.sync(() => existsSync(pidFile) && readFileSync(pidFile, "utf8") !== ""), "10 seconds")
      yield* Effect.flatMap(Engine, (e) => e.remove(id))
      expect(isAlive(pidIn(pidFile))).toBe(false)
    }).pipe(Effect.provide(EngineTest)))
})

describe("the commands file", () => {
  const load = (file: Option.Option<string>) => Effect.provide(Commands, Commands.fromFile(file))
  const writeTemp = (text: string) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const file = `${yield* fs.makeTempDirectoryScoped()}/commands.json`
      yield* fs.writeFileString(file, text)
      return file
    }).pipe(Effect.provide(NodeServices.layer))

  it.effect("no file means no commands", () =>
    Effect.gen(function*() {
      expect((yield* load(Option.none())).size).toBe(0)
    }))

  it.effect("a valid file is read", () =>
    Effect.gen(function*() {
      const file = yield* writeTemp(JSON.stringify({ sync: { argv: ["true"], timeoutSeconds: 3, allowArgs: true } }))
      expect((yield* load(Option.some(file))).get("sync")).toEqual({
        argv: ["true"],
        timeoutSeconds: 3,
        allowArgs: true
      })
    }))

  it.effect("a file that is not JSON, or has an entry without argv, stops startup naming SIDECAR_COMMANDS", () =>
    Effect.gen(function*() {
      for (const text of [
        "{not json",
        JSON.stringify({ sync: { timeoutSeconds: 3 } }),
        JSON.stringify({ x: { argv: [] } })
      ]) {
        const error = yield* Effect.flip(load(Option.some(yield* writeTemp(text))))
        expect(error.message).toMatch(/^SIDECAR_COMMANDS: .* is not a valid commands file/)
      }
      const missing = yield* Effect.flip(load(Option.some("/nonexistent/commands.json")))
      expect(missing.message).toMatch(/^SIDECAR_COMMANDS: cannot read \/nonexistent\/commands.json/)
    }))
})
