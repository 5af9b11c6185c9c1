import { describe, expect, it } from "@effect/vitest"
import { Retry } from "@steadfast/resilience"
import { RedisConnection } from "@steadfast/redis"
import { ChaosProxy, LogCapture, RedisServer } from "@steadfast/testing"
import * as Fiber from "effect/Fiber"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Metric from "effect/Metric"
import { Cache } from "../src/Cache.js"
import * as CacheMetrics from "../src/CacheMetrics.js"
import * as RedisCache from "../src/RedisCache.js"
import * as ResilientCache from "../src/ResilientCache.js"
import { eventually } from "./utils.js"

const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const unique = () => `steadfast:test:${process.pid}:${Math.random().toString(36).slice(2)}:`

const fastRetry = Retry.make({ maxRetries: 2, baseDelay: "5 millis", jitter: false })
const resilient = (url: string, options: ResilientCache.Options = {}) =>
  ResilientCache.layer({
    keyPrefix: unique(),
    retry: { get: fastRetry, getMany: fastRetry },
    breaker: { failureThreshold: 3, halfOpenAfter: "300 millis" },
    ...options
  }).pipe(Layer.provide(RedisConnection.layer({ url, commandTimeout: "500 millis", connectTimeout: "500 millis" })))

describe("ResilientCache against the shared Redis", () => {
  it.live("reads what it wrote, through Redis", () =>
    Effect.gen(function*() {
      const cache = yield* Cache
      yield* cache.set("a", "1", { ttl: "1 minute" })
      yield* cache.setMany([["b", "2"], ["c", "3"]])
      expect(yield* cache.get("a")).toEqual(Option.some("1"))
      expect(yield* cache.getMany(["a", "missing", "c"])).toEqual([Option.some("1"), Option.none(), Option.some("3")])
      expect(yield* cache.getOrElse("missing", () => "d")).toBe("d")
      expect(yield* cache.getOrSet("computed", Effect.succeed("x"))).toBe("x")
      expect(yield* cache.delete("a")).toBe(true)
      expect(yield* cache.get("a")).toEqual(Option.none())
      const stats = yield* cache.stats
      expect(stats).toMatchObject({ backend: "resilient", circuitState: "CLOSED", fallbacks: 0, errors: {} })
      expect(stats.hits).toBe(3)
      expect(stats.config["url"]).toBe("redis://127.0.0.1:6379/0")
      const health = yield* cache.health
      expect(health).toMatchObject({ status: "healthy", redis: "up", circuitState: "CLOSED" })
    }).pipe(Effect.provide(resilient(REDIS_URL))))

  it.live("a WRONGTYPE reply is permanent: served from memory, logged as an error, never trips the breaker", () => {
    const { layer, lines: logs } = LogCapture.make()
    const prefix = unique()
    return Effect.gen(function*() {
      const cache = yield* Cache
      const redis = yield* RedisConnection.RedisConnection
      yield* redis.execute("lpush", (c) => c.lpush(`${prefix}list`, "x"))
      for (let i = 0; i < 10; i++) expect(yield* cache.get("list")).toEqual(Option.none())
      const stats = yield* cache.stats
      expect(stats.circuitState).toBe("CLOSED")
      expect(stats.failureCount).toBe(0)
      expect(stats.errors).toEqual({ wrong_type: 10 })
      expect(stats.fallbacks).toBe(10)
      const errors = logs.filter((l) => l.level === "ERROR")
      // Rate-limited: one line per operation and reason per second, not ten.
      expect(errors).toHaveLength(1)
      expect(errors[0]!.annotations).toMatchObject({
        operation: "get",
        error_type: "wrong_type",
        error_count: 0,
        circuit_breaker_state: "CLOSED"
      })
      expect(String(errors[0]!.annotations["error_message"])).toContain("WRONGTYPE")
      yield* redis.del([`${prefix}list`])
    }).pipe(
      Effect.provide(
        ResilientCache.layer({ keyPrefix: prefix, coalesce: false }).pipe(Layer.provideMerge(RedisConnection.layer({ url: REDIS_URL })))
      ),
      Effect.provide(layer)
    )
  })
})

describe("Coalesced reads", () => {
  it.live("concurrent gets share MGETs, return each caller its own key's value, and a non-string key is a miss", () => {
    const prefix = unique()
    return Effect.gen(function*() {
      const cache = yield* Cache
      const redis = yield* RedisConnection.RedisConnection
      yield* cache.setMany(Array.from({ length: 300 }, (_, i) => [`k${i}`, `v${i}`] as const))
      yield* redis.execute("lpush", (c) => c.lpush(`${prefix}list`, "x"))
      const keys = [...Array.from({ length: 600 }, (_, i) => `k${i % 300}`), "missing", "list"]
      const values = yield* Effect.forEach(keys, (k) => cache.get(k), { concurrency: "unbounded" })
      expect(values.slice(0, 600)).toEqual(keys.slice(0, 600).map((k) => Option.some(`v${k.slice(1)}`)))
      expect(values.slice(600)).toEqual([Option.none(), Option.none()])
      expect((yield* cache.stats).errors).toEqual({})
      yield* redis.del([`${prefix}list`])
    }).pipe(
      Effect.provide(ResilientCache.layer({ keyPrefix: prefix }).pipe(Layer.provideMerge(RedisConnection.layer({ url: REDIS_URL }))))
    )
  })
})

describe("Coalesced writes", () => {
  it.live("concurrent sets with and without TTL land with their own values and TTLs", () => {
    const prefix = unique()
    return Effect.gen(function*() {
      const cache = yield* Cache
      const redis = yield* RedisConnection.RedisConnection
      yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => i),
        (i) => cache.set(`w${i}`, `v${i}`, i % 2 === 0 ? { ttl: "30 seconds" } : undefined),
        { concurrency: "unbounded", discard: true }
      )
      // Without TTLs at all: one MSET.
      yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => i), (i) => cache.set(`n${i}`, `m${i}`), {
        concurrency: "unbounded",
        discard: true
      })
      const values = yield* redis.execute("check", (c) => c.mget(...Array.from({ length: 200 }, (_, i) => `${prefix}w${i}`)))
      expect(values).toEqual(Array.from({ length: 200 }, (_, i) => `v${i}`))
      const ttls = yield* redis.execute("check", (c) => Promise.all([c.pttl(`${prefix}w0`), c.pttl(`${prefix}w1`)]))
      expect(ttls[0]).toBeGreaterThan(29_000)
      expect(ttls[1]).toBe(-1)
      expect(yield* redis.execute("check", (c) => c.get(`${prefix}n49`))).toBe("m49")
      expect((yield* cache.stats).errors).toEqual({})
    }).pipe(
      Effect.provide(ResilientCache.layer({ keyPrefix: prefix }).pipe(Layer.provideMerge(RedisConnection.layer({ url: REDIS_URL }))))
    )
  })
})

describe("ResilientCache through an outage (spawned redis-server)", () => {
  it.live("serves from memory while Redis is down, opens the breaker, and recovers when Redis returns", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const { layer, lines: logs } = LogCapture.make()
      const tagged = (metric: Metric.Metric.Counter<number>, operation: string) =>
        metric.pipe(Metric.tagged("operation", operation), Metric.tagged("backend", "resilient"))
      const before = {
        opens: (yield* Metric.value(CacheMetrics.circuitOpens)).count,
        fallbacks: (yield* Metric.value(tagged(CacheMetrics.fallbacks, "get"))).count,
        latency: (yield* Metric.value(CacheMetrics.latency.pipe(Metric.tagged("operation", "get"), Metric.tagged("backend", "redis")))).count
      }
      yield* Effect.gen(function*() {
        const cache = yield* Cache
        yield* cache.set("k", "before")
        expect(yield* cache.get("k")).toEqual(Option.some("before"))

        yield* server.stop
        // Reads never fail: the mirrored value comes from memory.
        const started = performance.now()
        for (let i = 0; i < 20; i++) expect(yield* cache.get("k")).toEqual(Option.some("before"))
        expect(yield* cache.getMany(["k", "other"])).toEqual([Option.some("before"), Option.none()])
        // Writes during the outage land in memory and are readable.
        yield* cache.set("written-during-outage", "mem")
        expect(yield* cache.get("written-during-outage")).toEqual(Option.some("mem"))
        const outageMs = performance.now() - started
        const down = yield* cache.stats
        expect(down.circuitState).toBe("OPEN")
        expect(down.circuitOpens).toBe(1)
        expect(down.fallbacks).toBeGreaterThanOrEqual(22)
        expect(Object.keys(down.errors)).toContain("circuit_open")
        // 23 calls, each bounded by the breaker (fail fast) or a refused socket: nowhere near 23 deadlines.
        expect(outageMs).toBeLessThan(2000)
        expect((yield* cache.health)).toMatchObject({ status: "degraded", redis: "down" })
        // Transitions are logged by a background fiber, once each.
        const opened = (l: { message: string; annotations: Record<string, unknown> }) =>
          l.message.includes("circuit breaker opened") && l.annotations["circuit_breaker_state"] === "OPEN"
        expect(yield* eventually(Effect.sync(() => logs.some(opened)), 1000)).toBe(true)
        expect(logs.filter(opened)).toHaveLength(1)
        // The process-wide metrics moved with the instance's stats.
        expect((yield* Metric.value(CacheMetrics.circuitOpens)).count - before.opens).toBe(1)
        // 20 reads of "k" and the read-back of the value written during the outage (its key awaits reconciliation,
        // but while the breaker is open every read is a fallback).
        expect((yield* Metric.value(tagged(CacheMetrics.fallbacks, "get"))).count - before.fallbacks).toBe(21)
        expect(down.reconciliation).toMatchObject({ pendingKeys: 1, localReads: 0 })
        const latency = yield* Metric.value(CacheMetrics.latency.pipe(Metric.tagged("operation", "get"), Metric.tagged("backend", "redis")))
        // The histogram (backend "redis": the strict cache under the resilient one times it) times calls that take the
        // Redis path: the read before the outage and the one that opened the
        // breaker. The 20 reads answered from memory while it was open skip the pipeline (and the clock).
        expect(latency.count - before.latency).toBe(2)

        yield* server.start
        // Redis serves again: a value written straight into Redis is what the cache returns once recovered.
        const prefix = String((yield* cache.stats).config["keyPrefix"])
        yield* server.command("SET", `${prefix}fresh`, "from-redis")
        const recovered = yield* eventually(
          Effect.map(cache.get("fresh"), (v) => Option.getOrNull(v) === "from-redis"),
          5000
        )
        expect(recovered).toBe(true)
        expect((yield* cache.stats).circuitState).toBe("CLOSED")
        expect(yield* eventually(Effect.sync(() => logs.some((l) => l.message.includes("circuit breaker closed"))), 1000)).toBe(true)
      }).pipe(Effect.provide(resilient(server.url)), Effect.provide(layer))
    }).pipe(Effect.scoped))

  // Default read retries (100 ms base): the socket is back (reconnect after 0-20 ms) before the first retry.
  it.live("one connection reset with 16 reads in flight: one incident, the breaker stays closed, every read answers", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      yield* Effect.gen(function*() {
        const cache = yield* Cache
        yield* cache.setMany(Array.from({ length: 16 }, (_, i) => [`k${i}`, `v${i}`] as const))
        // Replies held back so that all 16 reads are in flight on the socket when it is reset.
        yield* proxy.setFault(ChaosProxy.Latency({ upstream: 0, downstream: "200 millis" }))
        const reads = yield* Effect.fork(
          Effect.forEach(Array.from({ length: 16 }, (_, i) => i), (i) => cache.get(`k${i}`), { concurrency: "unbounded", batching: false })
        )
        yield* Effect.sleep("50 millis")
        yield* proxy.setFault(ChaosProxy.PassThrough())
        yield* proxy.resetConnections
        const values = yield* Fiber.join(reads)
        expect(values).toEqual(Array.from({ length: 16 }, (_, i) => Option.some(`v${i}`)))
        const stats = yield* cache.stats
        expect(stats.circuitState).toBe("CLOSED")
        expect(stats.circuitOpens).toBe(0)
        expect(stats.failureCount).toBeLessThanOrEqual(1)
      }).pipe(Effect.provide(resilient(proxy.url(), { coalesce: false, retry: {} })))
    }).pipe(Effect.scoped))

  it.live("the strict cache exposes the typed errors: TransientError, then CircuitOpenError", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      yield* Effect.gen(function*() {
        const cache = yield* RedisCache.RedisCache
        yield* cache.set("k", "v")
        yield* server.stop
        const first = yield* Effect.flip(cache.get("k"))
        expect(first._tag).toBe("TransientError")
        // One get = 1 attempt + 2 retries, each through the breaker: 3 consecutive failures = the threshold.
        const snapshot = yield* cache.breaker.snapshot
        expect(snapshot).toMatchObject({ state: "OPEN", consecutiveFailures: 3 })
        const second = yield* Effect.flip(cache.get("k"))
        expect(second._tag).toBe("CircuitOpenError")
        if (second._tag === "CircuitOpenError") expect(second.operation).toBe("get")
        // Writes are not retried by default: one failure each.
        const write = yield* Effect.flip(cache.set("k", "v2"))
        expect(write._tag).toBe("CircuitOpenError")
        const stats = yield* cache.stats
        expect(stats.backend).toBe("redis")
        expect(stats.errors["circuit_open"]).toBe(2)
      }).pipe(
        Effect.provide(
          RedisCache.layer({
            retry: { get: fastRetry },
            breaker: { failureThreshold: 3, halfOpenAfter: "10 seconds" }
          }).pipe(Layer.provide(RedisConnection.layer({ url: server.url, commandTimeout: "500 millis" })))
        )
      )
    }).pipe(Effect.scoped))
})

describe("No password reaches a log, a stat or an error", () => {
  const PASSWORD = "correct-horse-battery-staple-4821"
  const WRONG = "wrong-password-should-never-leak-9137"

  it.live("wrong password: permanent, no retry storm, no breaker, loud log, nothing leaks", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ password: PASSWORD })
      const { layer, lines: logs } = LogCapture.make()
      const url = `redis://:${WRONG}@127.0.0.1:${server.port}`
      yield* Effect.gen(function*() {
        const cache = yield* Cache
        const strict = yield* RedisCache.RedisCache
        for (let i = 0; i < 20; i++) expect(yield* cache.get("k")).toEqual(Option.none())
        yield* cache.set("k", "v")
        const error = yield* Effect.flip(strict.get("k"))
        const stats = yield* cache.stats
        const strictStats = yield* strict.stats
        expect(stats.circuitState).toBe("CLOSED")
        expect(stats.failureCount).toBe(0)
        // Every failure is an auth failure, tried once: no retries on a permanent error. (The write Redis refused
        // makes its key pending: the reconciler's DEL of it fails the same way, at most once or twice by now.)
        expect(Object.keys(stats.errors)).toEqual(["auth"])
        expect(stats.errors["auth"]).toBeGreaterThanOrEqual(21)
        expect(stats.errors["auth"]).toBeLessThanOrEqual(23)
        expect(error).toMatchObject({ _tag: "PermanentError", reason: "auth" })
        expect(logs.some((l) => l.level === "ERROR" && l.annotations["error_type"] === "auth")).toBe(true)
        const everything = [
          JSON.stringify(stats),
          JSON.stringify(strictStats),
          JSON.stringify(error),
          String(error),
          (error as Error).message,
          ...logs.map((l) => l.line)
        ].join("\n")
        expect(everything).not.toContain(WRONG)
        expect(everything).not.toContain(PASSWORD)
        expect(String(stats.config["url"])).toContain("<redacted>")
      }).pipe(
        Effect.provide(Layer.merge(resilient(url), RedisCache.layer().pipe(Layer.provide(RedisConnection.layer({ url }))))),
        Effect.provide(layer)
      )
    }).pipe(Effect.scoped))

  it.live("right password: works, and the stats show the URL redacted", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make({ password: PASSWORD })
      const { layer, lines: logs } = LogCapture.make()
      yield* Effect.gen(function*() {
        const cache = yield* Cache
        yield* cache.set("k", "v")
        expect(yield* cache.get("k")).toEqual(Option.some("v"))
        const stats = yield* cache.stats
        expect(stats.errors).toEqual({})
        expect(JSON.stringify(stats)).not.toContain(PASSWORD)
        expect(stats.config["url"]).toBe(`redis://:<redacted>@127.0.0.1:${server.port}/0`)
        yield* server.stop
        yield* cache.get("k")
        expect(logs.map((l) => l.line).join("\n")).not.toContain(PASSWORD)
      }).pipe(Effect.provide(resilient(server.url)), Effect.provide(layer))
    }).pipe(Effect.scoped))
})
