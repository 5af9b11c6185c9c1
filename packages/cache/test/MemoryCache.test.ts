import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import { Cache } from "../src/Cache.js"
import * as MemoryCache from "../src/MemoryCache.js"

const withCache = <A, E>(f: (cache: Cache) => Effect.Effect<A, E>, options?: MemoryCache.Options) =>
  Effect.flatMap(Cache, f).pipe(Effect.provide(MemoryCache.layer(options)))

describe("MemoryCache", () => {
  it.effect("get, set, getOrElse, delete", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        expect(yield* cache.get("a")).toEqual(Option.none())
        yield* cache.set("a", "1")
        expect(yield* cache.get("a")).toEqual(Option.some("1"))
        expect(yield* cache.getOrElse("b", () => "default")).toBe("default")
        expect(yield* cache.delete("a")).toBe(true)
        expect(yield* cache.delete("a")).toBe(false)
        const stats = yield* cache.stats
        expect(stats).toMatchObject({ backend: "memory", hits: 1, misses: 2, memory: { entries: 0 } })
      })
    ))

  it.effect("getMany and setMany keep the order of the keys", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        yield* cache.setMany([["x", "1"], ["z", "3"]])
        expect(yield* cache.getMany(["z", "y", "x"])).toEqual([Option.some("3"), Option.none(), Option.some("1")])
      })
    ))

  it.effect("entries expire at their TTL (TestClock)", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        yield* cache.set("k", "v", { ttl: "10 seconds" })
        yield* TestClock.adjust("9999 millis")
        expect(yield* cache.get("k")).toEqual(Option.some("v"))
        yield* TestClock.adjust("1 millis")
        expect(yield* cache.get("k")).toEqual(Option.none())
      })
    ))

  it.effect("defaultTtl applies to entries set without one", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        yield* cache.set("k", "v")
        yield* TestClock.adjust("5 seconds")
        expect(yield* cache.get("k")).toEqual(Option.none())
      }), { defaultTtl: "5 seconds" }))

  it.effect("evicts the least recently used entry past maxEntries", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        yield* cache.setMany([["a", "1"], ["b", "2"], ["c", "3"]])
        yield* cache.get("a") // a is now the most recent: b is the oldest
        yield* cache.set("d", "4")
        expect(yield* cache.getMany(["a", "b", "c", "d"])).toEqual([
          Option.some("1"),
          Option.none(),
          Option.some("3"),
          Option.some("4")
        ])
        expect((yield* cache.stats).memory).toEqual({ entries: 3, maxEntries: 3 })
      }), { maxEntries: 3 }))

  it.effect("stays bounded under many distinct keys", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        for (let i = 0; i < 5000; i++) yield* cache.set(`k${i}`, "v")
        expect((yield* cache.stats).memory?.entries).toBe(100)
      }), { maxEntries: 100 }))

  const badInput: ReadonlyArray<readonly [string, (cache: Cache) => Effect.Effect<unknown, unknown>, string]> = [
    ["empty key", (c) => c.get(""), "must not be empty"],
    ["non-string key", (c) => c.get(42 as unknown as string), "must be a string"],
    ["huge key", (c) => c.set("k".repeat(10_000), "v"), "limit"],
    ["non-string value", (c) => c.set("k", { a: 1 } as unknown as string), "must be a string"],
    ["zero TTL", (c) => c.set("k", "v", { ttl: 0 }), "TTL"],
    ["negative TTL", (c) => c.set("k", "v", { ttl: -5 }), "TTL"],
    ["infinite TTL", (c) => c.set("k", "v", { ttl: "Infinity" as never }), "TTL"],
    ["bad key in getMany", (c) => c.getMany(["ok", ""]), "must not be empty"],
    ["bad entry in setMany", (c) => c.setMany([["ok", "v"], ["", "v"]]), "must not be empty"]
  ]
  for (const [label, call, text] of badInput) {
    it.effect(`${label} fails with PermanentError invalid_argument and stores nothing`, () =>
      withCache((cache) =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(call(cache))
          expect(error).toMatchObject({ _tag: "PermanentError", reason: "invalid_argument" })
          expect((error as Error).message).toContain(text)
          expect((yield* cache.stats).memory?.entries).toBe(0)
        })
      ))
  }

  it("rejects invalid options", () => {
    expect(() => MemoryCache.resolveOptions({ maxEntries: 0 })).toThrow(/maxEntries/)
    expect(() => MemoryCache.resolveOptions({ defaultTtl: -1 })).toThrow(/defaultTtl/)
  })

  it.effect("getOrSet computes once for concurrent misses of one key", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        const calls = yield* Ref.make(0)
        const gate = yield* Deferred.make<void>()
        const compute = Ref.update(calls, (n) => n + 1).pipe(Effect.zipRight(Deferred.await(gate)), Effect.as("computed"))
        const fibers = yield* Effect.forEach(Array.from({ length: 50 }), () => Effect.fork(cache.getOrSet("k", compute)))
        yield* Effect.yieldNow()
        yield* Deferred.succeed(gate, undefined)
        const results = yield* Effect.forEach(fibers, Fiber.join)
        expect(results.every((r) => r === "computed")).toBe(true)
        expect(yield* Ref.get(calls)).toBe(1)
        expect(yield* cache.get("k")).toEqual(Option.some("computed"))
        // A hit does not compute again.
        expect(yield* cache.getOrSet("k", Effect.die("must not run"))).toBe("computed")
      })
    ))

  it.effect("getOrSet: a failing compute stores nothing and reaches every waiter", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const compute = Deferred.await(gate).pipe(Effect.zipRight(Effect.fail("source down" as const)))
        const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.fork(Effect.flip(cache.getOrSet("k", compute))))
        yield* Effect.yieldNow()
        yield* Deferred.succeed(gate, undefined)
        expect(yield* Effect.forEach(fibers, Fiber.join)).toEqual(["source down", "source down", "source down"])
        expect(yield* cache.get("k")).toEqual(Option.none())
      })
    ))

  it.effect("getOrSet: if the computing caller is interrupted, a waiter takes over", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        const calls = yield* Ref.make(0)
        const compute = Ref.updateAndGet(calls, (n) => n + 1).pipe(
          Effect.tap((n) => (n === 1 ? Effect.never : Effect.void)),
          Effect.as("second")
        )
        const first = yield* Effect.fork(cache.getOrSet("k", compute))
        yield* Effect.yieldNow()
        const waiter = yield* Effect.fork(cache.getOrSet("k", compute))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(first)
        expect(yield* Fiber.join(waiter)).toBe("second")
        expect(yield* Ref.get(calls)).toBe(2)
      })
    ))
})

describe("MemoryCache eviction (CLOCK, second chance)", () => {
  const present = (cache: Cache, keys: ReadonlyArray<string>) =>
    Effect.map(Effect.forEach(keys, (k) => cache.get(k)), (found) => keys.filter((_, i) => Option.isSome(found[i]!)))

  it.effect("a read entry survives the next eviction; between two read entries the order is by insertion", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        yield* cache.setMany([["a", "1"], ["b", "2"], ["c", "3"]])
        yield* cache.get("a")
        yield* cache.get("b")
        // a and b lose their bit and move to the young end: c, never read, goes.
        yield* cache.set("d", "4")
        expect(yield* cache.getMany(["a", "b", "c", "d"])).toEqual([
          Option.some("1"),
          Option.some("2"),
          Option.none(),
          Option.some("4")
        ])
      }), { maxEntries: 3 }))

  it.effect("passed-over entries are young again: the next eviction takes the entry added before them", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        yield* cache.setMany([["a", "1"], ["b", "2"], ["c", "3"]])
        yield* cache.get("a")
        yield* cache.set("d", "4") // a passed over (bit cleared), b evicted: order c, d, a
        yield* cache.set("e", "5") // c evicted
        yield* cache.set("f", "6") // d evicted (a was not read again)
        yield* cache.set("g", "7") // a evicted
        const stats = yield* cache.stats
        expect(stats.memory?.entries).toBe(3)
        // Only the three youngest are left (reads below set bits, so check them last).
        expect(yield* present(cache, ["a", "b", "c", "d", "e", "f", "g"])).toEqual(["e", "f", "g"])
      }), { maxEntries: 3 }))

  it.effect("a refresh (set of a present key) counts as a use", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        yield* cache.setMany([["a", "1"], ["b", "2"], ["c", "3"]])
        yield* cache.set("a", "1'")
        yield* cache.set("d", "4")
        expect(yield* present(cache, ["a", "b", "c", "d"])).toEqual(["a", "c", "d"])
        expect(yield* cache.get("a")).toEqual(Option.some("1'"))
      }), { maxEntries: 3 }))

  it.effect("new entries start unreferenced: with no reads, eviction is first in, first out", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        for (let i = 0; i < 10; i++) yield* cache.set(`k${i}`, "v")
        yield* cache.set("k10", "v")
        expect(yield* present(cache, ["k0", "k1", "k9", "k10"])).toEqual(["k1", "k9", "k10"])
      }), { maxEntries: 10 }))

  it.effect("at most 8 second chances per eviction: with every entry read, the 9th oldest goes", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        for (let i = 0; i < 10; i++) yield* cache.set(`k${i}`, "v")
        for (let i = 0; i < 10; i++) yield* cache.get(`k${i}`)
        yield* cache.set("k10", "v")
        const keys = Array.from({ length: 11 }, (_, i) => `k${i}`)
        expect(yield* present(cache, keys)).toEqual(keys.filter((k) => k !== "k8"))
      }), { maxEntries: 10 }))

  it.effect("the entry just added is never the one evicted, even when it is the only unreferenced one", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        yield* cache.set("a", "1")
        yield* cache.get("a")
        yield* cache.set("b", "2")
        expect(yield* cache.get("b")).toEqual(Option.some("2"))
        expect(yield* cache.get("a")).toEqual(Option.none())
      }), { maxEntries: 1 }))

  it.effect("an entry is gone at its expiry instant: get misses, delete reports no live value", () =>
    withCache((cache) =>
      Effect.gen(function*() {
        yield* cache.set("k", "v", { ttl: "1 second" })
        yield* cache.set("j", "v", { ttl: "1 second" })
        yield* TestClock.adjust("1 second")
        expect(yield* cache.delete("k")).toBe(false)
        expect(yield* cache.get("j")).toEqual(Option.none())
        yield* cache.set("l", "v", { ttl: "1 second" })
        yield* TestClock.adjust("999 millis")
        expect(yield* cache.delete("l")).toBe(true)
        expect((yield* cache.stats).memory?.entries).toBe(0)
      })))
})

describe("MemoryCache health and stats", () => {
  it.effect("health: always healthy, no Redis, no breaker; stats: the configuration as given", () =>
    Effect.gen(function*() {
      const plain = yield* withCache((cache) => Effect.all([cache.health, cache.stats]))
      expect(plain[0]).toEqual({
        status: "healthy",
        redis: "none",
        circuitState: "NONE",
        latencyMs: Option.none(),
        error: Option.none()
      })
      expect(plain[1]).toMatchObject({ backend: "memory", circuitState: "NONE", failureCount: 0, circuitOpens: 0, errors: {} })
      expect(plain[1].reconciliation).toBeUndefined()
      expect(plain[1].config).toEqual({ maxEntries: MemoryCache.defaultMaxEntries })
      const configured = yield* withCache((cache) => cache.stats, { maxEntries: 7, defaultTtl: "2 seconds" })
      expect(configured.config).toEqual({ maxEntries: 7, defaultTtlMs: 2000 })
      expect(configured.memory).toEqual({ entries: 0, maxEntries: 7 })
    }))
})
