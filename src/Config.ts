import { Config } from "effect"

/** Everything the sidecar reads from its environment, with the defaults a new user gets. */
export const AppConfig = Config.all({
  // 0 asks the OS for a free port (the log line says which); tests use it.
  port: Config.integer("SIDECAR_PORT").pipe(
    Config.validate({ message: "must be a port number, 0 to 65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(7777)
  ),
  host: Config.nonEmptyString("SIDECAR_HOST").pipe(Config.withDefault("0.0.0.0")),
  dbPath: Config.nonEmptyString("SIDECAR_DB").pipe(Config.withDefault("./data/sidecar.db")),
  commandsFile: Config.option(Config.nonEmptyString("SIDECAR_COMMANDS"))
})
export type AppConfig = Config.Config.Success<typeof AppConfig>
