import { Duration, Effect, Option } from "effect"
import type { Task } from "../Domain.js"
import { progress } from "./CliFormat.js"

const pollEvery = Duration.millis(250)
const spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

/** Progress on stderr: a line rewritten in place on a terminal, else one per status or run (none with --json). */
const reporter = (json: boolean) => {
  const err = process.stderr
  if (err.isTTY) {
    let frame = 0
    return {
      show: (task: Task) =>
        Effect.sync(() => {
          const line = `${spinner[frame++ % spinner.length]} ${progress(task)}`
          // a wrapped line could not be rewritten
          err.write(`\r\x1b[2K${line.slice(0, (err.columns > 1 ? err.columns : 80) - 1)}`)
        }),
      clear: Effect.sync(() => err.write("\r\x1b[2K"))
    }
  }
  let last = ""
  return {
    show: (task: Task) =>
      Effect.sync(() => {
        const key = `${task.status} ${task.run}`
        if (json || key === last) return
        last = key
        err.write(`${progress(task)}\n`)
      }),
    clear: Effect.void
  }
}

/** Poll with `get` until the task ends; past `timeout` seconds, fail with `onTimeout`. */
export const waitUntilDone = <E, E2>(
  get: Effect.Effect<Task, E>,
  options: { readonly json: boolean; readonly timeout: Option.Option<number> },
  onTimeout: (seconds: number) => E2
) =>
  Effect.gen(function*() {
    const { clear, show } = reporter(options.json)
    const poll = Effect.gen(function*() {
      let task = yield* get
      while (task.status === "running") {
        yield* show(task)
        yield* Effect.sleep(pollEvery)
        task = yield* get
      }
      return task
    }).pipe(Effect.ensuring(clear))
    return yield* Option.match(options.timeout, {
      onNone: () => poll,
      onSome: (seconds) =>
        Effect.timeoutOrElse(poll, {
          duration: Duration.seconds(seconds),
          orElse: () => Effect.fail(onTimeout(seconds))
        })
    })
  })
