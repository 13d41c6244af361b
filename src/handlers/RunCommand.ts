import { Config, Context, Data, Duration, Effect, Layer, Option, Schema } from "effect"
import { spawn } from "node:child_process"
import { readFile } from "node:fs/promises"
import { AppConfig, ShutdownTimeout } from "../Config.js"
import { taskHandler } from "../engine/TaskHandlers.js"
import { formatSchemaError, TaskError } from "../Errors.js"

/** One entry of the operator's commands file. */
export const CommandSpec = Schema.Struct({
  argv: Schema.NonEmptyArray(Schema.String),
  timeoutSeconds: Schema.optionalKey(Schema.Number.check(Schema.isGreaterThan(0))),
  allowArgs: Schema.optionalKey(Schema.Boolean)
})
export type CommandSpec = typeof CommandSpec.Type

const CommandsFile = Schema.fromJsonString(Schema.Record(Schema.String, CommandSpec))
const decodeCommandsFile = Schema.decodeUnknownEffect(CommandsFile)

export class CommandsFileError extends Data.TaggedError("CommandsFileError")<{ readonly message: string }> {}

/** The commands `run-command` may run; only the operator's file defines them. */
export class Commands extends Context.Service<Commands, ReadonlyMap<string, CommandSpec>>()("sidecar/Commands") {
  static fromRecord = (record: Record<string, CommandSpec>) => Layer.succeed(Commands, new Map(Object.entries(record)))

  /** Read and check the file (none: no commands); a wrong file stops startup. */
  static fromFile = (file: Option.Option<string>) =>
    Layer.effect(
      Commands,
      Option.match(file, {
        onNone: () => Effect.succeed(new Map<string, CommandSpec>()),
        onSome: (path) =>
          Effect.tryPromise({
            try: () => readFile(path, "utf8"),
            catch: (e) => new CommandsFileError({ message: `SIDECAR_COMMANDS: cannot read ${path}: ${String(e)}` })
          }).pipe(
            Effect.flatMap((text) => decodeCommandsFile(text, { errors: "all", onExcessProperty: "error" })),
            Effect.mapError((e) =>
              e._tag === "CommandsFileError"
                ? e
                : new CommandsFileError({
                  message: `SIDECAR_COMMANDS: ${path} is not a valid commands file ` +
                    `(a JSON object of name -> {argv: [string, ...], timeoutSeconds?: number, allowArgs?: boolean}): ` +
                    formatSchemaError(e)
                })
            ),
            Effect.map((record) => new Map(Object.entries(record)))
          )
      })
    )

  static Live = Layer.unwrap(Effect.gen(function*() {
    return Commands.fromFile((yield* AppConfig).commandsFile)
  }))
}

const tailBytes = 4096
/** A child's time between SIGTERM and SIGKILL, within the shutdown timeout. */
const KillGrace = Config.map(
  ShutdownTimeout,
  (timeout) => Duration.min(Duration.seconds(3), Duration.times(timeout, 0.3))
)

/** A command that exited 0: its exit code and the tails of its output. */
export const CommandResult = Schema.Struct({ exitCode: Schema.Int, stdout: Schema.String, stderr: Schema.String })
export type CommandResult = typeof CommandResult.Type

/** Run argv without a shell, in its own group; interrupted, it signals the group and waits for the child. */
const execute = (name: string, argv: ReadonlyArray<string>, grace: Duration.Duration) =>
  Effect.callback<CommandResult, TaskError>((resume) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], detached: true })
    let stdout = ""
    let stderr = ""
    let exited = false
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout = (stdout + chunk).slice(-tailBytes)
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-tailBytes)
    })
    child.once("error", (error) => {
      exited = true
      resume(Effect.fail(
        new TaskError({
          task: "run-command",
          operation: name,
          message: `cannot start ${argv[0]}: ${error.message}`,
          hint: "check the command's argv in the SIDECAR_COMMANDS file",
          cause: error
        })
      ))
    })
    child.once("close", (code, signal) => {
      exited = true
      if (code === 0) return resume(Effect.succeed({ exitCode: 0, stdout, stderr }))
      resume(Effect.fail(
        new TaskError({
          task: "run-command",
          operation: name,
          message: `${signal === null ? `exited with code ${code}` : `killed by ${signal}`}` +
            (stderr.trim() === "" ? "" : `: ${stderr.trim()}`),
          retryable: true
        })
      ))
    })
    return Effect.callback<void>((done) => {
      if (exited || child.pid === undefined) return done(Effect.void)
      const signalGroup = (signal: NodeJS.Signals) => {
        try {
          process.kill(-child.pid!, signal)
        } catch {
          // already gone
        }
      }
      const escalate = setTimeout(() => signalGroup("SIGKILL"), Duration.toMillis(grace))
      child.once("close", () => {
        clearTimeout(escalate)
        done(Effect.void)
      })
      signalGroup("SIGTERM")
    })
  })

/** `run-command`: one of the operator's commands, with args where its entry allows. */
export const runCommand = Effect.gen(function*() {
  const commands = yield* Commands
  const grace = yield* KillGrace
  const Params = Schema.Struct({
    command: Schema.String,
    args: Schema.optionalKey(Schema.Array(Schema.String))
  }).check(Schema.makeFilter((p) => {
    const spec = commands.get(p.command)
    if (spec === undefined) return { path: ["command"], issue: `unknown command: ${p.command}` }
    if (spec.allowArgs !== true && (p.args?.length ?? 0) > 0) {
      return { path: ["args"], issue: `command ${p.command} does not accept args` }
    }
    return true
  }))
  return taskHandler({
    name: "run-command",
    params: Params,
    result: CommandResult,
    run: ({ args = [], command }) => {
      const spec = commands.get(command)!
      const run = execute(command, [...spec.argv, ...args], grace)
      return spec.timeoutSeconds === undefined ? run : run.pipe(
        Effect.timeoutOrElse({
          duration: Duration.seconds(spec.timeoutSeconds),
          orElse: () =>
            Effect.fail(
              new TaskError({
                task: "run-command",
                operation: command,
                message: `timed out after ${spec.timeoutSeconds} s`,
                retryable: true
              })
            )
        })
      )
    }
  })
})
