import { describe, expect, it } from "@effect/vitest"
import { BreakerRule, Retry } from "@steadfast/resilience"
import { RedisConnection, ScriptedConnection } from "@steadfast/redis"
import { ChaosProxy, RedisServer } from "@steadfast/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { Cache } from "../src/Cache.js"
import * as RedisCache from "../src/RedisCache.js"
import * as ResilientCache from "../src/ResilientCache.js"

const fastRetry = Retry.make({ maxRetries: 1, baseDelay: "5 millis", jitter: false })
const connection = (url: string) => RedisConnection.layer({ url, commandTimeout: "500 millis", connectTimeout: "500 millis" })

/** A server out of memory: `noeviction` refuses every write with `OOM` (a transient, "rejected" failure); reads work. */
const refuseWrites = (server: RedisServer.RedisServer) =>
  Effect.zipRight(server.command("CONFIG", "SET", "maxmemory-policy", "noeviction"), server.command("CONFIG", "SET", "maxmemory", "1"))

describe("Per-operation breakers (breakers: { reads, writes })", () => {
  it.live("a server refusing writes opens the write breaker only: reads keep coming from Redis", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      yield* Effect.gen(function*() {
        const cache = yield* RedisCache.RedisCache
        yield* cache.set("k", "v")
        yield* refuseWrites(server)
        for (let i = 0; i < 3; i++) expect((yield* Effect.flip(cache.set("w", "x")))._tag).toBe("TransientError")
        expect((yield* Effect.flip(cache.set("w", "x")))._tag).toBe("CircuitOpenError")
        expect(cache.breakers.writes.unsafeState()).toBe("OPEN")
        expect(cache.breakers.reads.unsafeState()).toBe("CLOSED")
        expect(cache.rejecting("set")).toBe(true)
        expect(cache.rejecting("get")).toBe(false)
        // Reads are unaffected: Redis still answers them.
        for (let i = 0; i < 10; i++) expect(yield* cache.get("k")).toEqual(Option.some("v"))
        const stats = yield* cache.stats
        expect(stats.circuitState).toBe("OPEN") // the worse of the two
        expect(stats.circuits).toEqual({ reads: "CLOSED", writes: "OPEN" })
        expect(stats.circuitOpens).toBe(1)
        expect(stats.config["breakers"]).toBe("reads-writes")
        expect(stats.config["writeBreakerRule"]).toBe("consecutive(3)")
        expect(stats.config["breakerRule"]).toBe("consecutive(5)")
      }).pipe(
        Effect.provide(
          RedisCache.layer({
            breaker: { failureThreshold: 5, halfOpenAfter: "10 seconds" },
            breakers: { writes: { failureThreshold: 3 } }
          }).pipe(Layer.provide(connection(server.url)))
        )
      )
    }).pipe(Effect.scoped))

  it.live("with one breaker (the default), the same refused writes stop the reads too", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      yield* Effect.gen(function*() {
        const cache = yield* RedisCache.RedisCache
        yield* cache.set("k", "v")
        yield* refuseWrites(server)
        for (let i = 0; i < 3; i++) yield* Effect.flip(cache.set("w", "x"))
        expect(cache.breakers.reads).toBe(cache.breakers.writes)
        expect((yield* Effect.flip(cache.get("k")))._tag).toBe("CircuitOpenError")
        const stats = yield* cache.stats
        expect(stats.circuits).toBeUndefined()
        expect(stats.config["breakers"]).toBe("one")
      }).pipe(
        Effect.provide(
          RedisCache.layer({ breaker: { failureThreshold: 3, halfOpenAfter: "10 seconds" } }).pipe(
            Layer.provide(connection(server.url))
          )
        )
      )
    }).pipe(Effect.scoped))

  it.live("the resilient cache: refused writes go to memory, reads still come from Redis (no fallback counted for them)", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      yield* Effect.gen(function*() {
        const cache = yield* Cache
        yield* cache.set("k", "v")
        yield* refuseWrites(server)
        for (let i = 0; i < 5; i++) yield* cache.set(`w${i}`, "x")
        // Another client changes k behind the cache's back: a read from Redis sees it, memory would not.
        yield* server.command("CONFIG", "SET", "maxmemory", "0")
        yield* server.command("SET", "bk:k", "from-redis")
        yield* server.command("CONFIG", "SET", "maxmemory", "1")
        expect(yield* cache.get("k")).toEqual(Option.some("from-redis"))
        const stats = yield* cache.stats
        expect(stats.circuits).toEqual({ reads: "CLOSED", writes: "OPEN" })
        expect(stats.fallbacks).toBe(5) // the five writes, not the read
      }).pipe(
        Effect.provide(
          ResilientCache.layer({
            keyPrefix: "bk:",
            retry: { get: fastRetry },
            breaker: { halfOpenAfter: "10 seconds" },
            breakers: { writes: { failureThreshold: 2 }, reads: {} }
          }).pipe(Layer.provide(connection(server.url)))
        )
      )
    }).pipe(Effect.scoped))

  it.live("a rule in the cache's breaker options replaces the default threshold", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      yield* Effect.gen(function*() {
        const cache = yield* RedisCache.RedisCache
        const stats = yield* cache.stats
        expect(stats.config["breakerRule"]).toBe("countWindow(size 10, ratio 0.5, minimum 10)")
        expect(stats.config["breakerFailureThreshold"]).toBeUndefined()
      }).pipe(
        Effect.provide(
          RedisCache.layer({ breaker: { rule: BreakerRule.countWindow({ size: 10, failureRatio: 0.5 }) } }).pipe(
            Layer.provide(connection(server.url))
          )
        )
      )
    }).pipe(Effect.scoped))
})

describe("A bulkhead in front of Redis (bulkhead: { maxConcurrent, maxQueue })", () => {
  /** Every reply held back 300 ms: a slow Redis. */
  const slowRedis = Effect.gen(function*() {
    const server = yield* RedisServer.make()
    const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
    return { server, proxy }
  })

  it.live.each([false, true])("a slow Redis (coalesce: %s): at most maxConcurrent + maxQueue calls wait for it, the others are answered from memory at once", (coalesce) =>
    Effect.gen(function*() {
      const { proxy } = yield* slowRedis
      yield* Effect.gen(function*() {
        const cache = yield* Cache
        yield* cache.set("k", "v")
        yield* proxy.setFault(ChaosProxy.Latency({ upstream: 0, downstream: "300 millis" }))
        const timed = <E>(effect: Effect.Effect<Option.Option<string>, E>) =>
          Effect.map(Effect.timed(effect), ([d, value]) => ({ ms: Duration.toMillis(d), value }))
        const results = yield* Effect.forEach(Array.from({ length: 40 }), () => timed(cache.get("k")), {
          concurrency: "unbounded"
        })
        // Every caller got the value (from Redis or from memory's mirror of it)...
        expect(results.every((r) => Option.getOrUndefined(r.value) === "v")).toBe(true)
        // ...and only 4 running + 2 queued waited for the slow replies; 34 were answered at once.
        const waited = results.filter((r) => r.ms >= 250).length
        expect(waited).toBeLessThanOrEqual(6)
        expect(results.filter((r) => r.ms < 100).length).toBeGreaterThanOrEqual(34)
        const stats = yield* cache.stats
        expect(stats.fallbacks).toBeGreaterThanOrEqual(34)
        expect(stats.errors["bulkhead_queue_full"]).toBe(stats.fallbacks)
        // A rejection is not a failure of Redis: the breaker did not count it.
        expect(stats.circuitState).toBe("CLOSED")
        expect(stats.failureCount).toBe(0)
        expect(stats.config["bulkheadMaxConcurrent"]).toBe(4)
        expect(stats.config["bulkheadMaxQueue"]).toBe(2)
        // Writes too (with coalescing on, the fast path of coalesced calls must not go around the bulkhead).
        const writes = yield* Effect.forEach(
          Array.from({ length: 40 }),
          () => Effect.map(Effect.timed(cache.set("k", "w")), ([d]) => Duration.toMillis(d)),
          { concurrency: "unbounded" }
        )
        expect(writes.filter((ms) => ms >= 250).length).toBeLessThanOrEqual(6)
        expect(writes.filter((ms) => ms < 100).length).toBeGreaterThanOrEqual(34)
      }).pipe(
        Effect.provide(
          ResilientCache.layer({
            keyPrefix: "bh:",
            coalesce,
            bulkhead: { maxConcurrent: 4, maxQueue: 2 },
            breaker: { failureThreshold: 3 }
          }).pipe(Layer.provide(RedisConnection.layer({ url: proxy.url(), commandTimeout: "2 seconds" })))
        )
      )
    }).pipe(Effect.scoped))

  it.live.each([false, true])("the strict cache (coalesce: %s): a call beyond the bulkhead fails at once with BulkheadRejectedError", (coalesce) =>
    Effect.gen(function*() {
      const { proxy } = yield* slowRedis
      yield* Effect.gen(function*() {
        const cache = yield* RedisCache.RedisCache
        yield* cache.set("k", "v")
        yield* proxy.setFault(ChaosProxy.Latency({ upstream: 0, downstream: "300 millis" }))
        const results = yield* Effect.forEach(Array.from({ length: 5 }), () => Effect.either(cache.get("k")), {
          concurrency: "unbounded"
        })
        const rejected = results.filter((r) => r._tag === "Left")
        expect(results.filter((r) => r._tag === "Right")).toHaveLength(2)
        expect(rejected).toHaveLength(3)
        for (const r of rejected) {
          if (r._tag === "Left") expect(r.left).toMatchObject({ _tag: "BulkheadRejectedError", bulkhead: "redis", reason: "queue_full", maxConcurrent: 2 })
        }
        // Writes too.
        const writes = yield* Effect.forEach(Array.from({ length: 5 }), () => Effect.either(cache.set("k", "w")), {
          concurrency: "unbounded"
        })
        expect(writes.filter((r) => r._tag === "Left").map((r) => r._tag === "Left" && r.left._tag)).toEqual(
          Array.from({ length: 3 }, () => "BulkheadRejectedError")
        )
      }).pipe(
        Effect.provide(
          // Coalesced too: the fast path of coalesced calls must not go around the bulkhead.
          RedisCache.layer({ coalesce, bulkhead: { maxConcurrent: 2 } }).pipe(
            Layer.provide(RedisConnection.layer({ url: proxy.url(), commandTimeout: "2 seconds" }))
          )
        )
      )
    }).pipe(Effect.scoped))
})

/** A breaker rule that never opens and keeps what each call it is shown looked like (failed, duration). */
const recordingRule = () => {
  const calls: Array<{ failed: boolean; durationMillis: number }> = []
  const rule: BreakerRule.Rule = {
    name: "recording",
    timed: true,
    countsSuccesses: true,
    make: () => ({
      record: (failed, durationMillis) => {
        calls.push({ failed, durationMillis })
        return false
      },
      reset: () => {},
      view: () => ({ calls: calls.length, failures: 0, slowCalls: 0, failureRatio: 0 })
    })
  }
  return { calls, rule }
}

describe("A timed breaker rule is given each call's duration", () => {
  it.effect("over a scripted connection (TestClock): a success and a failure, each with the time it took", () => {
    const { calls, rule } = recordingRule()
    return Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.put("k", "v")
      // Not at the clock's zero: a duration must be the call's end minus its start, not its end plus it.
      yield* TestClock.adjust("1 second")
      yield* redis.push(
        "get",
        ScriptedConnection.slow("120 millis"),
        ScriptedConnection.slow("80 millis", ScriptedConnection.rejected("loading"))
      )
      const ok = yield* Effect.fork(cache.get("k"))
      yield* TestClock.adjust("120 millis")
      expect(yield* Fiber.join(ok)).toEqual(Option.some("v"))
      const failed = yield* Effect.fork(Effect.flip(cache.get("k")))
      yield* TestClock.adjust("80 millis")
      expect((yield* Fiber.join(failed))._tag).toBe("TransientError")
      expect(calls).toEqual([{ failed: false, durationMillis: 120 }, { failed: true, durationMillis: 80 }])
    }).pipe(Effect.provide(
      RedisCache.layer({ breaker: { rule }, retry: { get: Retry.none } }).pipe(
        Layer.provideMerge(ScriptedConnection.layer({ commandTimeout: "500 millis" }))
      )
    ))
  })

  it.live("through a real connection's coalesced fast path: a read's duration includes the network's delay", () => {
    const { calls, rule } = recordingRule()
    return Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      yield* Effect.gen(function*() {
        const cache = yield* RedisCache.RedisCache
        yield* cache.set("k", "v")
        yield* proxy.setFault(ChaosProxy.Latency({ upstream: 0, downstream: "100 millis" }))
        expect(yield* cache.get("k")).toEqual(Option.some("v"))
        const last = calls[calls.length - 1]!
        expect(last.failed).toBe(false)
        expect(last.durationMillis).toBeGreaterThanOrEqual(95)
        expect(last.durationMillis).toBeLessThan(2000)
      }).pipe(Effect.provide(
        RedisCache.layer({ breaker: { rule } }).pipe(
          Layer.provide(RedisConnection.layer({ url: proxy.url(), commandTimeout: "2 seconds" }))
        )
      ))
    }).pipe(Effect.scoped)
  })
})
