/**
 * The hybrid cache's invalidation path where no other test pinned it down (found by mutation testing,
 * `internal/tracking.ts` lines 1-304 and 408-430, 2026-12-05): an invalidation that arrives while a canary round waits
 * is applied, not taken for the canary's; a flush keeps tracking (L1 answers again at once); BCAST asks Redis for the
 * cache's prefixes only, and with no key prefix and no prefixes for every key; the subscriber is named, and gone once
 * the cache's scope closes (no reconnect, no "dropped" warning at shutdown); the canary's delay is reported; a
 * connection without `watchSockets` is refused with a clear message; the subscriber's reconnect delays.
 */
import { describe, expect, it } from "@effect/vitest"
import { ScriptedConnection } from "@steadfast/redis"
import { ChaosProxy, LogCapture, RedisServer } from "@steadfast/testing"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as HybridCache from "../src/HybridCache.js"
import { subscriberRetry } from "../src/internal/tracking.js"
import { admin, cleanup, hybrid, hybridStats, observe, REDIS_URL, trusted, unique, warm } from "./hybrid.utils.js"
import { eventually } from "./utils.js"

/** The invalidation subscribers connected to `server` (by their connection name). */
const subscribers = (server: RedisServer.RedisServer) =>
  Effect.map(server.command("CLIENT", "LIST"), (list) =>
    String(list).split("\n").filter((line) => line.includes(" name=steadfast-invalidation ")).length)

describe("HybridCache tracking (survivors)", () => {
  it.live("an invalidation that arrives while a canary round waits for its own is applied to L1", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      // The subscriber's pushes arrive 40 ms late and a round starts every 50 ms: a canary round is waiting for its
      // invalidation most of the time, so the invalidation of a foreign write almost always arrives during one.
      const { cache } = yield* hybrid(server.url, {
        keyPrefix: "h:",
        tracking: { subscriberAddress: { host: proxy.host, port: proxy.port }, canary: { interval: "50 millis", timeout: "1 second" } }
      })
      expect(yield* trusted(cache)).toBe(true)
      yield* proxy.setFault(ChaosProxy.Latency({ upstream: "0 millis", downstream: "40 millis" }))
      for (const round of ["a", "b", "c"]) {
        yield* server.command("SET", "h:k", `${round}-old`)
        expect(yield* warm(cache, "k")).toBe(true)
        const seen = yield* observe(cache, "k", `${round}-old`, `${round}-new`, server.command("SET", "h:k", `${round}-new`), 400)
        expect(seen.firstNewMs).toBeDefined()
        expect(seen.oldAfterNew).toBe(0)
      }
      const stats = yield* hybridStats(cache)
      expect(stats.canaryFailures).toBe(0)
    })))

  it.live("a flush clears L1 but keeps tracking: L1 answers again at once, without waiting for a canary round", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisServer.make()
      // One canary round at start, then none for an hour: only the flush handling itself can keep L1 trusted.
      const { cache } = yield* hybrid(server.url, { keyPrefix: "h:", tracking: { canary: { interval: "1 hour" } } })
      expect(yield* trusted(cache)).toBe(true)
      yield* server.command("SET", "h:k", "old")
      expect(yield* warm(cache, "k")).toBe(true)
      yield* server.command("FLUSHDB")
      expect(yield* eventually(Effect.map(hybridStats(cache), (s) => s.flushes === 1), 2000)).toBe(true)
      expect(yield* cache.get("k")).toEqual(Option.none())
      const stats = yield* hybridStats(cache)
      expect(stats.trusted).toBe(true)
      expect(stats.losses).toEqual({ flush: 1 })
      yield* server.command("SET", "h:k", "new")
      expect(yield* warm(cache, "k", 1000)).toBe(true)
      expect(yield* cache.get("k")).toEqual(Option.some("new"))
    })))

  it.live("BCAST with prefixes: a write outside them is not pushed to the subscriber", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = unique("bcast-only")
      yield* cleanup(keyPrefix)
      // One canary round (its key, under "hot:", lives three hours): nothing else of the cache's is pushed meanwhile.
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix, tracking: { mode: "bcast", prefixes: ["hot:"], canary: { interval: "1 hour" } } })
      expect(yield* trusted(cache)).toBe(true)
      const redis = yield* admin
      const pushed = Effect.map(hybridStats(cache), (s) => s.invalidationMessages)
      const start = yield* pushed
      yield* Effect.promise(() => redis.set(`${keyPrefix}hot:x`, "1"))
      expect(yield* eventually(Effect.map(pushed, (n) => n === start + 1), 2000)).toBe(true)
      yield* Effect.promise(() => redis.set(`${keyPrefix}cold:x`, "1"))
      yield* Effect.sleep("150 millis")
      expect(yield* pushed).toBe(start + 1)
    })))

  it.live("BCAST with no key prefix and no prefixes: every key is pushed, a foreign write reaches L1", () =>
    Effect.scoped(Effect.gen(function*() {
      const base = unique("bcast-all")
      yield* cleanup(base)
      const { cache } = yield* hybrid(REDIS_URL, { tracking: { mode: "bcast" } })
      expect(yield* trusted(cache)).toBe(true)
      const redis = yield* admin
      const key = `${base}k`
      yield* Effect.promise(() => redis.set(key, "v1"))
      expect(yield* warm(cache, key)).toBe(true)
      yield* Effect.promise(() => redis.set(key, "v2"))
      expect(yield* eventually(Effect.map(cache.get(key), (v) => Option.getOrUndefined(v) === "v2"), 1000)).toBe(true)
    })))

  it.live("the subscriber is named steadfast-invalidation and is gone once the scope closes: no reconnect, no warning", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const logs = LogCapture.make()
      const scope = yield* Scope.make()
      const { cache } = yield* hybrid(server.url, { keyPrefix: "h:" }).pipe(Effect.provide(logs.layer), Scope.extend(scope))
      expect(yield* trusted(cache)).toBe(true)
      expect(yield* subscribers(server)).toBe(1)
      yield* Scope.close(scope, Exit.void)
      expect(yield* eventually(Effect.map(subscribers(server), (n) => n === 0), 2000)).toBe(true)
      // A subscriber that reconnected by itself would be back within its first retry delays (0, 50, 100 ms).
      yield* Effect.sleep("300 millis")
      expect(yield* subscribers(server)).toBe(0)
      expect(logs.lines.filter((l) => l.message.includes("invalidation subscriber dropped"))).toEqual([])
    })))

  it.live("the canary's last delay is reported: from its SET to its invalidation, under its timeout", () =>
    Effect.scoped(Effect.gen(function*() {
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix: unique("canary-delay"), tracking: { canary: { interval: "50 millis", timeout: "400 millis" } } })
      expect(yield* trusted(cache)).toBe(true)
      expect(yield* eventually(Effect.map(hybridStats(cache), (s) => s.lastCanaryMillis !== undefined), 2000)).toBe(true)
      const delay = (yield* hybridStats(cache)).lastCanaryMillis!
      expect(delay).toBeGreaterThanOrEqual(0)
      expect(delay).toBeLessThan(400)
    })))

  it.effect("a connection without watchSockets (ScriptedConnection) is refused with a message that says what is needed", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(HybridCache.layer({}).pipe(Layer.provide(ScriptedConnection.layer())))))
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        expect(String(Cause.squash(exit.cause))).toContain("HybridCache needs a RedisConnection with watchSockets (RedisConnection.layer)")
      }
    }))

  it("the subscriber reconnects at once, then after 50 ms doubling up to 500 ms", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 40].map(subscriberRetry)).toEqual([0, 50, 100, 200, 400, 500, 500, 500])
  })
})
