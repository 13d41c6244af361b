import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Logger } from "effect"
import { createServer } from "node:http"
import { builtinHandlers } from "./Builtins.js"
import { AppConfig } from "./Config.js"
import { Engine } from "./Engine.js"
import { HttpLive } from "./Http.js"
import { Readiness } from "./Readiness.js"
import { Commands } from "./RunCommand.js"
import { SqlLive } from "./Sql.js"
import { TaskHandlers } from "./TaskHandlers.js"

const ServerLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) => NodeHttpServer.layer(createServer, { port: config.port, host: config.host }))
)

// Provided outermost, the engine is built before the server listens and closed after it has drained.
const MainLive = HttpLive.pipe(
  Layer.provide(ServerLive),
  Layer.provide(Engine.Default),
  Layer.provide(TaskHandlers.layer(...builtinHandlers)),
  Layer.provide([Readiness.Default, Commands.Live, SqlLive]),
  Layer.provide(Logger.json)
)

Layer.launch(MainLive).pipe(NodeRuntime.runMain({ disablePrettyLogger: true }))
