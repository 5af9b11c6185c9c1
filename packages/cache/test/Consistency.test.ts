/**
 * The consistency promise against real servers: once a write or delete is acknowledged, no later read returns the
 * value it replaced (a miss is allowed). Each test is one of issue 7's repros, or a fault only a socket shows.
 */
import { describe, expect, it } from "@effect/vitest"
import { type RedisConfig, RedisConnection } from "@steadfast/redis"
import { Retry } from "@steadfast/resilience"
import { ChaosProxy, LogCapture, RedisServer } from "@steadfast/testing"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import type { Redis } from "ioredis"
import { Cache } from "../src/Cache.js"
import * as CacheMetrics from "../src/CacheMetrics.js"
import * as FallbackStore from "../src/FallbackStore.js"
import * as MemoryCache from "../src/MemoryCache.js"
import * as RedisCache from "../src/RedisCache.js"
import * as ResilientCache from "../src/ResilientCache.js"
import { eventually } from "./utils.js"

const fastRetry = Retry.make({ maxRetries: 2, baseDelay: "5 millis", jitter: false })

/** A resilient cache through a proxy to a spawned server, and its connection; the scope closes them. */
const stackWith = (
  proxy: ChaosProxy.ChaosProxy,
  options: ResilientCache.Options = {},
  commandTimeout: Duration.DurationInput = "300 millis",
  connectionOptions: Partial<RedisConfig.Options> = {}
) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const context = yield* Layer.buildWithScope(
      ResilientCache.layer({
        keyPrefix: "c:",
        retry: { get: fastRetry, getMany: fastRetry },
        breaker: { failureThreshold: 3, halfOpenAfter: "200 millis" },
        reconcile: { retryEvery: "20 millis" },
        ...options
      }).pipe(Layer.provideMerge(RedisConnection.layer({ url: proxy.url(), commandTimeout, connectTimeout: "300 millis", ...connectionOptions }))),
      scope
    )
    return { cache: Context.get(context, Cache), connection: Context.get(context, RedisConnection.RedisConnection) }
  })
const stack = (proxy: ChaosProxy.ChaosProxy, options: ResilientCache.Options = {}) =>
  Effect.map(stackWith(proxy, options), ({ cache }) => cache)

const redisValue = (server: RedisServer.RedisServer, key: string) =>
  Effect.map(server.command("GET", `c:${key}`), (reply) => (typeof reply === "string" ? reply : null))

/** Waits until the cache has nothing left to reconcile and its breaker is closed. */
const reconciled = (cache: Cache, timeoutMs = 5000) =>
  eventually(
    Effect.map(cache.stats, (s) => s.circuitState === "CLOSED" && s.reconciliation?.pendingKeys === 0 && !s.reconciliation.flushing),
    timeoutMs
  )

/** An outage as the client sees it: every connection, current and new, is reset. */
const outage = (proxy: ChaosProxy.ChaosProxy) => proxy.setFault(ChaosProxy.Reset())
const heal = (proxy: ChaosProxy.ChaosProxy) => proxy.setFault(ChaosProxy.PassThrough())

const withServer = <A, E>(body: (server: RedisServer.RedisServer, proxy: ChaosProxy.ChaosProxy) => Effect.Effect<A, E, Scope.Scope>) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* RedisServer.make()
    const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
    return yield* body(server, proxy)
  }))

describe("Consistency through faults (spawned redis-server behind a ChaosProxy)", () => {
  it.live("repro 1: a write right after a connection reset is never undone by the next read (5 of 5)", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        const cache = yield* stack(proxy)
        for (let round = 0; round < 5; round++) {
          yield* cache.set("k", `old${round}`)
          yield* proxy.resetConnections
          yield* cache.set("k", `new${round}`)
          const read = yield* cache.get("k")
          // The write was sent again once the socket reconnected (it had never left), or it is pending: either way,
          // never the value it replaced.
          expect(read).not.toEqual(Option.some(`old${round}`))
          expect(yield* reconciled(cache)).toBe(true)
          expect(yield* redisValue(server, "k")).not.toBe(`old${round}`)
          expect(yield* cache.get("k")).not.toEqual(Option.some(`old${round}`))
        }
        // At most the write (its reply lost on the reset socket) and the read of its pending key, per round.
        expect((yield* cache.stats).fallbacks).toBeLessThanOrEqual(10)
      })))

  it.live("a write that never left (no socket writeable during the reconnect) is sent again: no fallback, nothing pending", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        // A deadline long enough to cover ioredis' reconnect backoff (at most ~550 ms).
        const { cache, connection } = yield* stackWith(proxy, {}, "1500 millis")
        let notReadyAtWrite = 0
        for (let round = 0; round < 5; round++) {
          yield* cache.set("k", `old${round}`)
          // The socket goes down and its reconnects are reset until the fault is lifted: it is not writeable when
          // the write is made, so the write never leaves; it goes once the reconnect under way succeeds.
          yield* outage(proxy)
          expect(yield* eventually(Effect.map(connection.status, (s) => s[0] !== "ready"), 1000)).toBe(true)
          yield* heal(proxy)
          // Not ready when the write is made: ioredis refuses to write it ("Stream isn't writeable").
          if ((yield* connection.status)[0] !== "ready") notReadyAtWrite++
          yield* cache.set("k", `new${round}`)
          expect(yield* redisValue(server, "k")).toBe(`new${round}`)
          expect(yield* cache.get("k")).toEqual(Option.some(`new${round}`))
        }
        const stats = yield* cache.stats
        expect(stats.fallbacks).toBe(0)
        expect(stats.reconciliation?.pendingKeys).toBe(0)
        expect(stats.errors).toEqual({})
        expect(notReadyAtWrite).toBe(5)
      })))

  it.live("a write whose reply is lost is pending: reads answer it from memory, reconciliation deletes the key", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        const cache = yield* stack(proxy)
        yield* cache.set("k", "old")
        // The SET is sent and held by the proxy; the reset loses its reply: it may or may not have run.
        yield* proxy.setFault(ChaosProxy.Stall())
        const write = yield* Effect.fork(cache.set("k", "new"))
        yield* Effect.sleep("50 millis")
        yield* outage(proxy)
        yield* Effect.sleep("50 millis")
        yield* write.await
        expect(yield* cache.get("k")).toEqual(Option.some("new"))
        const during = yield* cache.stats
        expect(during.reconciliation?.pendingKeys).toBe(1)
        yield* heal(proxy)
        expect(yield* reconciled(cache)).toBe(true)
        // Invalidation (the default policy): Redis forgot the key, so the next read is a miss, never "old".
        expect(yield* redisValue(server, "k")).toBeNull()
        expect(yield* cache.get("k")).toEqual(Option.none())
        expect((yield* cache.stats).reconciliation?.reconciledKeys).toBe(1)
      })))

  it.live("repro 2: a delete during an outage does not come back after recovery (5 of 5)", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        const cache = yield* stack(proxy)
        for (let round = 0; round < 5; round++) {
          yield* cache.set("k", `v${round}`)
          yield* outage(proxy)
          expect(yield* cache.delete("k")).toBe(true)
          for (let i = 0; i < 5; i++) expect(yield* cache.get("k")).toEqual(Option.none())
          yield* heal(proxy)
          expect(yield* reconciled(cache)).toBe(true)
          expect(yield* cache.get("k")).toEqual(Option.none())
          expect(yield* redisValue(server, "k")).toBeNull()
        }
      })))

  it.live("repro 3: a write during an outage is not replaced by the pre-outage value after recovery (5 of 5)", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        const cache = yield* stack(proxy)
        for (let round = 0; round < 5; round++) {
          yield* cache.set("k", `v1-${round}`)
          yield* outage(proxy)
          yield* cache.set("k", `v2-${round}`)
          expect(yield* cache.get("k")).toEqual(Option.some(`v2-${round}`))
          yield* heal(proxy)
          // Reads between the heal and the end of reconciliation: the newer value or a miss.
          for (let i = 0; i < 20; i++) {
            expect(yield* cache.get("k")).not.toEqual(Option.some(`v1-${round}`))
            yield* Effect.sleep("5 millis")
          }
          expect(yield* reconciled(cache)).toBe(true)
          expect(yield* cache.get("k")).not.toEqual(Option.some(`v1-${round}`))
          expect(yield* redisValue(server, "k")).toBeNull()
        }
      })))

  it.live("write-back policy: the newest value written during the outage is written to Redis, with its TTL", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        const cache = yield* stack(proxy, { reconcile: { policy: "write-back", retryEvery: "20 millis" } })
        yield* cache.set("k", "v1")
        yield* cache.set("gone", "x")
        yield* outage(proxy)
        yield* cache.set("k", "v2", { ttl: "1 minute" })
        yield* cache.set("k", "v3", { ttl: "1 minute" })
        yield* cache.delete("gone")
        yield* heal(proxy)
        expect(yield* reconciled(cache)).toBe(true)
        expect(yield* redisValue(server, "k")).toBe("v3")
        const ttl = yield* server.command("PTTL", "c:k")
        expect(Number(ttl)).toBeGreaterThan(50_000)
        expect(Number(ttl)).toBeLessThanOrEqual(60_000)
        expect(yield* redisValue(server, "gone")).toBeNull()
        expect(yield* cache.get("k")).toEqual(Option.some("v3"))
        expect(yield* cache.get("gone")).toEqual(Option.none())
      })))

  it.live("a second outage in the middle of reconciliation: keys stay pending, reads stay right, all repaired after", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        const cache = yield* stack(proxy, { reconcile: { batchSize: 20, retryEvery: "20 millis" } })
        const keys = Array.from({ length: 400 }, (_, i) => `k${i}`)
        yield* cache.setMany(keys.map((k) => [k, `old-${k}`] as const))
        yield* outage(proxy)
        for (const k of keys) yield* cache.set(k, `new-${k}`)
        expect((yield* cache.stats).reconciliation?.pendingKeys).toBe(400)
        // Each reconciliation round trip takes ~20 ms: 20 rounds in all, so the second outage lands mid-way.
        yield* proxy.setFault(ChaosProxy.Latency({ upstream: "10 millis", downstream: "10 millis" }))
        expect(yield* eventually(Effect.map(cache.stats, (s) => (s.reconciliation?.reconciledKeys ?? 0) > 0), 3000)).toBe(true)
        yield* outage(proxy)
        const mid = yield* cache.stats
        expect(mid.reconciliation?.pendingKeys).toBeGreaterThan(0)
        expect(mid.reconciliation?.pendingKeys).toBeLessThan(400)
        for (const k of keys) expect(yield* cache.get(k)).not.toEqual(Option.some(`old-${k}`))
        yield* Effect.sleep("300 millis")
        yield* heal(proxy)
        expect(yield* reconciled(cache, 10_000)).toBe(true)
        const inRedis = yield* server.command("MGET", ...keys.map((k) => `c:${k}`))
        expect(inRedis).toEqual(keys.map(() => null))
        for (const k of keys) expect(yield* cache.get(k)).not.toEqual(Option.some(`old-${k}`))
        expect((yield* cache.stats).reconciliation?.reconciledKeys).toBe(400)
      })))

  it.live("overflow past maxPending: the namespace is flushed, logged once and counted; reads never return old values", () => {
    const logs = LogCapture.make()
    return withServer((server, proxy) =>
      Effect.gen(function*() {
        const before = (yield* Metric.value(CacheMetrics.reconcileOverflows)).count
        const cache = yield* stack(proxy, { reconcile: { maxPending: 50, retryEvery: "20 millis" } })
        const keys = Array.from({ length: 120 }, (_, i) => `k${i}`)
        yield* cache.setMany(keys.map((k) => [k, `old-${k}`] as const))
        // A key outside the namespace is never touched.
        yield* server.command("SET", "other:k", "keep")
        yield* outage(proxy)
        for (const k of keys) yield* cache.set(k, `new-${k}`)
        const during = yield* cache.stats
        expect(during.reconciliation).toMatchObject({ overflows: 1, flushing: true })
        // Bounded: past the bound the keys are not remembered one by one.
        expect(during.reconciliation!.pendingKeys).toBeLessThanOrEqual(50)
        for (const k of keys) expect(yield* cache.get(k)).not.toEqual(Option.some(`old-${k}`))
        yield* heal(proxy)
        expect(yield* reconciled(cache)).toBe(true)
        const inRedis = yield* server.command("MGET", ...keys.map((k) => `c:${k}`))
        expect(inRedis).toEqual(keys.map(() => null))
        expect(yield* server.command("GET", "other:k")).toBe("keep")
        for (const k of keys) expect(yield* cache.get(k)).not.toEqual(Option.some(`old-${k}`))
        expect((yield* Metric.value(CacheMetrics.reconcileOverflows)).count - before).toBe(1)
        const warned = logs.lines.filter((l) => l.message.includes("reconcile.maxPending"))
        expect(warned).toHaveLength(1)
        expect(warned[0]!.annotations).toMatchObject({ operation: "reconcile", max_pending: 50, overflows: 1 })
      })).pipe(Effect.provide(logs.layer))
  })

  it.live("two instances sharing one Redis: what one wrote or deleted through an outage, the other never reads as older after reconciliation", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        // A goes through the proxy (it will lose Redis); B talks to the server directly. Separate connections,
        // fallbacks and pending sets, as two processes have.
        const a = yield* stack(proxy)
        const direct = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
        const b = yield* stack(direct)
        yield* a.setMany([["written", "v1"], ["deleted", "d1"]])
        // B has read (and mirrored) both.
        expect(yield* b.get("written")).toEqual(Option.some("v1"))
        expect(yield* b.get("deleted")).toEqual(Option.some("d1"))
        yield* outage(proxy)
        yield* a.set("written", "v2")
        expect(yield* a.delete("deleted")).toBe(true)
        yield* heal(proxy)
        expect(yield* reconciled(a)).toBe(true)
        // B reads after A's recovery: a miss (the source reloads), never v1 or d1.
        expect(yield* b.get("written")).not.toEqual(Option.some("v1"))
        expect(yield* b.get("deleted")).toEqual(Option.none())
        // Not even from B's fallback when B loses Redis next: its mirror dropped the copies on the misses.
        yield* direct.setFault(ChaosProxy.Reset())
        expect(yield* b.get("written")).not.toEqual(Option.some("v1"))
        expect(yield* b.get("deleted")).toEqual(Option.none())
      })))

  /**
   * Two writes (or a write and a delete) of one key sent one after the other, their replies held back until both
   * have run on the server (the client's socket paused: the bytes wait in the kernel), then read in one chunk. How
   * each settles (an MSET's promise, a pipeline's, a DEL's) decides which settles first, not the server's order.
   */
  const heldBack = (
    connections: ReadonlyArray<RedisConnection.RedisConnection>,
    calls: ReadonlyArray<Effect.Effect<unknown, unknown>>,
    release: (sockets: ReadonlyArray<Redis>) => Effect.Effect<void>
  ) =>
    Effect.gen(function*() {
      // Every connection's sockets, in order.
      const sockets: Array<Redis> = []
      const scope = yield* Scope.make()
      for (const connection of connections) {
        const first = sockets.length
        yield* connection.watchSockets!({ ready: (index, client) => (sockets[first + index] = client), closed: () => {} })
          .pipe(Scope.extend(scope))
      }
      for (const socket of sockets) socket.stream.pause()
      const fibers: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
      for (const call of calls) {
        fibers.push(yield* Effect.fork(call))
        // Sent, and run by the server, before the next call is made.
        yield* Effect.sleep("20 millis")
      }
      yield* release(sockets)
      yield* Fiber.joinAll(fibers)
      yield* Scope.close(scope, Exit.void)
    })
  const resumeAll = (sockets: ReadonlyArray<Redis>) => Effect.sync(() => sockets.forEach((s) => s.stream.resume()))

  it.live("writes of one key settling in the other order than they ran (a timed SET's pipeline, then an MSET): the fallback never keeps the older", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        const { cache, connection } = yield* stackWith(proxy)
        const orders: Array<ReadonlyArray<string>> = []
        for (let round = 0; round < 3; round++) {
          const key = `k${round}`
          const settled: Array<string> = []
          const write = (value: string, ttl?: Duration.DurationInput) =>
            Effect.tap(cache.set(key, value, ttl === undefined ? undefined : { ttl }), () => Effect.sync(() => settled.push(value)))
          yield* heldBack([connection], [write("older", "1 minute"), write("newer")], resumeAll)
          orders.push(settled)
          expect(yield* redisValue(server, key)).toBe("newer")
        }
        yield* outage(proxy)
        for (let round = 0; round < 3; round++) {
          // From the fallback now: the newer value or nothing, never the one it replaced.
          expect(yield* cache.get(`k${round}`)).not.toEqual(Option.some("older"))
        }
        // The case this guards: the MSET settled first (the pipeline's promise takes more steps).
        expect(orders.some((o) => o[0] === "newer")).toBe(true)
      })))

  it.live("a write and a delete of one key settling in the other order than they ran (two sockets): the fallback never keeps the deleted value", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        // On one socket a delete never settles before a write sent ahead of it (both settle through a pipeline, in
        // reply order); on two, the delete's reply can be read first. Each socket's replies are released first once.
        const { cache, connection } = yield* stackWith(proxy, {}, "300 millis", { maxConnections: 2 })
        const orders: Array<ReadonlyArray<string>> = []
        for (const first of [0, 1]) {
          const key = `k${first}`
          const settled: Array<string> = []
          yield* heldBack(
            [connection],
            [
              Effect.tap(cache.set(key, "deleted", { ttl: "1 minute" }), () => Effect.sync(() => settled.push("set"))),
              Effect.tap(cache.delete(key), () => Effect.sync(() => settled.push("delete")))
            ],
            (sockets) =>
              Effect.gen(function*() {
                sockets[first]!.stream.resume()
                yield* Effect.sleep("30 millis")
                sockets[1 - first]!.stream.resume()
              })
          )
          expect(yield* redisValue(server, key)).toBeNull()
          orders.push(settled)
        }
        // In one of the two rounds the delete, which ran last, settled first.
        expect(orders).toContainEqual(["delete", "set"])
        yield* outage(proxy)
        for (const first of [0, 1]) expect(yield* cache.get(`k${first}`)).toEqual(Option.none())
      })))

  it.live("two sockets: writes of one key whose replies come back in the other order than they ran leave no older copy", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        const { cache, connection } = yield* stackWith(proxy, {}, "300 millis", { maxConnections: 2 })
        // Each socket's replies released first once: round-robin put the two writes on different sockets, so in one
        // of the rounds the write that ran second settled first.
        for (const first of [0, 1]) {
          const key = `k${first}`
          yield* heldBack([connection], [cache.set(key, "older"), cache.set(key, "newer")], (sockets) =>
            Effect.gen(function*() {
              sockets[first]!.stream.resume()
              yield* Effect.sleep("30 millis")
              sockets[1 - first]!.stream.resume()
            }))
          expect(yield* redisValue(server, key)).toBe("newer")
        }
        yield* outage(proxy)
        for (const first of [0, 1]) expect(yield* cache.get(`k${first}`)).not.toEqual(Option.some("older"))
      })))

  it.live("two caches sharing one fallback store: their overlapping writes of one key leave no older copy there", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        const scope = yield* Effect.scope
        const store = yield* MemoryCache.makeFallback()
        // Two caches (two connections), one store: as two caches over the same keys in one program.
        const build = Effect.map(
          Layer.buildWithScope(
            ResilientCache.layerFrom().pipe(
              Layer.provideMerge(RedisCache.layer({ keyPrefix: "c:" })),
              Layer.provideMerge(RedisConnection.layer({ url: proxy.url(), commandTimeout: "300 millis" })),
              Layer.provide(Layer.succeed(FallbackStore.FallbackStore, store))
            ),
            scope
          ),
          (context) => ({ cache: Context.get(context, Cache), connection: Context.get(context, RedisConnection.RedisConnection) })
        )
        const a = yield* build
        const b = yield* build
        // a's write runs first, b's second; b's reply is read first, a's last.
        yield* heldBack([a.connection, b.connection], [a.cache.set("k", "older"), b.cache.set("k", "newer")], (sockets) =>
          Effect.gen(function*() {
            sockets[1]!.stream.resume()
            yield* Effect.sleep("30 millis")
            sockets[0]!.stream.resume()
          }))
        expect(yield* redisValue(server, "k")).toBe("newer")
        expect(store.get("k")).not.toBe("older")
        yield* outage(proxy)
        expect(yield* a.cache.get("k")).not.toEqual(Option.some("older"))
        expect(yield* b.cache.get("k")).not.toEqual(Option.some("older"))
      })))

  it.live("writes of one key that did not overlap keep their copy: an outage answers the last one", () =>
    withServer((_server, proxy) =>
      Effect.gen(function*() {
        const { cache } = yield* stackWith(proxy)
        yield* cache.set("k", "first")
        yield* cache.set("k", "last", { ttl: "1 minute" })
        yield* cache.setMany([["m", "one"], ["n", "two"]])
        yield* outage(proxy)
        expect(yield* cache.get("k")).toEqual(Option.some("last"))
        expect(yield* cache.getMany(["m", "n"])).toEqual([Option.some("one"), Option.some("two")])
      })))
})
