#!/usr/bin/env node
// The project runs its TypeScript sources through tsx: register it (as `node --import tsx` does), then run the CLI.
import "tsx"

await import("../src/main.ts")
