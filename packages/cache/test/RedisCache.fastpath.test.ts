/**
 * The coalesced fast path (`RedisCache`'s `guardedFast`, over the real connection's `unsafeGetBatched` /
 * `unsafeSetBatched`) against the shared Redis: the answers are those of Redis, and a connection wrapped the usual way
 * (spread, with its own `getBatched` / `setBatched`) is used through the wrapper, not around it.
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisConfig, RedisConnection } from "@steadfast/redis"
import { Retry } from "@steadfast/resilience"
import { ChaosProxy, RedisServer } from "@steadfast/testing"
import * as Either from "effect/Either"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as RedisCache from "../src/RedisCache.js"

const url = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const prefix = `test:fastpath:${process.pid}:${Date.now()}:`

describe("RedisCache over the real connection: the coalesced fast path", () => {
  it.live("the callback forms are not enumerable: a spread copies getBatched / setBatched only", () =>
    Effect.scoped(Effect.gen(function*() {
      const connection = yield* RedisConnection.make(Either.getOrThrow(RedisConfig.fromOptions({ url })))
      expect(typeof connection.unsafeGetBatched).toBe("function")
      expect(typeof connection.unsafeSetBatched).toBe("function")
      const copy = { ...connection }
      expect(copy.unsafeGetBatched).toBeUndefined()
      expect(copy.unsafeSetBatched).toBeUndefined()
      expect(typeof copy.getBatched).toBe("function")
    })))

  it.live("64 concurrent sets and gets answer what Redis holds; a miss is none", () =>
    Effect.gen(function*() {
      const cache = yield* RedisCache.RedisCache
      const keys = Array.from({ length: 64 }, (_, i) => `k${i}`)
      yield* Effect.forEach(keys, (k) => cache.set(k, `v-${k}`, { ttl: "1 minute" }), { concurrency: "unbounded", discard: true })
      const got = yield* Effect.forEach([...keys, "absent"], (k) => cache.get(k), { concurrency: "unbounded" })
      expect(got).toEqual([...keys.map((k) => Option.some(`v-${k}`)), Option.none()])
      const stats = yield* cache.stats
      expect(stats.hits).toBe(64)
      expect(stats.misses).toBe(1)
    }).pipe(Effect.provide(RedisCache.layer({ keyPrefix: prefix }).pipe(Layer.provide(RedisConnection.layer({ url }))))))

  it.live("a connection wrapped by spreading it is used through the wrapper's getBatched / setBatched", () =>
    Effect.gen(function*() {
      const counted = { reads: 0, writes: 0 }
      const wrapped = Layer.effect(
        RedisConnection.RedisConnection,
        Effect.map(RedisConnection.RedisConnection, (c): RedisConnection.RedisConnection => ({
          ...c,
          getBatched: (key) => Effect.zipLeft(c.getBatched(key), Effect.sync(() => counted.reads++)),
          setBatched: (key, value, ttl) => Effect.zipLeft(c.setBatched(key, value, ttl), Effect.sync(() => counted.writes++))
        }))
      )
      const layer = RedisCache.layer({ keyPrefix: `${prefix}wrapped:` }).pipe(
        Layer.provide(Layer.provide(wrapped, RedisConnection.layer({ url })))
      )
      yield* Effect.gen(function*() {
        const cache = yield* RedisCache.RedisCache
        yield* cache.set("a", "1")
        expect(yield* cache.get("a")).toEqual(Option.some("1"))
        expect(yield* cache.get("b")).toEqual(Option.none())
      }).pipe(Effect.provide(layer))
      expect(counted).toEqual({ reads: 2, writes: 1 })
    }))

  it.live("a coalesced read made while its socket reconnects waits for the reconnect instead of failing", () =>
    Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      yield* Effect.gen(function*() {
        const cache = yield* RedisCache.RedisCache
        const connection = yield* RedisConnection.RedisConnection
        yield* cache.set("k", "v")
        // Replies 100 ms late: after the reset, the new socket's handshake keeps it "connecting" for that long.
        yield* proxy.setFault(ChaosProxy.Latency({ upstream: 0, downstream: "100 millis" }))
        yield* proxy.resetConnections
        const deadline = Date.now() + 2000
        while (connection.availability() !== "reconnecting" && Date.now() < deadline) yield* Effect.sleep("2 millis")
        expect(connection.availability()).toBe("reconnecting")
        // No retries: the call itself must wait for the socket (the fast path would send it on the unready socket).
        expect(yield* cache.get("k")).toEqual(Option.some("v"))
        expect((yield* cache.stats).errors).toEqual({})
      }).pipe(Effect.provide(
        RedisCache.layer({ retry: { get: Retry.none } }).pipe(
          Layer.provideMerge(RedisConnection.layer({ url: proxy.url(), commandTimeout: "2 seconds" }))
        )
      ))
    }).pipe(Effect.scoped))
})
