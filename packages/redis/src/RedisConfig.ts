/**
 * Connection settings, read from the environment under the names of the original service
 * (`REDIS_URL`, `CACHE_SOCKET_TIMEOUT_MS`, ...) through Effect's `Config`, so a test swaps the
 * `ConfigProvider` instead of mutating `process.env`.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { readFileSync } from "node:fs"

/**
 * Validated connection settings. The URL is `Redacted`: printing a config never prints a password.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisConfig {
  /**
   * `redis://[user:pass@]host:port[/db]` or `rediss://...` (TLS, certificate verification on); or a Sentinel set:
   * `redis+sentinel://[user:pass@]host:port[,host:port...]/master-name[/db]` (`rediss+sentinel://`: TLS to the
   * data nodes and to the sentinels). The user and password are the data nodes'. Or a Cluster:
   * `redis+cluster://[user:pass@]host:port[,host:port...]` (`rediss+cluster://`: TLS to every node), the hosts being
   * seed nodes (any of the cluster's nodes; the rest are discovered).
   */
  readonly url: Redacted.Redacted<string>
  /**
   * `REDIS_SENTINEL_PASSWORD`, or `sentinelPassword` in code: the password of the sentinels themselves (their own
   * `requirepass`), when they have one. Only for a `redis+sentinel://` URL.
   */
  readonly sentinelPassword: Option.Option<Redacted.Redacted<string>>
  /** `CACHE_SOCKET_CONNECT_TIMEOUT_MS`: how long one TCP/TLS connect may take. */
  readonly connectTimeout: Duration.Duration
  /** `CACHE_SOCKET_TIMEOUT_MS`: the deadline of every command, enforced by Effect and by the socket. */
  readonly commandTimeout: Duration.Duration
  /** `CACHE_HEALTH_CHECK_INTERVAL` (seconds): a connection idle this long is PINGed before it is trusted. */
  readonly healthCheckInterval: Duration.Duration
  /** `CACHE_MAX_CONNECTIONS`: the most sockets the connection layer opens. */
  readonly maxConnections: number
  /** `CACHE_MAX_RETRIES`: retries of a failed read (the cache's default retry policy). */
  readonly maxRetries: number
  /** `CACHE_RETRY_DELAY` (seconds): the base of the exponential backoff between retries. */
  readonly retryDelay: Duration.Duration
  /** `CACHE_TLS_CA_FILE`'s contents, or `tlsCa` in code: a PEM CA bundle for a private CA. */
  readonly tlsCa: Option.Option<string>
  /** TCP keepalive initial delay (the original service used 60 s). */
  readonly keepAlive: Duration.Duration
  /**
   * Cluster only: `REDIS_CLUSTER_SCALE_READS`, or `scaleReads` in code: where reads go. `master` (default): every
   * command to the slot's primary, so a read sees every acknowledged write. `all` / `replica`: reads (`GET`, `MGET`,
   * `SCAN`) may go to a replica (any node of the slot / replicas only), which replicates asynchronously: a read may
   * miss writes the primary acknowledged up to the replication lag before (usually < 1 ms on a LAN, seconds under
   * load or after a resync), and a value written then read back may read as the older one.
   */
  readonly scaleReads?: ScaleReads | undefined
}

/**
 * Cluster only: where reads go (see {@link RedisConfig.scaleReads}).
 *
 * @since 0.3.0
 * @category models
 */
export type ScaleReads = "master" | "replica" | "all"

/**
 * What a user may pass in code; everything but the URL has a default.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly url: string | Redacted.Redacted<string>
  readonly sentinelPassword?: string | Redacted.Redacted<string>
  readonly connectTimeout?: Duration.DurationInput
  readonly commandTimeout?: Duration.DurationInput
  readonly healthCheckInterval?: Duration.DurationInput
  readonly maxConnections?: number
  readonly maxRetries?: number
  readonly retryDelay?: Duration.DurationInput
  readonly tlsCa?: string
  readonly keepAlive?: Duration.DurationInput
  readonly scaleReads?: ScaleReads
}

/**
 * The defaults of the original service, except `maxConnections` (see the README: measured).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  url: "redis://127.0.0.1:6379",
  connectTimeout: Duration.millis(2000),
  commandTimeout: Duration.millis(2000),
  healthCheckInterval: Duration.seconds(30),
  maxConnections: 1,
  maxRetries: 2,
  retryDelay: Duration.millis(100),
  keepAlive: Duration.seconds(60)
} as const

/**
 * A `host:port` pair.
 *
 * @since 0.3.0
 * @category models
 */
export interface Address {
  readonly host: string
  readonly port: number
}

/**
 * What every URL form carries: TLS on or off, and the credentials of the data nodes.
 *
 * @since 0.3.0
 * @category models
 */
export interface Credentials {
  readonly tls: boolean
  readonly username: Option.Option<string>
  readonly password: Option.Option<Redacted.Redacted<string>>
}

/**
 * A single server: `redis://` / `rediss://`. `password` stays `Redacted`.
 *
 * @since 0.3.0
 * @category models
 */
export interface StandaloneUrl extends Credentials {
  readonly topology: "standalone"
  readonly host: string
  readonly port: number
  readonly db: number
}

/**
 * A Sentinel set: `redis+sentinel://` / `rediss+sentinel://`. The sentinels are asked for the primary of
 * `masterName`; `username` / `password` authenticate to the data nodes (the sentinels' own password is
 * {@link RedisConfig.sentinelPassword}); `tls` applies to the data nodes and to the sentinels.
 *
 * @since 0.3.0
 * @category models
 */
export interface SentinelUrl extends Credentials {
  readonly topology: "sentinel"
  readonly sentinels: ReadonlyArray<Address>
  readonly masterName: string
  readonly db: number
}

/**
 * A Cluster: `redis+cluster://` / `rediss+cluster://`. `seeds` are the startup nodes (any nodes of the cluster; the
 * others are discovered with `CLUSTER SLOTS`); `username` / `password` authenticate to every node; `tls` applies to
 * every node. A cluster has one database (`db` is always 0).
 *
 * @since 0.3.0
 * @category models
 */
export interface ClusterUrl extends Credentials {
  readonly topology: "cluster"
  readonly seeds: ReadonlyArray<Address>
  readonly db: 0
}

/**
 * The parts of a Redis URL the connection needs.
 *
 * @since 0.1.0
 * @category models
 */
export type ParsedUrl = StandaloneUrl | SentinelUrl | ClusterUrl

/** The port of a sentinel given without one (Redis Sentinel's default). */
export const defaultSentinelPort = 26379

const decode = (s: string) => {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

const sentinelForm = "redis+sentinel://[user:password@]host:port[,host:port...]/master-name[/db]"
const clusterForm = "redis+cluster://[user:password@]host:port[,host:port...]"

const parsePort = (text: string, fallback: number): number | undefined => {
  if (text === "") return fallback
  if (!/^[0-9]+$/.test(text)) return undefined
  const port = Number(text)
  return port >= 1 && port <= 65535 ? port : undefined
}

/**
 * `redis+sentinel://` / `rediss+sentinel://`, parsed by hand: WHATWG `URL` cannot hold a list of hosts.
 * Messages name the position of a bad host, never the URL (it may hold a password).
 */
const parseSentinelUrl = (text: string, tls: boolean): Either.Either<SentinelUrl, string> => {
  const rest = text.slice(text.indexOf("://") + 3)
  if (/[?#]/.test(rest)) return Either.left(`has a query or fragment: expected ${sentinelForm}`)
  // The user info ends at the last "@" (a password's own "@" and "/" should be percent-encoded, but a raw "@" works).
  const at = rest.lastIndexOf("@")
  const userinfo = at >= 0 ? rest.slice(0, at) : undefined
  const afterUser = at >= 0 ? rest.slice(at + 1) : rest
  const slash = afterUser.indexOf("/")
  const hostList = slash >= 0 ? afterUser.slice(0, slash) : afterUser
  const path = slash >= 0 ? afterUser.slice(slash + 1) : ""
  if (hostList === "") return Either.left(`has no sentinel hosts: expected ${sentinelForm}`)
  const hosts = parseHosts(hostList, "sentinel", defaultSentinelPort, sentinelForm)
  if (Either.isLeft(hosts)) return Either.left(hosts.left)
  const sentinels = hosts.right
  const segments = path === "" ? [] : path.split("/")
  if (segments.length > 0 && segments[segments.length - 1] === "") segments.pop()
  const masterName = segments[0] === undefined ? "" : decode(segments[0])
  if (masterName === "") return Either.left(`has no master name in its path: expected ${sentinelForm}`)
  if (segments.length > 2) return Either.left(`has too many path segments: expected ${sentinelForm}`)
  const dbText = segments[1] ?? ""
  const db = dbText === "" ? 0 : /^[0-9]+$/.test(dbText) ? Number(dbText) : Number.NaN
  if (!Number.isInteger(db) || db < 0) return Either.left("has an invalid database number in its path")
  let username: Option.Option<string> = Option.none()
  let password: Option.Option<Redacted.Redacted<string>> = Option.none()
  if (userinfo !== undefined) ({ password, username } = parseUserinfo(userinfo))
  return Either.right({ topology: "sentinel", tls, sentinels, masterName, db, username, password })
}

const parseUserinfo = (userinfo: string) => {
  const colon = userinfo.indexOf(":")
  const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo
  const pass = colon >= 0 ? userinfo.slice(colon + 1) : ""
  return {
    username: user === "" ? Option.none<string>() : Option.some(decode(user)),
    password: pass === "" ? Option.none<Redacted.Redacted<string>>() : Option.some(Redacted.make(decode(pass)))
  }
}

/** `host:port,host:port,...`; messages name the position of a bad host (`kind host 2 of 3`), never its text. */
const parseHosts = (
  hostList: string,
  kind: string,
  defaultPort: number,
  form: string
): Either.Either<ReadonlyArray<Address>, string> => {
  const out: Array<Address> = []
  const entries = hostList.split(",")
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!
    const position = `${kind} host ${i + 1} of ${entries.length}`
    if (entry === "") return Either.left(`has an empty ${position}: expected ${form}`)
    const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(.*))?$/.exec(entry)
    if (m === null) return Either.left(`has an invalid ${position} (expected host:port or [ipv6]:port)`)
    const host = decode(m[1] ?? m[2] ?? "")
    if (host === "") return Either.left(`has an empty ${position}`)
    const port = parsePort(m[3] ?? "", defaultPort)
    if (port === undefined) return Either.left(`has an invalid port in ${position}`)
    out.push({ host, port })
  }
  return Either.right(out)
}

/**
 * `redis+cluster://` / `rediss+cluster://`: seed nodes, optional credentials, no path but an optional `/` or `/0`
 * (a cluster has only database 0), no query. Messages name the bad part, never the URL.
 */
const parseClusterUrl = (text: string, tls: boolean): Either.Either<ClusterUrl, string> => {
  const rest = text.slice(text.indexOf("://") + 3)
  if (/[?#]/.test(rest)) return Either.left(`has a query or fragment: expected ${clusterForm}`)
  const at = rest.lastIndexOf("@")
  const userinfo = at >= 0 ? rest.slice(0, at) : undefined
  const afterUser = at >= 0 ? rest.slice(at + 1) : rest
  const slash = afterUser.indexOf("/")
  const hostList = slash >= 0 ? afterUser.slice(0, slash) : afterUser
  const path = slash >= 0 ? afterUser.slice(slash + 1) : ""
  if (hostList === "") return Either.left(`has no seed nodes: expected ${clusterForm}`)
  const hosts = parseHosts(hostList, "seed", 6379, clusterForm)
  if (Either.isLeft(hosts)) return Either.left(hosts.left)
  if (path !== "" && path !== "0" && path !== "0/") {
    return Either.left(`has a path: a cluster has only database 0 (expected ${clusterForm})`)
  }
  const { password, username } = userinfo === undefined
    ? { username: Option.none<string>(), password: Option.none<Redacted.Redacted<string>>() }
    : parseUserinfo(userinfo)
  return Either.right({ topology: "cluster", tls, seeds: hosts.right, db: 0, username, password })
}

/**
 * Parses a Redis URL: `redis://` / `rediss://` (one server) or `redis+sentinel://` / `rediss+sentinel://` (a
 * Sentinel set). The error message never contains the URL itself (it may hold a password).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseUrl = (url: Redacted.Redacted<string>): Either.Either<ParsedUrl, string> => {
  const text = Redacted.value(url)
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase()
  if (scheme === "redis+sentinel" || scheme === "rediss+sentinel") {
    return parseSentinelUrl(text, scheme === "rediss+sentinel")
  }
  if (scheme === "redis+cluster" || scheme === "rediss+cluster") {
    return parseClusterUrl(text, scheme === "rediss+cluster")
  }
  let parsed: URL
  try {
    parsed = new URL(text)
  } catch {
    return Either.left(
      "is not a valid URL (expected redis://[user:password@]host:port[/db], rediss://..., " + sentinelForm + " or " +
        clusterForm + ")"
    )
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    return Either.left(
      `has scheme "${parsed.protocol}": expected redis:, rediss:, redis+sentinel:, rediss+sentinel:, redis+cluster: or rediss+cluster:`
    )
  }
  if (parsed.hostname === "") return Either.left("has no host")
  const port = parsed.port === "" ? 6379 : Number(parsed.port)
  if (!Number.isInteger(port) || port < 1 || port > 65535) return Either.left("has an invalid port")
  const path = parsed.pathname.replace(/^\//, "")
  const db = path === "" ? 0 : Number(path)
  if (!Number.isInteger(db) || db < 0) return Either.left("has an invalid database number in its path")
  return Either.right({
    topology: "standalone",
    tls: parsed.protocol === "rediss:",
    // URL keeps IPv6 literals bracketed; sockets want them bare.
    host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
    port,
    db,
    username: parsed.username === "" ? Option.none() : Option.some(decode(parsed.username)),
    password: parsed.password === "" ? Option.none() : Option.some(Redacted.make(decode(parsed.password)))
  })
}

/**
 * The address a connection names as its server (spans, `RedisConnection.server`): the server itself, for a
 * Sentinel set the first sentinel (the primary changes at every failover; ask the sentinels), for a Cluster the first
 * seed node.
 *
 * @since 0.3.0
 * @category utils
 */
export const serverOf = (url: ParsedUrl): { readonly host: string; readonly port: number; readonly tls: boolean } =>
  url.topology === "standalone"
    ? { host: url.host, port: url.port, tls: url.tls }
    : url.topology === "sentinel"
    ? { host: url.sentinels[0]!.host, port: url.sentinels[0]!.port, tls: url.tls }
    : { host: url.seeds[0]!.host, port: url.seeds[0]!.port, tls: url.tls }

const ConfigErrorInvalid = (path: Array<string>, message: string) => ConfigError.InvalidData(path, message)

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: `${name} must be a positive integer`, validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

const nonNegativeInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: `${name} must be a non-negative integer`, validation: (n) => n >= 0 }),
    Config.withDefault(fallback)
  )

const positiveSeconds = (name: string, fallback: Duration.Duration) =>
  Config.number(name).pipe(
    Config.validate({ message: `${name} must be a positive number of seconds`, validation: (n) => Number.isFinite(n) && n > 0 }),
    Config.map((n) => Duration.millis(Math.round(n * 1000))),
    Config.withDefault(fallback)
  )

const urlConfig = Config.redacted("REDIS_URL").pipe(
  Config.withDefault(Redacted.make(defaults.url)),
  Config.mapOrFail((url) =>
    Either.mapLeft(parseUrl(url), (problem) => ConfigErrorInvalid(["REDIS_URL"], `REDIS_URL ${problem}`)).pipe(
      Either.map(() => url)
    )
  )
)


/**
 * Reads and validates the settings from the current `ConfigProvider` (the environment by default).
 * A bad value fails with a `ConfigError` naming the variable; the URL never appears in it.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<RedisConfig> = Config.all({
  url: urlConfig,
  sentinelPassword: Config.option(Config.redacted("REDIS_SENTINEL_PASSWORD")).pipe(
    Config.map(Option.filter((p) => Redacted.value(p) !== ""))
  ),
  connectTimeout: positiveInt("CACHE_SOCKET_CONNECT_TIMEOUT_MS", 2000).pipe(Config.map(Duration.millis)),
  commandTimeout: positiveInt("CACHE_SOCKET_TIMEOUT_MS", 2000).pipe(Config.map(Duration.millis)),
  healthCheckInterval: positiveSeconds("CACHE_HEALTH_CHECK_INTERVAL", defaults.healthCheckInterval),
  maxConnections: positiveInt("CACHE_MAX_CONNECTIONS", defaults.maxConnections),
  maxRetries: nonNegativeInt("CACHE_MAX_RETRIES", defaults.maxRetries),
  retryDelay: positiveSeconds("CACHE_RETRY_DELAY", defaults.retryDelay),
  tlsCa: Config.option(Config.string("CACHE_TLS_CA_FILE")).pipe(
    Config.mapOrFail((path) => {
      if (Option.isNone(path)) return Either.right(Option.none<string>())
      try {
        // Reading a file at configuration time is what a CA path means; it happens once, at layer build.
        return Either.right(Option.some(readFileSync(path.value, "utf8")))
      } catch (e) {
        return Either.left(
          ConfigErrorInvalid(["CACHE_TLS_CA_FILE"], `CACHE_TLS_CA_FILE cannot be read: ${(e as Error).message}`)
        )
      }
    })
  ),
  keepAlive: Config.succeed(defaults.keepAlive),
  scaleReads: Config.literal("master", "replica", "all")("REDIS_CLUSTER_SCALE_READS").pipe(
    Config.withDefault("master" as const)
  )
})

/**
 * A command deadline given at run time (runtime tuning), validated as {@link fromOptions} validates
 * `commandTimeout`: a positive, finite duration.
 *
 * @since 0.4.0
 * @category constructors
 */
export const commandTimeoutFrom = (input: Duration.DurationInput): Either.Either<Duration.Duration, ConfigError.ConfigError> =>
  positiveDuration("commandTimeout", input)

const positiveDuration = (name: string, input: Duration.DurationInput): Either.Either<Duration.Duration, ConfigError.ConfigError> => {
  const d = Duration.decodeUnknown(input)
  return Option.isSome(d) && Duration.isFinite(d.value) && Duration.greaterThan(d.value, Duration.zero)
    ? Either.right(d.value)
    : Either.left(ConfigErrorInvalid([name], `${name} must be a positive, finite duration`))
}

/**
 * Validates settings given in code, with the same rules as {@link config}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromOptions = (options: Options): Either.Either<RedisConfig, ConfigError.ConfigError> => {
  const url = Redacted.isRedacted(options.url) ? options.url : Redacted.make(options.url)
  const problem = Either.getLeft(parseUrl(url))
  if (Option.isSome(problem)) return Either.left(ConfigErrorInvalid(["url"], `url ${problem.value}`))
  const duration = (name: string, input: Duration.DurationInput | undefined, fallback: Duration.Duration) =>
    input === undefined ? Either.right(fallback) : positiveDuration(name, input)
  const integer = (name: string, input: number | undefined, fallback: number, min: number) =>
    input === undefined
      ? Either.right(fallback)
      : Number.isInteger(input) && input >= min
      ? Either.right(input)
      : Either.left(ConfigErrorInvalid([name], `${name} must be an integer >= ${min}`))
  const sentinelPassword = options.sentinelPassword === undefined
    ? Option.none()
    : Option.some(Redacted.isRedacted(options.sentinelPassword) ? options.sentinelPassword : Redacted.make(options.sentinelPassword))
  return Either.all({
    url: Either.right(url),
    sentinelPassword: Either.right(Option.filter(sentinelPassword, (p) => Redacted.value(p) !== "")),
    connectTimeout: duration("connectTimeout", options.connectTimeout, defaults.connectTimeout),
    commandTimeout: duration("commandTimeout", options.commandTimeout, defaults.commandTimeout),
    healthCheckInterval: duration("healthCheckInterval", options.healthCheckInterval, defaults.healthCheckInterval),
    maxConnections: integer("maxConnections", options.maxConnections, defaults.maxConnections, 1),
    maxRetries: integer("maxRetries", options.maxRetries, defaults.maxRetries, 0),
    retryDelay: duration("retryDelay", options.retryDelay, defaults.retryDelay),
    tlsCa: Either.right(Option.fromNullable(options.tlsCa)),
    keepAlive: duration("keepAlive", options.keepAlive, defaults.keepAlive),
    scaleReads: options.scaleReads === undefined || ["master", "replica", "all"].includes(options.scaleReads)
      ? Either.right(options.scaleReads ?? ("master" as const))
      : Either.left(ConfigErrorInvalid(["scaleReads"], `scaleReads must be "master", "replica" or "all"`))
  })
}

/**
 * A printable view of the settings: the password is replaced by `<redacted>`, durations are in ms.
 * This is what stats, logs and snapshots show.
 *
 * @since 0.1.0
 * @category utils
 */
export const describe = (config: RedisConfig): Record<string, string | number | boolean> => {
  const parsed = parseUrl(config.url)
  const host = (h: string) => (h.includes(":") ? `[${h}]` : h)
  const auth = (p: ParsedUrl) =>
    Option.isSome(p.password) ? `${Option.getOrElse(p.username, () => "")}:<redacted>@` :
    Option.isSome(p.username) ? `${p.username.value}@` : ""
  const url = Either.match(parsed, {
    onLeft: () => "<invalid>",
    onRight: (p) =>
      p.topology === "standalone"
        ? `${p.tls ? "rediss" : "redis"}://${auth(p)}${host(p.host)}:${p.port}/${p.db}`
        : p.topology === "cluster"
        ? `${p.tls ? "rediss" : "redis"}+cluster://${auth(p)}${p.seeds.map((s) => `${host(s.host)}:${s.port}`).join(",")}`
        : `${p.tls ? "rediss" : "redis"}+sentinel://${auth(p)}${
          p.sentinels.map((s) => `${host(s.host)}:${s.port}`).join(",")
        }/${encodeURIComponent(p.masterName)}/${p.db}`
  })
  const topology: Record<string, string | number | boolean> = Either.isRight(parsed) && parsed.right.topology === "cluster"
    ? {
      topology: "cluster",
      seeds: parsed.right.seeds.map((s) => `${host(s.host)}:${s.port}`).join(","),
      scaleReads: config.scaleReads ?? "master"
    }
    : Either.isRight(parsed) && parsed.right.topology === "sentinel"
    ? {
      topology: "sentinel",
      sentinels: parsed.right.sentinels.map((s) => `${host(s.host)}:${s.port}`).join(","),
      masterName: parsed.right.masterName,
      sentinelPassword: Option.isSome(config.sentinelPassword) ? "<redacted>" : "none"
    }
    : { topology: "standalone" }
  return {
    url,
    ...topology,
    tls: Either.isRight(parsed) && parsed.right.tls,
    connectTimeoutMs: Duration.toMillis(config.connectTimeout),
    commandTimeoutMs: Duration.toMillis(config.commandTimeout),
    healthCheckIntervalMs: Duration.toMillis(config.healthCheckInterval),
    maxConnections: config.maxConnections,
    maxRetries: config.maxRetries,
    retryDelayMs: Duration.toMillis(config.retryDelay),
    customCa: Option.isSome(config.tlsCa)
  }
}
