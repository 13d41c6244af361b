import { describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

describe("deploy/Dockerfile", () => {
  it("dist/ alone is a working image: copied where no node_modules is in reach, it starts and answers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sidecar-image-"))
    let child: ChildProcess | undefined
    try {
      const app = join(dir, "app")
      cpSync(fileURLToPath(new URL("../../dist", import.meta.url)), join(app, "dist"), { recursive: true })
      // require() would look in every folder above the bundle
      for (let d = join(app, "dist"); d !== dirname(d); d = dirname(d)) {
        expect(existsSync(join(d, "node_modules")), d).toBe(false)
      }
      // the image's environment (deploy/Dockerfile's ENV), and nothing of this one's
      const started = spawn(process.execPath, ["dist/main.mjs", "serve"], {
        cwd: app,
        env: { NODE_ENV: "production", HOME: dir, SIDECAR_DB: join(dir, "data", "sidecar.db"), SIDECAR_PORT: "0" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      child = started
      let stderr = ""
      started.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
      const url = await new Promise<string>((resolve, reject) => {
        let out = ""
        started.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
          out += chunk
          const m = /"message":"Listening on (http:\/\/[^"]+)"/.exec(out)
          if (m !== null) resolve(m[1]!.replace("0.0.0.0", "127.0.0.1"))
        })
        started.once("exit", (code) => reject(new Error(`exited with ${code} before listening: ${stderr}`)))
      })
      expect((await fetch(`${url}/v0/livez`)).status).toBe(200)
      expect((await fetch(`${url}/v0/startupz`)).status).toBe(503)
      // read on first request: the Swagger UI's assets are in dist/ as well
      expect((await fetch(`${url}/docs`)).status).toBe(200)
      expect((await fetch(`${url}/v0/openapi.json`)).status).toBe(200)
      const exited = new Promise<number | null>((resolve) => started.once("exit", resolve))
      started.kill("SIGTERM")
      expect(await exited).toBe(0)
      // the code cache went along with the bundle and this node took it
      expect(stderr).toBe("")
    } finally {
      if (child?.exitCode === null) child.kill("SIGKILL")
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
