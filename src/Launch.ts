import { Effect, type Layer } from "effect"
import type { Readiness } from "./engine/Readiness.js"
import type { TaskHandlers } from "./engine/TaskHandlers.js"
import type { Commands } from "./handlers/RunCommand.js"

type Handlers<E> = Layer.Layer<TaskHandlers, E, Readiness | Commands>

/** The `sidecar` command line on `argv`; client commands never load the server. */
export const runCli = <E>(handlers: Handlers<E>, argv: ReadonlyArray<string>) => {
  void import("./cli/Cli.js").then(({ runCommandLine }) => runCommandLine(Effect.promise(() => serve(handlers)), argv))
}

/** Load and start the server, which owns the process from there. */
const serve = <E>(handlers: Handlers<E>) => import("./Sidecar.js").then(({ runSidecar }) => runSidecar(handlers))

/** The main program: `sidecar [serve]` starts the server without the command line. */
export const launch = <E>(handlers: Handlers<E>, argv: ReadonlyArray<string>) => {
  const command = argv.slice(2)
  if (command.length === 0 || (command.length === 1 && command[0] === "serve")) {
    void serve(handlers)
  } else {
    runCli(handlers, argv)
  }
}
