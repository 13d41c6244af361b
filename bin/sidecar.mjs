#!/usr/bin/env node
// The `sidecar` command: the bundle that `npm install` builds into dist/ (`npm run build` after changing the sources),
// which starts in a tenth of a second; `npm run dev` runs the TypeScript sources instead.
import { existsSync } from "node:fs"

const main = new URL("../dist/main.mjs", import.meta.url)
if (!existsSync(main)) {
  process.stderr.write("sidecar: the build is missing (dist/main.mjs); run `npm run build` first\n")
  process.exit(1)
}
await import(main.href)
