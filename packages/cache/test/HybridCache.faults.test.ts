/**
 * The hybrid cache's invalidation path under faults, against a spawned redis-server: subscriber stall (a ChaosProxy
 * in front of the server for the subscriber only), subscriber reset and kill, `CLIENT KILL` of the tracked data
 * socket, `FLUSHALL`, a server restart. In each, a value L1 holds is changed behind the cache's back and the cache
 * is read in a loop: no read returns the old value later than the stated bound, and none after the new one was seen.
 */
import { describe, expect, it } from "@effect/vitest"
import { ChaosProxy, RedisServer } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Cache } from "../src/Cache.js"
import { hybrid, hybridStats, observe, trusted, warm } from "./hybrid.utils.js"
import { eventually } from "./utils.js"

const withServer = <A, E>(body: (server: RedisServer.RedisServer, proxy: ChaosProxy.ChaosProxy) => Effect.Effect<A, E, Scope.Scope>) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* RedisServer.make()
    const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
    return yield* body(server, proxy)
  }))

/** Timer and scheduling slack on a loaded machine, on top of the stated bound. */
const slackMs = 150

const set = (server: RedisServer.RedisServer, key: string, value: string) => server.command("SET", `h:${key}`, value)

/** After a fault: the cache trusts L1 again, holds `key`, and a write behind its back reaches it at once. */
const recovers = (cache: Cache, server: RedisServer.RedisServer, key: string, round: string) =>
  Effect.gen(function*() {
    expect(yield* trusted(cache, 10_000)).toBe(true)
    yield* set(server, key, `${round}-a`)
    expect(yield* warm(cache, key)).toBe(true)
    const seen = yield* observe(cache, key, `${round}-a`, `${round}-b`, set(server, key, `${round}-b`), 200)
    expect(seen.oldAfterNew).toBe(0)
    expect(seen.firstNewMs).toBeDefined()
    expect(seen.firstNewMs!).toBeLessThan(50)
  })

describe("HybridCache: faults on the invalidation path (spawned redis-server)", () => {
  it.live("a stalled subscriber is found by the canary: no old value later than interval + timeout", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        const { cache } = yield* hybrid(server.url, {
          keyPrefix: "h:",
          tracking: { subscriberAddress: { host: proxy.host, port: proxy.port } }
        })
        expect(yield* trusted(cache)).toBe(true)
        yield* set(server, "k", "old")
        expect(yield* warm(cache, "k")).toBe(true)
        const bound = (yield* hybridStats(cache)).boundMillis
        expect(bound).toBe(1500)
        yield* proxy.setFault(ChaosProxy.Stall())
        const seen = yield* observe(cache, "k", "old", "new", set(server, "k", "new"), bound + 500)
        const stats = yield* hybridStats(cache)
        expect(stats.canaryFailures).toBeGreaterThanOrEqual(1)
        expect(stats.losses["canary_timeout"]).toBeGreaterThanOrEqual(1)
        console.log(`stalled subscriber: last old read ${seen.lastOldMs.toFixed(0)} ms after the write, bound ${bound} ms`)
        expect(seen.oldAfterNew).toBe(0)
        expect(seen.lastOldMs).toBeLessThan(bound + slackMs)
        expect(seen.firstNewMs).toBeDefined()
        // While the subscriber cannot be reached, L1 stays off: reads go to Redis.
        expect(stats.trusted).toBe(false)
        expect(yield* cache.get("k")).toEqual(Option.some("new"))
        yield* proxy.setFault(ChaosProxy.PassThrough())
        yield* recovers(cache, server, "k", "after-stall")
      })))

  it.live("a subscriber reset by the network clears L1 at once, and tracking comes back with its new id", () =>
    withServer((server, proxy) =>
      Effect.gen(function*() {
        const { cache } = yield* hybrid(server.url, {
          keyPrefix: "h:",
          tracking: { subscriberAddress: { host: proxy.host, port: proxy.port } }
        })
        expect(yield* trusted(cache)).toBe(true)
        const firstId = (yield* hybridStats(cache)).subscriberId
        for (let round = 0; round < 3; round++) {
          yield* set(server, "k", `old${round}`)
          expect(yield* warm(cache, "k")).toBe(true)
          yield* proxy.resetConnections
          const seen = yield* observe(cache, "k", `old${round}`, `new${round}`, set(server, "k", `new${round}`), 200)
          expect(seen.oldAfterNew).toBe(0)
          expect(seen.lastOldMs).toBeLessThan(20)
          yield* recovers(cache, server, "k", `r${round}`)
        }
        const stats = yield* hybridStats(cache)
        expect(stats.subscriberId).not.toBe(firstId)
        expect(stats.losses["subscriber_closed"]).toBeGreaterThanOrEqual(3)
      })))

  it.live("CLIENT KILL of the subscriber: L1 cleared, tracking re-issued for the new subscriber", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const { cache } = yield* hybrid(server.url, { keyPrefix: "h:" })
        expect(yield* trusted(cache)).toBe(true)
        yield* set(server, "k", "old")
        expect(yield* warm(cache, "k")).toBe(true)
        const id = (yield* hybridStats(cache)).subscriberId!
        const seen = yield* observe(
          cache,
          "k",
          "old",
          "new",
          Effect.zipRight(server.command("CLIENT", "KILL", "ID", String(id)), set(server, "k", "new")),
          200
        )
        expect(seen.oldAfterNew).toBe(0)
        expect(seen.lastOldMs).toBeLessThan(20)
        yield* recovers(cache, server, "k", "after-kill")
        expect((yield* hybridStats(cache)).subscriberId).not.toBe(id)
      })))

  it.live("CLIENT KILL of the tracked data socket: L1 cleared; its reconnected socket is tracked again", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const { cache } = yield* hybrid(server.url, { keyPrefix: "h:" })
        expect(yield* trusted(cache)).toBe(true)
        for (let round = 0; round < 3; round++) {
          yield* set(server, "k", `old${round}`)
          expect(yield* warm(cache, "k")).toBe(true)
          const sockets = (yield* hybridStats(cache)).sockets
          expect(sockets.length).toBe(1)
          const id = sockets[0]!.clientId!
          // The killed connection's tracking dies with it: this write sends no invalidation to anyone.
          const seen = yield* observe(
            cache,
            "k",
            `old${round}`,
            `new${round}`,
            Effect.zipRight(server.command("CLIENT", "KILL", "ID", String(id)), set(server, "k", `new${round}`)),
            300
          )
          expect(seen.oldAfterNew).toBe(0)
          expect(seen.lastOldMs).toBeLessThan(20)
          // Tracking was re-issued on the new socket: a write after the reconnect still reaches L1.
          yield* recovers(cache, server, "k", `r${round}`)
          expect((yield* hybridStats(cache)).sockets[0]!.clientId).not.toBe(id)
        }
        expect((yield* hybridStats(cache)).losses["data_socket_closed"]).toBeGreaterThanOrEqual(3)
      })))

  it.live("FLUSHALL (a null key list) clears L1", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const { cache } = yield* hybrid(server.url, { keyPrefix: "h:" })
        expect(yield* trusted(cache)).toBe(true)
        yield* set(server, "k", "old")
        expect(yield* warm(cache, "k")).toBe(true)
        const seen = yield* observe(cache, "k", "old", "none", server.command("FLUSHALL"), 200)
        expect(seen.lastOldMs).toBeLessThan(20)
        expect(yield* cache.get("k")).toEqual(Option.none())
        const stats = yield* hybridStats(cache)
        expect(stats.flushes).toBeGreaterThanOrEqual(1)
        expect(stats.losses["flush"]).toBeGreaterThanOrEqual(1)
        yield* recovers(cache, server, "k", "after-flush")
      })))

  it.live("a server restart: L1 cleared while it is down, tracking re-established once it is back", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const { cache } = yield* hybrid(server.url, { keyPrefix: "h:" })
        expect(yield* trusted(cache)).toBe(true)
        yield* set(server, "k", "old")
        expect(yield* warm(cache, "k")).toBe(true)
        yield* server.restart
        // An empty server (no persistence): the key is gone. The first read after the restart must not find "old".
        const stats = yield* hybridStats(cache)
        expect(stats.trusted).toBe(false)
        expect(yield* cache.get("k")).not.toEqual(Option.some("old"))
        expect(yield* eventually(Effect.map(hybridStats(cache), (h) => h.trusted), 10_000)).toBe(true)
        expect(yield* cache.get("k")).not.toEqual(Option.some("old"))
        yield* recovers(cache, server, "k", "after-restart")
      })))
})

describe("HybridCache: Redis' side of tracking", () => {
  it.live("the tracking table at a 10,000-entry L1: one entry per key read, and what it costs Redis' memory", () =>
    withServer((server) =>
      Effect.gen(function*() {
        const n = 10_000
        const { cache } = yield* hybrid(server.url, { keyPrefix: "h:", l1: { maxEntries: n } })
        expect(yield* trusted(cache)).toBe(true)
        const keys = Array.from({ length: n }, (_, i) => `key:${i}`)
        for (let i = 0; i < n; i += 1000) {
          yield* server.command("MSET", ...keys.slice(i, i + 1000).flatMap((k) => [`h:${k}`, "x".repeat(100)]))
        }
        const memory = () =>
          Effect.map(server.command("INFO", "memory"), (info) => Number(/used_memory:(\d+)/.exec(String(info))![1]))
        const trackedKeys = () =>
          Effect.map(server.command("INFO", "stats"), (info) => Number(/tracking_total_keys:(\d+)/.exec(String(info))![1]))
        const before = yield* memory()
        const trackedBefore = yield* trackedKeys()
        for (let i = 0; i < n; i += 500) yield* cache.getMany(keys.slice(i, i + 500))
        const after = yield* memory()
        const tracked = (yield* trackedKeys()) - trackedBefore
        const l1 = (yield* hybridStats(cache)).l1
        console.log(
          `tracking table: ${tracked} keys tracked for a ${l1.entries}-entry L1; used_memory +${after - before} bytes (${
            ((after - before) / tracked).toFixed(1)
          } bytes per key)`
        )
        expect(l1.entries).toBe(n)
        expect(tracked).toBeGreaterThanOrEqual(n)
      })))
})
