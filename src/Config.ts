import { Config, ConfigProvider, Duration, Effect, type LogLevel, Option } from "effect"

const logLevels: Record<string, LogLevel.LogLevel> = {
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  warning: "Warn",
  error: "Error",
  fatal: "Fatal",
  none: "None"
}

const invalid = (name: string, rule: string, value: string) =>
  new Config.ConfigError(new ConfigProvider.SourceError({ message: `${name} ${rule}, but is "${value}"` }))

/** A ConfigError's words, for the line a refused start prints. */
export const describeConfigError = (error: Config.ConfigError): string => error.cause.message

const wholeNumber = (name: string, min: number, max: number, rule: string) =>
  Config.String(name).pipe(
    Config.mapEffect((text) =>
      /^\d{1,9}$/.test(text) && Number(text) >= min && Number(text) <= max
        ? Effect.succeed(Number(text))
        : Effect.fail(invalid(name, rule, text))
    )
  )

const oneOf = <const A extends string>(name: string, values: ReadonlyArray<A>) =>
  Config.String(name).pipe(
    Config.mapEffect((text) =>
      values.includes(text as A)
        ? Effect.succeed(text as A)
        : Effect.fail(invalid(name, `must be one of ${values.join(", ")}`, text))
    )
  )

/** How the sidecar logs (JSON lines on stdout by default). */
export const LogConfig = Config.all({
  format: oneOf("SIDECAR_LOG_FORMAT", ["json", "pretty", "logfmt"]).pipe(Config.withDefault("json" as const)),
  level: Config.String("SIDECAR_LOG_LEVEL").pipe(
    Config.mapEffect((value) => {
      const level = logLevels[value.toLowerCase()]
      return level === undefined
        ? Effect.fail(invalid("SIDECAR_LOG_LEVEL", `must be one of ${Object.keys(logLevels).join(", ")}`, value))
        : Effect.succeed(level)
    }),
    Config.withDefault<LogLevel.LogLevel>("Info")
  )
})

/** The whole shutdown must fit in this. */
export const ShutdownTimeout = wholeNumber(
  "SIDECAR_SHUTDOWN_TIMEOUT_SECONDS",
  1,
  3600,
  "must be a whole number of seconds, 1 to 3600"
).pipe(Config.withDefault(10), Config.map(Duration.seconds))

/** How long a finished task is kept; 0: forever. */
export const Retention = wholeNumber(
  "SIDECAR_RETENTION_HOURS",
  0,
  1e9,
  "must be a whole number of hours, 0 (keep everything) or more"
).pipe(
  Config.withDefault(168),
  Config.map((hours) => (hours === 0 ? Option.none() : Option.some(Duration.hours(hours))))
)

const isLoopback = (host: string) =>
  host === "localhost" || host === "::1" || host === "[::1]" ||
  /^127\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)$/.test(host)

/** Who may call the API; under `trusted-header` (an in-pod proxy sets X-Remote-User) it binds loopback only. */
const Listen = Config.all({
  authnMode: oneOf("SIDECAR_AUTHN_MODE", ["unauthenticated", "trusted-header"]).pipe(
    Config.withDefault("unauthenticated" as const)
  ),
  host: Config.option(Config.NonEmptyString("SIDECAR_HOST"))
}).pipe(
  Config.mapEffect(({ authnMode, host }): Effect.Effect<
    { readonly authnMode: typeof authnMode; readonly host: string },
    Config.ConfigError
  > => {
    if (authnMode === "unauthenticated") {
      return Effect.succeed({ authnMode, host: Option.getOrElse(host, () => "0.0.0.0") })
    }
    if (Option.isSome(host) && !isLoopback(host.value)) {
      return Effect.fail(invalid(
        "SIDECAR_HOST",
        "must be a loopback address (127.0.0.0/8, ::1 or localhost) when SIDECAR_AUTHN_MODE=trusted-header",
        host.value
      ))
    }
    return Effect.succeed({ authnMode, host: Option.getOrElse(host, () => "127.0.0.1") })
  })
)

/** Everything the sidecar reads from its environment, with defaults. */
export const AppConfig = Config.all({
  // 0: a free port, which the log line names
  port: wholeNumber("SIDECAR_PORT", 0, 65535, "must be a port number, 0 to 65535").pipe(Config.withDefault(7777)),
  listen: Listen,
  dbPath: Config.NonEmptyString("SIDECAR_DB").pipe(Config.withDefault("./data/sidecar.db")),
  commandsFile: Config.option(Config.NonEmptyString("SIDECAR_COMMANDS")),
  log: LogConfig,
  shutdownTimeout: ShutdownTimeout,
  retention: Retention
})
export type AppConfig = Config.Success<typeof AppConfig>
