// Driving the in-process Engine the test is given: submit, wait for a run to end, and the tasks of the `test`
// handler with what its Probe saw.
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import type { SubmitTask } from "../../src/Domain.js"
import { Engine } from "../../src/engine/Engine.js"
import { Probe, withFreshEngine } from "./layers.js"

export const submit = (req: SubmitTask) => Effect.flatMap(Engine, (e) => e.submit(req))

/** Wait for the task's run to end, then read it. */
export const settled = (id: string) => Effect.flatMap(Engine, (e) => Effect.andThen(e.join(id), e.get(id)))

/** Submit a task of the `test` handler for `key` (see ProbeParams), under `id` if given. */
export const probeTask = (key: string, extra: { hold?: boolean; fail?: string; crash?: string } = {}, id?: string) =>
  submit({ ...(id === undefined ? {} : { id }), type: "test", params: { key, ...extra } })

/** Submit a task of the `test` handler for `key` whose run waits until `key` is released; the Probe. */
export const held = (key: string, id?: string) =>
  Effect.gen(function*() {
    const probe = yield* Probe
    yield* probe.hold(key)
    yield* probeTask(key, { hold: true }, id)
    return probe
  })

/**
 * Until runs of `key` have started `n` times. A run begins only after its submit has answered, and an engine that
 * stops before then interrupts it before its handler.
 */
export const started = (key: string, n: number) =>
  Effect.gen(function*() {
    const probe = yield* Probe
    for (let i = 0; i < 100 && probe.runs(key) < n; i++) yield* Effect.yieldNow
    expect(probe.runs(key)).toBe(n)
  })

/**
 * Task `id`'s run 1 fails in one engine; its run 2 is still running when a second engine shuts down. The next engine
 * (with `key`'s latch open) resumes run 2.
 */
export const reExecutionLeftRunning = (key: string, id: string) =>
  Effect.gen(function*() {
    const probe = yield* Probe
    yield* withFreshEngine(Effect.andThen(probeTask(key, { fail: "x" }, id), settled(id)))
    yield* probe.hold(key)
    yield* withFreshEngine(probeTask(key, { hold: true }, id))
    yield* probe.release(key)
  })
