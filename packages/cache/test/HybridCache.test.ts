/**
 * The hybrid cache against the shared Redis: L1 hits, invalidation by a plain ioredis client and by redis-cli, the
 * in-flight fill rule, BCAST mode.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { L1 } from "../src/internal/l1.js"
import { hybrid, hybridStats, observe, trusted, warm } from "./hybrid.utils.js"

const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const unique = () => `steadfast:hybrid:${process.pid}:${Math.random().toString(36).slice(2)}:`
const plain = Effect.acquireRelease(
  Effect.sync(() => new Redis({ host: "127.0.0.1", port: 6379, protocol: 2 })),
  (c) => Effect.sync(() => c.disconnect())
)
const run = promisify(execFile)

describe("L1 (unit)", () => {
  it("refuses a fill whose key was invalidated while the read was in flight, and any fill across a clear", () => {
    const l1 = new L1(10)
    const a = l1.begin()
    l1.invalidate("k")
    expect(l1.fill("k", "old", a, 1000, 0)).toBe(false)
    expect(l1.fill("other", "v", a, 1000, 0)).toBe(true)
    l1.end()
    const b = l1.begin()
    expect(l1.fill("k", "new", b, 1000, 0)).toBe(true)
    const c = l1.begin()
    l1.clear()
    expect(l1.fill("k", "x", c, 1000, 0)).toBe(false)
    l1.end()
    l1.end()
    expect(l1.get("k", 0)).toBeUndefined()
  })

  it("bounds its entries (second chance for the recently read) and its tombstones", () => {
    const l1 = new L1(3, 2)
    for (const k of ["a", "b", "c"]) l1.fill(k, k, l1.begin(), 1000, 0)
    l1.get("a", 0)
    l1.fill("d", "d", l1.begin(), 1000, 0)
    expect(l1.size).toBe(3)
    expect(l1.get("a", 0)).toBe("a")
    expect(l1.get("b", 0)).toBeUndefined()
    expect(l1.get("a", 1000)).toBeUndefined() // its TTL
    // Past maxTombstones, every fill in flight is refused (a floor), not just the invalidated keys'.
    const since = l1.begin()
    l1.invalidate("x")
    l1.invalidate("y")
    l1.invalidate("z")
    expect(l1.fill("unrelated", "v", since, 1000, 0)).toBe(false)
  })
})

describe("HybridCache against the shared Redis", () => {
  it.live("answers a hot read from L1, and a plain ioredis client's write reaches it by invalidation", () =>
    Effect.scoped(Effect.gen(function*() {
      const prefix = unique()
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix: prefix })
      const other = yield* plain
      expect(yield* trusted(cache)).toBe(true)
      yield* cache.set("k", "v1")
      expect(yield* warm(cache, "k")).toBe(true)
      const before = yield* hybridStats(cache)
      for (let i = 0; i < 1000; i++) expect(yield* cache.get("k")).toEqual(Option.some("v1"))
      const after = yield* hybridStats(cache)
      expect(after.l1.hits - before.l1.hits).toBe(1000)
      expect(after.sockets.every((s) => s.tracked)).toBe(true)
      expect(after.subscriber).toBe("ready")

      const seen = yield* observe(cache, "k", "v1", "v2", Effect.promise(() => other.set(`${prefix}k`, "v2")), 300)
      expect(seen.firstNewMs).toBeDefined()
      expect(seen.oldAfterNew).toBe(0)
      expect(seen.firstNewMs!).toBeLessThan(50)
      // Read again: L1 is filled with the new value.
      expect(yield* warm(cache, "k")).toBe(true)
      yield* Effect.promise(() => other.del(`${prefix}k`))
    })))

  it.live("after an event-loop pause, an invalidation waiting in the socket is applied before L1 answers", () =>
    Effect.scoped(Effect.gen(function*() {
      const prefix = unique()
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix: prefix })
      const other = yield* plain
      expect(yield* trusted(cache)).toBe(true)
      yield* cache.set("k", "v1")
      expect(yield* warm(cache, "k")).toBe(true)
      const before = yield* hybridStats(cache)
      // The write is acknowledged: Redis has sent the invalidation to the subscriber. This process does not poll its
      // sockets until its event loop turns: the loop is kept busy for 20 ms, then L1 is read in the same step.
      yield* Effect.promise(() => other.set(`${prefix}k`, "v2"))
      const read = yield* Effect.suspend(() => {
        const end = Date.now() + 20
        while (Date.now() < end) { /* a long synchronous task */ }
        return cache.get("k")
      })
      // L1 still held v1 (the message was not read yet): the read waited a turn of the loop, so the invalidation was
      // applied and the answer came from Redis.
      expect(read).toEqual(Option.some("v2"))
      const after = yield* hybridStats(cache)
      expect(after.notFresh - before.notFresh).toBeGreaterThanOrEqual(1)
      yield* Effect.promise(() => other.del(`${prefix}k`))
    })))

  it.live("redis-cli's write and delete reach it too", () =>
    Effect.scoped(Effect.gen(function*() {
      const prefix = unique()
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix: prefix })
      expect(yield* trusted(cache)).toBe(true)
      yield* cache.set("k", "a")
      expect(yield* warm(cache, "k")).toBe(true)
      const cli = (...args: Array<string>) => Effect.promise(() => run("redis-cli", ["-h", "127.0.0.1", "-p", "6379", ...args]))
      const seen = yield* observe(cache, "k", "a", "b", cli("SET", `${prefix}k`, "b"), 300)
      expect(seen.oldAfterNew).toBe(0)
      expect(seen.firstNewMs!).toBeLessThan(50)
      expect(yield* warm(cache, "k")).toBe(true)
      yield* cli("DEL", `${prefix}k`)
      yield* Effect.sleep("50 millis")
      expect(yield* cache.get("k")).toEqual(Option.none())
    })))

  it.live("a write through the cache is never followed by the value it replaced", () =>
    Effect.scoped(Effect.gen(function*() {
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix: unique() })
      expect(yield* trusted(cache)).toBe(true)
      for (let i = 0; i < 50; i++) {
        yield* cache.set("k", `v${i}`)
        expect(yield* cache.get("k")).toEqual(Option.some(`v${i}`))
        expect(yield* cache.get("k")).toEqual(Option.some(`v${i}`))
      }
      yield* cache.delete("k")
      expect(yield* cache.get("k")).toEqual(Option.none())
      yield* cache.setMany([["a", "1"], ["b", "2"]])
      expect(yield* cache.getMany(["a", "b", "c"])).toEqual([Option.some("1"), Option.some("2"), Option.none()])
      expect(yield* cache.getMany(["a", "b"])).toEqual([Option.some("1"), Option.some("2")])
      yield* cache.setMany([["a", "3"]])
      expect(yield* cache.getMany(["a", "b"])).toEqual([Option.some("3"), Option.some("2")])
      const stats = yield* cache.stats
      expect(stats.backend).toBe("hybrid")
      expect(stats.hybrid!.l1.hits).toBeGreaterThan(0)
    })))

  it.live("BCAST mode: a change under the prefixes is pushed even for a key this instance never read", () =>
    Effect.scoped(Effect.gen(function*() {
      const prefix = unique()
      const { cache } = yield* hybrid(REDIS_URL, { keyPrefix: prefix, tracking: { mode: "bcast", prefixes: ["hot:"] } })
      const other = yield* plain
      expect(yield* trusted(cache)).toBe(true)
      const before = (yield* hybridStats(cache)).invalidationMessages
      yield* Effect.promise(() => other.set(`${prefix}hot:never-read`, "x"))
      yield* Effect.promise(() => other.set(`${prefix}cold:never-read`, "x"))
      yield* Effect.sleep("100 millis")
      const after = yield* hybridStats(cache)
      expect(after.mode).toBe("bcast")
      // The hot: write (the canary's writes may add more, but the cold: write never does).
      expect(after.invalidationMessages - before).toBeGreaterThanOrEqual(1)
      yield* cache.set("hot:k", "1")
      expect(yield* warm(cache, "hot:k")).toBe(true)
      const seen = yield* observe(cache, "hot:k", "1", "2", Effect.promise(() => other.set(`${prefix}hot:k`, "2")), 200)
      expect(seen.oldAfterNew).toBe(0)
      expect(seen.firstNewMs!).toBeLessThan(50)
      yield* Effect.promise(() => other.del(`${prefix}hot:never-read`, `${prefix}cold:never-read`, `${prefix}hot:k`))
    })))
})
