// Part cli/: the `sidecar` command line and its typed client. Imports http/ and the shared modules; the server
// `serve` runs is passed in (Launch.ts).

// deep imports: the package's index also loads the cluster and worker modules
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Array as Arr, Cause, Config, Console, Effect, Exit, Layer, Option, Result } from "effect"
import { Argument, CliError, CliOutput, Command, Flag, HelpDoc, TerminalCapabilities } from "effect/cli"
import { FetchHttpClient, HttpClient } from "effect/http"
import pkg from "../../package.json" with { type: "json" }
import type { Task } from "../Domain.js"
import { CliFailure, connect, ExitCode, usageMessage } from "./CliFailure.js"
import * as Format from "./CliFormat.js"
import { waitUntilDone } from "./CliWait.js"

const checkedBy = <A, B>(f: (a: A) => B, message: string) =>
  Flag.mapEffect((a: A) => Effect.try({ try: () => f(a), catch: () => new CliError.ValidationError({ message }) }))

const flag = (name: string, description: string) =>
  Flag.Boolean(name).pipe(Flag.withDescription(description), Flag.withoutNegation, Flag.withDefault(false))

const url = Flag.String("url").pipe(
  Flag.withDescription("the sidecar's base URL (else $SIDECAR_URL, else http://127.0.0.1:7777)"),
  Flag.withFallbackConfig(Config.String("SIDECAR_URL")),
  Flag.withDefault("http://127.0.0.1:7777"),
  checkedBy(
    (s: string) => new URL(s).href.replace(/\/$/, ""),
    "--url (or SIDECAR_URL) must be an absolute URL such as http://127.0.0.1:7777"
  )
)
const json = flag("json", "print JSON on stdout (for scripts)")
const timeout = Flag.Int("timeout").pipe(
  Flag.withDescription("stop waiting after this many seconds (exit 5)"),
  Flag.optional
)
const id = Argument.String("id").pipe(Argument.withDescription("the task's id"))

const finish = (get: Effect.Effect<Task, CliFailure>, options: { json: boolean; timeout: Option.Option<number> }) =>
  Effect.gen(function*() {
    const task = yield* waitUntilDone(
      get,
      options,
      (seconds) => new CliFailure({ code: ExitCode.TimedOut, reason: `still running after ${seconds} s` })
    )
    yield* Console.log(options.json ? Format.json(Format.taskJson(task)) : Format.summary(task))
    if (task.status === "failed") {
      return yield* new CliFailure({ code: ExitCode.Failed, reason: `task ${task.id} failed` })
    }
  })

/** `--type` and `--params` checked together: a usage error names both. */
const submitInput = (o: { readonly type: Option.Option<string>; readonly params: Option.Option<string> }) => {
  const params = Option.map(o.params, (s) => Result.try((): unknown => JSON.parse(s)))
  const errors = [
    ...(Option.isNone(o.type) ? [new CliError.MissingOption({ option: "type" })] : []),
    ...(Option.isSome(params) && Result.isFailure(params.value)
      ? [new CliError.ValidationError({ message: `--params is not JSON: ${String(params.value.failure)}` })]
      : [])
  ]
  return Option.isSome(o.type) && errors.length === 0
    ? Effect.succeed({ type: o.type.value, params: Option.map(params, Result.getOrThrow) })
    : Effect.fail(new CliError.ShowHelp({ commandPath: ["sidecar", "task", "submit"], errors }))
}

const submit = Command.make("submit", {
  type: Flag.String("type").pipe(Flag.withDescription("the task type (mark-ready, run-command...)"), Flag.optional),
  id: Flag.String("id").pipe(Flag.withDescription("the task's UUID (default: a new one)"), Flag.optional),
  params: Flag.String("params").pipe(Flag.withDescription("the task's params, as JSON"), Flag.optional),
  wait: flag("wait", "then wait until the task ends (exit 1 if it failed)"),
  timeout,
  url,
  json
}, (o) =>
  Effect.gen(function*() {
    const { params, type } = yield* submitInput(o)
    const { call, client } = yield* connect(o.url)
    const payload = {
      type,
      ...Option.match(o.id, { onNone: () => ({}), onSome: (id) => ({ id }) }),
      ...Option.match(params, { onNone: () => ({}), onSome: (params) => ({ params }) })
    }
    const { _tag, id } = yield* call(client.tasks.submit({ payload }))
    if (o.json && !o.wait) {
      return yield* Console.log(Format.json({ id, outcome: _tag === "TaskStarted" ? "started" : "deduplicated" }))
    }
    if (!o.json) {
      yield* Console.log(_tag === "TaskStarted" ? `started ${id}` : `${id} is running or completed already`)
    }
    if (o.wait) yield* finish(call(client.tasks.get({ params: { id }, query: {} })), o)
  })).pipe(Command.withDescription("submit a task (201: a run started; 202: it is running or completed already)"))

const get = Command.make("get", { url, json, id }, (o) =>
  Effect.gen(function*() {
    const { call, client } = yield* connect(o.url)
    const task = yield* call(client.tasks.get({ params: { id: o.id }, query: {} }))
    yield* Console.log(o.json ? Format.json(Format.taskJson(task)) : Format.taskFields(task))
  })).pipe(Command.withDescription("show one task"))

const list = Command.make("list", {
  status: Flag.Literals("status", ["running", "completed", "failed"]).pipe(
    Flag.withDescription("only tasks with this status"),
    Flag.optional
  ),
  type: Flag.String("type").pipe(Flag.withDescription("only tasks of this type"), Flag.optional),
  limit: Flag.Int("limit").pipe(
    Flag.withDescription("how many, 1 to 1000 (default 100)"),
    checkedBy((n: number) => {
      if (n < 1 || n > 1000) throw new RangeError()
      return n
    }, "--limit must be an integer from 1 to 1000"),
    Flag.optional
  ),
  url,
  json
}, (o) =>
  Effect.gen(function*() {
    const { call, client } = yield* connect(o.url)
    const query = {
      ...Option.match(o.status, { onNone: () => ({}), onSome: (status) => ({ status }) }),
      ...Option.match(o.type, { onNone: () => ({}), onSome: (type) => ({ type }) }),
      ...Option.match(o.limit, { onNone: () => ({}), onSome: (limit) => ({ limit }) })
    }
    const tasks = yield* call(client.tasks.list({ query }))
    yield* Console.log(o.json ? Format.json(Format.tasksJson(tasks)) : Format.taskTable(tasks))
  })).pipe(Command.withDescription("the most recently submitted tasks, newest first (100 unless --limit)"))

const runs = Command.make("runs", { url, json, id }, (o) =>
  Effect.gen(function*() {
    const { call, client } = yield* connect(o.url)
    const history = yield* call(client.tasks.runs({ params: { id: o.id } }))
    yield* Console.log(o.json ? Format.json(Format.runsJson(history)) : Format.runTable(history))
  })).pipe(Command.withDescription("every run of a task, oldest first, with how each ended"))

const remove = Command.make("delete", { url, json, id }, (o) =>
  Effect.gen(function*() {
    const { call, client } = yield* connect(o.url)
    yield* call(client.tasks.remove({ params: { id: o.id } }))
    yield* Console.log(o.json ? Format.json({ id: o.id, deleted: true }) : `deleted ${o.id}`)
  })).pipe(Command.withDescription("delete a task, interrupting its run first"))

const wait = Command.make("wait", { timeout, url, json, id }, (o) =>
  Effect.gen(function*() {
    const { call, client } = yield* connect(o.url)
    yield* finish(call(client.tasks.get({ params: { id: o.id }, query: {} })), o)
  })).pipe(Command.withDescription("wait until a task ends (exit 1 if it failed)"))

const task = Command.make("task").pipe(
  Command.withDescription("submit, inspect, wait for and delete tasks"),
  Command.withSubcommands([submit, get, list, runs, remove, wait])
)

const probe = Command.make("probe", { url, json }, (o) =>
  Effect.gen(function*() {
    const { call, client } = yield* connect(o.url)
    const [notReady, notLive, { status }] = yield* Effect.all([
      call(client.healthz().pipe(Effect.as(undefined), Effect.catchTag("NotReady", (e) => Effect.succeed(e.error)))),
      call(client.livez().pipe(Effect.as(undefined), Effect.catchTag("StoreError", (e) => Effect.succeed(e.error)))),
      call(client.status())
    ], { concurrency: "unbounded" })
    const view = { url: o.url, notReady, notLive, status }
    yield* Console.log(o.json ? Format.json(Format.probeJson(view)) : Format.probeFields(view))
    if (notLive !== undefined) return yield* new CliFailure({ code: ExitCode.Failed, reason: `not live: ${notLive}` })
    if (notReady !== undefined) return yield* new CliFailure({ code: ExitCode.Failed, reason: "not ready" })
  })).pipe(Command.withDescription("readiness, liveness and status in one view (exit 1 unless ready and live)"))

/** The `sidecar` command; `serve`, or no command, runs `serve`. */
export const makeCli = (serve: Effect.Effect<void>) =>
  Command.make("sidecar", {}, () => serve).pipe(
    Command.withDescription("a durable task engine next to your node; with no command, the same as `serve`"),
    Command.withSubcommands([
      Command.make("serve", {}, () => serve).pipe(
        Command.withDescription("run the sidecar server, configured from SIDECAR_PORT, SIDECAR_HOST, SIDECAR_DB...")
      ),
      task,
      probe
    ])
  )

const subcommands = (command: Command.Command.Any) => command.subcommands.flatMap((group) => group.commands)

const commandAt = (root: Command.Command.Any, path: ReadonlyArray<string>): Command.Command.Any =>
  path.slice(1).reduce((command, name) => subcommands(command).find((sub) => sub.name === name) ?? command, root)

const commandsBelow = (command: Command.Command.Any, prefix = ""): Array<HelpDoc.SubcommandDoc> =>
  subcommands(command).filter((sub) => !sub.unlisted).flatMap((sub) => {
    const name = `${prefix}${sub.name}`
    const doc = { name, alias: sub.alias, shortDescription: sub.shortDescription, description: sub.description ?? "" }
    return [doc, ...commandsBelow(sub, `${name} `)]
  })

/** Help on stdout, listing every command below; a usage error's reasons alone on stderr. */
const presenter = (cli: Command.Command.Any): CliOutput.Presenter => ({
  present: (event) =>
    Effect.gen(function*() {
      switch (event._tag) {
        case "Help": {
          const { canColor } = yield* TerminalCapabilities.TerminalCapabilities
          const commands = commandsBelow(commandAt(cli, event.commandPath))
          const helpDoc = Arr.isArrayNonEmpty(commands)
            ? { ...event.helpDoc, subcommands: [{ group: undefined, commands }] }
            : event.helpDoc
          return yield* Console.log(CliOutput.defaultFormatter({ colors: canColor }).formatHelpDoc(helpDoc))
        }
        case "InvalidInvocation":
          return yield* Console.error(event.errors.map((error) => `${usageMessage(error)}\n`).join("\n"))
        case "Version":
          return yield* Console.log(`${event.version}\n`)
      }
    })
})

/** After this long without an answer, the sidecar counts as unreachable. */
const requestTimeout = "10 seconds"

const ClientLive = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(HttpClient.HttpClient, HttpClient.timeout(requestTimeout))
).pipe(Layer.provide(FetchHttpClient.layer))

/** Run the CLI on `argv` (the whole `process.argv`). */
export const runCommandLine = (serve: Effect.Effect<void>, argv: ReadonlyArray<string>) => {
  const cli = makeCli(serve)
  Command.runWith(cli, { version: pkg.version })(argv.slice(2)).pipe(
    Effect.catch((error) =>
      Effect.sync(() => {
        // a usage error (exit 2) or a help (exit 0), already printed
        if (CliError.isCliError(error)) {
          process.exitCode = error._tag === "ShowHelp" && error.errors.length === 0 ? 0 : ExitCode.Usage
          return
        }
        process.stderr.write(`sidecar: ${error.reason}\n`)
        process.exitCode = error.code
      })
    ),
    Effect.catchDefect((defect) =>
      Effect.sync(() => {
        const message = defect instanceof Error ? defect.message : String(defect)
        process.stderr.write(`sidecar: unexpected error: ${message}\n`)
        process.exitCode = 70
      })
    ),
    Effect.provide(Layer.mergeAll(NodeServices.layer, ClientLive, CliOutput.layerPresenter(presenter(cli)))),
    NodeRuntime.runMain({
      disableErrorReporting: true,
      // Ctrl-C while waiting exits 130, as for SIGINT
      teardown: (exit, onExit) => onExit(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? 130 : 0)
    })
  )
}
