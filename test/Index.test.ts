import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import * as Sidecar from "../src/index.js"

describe("the package's public surface", () => {
  // A name added here is a promise to keep it; a name gone is a breaking change.
  it("exports exactly what handler authors and clients use", () => {
    expect(Object.keys(Sidecar).sort()).toEqual([
      "Api",
      "BackgroundCheckpoints",
      "Commands",
      "Engine",
      "HttpLive",
      "InvalidParams",
      "InvalidRequest",
      "InvalidTaskId",
      "Metrics",
      "NoParams",
      "NotReady",
      "Readiness",
      "ReadinessStatus",
      "RunStart",
      "StoreError",
      "SubmitTask",
      "Task",
      "TaskError",
      "TaskHandlers",
      "TaskId",
      "TaskNotFound",
      "TaskRun",
      "TaskStatus",
      "UnknownTaskType",
      "awaitHttp",
      "builtinHandlers",
      "makeClient",
      "markNotReady",
      "markReady",
      "runCli",
      "runCommand",
      "runSidecar",
      "sqlLayer",
      "taskHandler"
    ])
  })

  it("has every name the README and examples/ import from the package", () => {
    const sources = [readFileSync("README.md", "utf8"), readFileSync("examples/custom-handler.ts", "utf8")]
    const imported = sources.flatMap((text) =>
      [...text.matchAll(/import \{([^}]*)\} from "effect-sidecar"/g)].flatMap((m) =>
        m[1]!.split(",").map((name) => name.replace(/^\s*type\s+/, "").trim()).filter((name) => name !== "")
      )
    )
    expect(imported.length).toBeGreaterThan(0)
    for (const name of imported) expect(Object.keys(Sidecar)).toContain(name)
  })
})
