import { Effect, type Layer } from "effect"
import type { Readiness } from "./engine/Readiness.js"
import type { TaskHandlers } from "./engine/TaskHandlers.js"
import type { Commands } from "./handlers/RunCommand.js"

type Handlers<E> = Layer.Layer<TaskHandlers, E, Readiness | Commands>

/**
 * The `sidecar` command line (serve, task, probe, each with --help) on `argv` (the whole `process.argv`), its `serve`
 * running `handlers`. Each side is imported when it is used: the client commands load neither SQLite nor the server.
 */
export const runCli = <E>(handlers: Handlers<E>, argv: ReadonlyArray<string>) => {
  void import("./cli/Cli.js").then(({ runCommandLine }) => runCommandLine(Effect.promise(() => serve(handlers)), argv))
}

/** Load the server and start it; it owns the process from there (signals, logs, exit code). */
const serve = <E>(handlers: Handlers<E>) => import("./Sidecar.js").then(({ runSidecar }) => runSidecar(handlers))

/**
 * The process's main program: `sidecar` and `sidecar serve` start the server straight away; any other command (and
 * `--help`) is the command line, which a start would otherwise load and parse for nothing.
 */
export const launch = <E>(handlers: Handlers<E>, argv: ReadonlyArray<string>) => {
  const command = argv.slice(2)
  if (command.length === 0 || (command.length === 1 && command[0] === "serve")) {
    void serve(handlers)
  } else {
    runCli(handlers, argv)
  }
}
