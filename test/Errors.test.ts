import { describe, expect, it } from "@effect/vitest"
import { TaskError } from "../src/Errors.js"

describe("TaskError", () => {
  it("renders task: operation: message [hint: ...]", () => {
    const withHint = new TaskError({ task: "run-command", operation: "sync", message: "exit 3", hint: "check disk" })
    expect(withHint.render()).toBe("run-command: sync: exit 3 [hint: check disk]")
    expect(String(withHint)).toBe("run-command: sync: exit 3 [hint: check disk]")
    expect(withHint.retryable).toBe(false)
    const plain = new TaskError({ task: "await-http", operation: "poll", message: "timed out", retryable: true })
    expect(plain.render()).toBe("await-http: poll: timed out")
    expect(plain.retryable).toBe(true)
  })
})
