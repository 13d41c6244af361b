import { Effect, Schema } from "effect"
import { builtinHandlers, runSidecar, TaskError, taskHandler, TaskHandlers } from "effect-sidecar"

const restore = taskHandler({
  name: "restore-snapshot",
  params: Schema.Struct({ height: Schema.Int.check(Schema.isGreaterThan(0)) }),
  run: ({ height }) =>
    height % 2 === 0
      ? Effect.succeed({ restoredTo: height })
      : Effect.fail(
        new TaskError({
          task: "restore-snapshot",
          operation: "fetch",
          message: `no snapshot at ${height}`,
          hint: "pick an even height",
          retryable: false
        })
      )
})

runSidecar(TaskHandlers.layer(...builtinHandlers, restore))
