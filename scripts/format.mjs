#!/usr/bin/env node
// Formats the tree's TypeScript and JavaScript with dprint's TypeScript plugin, configured by dprint.json (the same
// file the dprint CLI and editor extensions read). `--check` changes nothing, lists what differs and exits 1 if any.
// It runs the plugin through @dprint/formatter because the dprint CLI's npm package needs a native binary per
// platform, and the registry this project installs from has only some of them.
import { createFromBuffer } from "@dprint/formatter"
import { getPath } from "@dprint/typescript"
import { execFileSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"

const check = process.argv.includes("--check")
const { includes: _includes, excludes = [], plugins: _plugins, typescript = {}, ...global } = JSON.parse(
  readFileSync("dprint.json", "utf8")
)
const formatter = createFromBuffer(readFileSync(getPath()))
formatter.setConfig(global, typescript)
for (const d of formatter.getConfigDiagnostics()) throw new Error(`dprint.json: ${d.propertyName}: ${d.message}`)

const excluded = (file) => excludes.some((dir) => file === dir || file.startsWith(`${dir}/`))
const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], { encoding: "utf8" })
  .split("\n")
  .filter((file) => /\.(ts|mts|cts|js|mjs|cjs)$/.test(file) && !excluded(file))

const differ = []
for (const file of files) {
  let text
  try {
    text = readFileSync(file, "utf8")
  } catch {
    continue // listed by git but deleted in the work tree
  }
  const formatted = formatter.formatText({ filePath: file, fileText: text })
  if (formatted === text) continue
  differ.push(file)
  if (!check) writeFileSync(file, formatted)
}
if (check && differ.length > 0) {
  console.error(`not formatted (npm run format fixes them):\n${differ.map((f) => `  ${f}`).join("\n")}`)
  process.exit(1)
}
console.log(`${files.length} files ${check ? "checked" : "formatted"}${check ? "" : `, ${differ.length} changed`}`)
