import { Config, ConfigError, Duration, Either, LogLevel, Option } from "effect"

const logLevels = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
} as const

/** How the sidecar logs: one JSON object a line by default, on stdout. */
export const LogConfig = Config.all({
  format: Config.literal("json", "pretty", "logfmt")("SIDECAR_LOG_FORMAT").pipe(Config.withDefault("json" as const)),
  level: Config.string("SIDECAR_LOG_LEVEL").pipe(
    Config.mapOrFail((value) => {
      const level = logLevels[value.toLowerCase() as keyof typeof logLevels]
      return level === undefined
        ? Either.left(ConfigError.InvalidData([], `Expected one of (${Object.keys(logLevels).join(", ")}) but received "${value}"`))
        : Either.right(level)
    }),
    Config.withDefault(LogLevel.Info)
  )
})

/** The whole shutdown (drain, interrupt runs, close the database) must fit in this; children get a share of it. */
export const ShutdownTimeout = Config.integer("SIDECAR_SHUTDOWN_TIMEOUT_SECONDS").pipe(
  Config.validate({ message: "must be a whole number of seconds, 1 to 3600", validation: (n) => n >= 1 && n <= 3600 }),
  Config.withDefault(10),
  Config.map(Duration.seconds)
)

/** How long a finished task is kept; none (0) keeps everything. */
export const Retention = Config.integer("SIDECAR_RETENTION_HOURS").pipe(
  Config.validate({ message: "must be a whole number of hours, 0 (keep everything) or more", validation: (n) => n >= 0 }),
  Config.withDefault(168),
  Config.map((hours) => (hours === 0 ? Option.none() : Option.some(Duration.hours(hours))))
)

const isLoopback = (host: string) =>
  host === "localhost" || host === "::1" || host === "[::1]" ||
  /^127\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)$/.test(host)

/**
 * Who may call the API. `trusted-header` trusts an in-pod authenticating proxy to set X-Remote-User, so the sidecar
 * must be reachable only through it: it binds loopback, and refuses to start on any other address.
 */
const Listen = Config.all({
  authnMode: Config.literal("unauthenticated", "trusted-header")("SIDECAR_AUTHN_MODE").pipe(
    Config.withDefault("unauthenticated" as const)
  ),
  host: Config.option(Config.nonEmptyString("SIDECAR_HOST"))
}).pipe(
  Config.mapOrFail(({ authnMode, host }): Either.Either<
    { readonly authnMode: typeof authnMode; readonly host: string },
    ConfigError.ConfigError
  > => {
    if (authnMode === "unauthenticated") return Either.right({ authnMode, host: Option.getOrElse(host, () => "0.0.0.0") })
    if (Option.isSome(host) && !isLoopback(host.value)) {
      return Either.left(ConfigError.InvalidData(
        ["SIDECAR_HOST"],
        `must be a loopback address (127.0.0.0/8, ::1 or localhost) when SIDECAR_AUTHN_MODE=trusted-header, ` +
          `but is "${host.value}"`
      ))
    }
    return Either.right({ authnMode, host: Option.getOrElse(host, () => "127.0.0.1") })
  })
)

/** Everything the sidecar reads from its environment, with the defaults a new user gets. */
export const AppConfig = Config.all({
  // 0 asks the OS for a free port (the log line says which); tests use it.
  port: Config.integer("SIDECAR_PORT").pipe(
    Config.validate({ message: "must be a port number, 0 to 65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(7777)
  ),
  listen: Listen,
  dbPath: Config.nonEmptyString("SIDECAR_DB").pipe(Config.withDefault("./data/sidecar.db")),
  commandsFile: Config.option(Config.nonEmptyString("SIDECAR_COMMANDS")),
  log: LogConfig,
  shutdownTimeout: ShutdownTimeout,
  retention: Retention
})
export type AppConfig = Config.Config.Success<typeof AppConfig>
