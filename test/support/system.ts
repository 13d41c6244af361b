// What a test needs of the machine: whether a process still runs, a port nothing listens on, and volumes it can
// break (a small tmpfs to fill up, a FUSE mount to turn read-only). The volumes need root.
import { Effect } from "effect"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { pollUntil } from "./wait.js"

/** Whether `pid` runs: a process that exited but was not reaped yet (a zombie) counts as gone. */
export const isAlive = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z"
  } catch {
    return false
  }
}

/** A port nothing listens on: one the system just gave out and took back. */
export const closedPort = Effect.callback<number>((resume) => {
  const server = createServer().listen(0, "127.0.0.1", () => {
    const address = server.address()
    server.close(() => resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0)))
  })
})

/** Mount a tmpfs of `size` for the test, unmounted with the scope; a test that cannot mount fails, saying why. */
export const tmpfs = (size: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const dir = mkdtempSync(join(tmpdir(), "sidecar-tmpfs-"))
        execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "pipe" })
        return dir
      },
      catch: (e) => new Error(`cannot mount a tmpfs for this test (it needs root): ${String(e)}`)
    }),
    (dir) =>
      Effect.sync(() => {
        execFileSync("umount", ["-l", dir])
        rmSync(dir, { recursive: true, force: true })
      })
  ).pipe(Effect.orDie)

const toggleFs = fileURLToPath(new URL("toggle_ro_fs.py", import.meta.url))
const mounted = (dir: string) => readFileSync("/proc/mounts", "utf8").split("\n").some((l) => l.split(" ")[1] === dir)

/**
 * A FUSE mount of a fresh folder that is read-only while its flag file exists (see toggle_ro_fs.py); what it
 * answers: the mount point, and how to turn it read-only and writable again. Needs root and Debian's python3-fusepy.
 */
export const toggleReadOnlyVolume = Effect.gen(function*() {
  const source = yield* tmpfs("64m")
  const mountPoint = mkdtempSync(join(tmpdir(), "sidecar-fuse-"))
  const flag = `${mountPoint}.readonly`
  const daemon = yield* Effect.acquireRelease(
    Effect.sync(() =>
      spawn("/usr/bin/python3", [toggleFs, source, mountPoint, flag], { stdio: ["ignore", "ignore", "pipe"] })
    ),
    (child: ChildProcess) =>
      Effect.sync(() => {
        if (mounted(mountPoint)) execFileSync("umount", ["-l", mountPoint])
        child.kill("SIGKILL")
        rmSync(flag, { force: true })
        rmSync(mountPoint, { recursive: true, force: true })
      })
  )
  let stderr = ""
  daemon.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  yield* pollUntil(Effect.sync(() => mounted(mountPoint) || daemon.exitCode !== null), (up) => up, "10 seconds").pipe(
    Effect.orDie
  )
  if (!mounted(mountPoint)) {
    return yield* Effect.die(
      new Error(`cannot mount the FUSE volume for this test (needs root, /dev/fuse and python3-fusepy): ${stderr}`)
    )
  }
  return {
    dir: mountPoint,
    enter: () => writeFileSync(flag, ""),
    leave: () => unlinkSync(flag)
  }
})
