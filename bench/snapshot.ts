// The servers run from a snapshot of the code taken when the benchmark starts, so that a run measures one version
// even while src/ is being edited, and a commit can be measured as it was.
import { execFileSync } from "node:child_process"
import { cpSync, mkdirSync, symlinkSync } from "node:fs"
import { join } from "node:path"
import { root } from "./servers.js"

/**
 * Copy src/, migrations/ and package.json from the working tree, or from `commit` (git archive), into `dir`;
 * bench/ always comes from the working tree (it is the harness); node_modules is linked, not copied.
 */
export const snapshot = (dir: string, commit?: string): string => {
  mkdirSync(dir, { recursive: true })
  const parts = ["src", "migrations", "package.json"]
  if (commit === undefined) {
    for (const part of parts) cpSync(join(root, part), join(dir, part), { recursive: true })
  } else {
    const archive = execFileSync("git", ["archive", "--format=tar", commit, ...parts], { cwd: root, maxBuffer: 256 << 20 })
    execFileSync("tar", ["-x", "-C", dir], { input: archive })
  }
  cpSync(join(root, "bench"), join(dir, "bench"), { recursive: true })
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir")
  return dir
}

/** What is being measured, for the report: the commit, and whether the working tree differed from it. */
export const describeCode = (commit?: string): string => {
  const git = (...args: Array<string>) => execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim()
  try {
    if (commit !== undefined) {
      return `commit ${git("rev-parse", "--short", commit)} (git archive); src/ last changed in ${
        git("log", "-1", "--format=%h %s", commit, "--", "src", "migrations")
      }`
    }
    const dirty = git("status", "--porcelain", "--", "src", "migrations", "package.json").split("\n").filter((l) => l !== "")
    return `working tree at commit ${git("log", "-1", "--format=%h %s")}${
      dirty.length === 0 ? "" : `, with uncommitted changes in ${dirty.map((l) => l.slice(3)).join(", ")}`
    }`
  } catch {
    return "not a git checkout"
  }
}
