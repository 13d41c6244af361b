// Part cli/: the `sidecar` command line and the typed client (Client.ts) it talks to a sidecar with; CliFailure.ts,
// CliFormat.ts, CliWait.ts. Imports http/ (the contract) and the shared modules; the server it runs for `serve` is
// passed in by the wiring (Launch.ts).
import { Args, Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
// Not the package's index: that loads the cluster and worker modules too, about a second more at every CLI start.
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Config, Console, Effect, Exit, Layer, Option } from "effect"
import pkg from "../../package.json" with { type: "json" }
import { CliFailure, connect, ExitCode } from "./CliFailure.js"
import * as Format from "./CliFormat.js"
import { waitUntilDone } from "./CliWait.js"
import type { Task } from "../Domain.js"

const url = Options.text("url").pipe(
  Options.withDescription("the sidecar's base URL (else $SIDECAR_URL, else http://127.0.0.1:7777)"),
  Options.withFallbackConfig(Config.string("SIDECAR_URL")),
  Options.withDefault("http://127.0.0.1:7777"),
  Options.mapTryCatch(
    (s) => new URL(s).href.replace(/\/$/, ""),
    () => HelpDoc.p("--url (or SIDECAR_URL) must be an absolute URL such as http://127.0.0.1:7777")
  )
)
const json = Options.boolean("json").pipe(Options.withDescription("print JSON on stdout (for scripts)"))
const timeout = Options.integer("timeout").pipe(
  Options.withDescription("stop waiting after this many seconds (exit 5)"),
  Options.optional
)
const id = Args.text({ name: "id" }).pipe(Args.withDescription("the task's id"))

/** Wait for the task to end and print it; fail with exit 1 if it failed. */
const finish = (get: Effect.Effect<Task, CliFailure>, options: { json: boolean; timeout: Option.Option<number> }) =>
  Effect.gen(function*() {
    const task = yield* waitUntilDone(get, options, (seconds) =>
      new CliFailure({ code: ExitCode.TimedOut, reason: `still running after ${seconds} s` }))
    yield* Console.log(options.json ? Format.json(Format.taskJson(task)) : Format.summary(task))
    if (task.status === "failed") {
      return yield* new CliFailure({ code: ExitCode.Failed, reason: `task ${task.id} failed` })
    }
  })

const submit = Command.make("submit", {
  url,
  json,
  type: Options.text("type").pipe(Options.withDescription("the task type (mark-ready, run-command...)")),
  id: Options.text("id").pipe(Options.withDescription("the task's UUID (default: a new one)"), Options.optional),
  params: Options.text("params").pipe(
    Options.withDescription("the task's params, as JSON"),
    Options.mapTryCatch((s): unknown => JSON.parse(s), (e) => HelpDoc.p(`--params is not JSON: ${String(e)}`)),
    Options.optional
  ),
  wait: Options.boolean("wait").pipe(Options.withDescription("then wait until the task ends (exit 1 if it failed)")),
  timeout
}, (o) =>
  Effect.gen(function*() {
    const { call, client } = yield* connect(o.url)
    const payload = {
      type: o.type,
      ...Option.match(o.id, { onNone: () => ({}), onSome: (id) => ({ id }) }),
      ...Option.match(o.params, { onNone: () => ({}), onSome: (params) => ({ params }) })
    }
    const { _tag, id } = yield* call(client.tasks.submit({ payload }))
    if (o.json && !o.wait) {
      return yield* Console.log(Format.json({ id, outcome: _tag === "TaskStarted" ? "started" : "deduplicated" }))
    }
    if (!o.json) {
      yield* Console.log(_tag === "TaskStarted" ? `started ${id}` : `${id} is running or completed already`)
    }
    if (o.wait) yield* finish(call(client.tasks.get({ path: { id }, urlParams: {} })), o)
  })).pipe(Command.withDescription("submit a task (201: a run started; 202: it is running or completed already)"))

const get = Command.make("get", { url, json, id }, (o) =>
  Effect.gen(function*() {
    const { call, client } = yield* connect(o.url)
    const task = yield* call(client.tasks.get({ path: { id: o.id }, urlParams: {} }))
    yield* Console.log(o.json ? Format.json(Format.taskJson(task)) : Format.taskFields(task))
  })).pipe(Command.withDescription("show one task"))

const list = Command.make("list", {
  url,
  json,
  status: Options.choice("status", ["running", "completed", "failed"]).pipe(
    Options.withDescription("only tasks with this status"),
    Options.optional
  ),
  type: Options.text("type").pipe(Options.withDescription("only tasks of this type"), Options.optional),
  limit: Options.integer("limit").pipe(
    Options.withDescription("how many, 1 to 1000 (default 100)"),
    Options.mapTryCatch((n) => {
      if (n < 1 || n > 1000) throw new RangeError()
      return n
    }, () => HelpDoc.p("--limit must be an integer from 1 to 1000")),
    Options.optional
  )
}, (o) =>
  Effect.gen(function*() {
    const { call, client } = yield* connect(o.url)
    const urlParams = {
      ...Option.match(o.status, { onNone: () => ({}), onSome: (status) => ({ status }) }),
      ...Option.match(o.type, { onNone: () => ({}), onSome: (type) => ({ type }) }),
      ...Option.match(o.limit, { onNone: () => ({}), onSome: (limit) => ({ limit }) })
    }
    const tasks = yield* call(client.tasks.list({ urlParams }))
    yield* Console.log(o.json ? Format.json(Format.tasksJson(tasks)) : Format.taskTable(tasks))
  })).pipe(Command.withDescription("the most recently submitted tasks, newest first (100 unless --limit)"))

const runs = Command.make("runs", { url, json, id }, (o) =>
  Effect.gen(function*() {
    const { call, client } = yield* connect(o.url)
    const history = yield* call(client.tasks.runs({ path: { id: o.id } }))
    yield* Console.log(o.json ? Format.json(Format.runsJson(history)) : Format.runTable(history))
  })).pipe(Command.withDescription("every run of a task, oldest first, with how each ended"))

const remove = Command.make("delete", { url, json, id }, (o) =>
  Effect.gen(function*() {
    const { call, client } = yield* connect(o.url)
    yield* call(client.tasks.remove({ path: { id: o.id } }))
    yield* Console.log(o.json ? Format.json({ id: o.id, deleted: true }) : `deleted ${o.id}`)
  })).pipe(Command.withDescription("delete a task, interrupting its run first"))

const wait = Command.make("wait", { url, json, id, timeout }, (o) =>
  Effect.gen(function*() {
    const { call, client } = yield* connect(o.url)
    yield* finish(call(client.tasks.get({ path: { id: o.id }, urlParams: {} })), o)
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

/**
 * The `sidecar` command; `serve` (and no command at all) runs `serve`, which takes the process over from there (the
 * wiring, Launch.ts, passes the server in, so that the client commands load neither SQLite nor the server).
 */
export const makeCli = (serve: Effect.Effect<void>) => {
  return Command.make("sidecar", {}, () => serve).pipe(
    Command.withDescription("a durable task engine next to your node; with no command, the same as `serve`"),
    Command.withSubcommands([
      Command.make("serve", {}, () => serve).pipe(
        Command.withDescription("run the sidecar server, configured from SIDECAR_PORT, SIDECAR_HOST, SIDECAR_DB...")
      ),
      task,
      probe
    ])
  )
}

/** A sidecar that does not answer within this long counts as unreachable ("no answer"). */
const requestTimeout = "10 seconds"

const ClientLive = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(
    HttpClient.HttpClient,
    HttpClient.transform((response, request) =>
      Effect.timeoutFail(response, {
        duration: requestTimeout,
        onTimeout: () => new HttpClientError.RequestError({ request, reason: "Transport", description: "no answer" })
      })
    )
  )
).pipe(Layer.provide(FetchHttpClient.layer))

/** Run the CLI on `argv` (the whole `process.argv`) as the process's main program, `serve` serving. */
export const runCommandLine = (serve: Effect.Effect<void>, argv: ReadonlyArray<string>) =>
  Command.run(makeCli(serve), { name: "sidecar", version: pkg.version })(argv).pipe(
    Effect.catchAll((error) =>
      Effect.sync(() => {
        // @effect/cli has printed its own message for a usage error.
        if (ValidationError.isValidationError(error)) {
          process.exitCode = ExitCode.Usage
          return
        }
        process.stderr.write(`sidecar: ${error.reason}\n`)
        process.exitCode = error.code
      })
    ),
    Effect.catchAllDefect((defect) =>
      Effect.sync(() => {
        const message = defect instanceof Error ? defect.message : String(defect)
        process.stderr.write(`sidecar: unexpected error: ${message}\n`)
        process.exitCode = 70
      })
    ),
    Effect.provide(Layer.merge(NodeContext.layer, ClientLive)),
    NodeRuntime.runMain({
      disableErrorReporting: true,
      disablePrettyLogger: true,
      // Ctrl-C while waiting exits 130, the shell's code for SIGINT.
      teardown: (exit, onExit) => onExit(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) ? 130 : 0)
    })
  )
