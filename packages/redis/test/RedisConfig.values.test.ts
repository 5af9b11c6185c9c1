/**
 * What a user reads when a setting is wrong (the messages of the `ConfigError`s, not only the variable's name), every
 * option of `fromOptions` with its bound, the standalone URL's edge cases, and `describe()` / `serverOf` field by
 * field. Sentinel and Cluster URLs are covered in Sentinel.test.ts / Cluster.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as RedisConfig from "../src/RedisConfig.js"

const read = (env: Record<string, string>) =>
  RedisConfig.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

const leftMessage = <A>(e: Either.Either<A, unknown>) => (Either.isLeft(e) ? String(e.left) : "no error")
const urlProblem = (url: string) => Either.getLeft(RedisConfig.parseUrl(Redacted.make(url))).pipe(Option.getOrElse(() => "ok"))

describe("RedisConfig: the messages of bad settings", () => {
  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ["CACHE_SOCKET_TIMEOUT_MS", "0", "CACHE_SOCKET_TIMEOUT_MS must be a positive integer"],
    ["CACHE_SOCKET_CONNECT_TIMEOUT_MS", "-5", "CACHE_SOCKET_CONNECT_TIMEOUT_MS must be a positive integer"],
    ["CACHE_MAX_CONNECTIONS", "0", "CACHE_MAX_CONNECTIONS must be a positive integer"],
    ["CACHE_MAX_RETRIES", "-1", "CACHE_MAX_RETRIES must be a non-negative integer"],
    ["CACHE_HEALTH_CHECK_INTERVAL", "0", "CACHE_HEALTH_CHECK_INTERVAL must be a positive number of seconds"],
    ["CACHE_HEALTH_CHECK_INTERVAL", "Infinity", "CACHE_HEALTH_CHECK_INTERVAL must be a positive number of seconds"],
    ["CACHE_RETRY_DELAY", "-0.5", "CACHE_RETRY_DELAY must be a positive number of seconds"],
    ["CACHE_TLS_CA_FILE", "/definitely/not/here.pem", "CACHE_TLS_CA_FILE cannot be read: ENOENT"],
    ["REDIS_URL", "redis://h:0", "REDIS_URL has an invalid port"]
  ]
  for (const [name, value, message] of cases) {
    it.effect(`${name}=${value}: "${message}"`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(read({ [name]: value }))
        expect(String(error)).toContain(message)
      }))
  }

  it.effect("the smallest valid values are accepted: 1 ms, 1 socket, 0 retries, a fraction of a second", () =>
    Effect.gen(function*() {
      const c = yield* read({
        CACHE_SOCKET_TIMEOUT_MS: "1",
        CACHE_SOCKET_CONNECT_TIMEOUT_MS: "1",
        CACHE_MAX_CONNECTIONS: "1",
        CACHE_MAX_RETRIES: "0",
        CACHE_HEALTH_CHECK_INTERVAL: "0.0004",
        CACHE_RETRY_DELAY: "1.0006",
        REDIS_CLUSTER_SCALE_READS: "all",
        REDIS_SENTINEL_PASSWORD: ""
      })
      expect(Duration.toMillis(c.commandTimeout)).toBe(1)
      expect(c.maxRetries).toBe(0)
      // Seconds to milliseconds, rounded.
      expect(Duration.toMillis(c.healthCheckInterval)).toBe(0)
      expect(Duration.toMillis(c.retryDelay)).toBe(1001)
      expect(Duration.toMillis(c.keepAlive)).toBe(60_000)
      expect(c.scaleReads).toBe("all")
      // An empty sentinel password is no password.
      expect(Option.isNone(c.sentinelPassword)).toBe(true)
      const withPassword = yield* read({ REDIS_SENTINEL_PASSWORD: "s" })
      expect(Option.map(withPassword.sentinelPassword, Redacted.value)).toEqual(Option.some("s"))
      expect((yield* read({})).scaleReads).toBe("master")
      expect(String(yield* Effect.flip(read({ REDIS_CLUSTER_SCALE_READS: "nearest" })))).toContain("REDIS_CLUSTER_SCALE_READS")
    }))
})

describe("RedisConfig.fromOptions: every option and its bound", () => {
  it("durations must be positive and finite, each named", () => {
    for (const name of ["connectTimeout", "commandTimeout", "healthCheckInterval", "retryDelay", "keepAlive"] as const) {
      expect(leftMessage(RedisConfig.fromOptions({ url: "redis://h", [name]: Duration.zero }))).toContain(
        `${name} must be a positive, finite duration`
      )
      expect(leftMessage(RedisConfig.fromOptions({ url: "redis://h", [name]: Duration.infinity }))).toContain(name)
      expect(leftMessage(RedisConfig.fromOptions({ url: "redis://h", [name]: "soon" as Duration.DurationInput }))).toContain(name)
      const ok = Either.getOrThrow(RedisConfig.fromOptions({ url: "redis://h", [name]: "1 millis" }))
      expect(Duration.toMillis(ok[name])).toBe(1)
    }
  })

  it("integers: maxConnections >= 1, maxRetries >= 0, whole numbers", () => {
    expect(leftMessage(RedisConfig.fromOptions({ url: "redis://h", maxConnections: 0 }))).toContain(
      "maxConnections must be an integer >= 1"
    )
    expect(leftMessage(RedisConfig.fromOptions({ url: "redis://h", maxConnections: 1.5 }))).toContain("maxConnections")
    expect(leftMessage(RedisConfig.fromOptions({ url: "redis://h", maxRetries: -1 }))).toContain(
      "maxRetries must be an integer >= 0"
    )
    const ok = Either.getOrThrow(RedisConfig.fromOptions({ url: "redis://h", maxConnections: 1, maxRetries: 0 }))
    expect([ok.maxConnections, ok.maxRetries]).toEqual([1, 0])
  })

  it("defaults for everything left out; the URL may be given Redacted; a CA is kept; an empty sentinel password is none", () => {
    const c = Either.getOrThrow(RedisConfig.fromOptions({ url: Redacted.make("redis://h:1/2") }))
    expect(Redacted.value(c.url)).toBe("redis://h:1/2")
    expect({
      connect: Duration.toMillis(c.connectTimeout),
      command: Duration.toMillis(c.commandTimeout),
      health: Duration.toMillis(c.healthCheckInterval),
      maxConnections: c.maxConnections,
      maxRetries: c.maxRetries,
      retryDelay: Duration.toMillis(c.retryDelay),
      keepAlive: Duration.toMillis(c.keepAlive),
      scaleReads: c.scaleReads,
      tlsCa: c.tlsCa,
      sentinelPassword: c.sentinelPassword
    }).toEqual({
      connect: 2000,
      command: 2000,
      health: 30_000,
      maxConnections: 1,
      maxRetries: 2,
      retryDelay: 100,
      keepAlive: 60_000,
      scaleReads: "master",
      tlsCa: Option.none(),
      sentinelPassword: Option.none()
    })
    const full = Either.getOrThrow(RedisConfig.fromOptions({
      url: "redis+sentinel://s/m",
      tlsCa: "PEM",
      sentinelPassword: "sp",
      scaleReads: "replica"
    }))
    expect(full.tlsCa).toEqual(Option.some("PEM"))
    expect(Option.map(full.sentinelPassword, Redacted.value)).toEqual(Option.some("sp"))
    expect(full.scaleReads).toBe("replica")
    const redacted = Either.getOrThrow(RedisConfig.fromOptions({ url: "redis://h", sentinelPassword: Redacted.make("x") }))
    expect(Option.map(redacted.sentinelPassword, Redacted.value)).toEqual(Option.some("x"))
    expect(Option.isNone(Either.getOrThrow(RedisConfig.fromOptions({ url: "redis://h", sentinelPassword: "" })).sentinelPassword))
      .toBe(true)
    expect(leftMessage(RedisConfig.fromOptions({ url: "redis://h", scaleReads: "nearest" as RedisConfig.ScaleReads })))
      .toContain(`scaleReads must be "master", "replica" or "all"`)
    expect(leftMessage(RedisConfig.fromOptions({ url: "redis://h:0" }))).toContain("url has an invalid port")
  })
})

describe("RedisConfig.parseUrl: standalone URLs", () => {
  it("ports 1 to 65535, databases from 0, credentials decoded", () => {
    expect(urlProblem("redis://h:0")).toBe("has an invalid port")
    // (WHATWG URL itself refuses a port above 65535.)
    expect(urlProblem("redis://h:65536")).not.toBe("ok")
    expect(Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("redis://h:65535")))).toMatchObject({ port: 65535 })
    expect(Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("redis://h:1")))).toMatchObject({ port: 1 })
    expect(urlProblem("redis://h/1.5")).toBe("has an invalid database number in its path")
    expect(urlProblem("redis://h/-1")).toBe("has an invalid database number in its path")
    expect(Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("redis://h/")))).toMatchObject({ db: 0 })
    expect(Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("redis://h/15")))).toMatchObject({ db: 15 })
    const p = Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("rediss://us%40er:p%3Aw%40rd@h")))
    expect(p).toMatchObject({ topology: "standalone", tls: true, host: "h", port: 6379 })
    expect(p.username).toEqual(Option.some("us@er"))
    expect(Option.map(p.password, Redacted.value)).toEqual(Option.some("p:w@rd"))
    const noUser = Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("redis://:pw@h")))
    expect(Option.isNone(noUser.username)).toBe(true)
    expect(Option.map(noUser.password, Redacted.value)).toEqual(Option.some("pw"))
    const noPassword = Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("redis://user@h")))
    expect(noPassword.username).toEqual(Option.some("user"))
    expect(Option.isNone(noPassword.password)).toBe(true)
    // A malformed escape is kept as written.
    expect(Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("redis://a%zz@h"))).username).toEqual(Option.some("a%zz"))
  })

  it("the schemes: any case; the others are named in the message", () => {
    expect(Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("REDIS://h")))).toMatchObject({ topology: "standalone", tls: false })
    expect(Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("Redis+Sentinel://s/m")))).toMatchObject({ topology: "sentinel", tls: false })
    expect(Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("REDISS+SENTINEL://s/m")))).toMatchObject({ topology: "sentinel", tls: true })
    expect(Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("Rediss+Cluster://n")))).toMatchObject({ topology: "cluster", tls: true })
    expect(Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("redis+cluster://n")))).toMatchObject({ topology: "cluster", tls: false })
    expect(urlProblem("http://h")).toBe(
      `has scheme "http:": expected redis:, rediss:, redis+sentinel:, rediss+sentinel:, redis+cluster: or rediss+cluster:`
    )
    expect(urlProblem("not a url")).toBe(
      "is not a valid URL (expected redis://[user:password@]host:port[/db], rediss://..., " +
        "redis+sentinel://[user:password@]host:port[,host:port...]/master-name[/db] or " +
        "redis+cluster://[user:password@]host:port[,host:port...])"
    )
    expect(urlProblem("redis://")).toBe("has no host")
    // The scheme is the start of the text: words before it make it no URL.
    expect(urlProblem("x redis+sentinel://s/m")).not.toBe("ok")
    expect(urlProblem("x redis+cluster://n")).not.toBe("ok")
  })

  it("a ConfigError names the setting in its path", () => {
    const pathOf = <A>(e: Either.Either<A, unknown>) => (Either.isLeft(e) ? (e.left as { path?: unknown }).path : undefined)
    expect(pathOf(RedisConfig.fromOptions({ url: "redis://h:0" }))).toEqual(["url"])
    expect(pathOf(RedisConfig.fromOptions({ url: "redis://h", keepAlive: Duration.zero }))).toEqual(["keepAlive"])
    expect(pathOf(RedisConfig.fromOptions({ url: "redis://h", maxRetries: -1 }))).toEqual(["maxRetries"])
    expect(pathOf(RedisConfig.fromOptions({ url: "redis://h", scaleReads: "x" as RedisConfig.ScaleReads }))).toEqual(["scaleReads"])
    const fromEnv = (env: Record<string, string>) => Effect.runSync(Effect.either(read(env)))
    expect(pathOf(fromEnv({ REDIS_URL: "redis://h:0" }))).toEqual(["REDIS_URL"])
    expect(pathOf(fromEnv({ CACHE_TLS_CA_FILE: "/definitely/not/here.pem" }))).toEqual(["CACHE_TLS_CA_FILE"])
  })
})

describe("RedisConfig.parseUrl: Sentinel and Cluster URLs, every message", () => {
  const sentinelForm = "redis+sentinel://[user:password@]host:port[,host:port...]/master-name[/db]"
  const clusterForm = "redis+cluster://[user:password@]host:port[,host:port...]"
  it("Sentinel", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["redis+sentinel://h/m?x=1", `has a query or fragment: expected ${sentinelForm}`],
      ["redis+sentinel://h/m#f", `has a query or fragment: expected ${sentinelForm}`],
      ["redis+sentinel://pw@/m", `has no sentinel hosts: expected ${sentinelForm}`],
      ["redis+sentinel://", `has no sentinel hosts: expected ${sentinelForm}`],
      ["redis+sentinel://a,,b/m", `has an empty sentinel host 2 of 3: expected ${sentinelForm}`],
      ["redis+sentinel://a,[x/m", "has an invalid sentinel host 2 of 2 (expected host:port or [ipv6]:port)"],
      ["redis+sentinel://a:1:2/m", "has an invalid port in sentinel host 1 of 1"],
      ["redis+sentinel://[]:1/m", "has an invalid sentinel host 1 of 1 (expected host:port or [ipv6]:port)"],
      ["redis+sentinel://%zz:1,:5/m", "has an invalid sentinel host 2 of 2 (expected host:port or [ipv6]:port)"],
      ["redis+sentinel://a:0/m", "has an invalid port in sentinel host 1 of 1"],
      ["redis+sentinel://a:65536/m", "has an invalid port in sentinel host 1 of 1"],
      ["redis+sentinel://a:1x/m", "has an invalid port in sentinel host 1 of 1"],
      ["redis+sentinel://a", `has no master name in its path: expected ${sentinelForm}`],
      ["redis+sentinel://a/", `has no master name in its path: expected ${sentinelForm}`],
      ["redis+sentinel://a//1", `has no master name in its path: expected ${sentinelForm}`],
      ["redis+sentinel://a/m/1/2", `has too many path segments: expected ${sentinelForm}`],
      ["redis+sentinel://a/m/x", "has an invalid database number in its path"],
      ["redis+sentinel://a/m/1.5", "has an invalid database number in its path"]
    ]
    for (const [url, problem] of cases) expect([url, urlProblem(url)]).toEqual([url, problem])
    const parse = (url: string) => Either.getOrThrow(RedisConfig.parseUrl(Redacted.make(url)))
    expect(parse("redis+sentinel://a:65535,b:1/m/")).toMatchObject({
      sentinels: [{ host: "a", port: 65535 }, { host: "b", port: 1 }],
      masterName: "m",
      db: 0
    })
    expect(parse("redis+sentinel://a/m/7")).toMatchObject({ sentinels: [{ host: "a", port: 26379 }], db: 7 })
    expect(parse("redis+sentinel://u:p@w@a/m")).toMatchObject({ sentinels: [{ host: "a", port: 26379 }] })
    const creds = parse("redis+sentinel://u:p@w@a/m")
    expect(creds.username).toEqual(Option.some("u"))
    expect(Option.map(creds.password, Redacted.value)).toEqual(Option.some("p@w"))
    const userOnly = parse("redis+sentinel://u@a/m")
    expect(userOnly.username).toEqual(Option.some("u"))
    expect(Option.isNone(userOnly.password)).toBe(true)
    const none = parse("redis+sentinel://a/m")
    expect(Option.isNone(none.username) && Option.isNone(none.password)).toBe(true)
    expect(parse("redis+sentinel://[::1]:5/m")).toMatchObject({ sentinels: [{ host: "::1", port: 5 }] })
    expect(parse("redis+sentinel://h%2Dx/m%2Fn")).toMatchObject({ sentinels: [{ host: "h-x" }], masterName: "m/n" })
    // A trailing slash after the database; a database of two digits; digits only, in ports and databases alike.
    expect(parse("redis+sentinel://a/m/3/")).toMatchObject({ masterName: "m", db: 3 })
    expect(parse("redis+sentinel://a/m/12")).toMatchObject({ db: 12 })
    expect(urlProblem("redis+sentinel://a/m/1e3")).toBe("has an invalid database number in its path")
    expect(urlProblem("redis+sentinel://a:1e3/m")).toBe("has an invalid port in sentinel host 1 of 1")
    expect(urlProblem("redis+sentinel://a]x/m")).toBe("has an invalid sentinel host 1 of 1 (expected host:port or [ipv6]:port)")
    // Empty user info, or a password without a user.
    const empty = parse("redis+sentinel://@a/m")
    expect(empty).toMatchObject({ sentinels: [{ host: "a", port: 26379 }], masterName: "m" })
    expect(Option.isNone(empty.username) && Option.isNone(empty.password)).toBe(true)
    const passwordOnly = parse("redis+sentinel://:pw@a/m")
    expect(Option.isNone(passwordOnly.username)).toBe(true)
    expect(Option.map(passwordOnly.password, Redacted.value)).toEqual(Option.some("pw"))
  })

  it("Cluster", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["redis+cluster://h?x", `has a query or fragment: expected ${clusterForm}`],
      ["redis+cluster://h#x", `has a query or fragment: expected ${clusterForm}`],
      ["redis+cluster://pw@", `has no seed nodes: expected ${clusterForm}`],
      ["redis+cluster:///0", `has no seed nodes: expected ${clusterForm}`],
      ["redis+cluster://a,", `has an empty seed host 2 of 2: expected ${clusterForm}`],
      ["redis+cluster://a:x", "has an invalid port in seed host 1 of 1"],
      ["redis+cluster://a/1", `has a path: a cluster has only database 0 (expected ${clusterForm})`],
      ["redis+cluster://a/0/1", `has a path: a cluster has only database 0 (expected ${clusterForm})`]
    ]
    for (const [url, problem] of cases) expect([url, urlProblem(url)]).toEqual([url, problem])
    const parse = (url: string) => Either.getOrThrow(RedisConfig.parseUrl(Redacted.make(url)))
    for (const url of ["redis+cluster://a", "redis+cluster://a/", "redis+cluster://a/0", "redis+cluster://a/0/"]) {
      expect(parse(url)).toMatchObject({ topology: "cluster", seeds: [{ host: "a", port: 6379 }], db: 0 })
    }
    const creds = parse("redis+cluster://u:p@w@a:1")
    expect(creds.username).toEqual(Option.some("u"))
    expect(Option.map(creds.password, Redacted.value)).toEqual(Option.some("p@w"))
    const none = parse("redis+cluster://a:1")
    expect(Option.isNone(none.username) && Option.isNone(none.password)).toBe(true)
    const empty = parse("redis+cluster://@a:1")
    expect(empty).toMatchObject({ seeds: [{ host: "a", port: 1 }] })
    expect(Option.isNone(empty.username)).toBe(true)
  })
})

describe("RedisConfig.describe and serverOf", () => {
  const config = (options: RedisConfig.Options) => Either.getOrThrow(RedisConfig.fromOptions(options))

  it("a standalone config, field by field", () => {
    expect(RedisConfig.describe(config({
      url: "rediss://user:pw@[::1]:6390/4",
      connectTimeout: "300 millis",
      commandTimeout: "400 millis",
      healthCheckInterval: "5 seconds",
      maxConnections: 3,
      maxRetries: 1,
      retryDelay: "50 millis",
      tlsCa: "PEM"
    }))).toEqual({
      url: "rediss://user:<redacted>@[::1]:6390/4",
      topology: "standalone",
      tls: true,
      connectTimeoutMs: 300,
      commandTimeoutMs: 400,
      healthCheckIntervalMs: 5000,
      maxConnections: 3,
      maxRetries: 1,
      retryDelayMs: 50,
      customCa: true
    })
    expect(RedisConfig.describe(config({ url: "redis://user@h" }))).toMatchObject({
      url: "redis://user@h:6379/0",
      tls: false,
      customCa: false
    })
    expect(RedisConfig.describe(config({ url: "redis://:pw@h" })).url).toBe("redis://:<redacted>@h:6379/0")
    expect(RedisConfig.describe(config({ url: "redis://h" })).url).toBe("redis://h:6379/0")
  })

  it("Sentinel and Cluster: the whole URL form, hosts bracketed when IPv6", () => {
    expect(RedisConfig.describe(config({ url: "redis+sentinel://u:pw@[::1]:1,s2/my%20master/2" }))).toMatchObject({
      url: "redis+sentinel://u:<redacted>@[::1]:1,s2:26379/my%20master/2",
      topology: "sentinel",
      sentinels: "[::1]:1,s2:26379",
      masterName: "my master",
      sentinelPassword: "none",
      tls: false
    })
    expect(RedisConfig.describe(config({ url: "rediss+cluster://[::1]:7000,n2" }))).toMatchObject({
      url: "rediss+cluster://[::1]:7000,n2:6379",
      topology: "cluster",
      seeds: "[::1]:7000,n2:6379",
      tls: true
    })
  })

  it("the other forms: TLS to the sentinels, a plain cluster, a sentinel password, a config built by hand", () => {
    expect(RedisConfig.describe(config({ url: "rediss+sentinel://s/m", sentinelPassword: "sp" }))).toMatchObject({
      url: "rediss+sentinel://s:26379/m/0",
      sentinelPassword: "<redacted>",
      tls: true
    })
    expect(RedisConfig.describe(config({ url: "redis+cluster://n:7000", scaleReads: "all" }))).toMatchObject({
      url: "redis+cluster://n:7000",
      scaleReads: "all",
      tls: false
    })
    // RedisConfig is a plain interface: a value built without fromOptions may lack scaleReads or hold a bad URL.
    const byHand: RedisConfig.RedisConfig = { ...config({ url: "redis+cluster://n:7000" }), scaleReads: undefined }
    expect(RedisConfig.describe(byHand)).toMatchObject({ scaleReads: "master" })
    expect(RedisConfig.describe({ ...byHand, url: Redacted.make("nonsense") })).toMatchObject({
      url: "<invalid>",
      topology: "standalone",
      tls: false
    })
    for (const scaleReads of ["master", "replica", "all"] as const) {
      expect(Either.getOrThrow(RedisConfig.fromOptions({ url: "redis+cluster://n", scaleReads })).scaleReads).toBe(scaleReads)
    }
  })

  it("commandTimeoutFrom: a run-time deadline, validated as at start-up", () => {
    expect(Duration.toMillis(Either.getOrThrow(RedisConfig.commandTimeoutFrom("250 millis")))).toBe(250)
    expect(leftMessage(RedisConfig.commandTimeoutFrom(Duration.zero))).toContain(
      "commandTimeout must be a positive, finite duration"
    )
    const error = RedisConfig.commandTimeoutFrom(Duration.infinity)
    expect(Either.isLeft(error) && (error.left as { path?: unknown }).path).toEqual(["commandTimeout"])
  })

  it("serverOf: the server, the first sentinel, the first seed", () => {
    const server = (url: string) => RedisConfig.serverOf(Either.getOrThrow(RedisConfig.parseUrl(Redacted.make(url))))
    expect(server("rediss://h:7/1")).toEqual({ host: "h", port: 7, tls: true })
    expect(server("redis://[::1]")).toEqual({ host: "::1", port: 6379, tls: false })
    expect(server("rediss+sentinel://a:1,b:2/m")).toEqual({ host: "a", port: 1, tls: true })
    expect(server("redis+cluster://c:3,d:4")).toEqual({ host: "c", port: 3, tls: false })
  })
})
