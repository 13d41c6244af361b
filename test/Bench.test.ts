// Keeps the benchmark harness from rotting: one short scenario against both servers must produce numbers. It
// asserts nothing about speed; `npm run bench` is where speed is measured, never in CI.
import { describe, expect, it } from "vitest"
import { makeBench } from "../bench/run.js"
import { quickSettings, variants } from "../bench/scenarios.js"

describe("bench harness", () => {
  it("runs submit-new for a second against the baseline and the sidecar", async () => {
    // The sidecar as the harness measures it by default, as deployed: the snapshot compiled by tsc (emit only, about
    // 2 s) and run by plain node, which starts in well under half the time tsx needs, so no slower than tsx in all.
    const bench = makeBench({ ...quickSettings, reps: 1, seconds: 1, warmupSeconds: 0 }, { form: "compiled" })
    try {
      const result = await bench.run(variants.find((v) => v.name === "submit-new c=16")!)
      expect(result.failures).toEqual([])
      for (const kind of ["baseline", "sidecar"] as const) {
        expect(result.samples[kind]).toHaveLength(1)
        const sample = result.samples[kind][0]!
        expect(sample["responses"]).toBeGreaterThan(0)
        expect(sample["rps"]).toBeGreaterThan(0)
        expect(sample["non2xx"]).toBe(0)
      }
    } finally {
      bench.close()
    }
  }, 60_000)
})
