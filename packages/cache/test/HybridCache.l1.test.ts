/**
 * The hybrid cache's L1: the byte bound (`l1.maxBytes`: eviction by approximate size as well as by entries, values
 * too large to keep, the accounting through every way an entry leaves, option validation) and the write fence
 * (no fill of a key while a write of it through this process is in flight; an interrupted write's fence lasts until
 * the write can no longer be under way). Units, then the cache on the shared Redis and on a spawned server behind a
 * ChaosProxy.
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisConnection } from "@steadfast/redis"
import { CircuitBreaker } from "@steadfast/resilience"
import { ChaosProxy, RedisServer } from "@steadfast/testing"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as fc from "effect/FastCheck"
import { Redis } from "ioredis"
import * as HybridCache from "../src/HybridCache.js"
import { L1, sizeOf } from "../src/internal/l1.js"
import { hybrid, hybridStats, trusted, warm } from "./hybrid.utils.js"

/** The bytes L1 should count: its entries' sizes, recomputed. */
const recount = (l1: L1) => {
  let bytes = 0
  for (const [key, entry] of (l1 as unknown as { entries: Map<string, { value: string }> }).entries) bytes += sizeOf(key, entry.value)
  return bytes
}
const fill = (l1: L1, key: string, value: string, now = 0, ttl = 1000) => {
  const since = l1.begin()
  const kept = l1.fill(key, value, since, ttl, now)
  l1.end()
  return kept
}

describe("L1 byte bound (unit)", () => {
  it("counts 2 bytes per UTF-16 code unit of key and value", () => {
    expect(sizeOf("ab", "xyz")).toBe(10)
    expect(sizeOf("k", "é😀")).toBe(2 * (1 + 3)) // é is one code unit, the emoji two
  })

  it("evicts by bytes as well as entries, in CLOCK order (a referenced entry gets its second chance)", () => {
    // Each entry: key "kNN" (3) + value of 7 = 20 bytes; room for 5 by bytes, 100 by entries.
    const l1 = new L1(100, 16, 0, 100)
    for (let i = 0; i < 5; i++) fill(l1, `k0${i}`, "vvvvvvv")
    expect(l1.bytes).toBe(100)
    expect(l1.get("k00", 1)).toBe("vvvvvvv") // referenced: survives the next eviction
    fill(l1, "k05", "vvvvvvv")
    expect(l1.size).toBe(5)
    expect(l1.bytes).toBe(100)
    expect(l1.evictions).toBe(1)
    expect(l1.get("k00", 1)).toBe("vvvvvvv")
    expect(l1.get("k01", 1)).toBeUndefined()
    // One larger value makes room for itself: two more go.
    fill(l1, "k06", "v".repeat(27)) // 60 bytes
    expect(l1.bytes).toBeLessThanOrEqual(100)
    expect(l1.get("k06", 1)).toBe("v".repeat(27))
    expect(l1.bytes).toBe(recount(l1))
  })

  it("a value alone over maxBytes is not kept, and takes the older value of its key with it", () => {
    const l1 = new L1(100, 16, 0, 100)
    expect(fill(l1, "a", "small")).toBe(true)
    expect(fill(l1, "big", "x".repeat(60))).toBe(false)
    expect(l1.oversized).toBe(1)
    expect(l1.get("big", 1)).toBeUndefined()
    expect(fill(l1, "a", "x".repeat(60))).toBe(false)
    expect(l1.get("a", 1)).toBeUndefined()
    expect(l1.bytes).toBe(0)
  })

  it("keeps an exact count through fills, replacements, invalidations, expiry, demotion, discards and clears (property)", () => {
    const op = fc.oneof(
      fc.record({ t: fc.constant("fill" as const), k: fc.integer({ min: 0, max: 5 }), n: fc.integer({ min: 0, max: 40 }) }),
      fc.record({ t: fc.constant("get" as const), k: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ t: fc.constant("invalidate" as const), k: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ t: fc.constant("stale" as const), k: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ t: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 400 }) }),
      fc.constant({ t: "demote" as const }),
      fc.constant({ t: "clear" as const })
    )
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 20, max: 300 }), fc.array(op, { minLength: 20, maxLength: 80, size: "max" }), (maxEntries, maxBytes, ops) => {
        const l1 = new L1(maxEntries, 16, 200, maxBytes)
        let now = 0
        for (const o of ops) {
          const key = "k" in o ? `key${o.k}` : ""
          switch (o.t) {
            case "fill":
              fill(l1, key, "v".repeat(o.n), now, 300)
              break
            case "get":
              l1.get(key, now)
              break
            case "invalidate":
              l1.invalidate(key)
              break
            case "stale": {
              const entry = l1.stale(key, now)
              if (entry !== undefined) l1.discard(key, entry)
              break
            }
            case "tick":
              now += o.ms
              break
            case "demote":
              l1.demote()
              break
            case "clear":
              l1.clear()
          }
          expect(l1.bytes).toBe(recount(l1))
          expect(l1.bytes).toBeLessThanOrEqual(maxBytes)
          expect(l1.size).toBeLessThanOrEqual(maxEntries)
        }
      }),
      { numRuns: 300 }
    )
  })
})

describe("L1 write fence (unit)", () => {
  it("no fill of a key while a write of it is in flight; the end drops what a read in flight brings", () => {
    const l1 = new L1(10)
    fill(l1, "k", "old")
    const slot = l1.beginWrite("k", 5000, 0)
    expect(l1.get("k", 1)).toBeUndefined() // dropped when the write starts
    expect(fill(l1, "k", "old", 1)).toBe(false) // a read during the write brings the old value: refused
    expect(fill(l1, "other", "x", 1)).toBe(true)
    const racing = l1.begin() // a read sent before the write's answer, answered after it
    l1.endWrite("k", slot)
    expect(l1.fill("k", "old", racing, 1000, 2)).toBe(false)
    l1.end()
    expect(fill(l1, "k", "new", 3)).toBe(true) // a read after the answer
    expect(l1.writesInFlight).toBe(0)
  })

  it("two writes of one key: the fence lasts until both ended", () => {
    const l1 = new L1(10)
    const a = l1.beginWrite("k", 5000, 0)
    const b = l1.beginWrite("k", 5000, 0)
    l1.endWrite("k", a)
    expect(fill(l1, "k", "v", 1)).toBe(false)
    l1.endWrite("k", b)
    expect(fill(l1, "k", "v", 1)).toBe(true)
  })

  it("a write that never ends (its caller was interrupted): fills refused until its `until`, then kept", () => {
    const l1 = new L1(10)
    l1.beginWrite("k", 2000, 0)
    expect(fill(l1, "k", "v", 1999)).toBe(false)
    expect(fill(l1, "k", "v", 2000)).toBe(true)
    // The next write of its slot after that forgets it: one write in flight, not two.
    const slot = l1.beginWrite("k", 5000, 2500)
    expect(l1.writesInFlight).toBe(1)
    l1.endWrite("k", slot)
    expect(l1.writesInFlight).toBe(0)
    expect(fill(l1, "k", "v", 2600)).toBe(true)
  })
})

const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"

describe("HybridCache l1.maxBytes", () => {
  it.live("bad values are a defect (IllegalArgumentException) naming the option", () =>
    Effect.gen(function*() {
      for (const maxBytes of [0, -1, 1.5, Number.NaN, Infinity]) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(
          HybridCache.layer({ l1: { maxBytes } }).pipe(Layer.provide(RedisConnection.layer({ url: REDIS_URL })))
        )))
        expect(Exit.isFailure(exit)).toBe(true)
        const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        expect(defect).toBeInstanceOf(Cause.IllegalArgumentException)
        expect((defect as Error).message).toMatch(/l1\.maxBytes must be an integer >= 1/)
      }
    }))

  it.live("the cache keeps L1 under maxBytes on the shared Redis; stats show bytes, the bound and oversized values", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = `steadfast:hybrid-l1:${process.pid}:${Math.random().toString(36).slice(2)}:`
      const redis = yield* Effect.acquireRelease(Effect.sync(() => new Redis(REDIS_URL)), (r) => Effect.promise(() => r.quit()))
      const keys = Array.from({ length: 200 }, (_, i) => `k${String(i).padStart(3, "0")}`)
      yield* Effect.promise(() => redis.mset(...keys.flatMap((k) => [`${keyPrefix}${k}`, "v".repeat(96)]), `${keyPrefix}big`, "x".repeat(6000)))
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix, l1: { maxEntries: 1000, maxBytes: 10_000 } })
      expect(yield* trusted(cache)).toBe(true)
      // 200 entries of 2 x (4 + 96) = 200 bytes: 40,000 bytes, 10,000 allowed.
      yield* cache.getMany(keys)
      yield* cache.getMany(keys)
      const stats = yield* hybridStats(cache)
      expect(stats.l1.bytes).toBeLessThanOrEqual(10_000)
      expect(stats.l1.entries).toBe(50)
      expect(stats.l1.maxBytes).toBe(10_000)
      expect(stats.l1.evictions).toBeGreaterThanOrEqual(150)
      expect((yield* cache.stats).config["l1MaxBytes"]).toBe(10_000)
      // 12,006 bytes alone: never kept, each read goes to Redis.
      expect(yield* cache.get("big")).toEqual(Option.some("x".repeat(6000)))
      expect(yield* cache.get("big")).toEqual(Option.some("x".repeat(6000)))
      const after = yield* hybridStats(cache)
      expect(after.l1.oversized).toBe(2)
      expect(after.l1.hits).toBe(stats.l1.hits)
      yield* Effect.promise(() => redis.del(...keys.map((k) => `${keyPrefix}${k}`), `${keyPrefix}big`))
    })))
})

describe("HybridCache writes (shared Redis)", () => {
  it.live("a set the breaker rejects (answered by the fallback) drops the key from L1 in the same step", () =>
    Effect.scoped(Effect.gen(function*() {
      const keyPrefix = `steadfast:hybrid-l1w:${process.pid}:${Math.random().toString(36).slice(2)}:`
      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          const redis = new Redis(REDIS_URL)
          await redis.del(`${keyPrefix}k`)
          await redis.quit()
        }).pipe(Effect.ignore)
      )
      const breaker = yield* CircuitBreaker.make()
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix, circuitBreaker: breaker })
      expect(yield* trusted(cache)).toBe(true)
      yield* cache.set("k", "old")
      expect(yield* warm(cache, "k")).toBe(true)
      yield* breaker.isolate
      yield* cache.set("k", "new")
      const before = yield* hybridStats(cache)
      expect(before.trusted).toBe(true) // L1 still answers: only the key went
      expect(yield* cache.get("k")).toEqual(Option.some("new")) // from the fallback, not L1's old value
      expect((yield* hybridStats(cache)).l1.hits).toBe(before.l1.hits)
      yield* breaker.reset
      yield* cache.delete("k")
    })))
})

describe("HybridCache write fence (spawned redis-server, data path through a ChaosProxy)", () => {
  it.live("a set whose caller was interrupted while Redis had it: the key stays out of L1 until the write's deadline passed", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
      // commandTimeout 500 ms (hybrid.utils): the fence of an unanswered write lasts 2 x 500 + 1000 ms.
      const { cache } = yield* hybrid(proxy.url(), {
        keyPrefix: "h:",
        tracking: { subscriberAddress: { host: server.host, port: server.port } }
      })
      expect(yield* trusted(cache)).toBe(true)
      yield* server.command("SET", "h:k", "old")
      expect(yield* warm(cache, "k")).toBe(true)

      // A completed write: the next reads refill L1 at once.
      yield* cache.set("j", "j1")
      yield* cache.get("j")
      const beforeJ = (yield* hybridStats(cache)).l1.hits
      expect(yield* cache.get("j")).toEqual(Option.some("j1"))
      expect((yield* hybridStats(cache)).l1.hits).toBe(beforeJ + 1)

      // The write is held by the proxy; its caller gives up; then the proxy lets it through and Redis applies it.
      yield* proxy.setFault(ChaosProxy.Stall())
      const writer = yield* Effect.fork(cache.set("k", "new"))
      yield* Effect.sleep("50 millis")
      yield* Fiber.interrupt(writer)
      const interruptedAt = Date.now()
      yield* proxy.setFault(ChaosProxy.PassThrough())
      expect(yield* cache.get("k")).toEqual(Option.some("new"))
      const s1 = yield* hybridStats(cache)
      expect(yield* cache.get("k")).toEqual(Option.some("new"))
      const s2 = yield* hybridStats(cache)
      expect(s2.l1.hits).toBe(s1.l1.hits) // not filled: fenced
      expect(s2.l1.refusedFills).toBeGreaterThan(s1.l1.refusedFills)
      // Once the fence expired (2 s after the write started), reads fill L1 again.
      yield* Effect.sleep(Math.max(0, interruptedAt - 50 + 2000 + 50 - Date.now()))
      expect(yield* warm(cache, "k")).toBe(true)
      expect(yield* cache.get("k")).toEqual(Option.some("new"))
    })))
})
