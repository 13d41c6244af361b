import { Duration, Effect, Option } from "effect"
import type { Task } from "../Domain.js"
import { progress } from "./CliFormat.js"

const pollEvery = Duration.millis(250)
const spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

/**
 * Where progress goes while waiting, on stderr so stdout keeps only the result: one line rewritten in place on a
 * terminal; otherwise a plain line each time the status or run changes (none with --json, which is for scripts).
 */
const reporter = (json: boolean) => {
  const err = process.stderr
  if (err.isTTY) {
    let frame = 0
    return {
      show: (task: Task) =>
        Effect.sync(() => {
          const line = `${spinner[frame++ % spinner.length]} ${progress(task)}`
          // Longer than the terminal is wide, the line would wrap and \r could no longer rewrite it.
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

/** Poll with `get` until the task is no longer running; `timeout` (seconds) fails with `onTimeout`. */
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
