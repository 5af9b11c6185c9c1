import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as RedisConfig from "../src/RedisConfig.js"

const read = (env: Record<string, string>) =>
  RedisConfig.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

const SECRET = "hunter2-very-secret"

describe("RedisConfig", () => {
  it.effect("defaults are the original service's", () =>
    Effect.gen(function*() {
      const c = yield* read({})
      expect(Redacted.value(c.url)).toBe("redis://127.0.0.1:6379")
      expect(Duration.toMillis(c.connectTimeout)).toBe(2000)
      expect(Duration.toMillis(c.commandTimeout)).toBe(2000)
      expect(Duration.toMillis(c.healthCheckInterval)).toBe(30_000)
      expect(c.maxRetries).toBe(2)
      expect(Duration.toMillis(c.retryDelay)).toBe(100)
      expect(c.maxConnections).toBe(RedisConfig.defaults.maxConnections)
      expect(Option.isNone(c.tlsCa)).toBe(true)
    }))

  it.effect("reads every variable", () =>
    Effect.gen(function*() {
      const c = yield* read({
        REDIS_URL: `rediss://app:${SECRET}@cache.example.com:6380/2`,
        CACHE_SOCKET_CONNECT_TIMEOUT_MS: "500",
        CACHE_SOCKET_TIMEOUT_MS: "250",
        CACHE_HEALTH_CHECK_INTERVAL: "15",
        CACHE_MAX_CONNECTIONS: "4",
        CACHE_MAX_RETRIES: "0",
        CACHE_RETRY_DELAY: "0.25"
      })
      expect(Duration.toMillis(c.connectTimeout)).toBe(500)
      expect(Duration.toMillis(c.commandTimeout)).toBe(250)
      expect(Duration.toMillis(c.healthCheckInterval)).toBe(15_000)
      expect(c.maxConnections).toBe(4)
      expect(c.maxRetries).toBe(0)
      expect(Duration.toMillis(c.retryDelay)).toBe(250)
      const url = Either.getOrThrow(RedisConfig.parseUrl(c.url))
      expect(url).toMatchObject({ tls: true, host: "cache.example.com", port: 6380, db: 2 })
      expect(Option.getOrThrow(url.username)).toBe("app")
    }))

  const bad: ReadonlyArray<readonly [string, string]> = [
    ["CACHE_SOCKET_TIMEOUT_MS", "abc"],
    ["CACHE_SOCKET_TIMEOUT_MS", "0"],
    ["CACHE_SOCKET_CONNECT_TIMEOUT_MS", "-5"],
    ["CACHE_HEALTH_CHECK_INTERVAL", "never"],
    ["CACHE_HEALTH_CHECK_INTERVAL", "0"],
    ["CACHE_MAX_CONNECTIONS", "0"],
    ["CACHE_MAX_CONNECTIONS", "2.5"],
    ["CACHE_MAX_RETRIES", "-1"],
    ["CACHE_RETRY_DELAY", "fast"],
    ["CACHE_TLS_CA_FILE", "/definitely/not/here.pem"]
  ]
  for (const [name, value] of bad) {
    it.effect(`${name}=${value} fails naming the variable`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(read({ [name]: value }))
        expect(String(error)).toContain(name)
      }))
  }

  const badUrls = [
    `http://user:${SECRET}@host:6379`,
    `redis://user:${SECRET}@host:99999`,
    `redis://user:${SECRET}@host:6379/notadb`,
    `not a url ${SECRET}`
  ]
  for (const url of badUrls) {
    it.effect(`REDIS_URL ${url.replace(SECRET, "***")} fails naming REDIS_URL, without the password`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(read({ REDIS_URL: url }))
        expect(String(error)).toContain("REDIS_URL")
        expect(String(error)).not.toContain(SECRET)
      }))
  }

  it.effect("the URL never prints its password", () =>
    Effect.gen(function*() {
      const c = yield* read({ REDIS_URL: `redis://app:${SECRET}@localhost:6379` })
      expect(String(c.url)).not.toContain(SECRET)
      expect(JSON.stringify(c)).not.toContain(SECRET)
      const described = RedisConfig.describe(c)
      expect(JSON.stringify(described)).not.toContain(SECRET)
      expect(described.url).toBe("redis://app:<redacted>@localhost:6379/0")
    }))

  it.effect("reads a private CA from CACHE_TLS_CA_FILE", () =>
    Effect.gen(function*() {
      const dir = mkdtempSync(join(tmpdir(), "steadfast-ca-"))
      writeFileSync(join(dir, "ca.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
      const c = yield* read({ CACHE_TLS_CA_FILE: join(dir, "ca.pem") })
      expect(Option.getOrThrow(c.tlsCa)).toContain("BEGIN CERTIFICATE")
    }))

  it("fromOptions validates like the environment does", () => {
    expect(Either.isRight(RedisConfig.fromOptions({ url: "redis://localhost:6379", commandTimeout: "100 millis" }))).toBe(true)
    const e = RedisConfig.fromOptions({ url: "redis://localhost:6379", maxConnections: 0 })
    expect(Either.isLeft(e) && String(e.left)).toContain("maxConnections")
    const u = RedisConfig.fromOptions({ url: `ftp://x:${SECRET}@h` })
    expect(Either.isLeft(u) && String(u.left)).not.toContain(SECRET)
    const d = RedisConfig.fromOptions({ url: "redis://localhost", commandTimeout: Duration.infinity })
    expect(Either.isLeft(d) && String(d.left)).toContain("commandTimeout")
  })

  it("parses IPv6 hosts and defaults port and db", () => {
    const p = Either.getOrThrow(RedisConfig.parseUrl(Redacted.make("redis://[::1]")))
    expect(p).toMatchObject({ host: "::1", port: 6379, db: 0, tls: false })
  })
})
