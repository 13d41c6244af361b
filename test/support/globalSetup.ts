// Vitest's global setup: builds the bundle the process tests start.
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"

/**
 * Tests that start the sidecar (or its CLI) as a process run the bundle the image and `npm start` run
 * (scripts/bundle.mjs): the same code as the sources. Built here, before any test, so it is never stale.
 */
export default function setup() {
  execFileSync(process.execPath, ["scripts/bundle.mjs"], {
    cwd: fileURLToPath(new URL("../..", import.meta.url)),
    stdio: "inherit"
  })
}
