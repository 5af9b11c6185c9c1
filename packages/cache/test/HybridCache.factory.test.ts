/**
 * The hybrid cache's getOrSet factory control under TestClock (over a scripted backend): single-flight, soft timeout
 * with a stale value (answered, the factory finishes in the background and stores, refilling L1), hard timeout
 * (FactoryTimeoutError, or the stale value), a failing factory, eager refresh, a write through the process while the
 * factory runs (not stored), an interrupted caller (the factory still stores). Then the real cache on the shared Redis.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { Context, Layer } from "effect"
import { RedisConnection } from "@steadfast/redis"
import { Redis } from "ioredis"
import * as Factory from "../src/internal/factory.js"
import * as HybridCache from "../src/HybridCache.js"

const scripted = () => {
  const state = {
    hits: new Map<string, { value: string; age: number }>(),
    l2: new Map<string, string>(),
    stale: new Map<string, string>(),
    stored: [] as Array<readonly [string, string, boolean]>,
    staleServed: [] as Array<string>,
    events: [] as Array<string>
  }
  const backend: Factory.Backend = {
    hit: (key) => state.hits.get(key),
    lookup: (key) =>
      Effect.sync((): Factory.Lookup => {
        const value = state.l2.get(key)
        if (value !== undefined) return { _tag: "Value", value }
        const stale = state.stale.get(key)
        return stale === undefined ? { _tag: "Miss" } : { _tag: "Stale", value: stale }
      }),
    store: (key, value, _options, refill) =>
      Effect.sync(() => {
        state.l2.set(key, value)
        state.stored.push([key, value, refill])
      }),
    servedStale: (reason) => state.staleServed.push(reason),
    event: (name) => state.events.push(name)
  }
  return { state, backend }
}

const setup = Effect.gen(function*() {
  const { backend, state } = scripted()
  const control = Factory.make(backend, yield* Effect.scope)
  let runs = 0
  /** A factory that takes `ms` (TestClock) and answers `value`. */
  const slow = (value: string, ms: number) =>
    Effect.suspend(() => {
      runs++
      return Effect.as(Effect.sleep(`${ms} millis`), value)
    })
  const getOrSet = <E>(key: string, compute: Effect.Effect<string, E>, options?: Factory.FactoryOptions) =>
    control.getOrSet(key, compute, options, Factory.resolve(options))
  return { state, control, slow, getOrSet, runs: () => runs }
})

describe("getOrSet factory control (TestClock)", () => {
  it.scoped("single-flight: concurrent misses share one factory, stored once", () =>
    Effect.gen(function*() {
      const t = yield* setup
      const fibers = yield* Effect.forEach(Array.from({ length: 20 }), () => Effect.fork(t.getOrSet("k", t.slow("v", 100))))
      yield* TestClock.adjust("100 millis")
      const values = yield* Effect.forEach(fibers, Fiber.join)
      expect(new Set(values)).toEqual(new Set(["v"]))
      expect(t.runs()).toBe(1)
      expect(t.state.stored).toEqual([["k", "v", false]])
      // A hit afterwards runs nothing.
      expect(yield* t.getOrSet("k", t.slow("other", 100))).toBe("v")
      expect(t.runs()).toBe(1)
    }))

  it.scoped("soft timeout with a stale value: the stale value at the soft timeout, the factory stores in the background", () =>
    Effect.gen(function*() {
      const t = yield* setup
      t.state.stale.set("k", "old")
      const fiber = yield* Effect.fork(t.getOrSet("k", t.slow("new", 5000), { softTimeout: "200 millis", hardTimeout: "10 seconds" }))
      yield* TestClock.adjust("199 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe("old")
      expect(t.state.staleServed).toEqual(["soft_timeout"])
      expect(t.state.stored).toEqual([])
      // A caller meanwhile joins the same flight (single-flight holds in the background too).
      const second = yield* Effect.fork(t.getOrSet("k", t.slow("other", 5000), { softTimeout: "10 seconds" }))
      yield* TestClock.adjust("4800 millis")
      expect(yield* Fiber.join(second)).toBe("new")
      expect(t.runs()).toBe(1)
      // Stored, and read back into L1 (a caller stopped waiting for it).
      expect(t.state.stored).toEqual([["k", "new", true]])
      expect(t.state.events).toContain("soft_timeout")
    }))

  it.scoped("soft timeout without a stale value: the caller waits for the factory", () =>
    Effect.gen(function*() {
      const t = yield* setup
      const fiber = yield* Effect.fork(t.getOrSet("k", t.slow("v", 1000), { softTimeout: "100 millis" }))
      yield* TestClock.adjust("999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe("v")
      expect(t.state.staleServed).toEqual([])
    }))

  it.scoped("hard timeout: FactoryTimeoutError without a stale value (the factory still finishes and stores); the stale value with one", () =>
    Effect.gen(function*() {
      const t = yield* setup
      const fiber = yield* Effect.fork(Effect.either(t.getOrSet("k", t.slow("v", 5000), { hardTimeout: "1 second" })))
      yield* TestClock.adjust("1 second")
      const failed = yield* Fiber.join(fiber)
      expect(Either.isLeft(failed) && failed.left).toBeInstanceOf(Factory.FactoryTimeoutError)
      expect(Either.isLeft(failed) && (failed.left as Factory.FactoryTimeoutError).timeoutMs).toBe(1000)
      yield* TestClock.adjust("4 seconds")
      expect(t.state.stored).toEqual([["k", "v", true]])

      t.state.stale.set("j", "old")
      const withStale = yield* Effect.fork(t.getOrSet("j", t.slow("v", 5000), { hardTimeout: "1 second" }))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(withStale)).toBe("old")
      expect(t.state.staleServed).toEqual(["hard_timeout"])
    }))

  it.scoped("a failing factory: the stale value when there is one, its own failure otherwise", () =>
    Effect.gen(function*() {
      const t = yield* setup
      t.state.stale.set("k", "old")
      expect(yield* t.getOrSet("k", Effect.fail("db down"))).toBe("old")
      expect(t.state.staleServed).toEqual(["factory_failed"])
      expect(yield* Effect.flip(t.getOrSet("j", Effect.fail("db down")))).toBe("db down")
      expect(t.state.stored).toEqual([])
    }))

  it.scoped("eager refresh: a hit past the fraction answers at once and refreshes in the background, once", () =>
    Effect.gen(function*() {
      const t = yield* setup
      t.state.hits.set("k", { value: "v1", age: 0.5 })
      expect(yield* t.getOrSet("k", t.slow("v2", 100), { eagerRefresh: 0.8 })).toBe("v1")
      expect(t.runs()).toBe(0)
      t.state.hits.set("k", { value: "v1", age: 0.85 })
      expect(yield* t.getOrSet("k", t.slow("v2", 100), { eagerRefresh: 0.8 })).toBe("v1")
      expect(yield* t.getOrSet("k", t.slow("v2", 100), { eagerRefresh: 0.8 })).toBe("v1")
      expect(t.state.events.filter((e) => e === "eager_refresh")).toHaveLength(1)
      yield* TestClock.adjust("100 millis")
      expect(t.runs()).toBe(1)
      expect(t.state.stored).toEqual([["k", "v2", true]])
    }))

  it.scoped("a write of the key through the process while the factory runs: its result is not stored", () =>
    Effect.gen(function*() {
      const t = yield* setup
      const fiber = yield* Effect.fork(t.getOrSet("k", t.slow("computed", 1000)))
      yield* TestClock.adjust("500 millis")
      t.control.noteWrite("k")
      yield* TestClock.adjust("500 millis")
      expect(yield* Fiber.join(fiber)).toBe("computed")
      expect(t.state.stored).toEqual([])
      expect(t.state.events).toContain("superseded")
    }))

  it.scoped("an interrupted caller leaves the factory running: its result is stored", () =>
    Effect.gen(function*() {
      const t = yield* setup
      const started = yield* Deferred.make<void>()
      const compute = Effect.zipRight(Deferred.succeed(started, undefined), t.slow("v", 1000))
      const fiber = yield* Effect.fork(t.getOrSet("k", compute))
      yield* Deferred.await(started)
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust("1 second")
      expect(t.state.stored).toEqual([["k", "v", true]])
    }))

  it("rejects bad options", () => {
    expect(() => Factory.resolve({ eagerRefresh: 1 })).toThrow(/eagerRefresh/)
    expect(() => Factory.resolve({ softTimeout: "0 millis" })).toThrow(/softTimeout/)
  })
})

const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"

describe("HybridCache.getOrSetWith against the shared Redis", () => {
  it.live("stores in Redis, refills L1 after an eager refresh, and fails typed at the hard timeout", () =>
    Effect.scoped(Effect.gen(function*() {
      const prefix = `steadfast:hybrid-factory:${process.pid}:${Math.random().toString(36).slice(2)}:`
      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          const redis = new Redis(REDIS_URL)
          await redis.del(`${prefix}k`, `${prefix}slow`)
          await redis.quit()
        }).pipe(Effect.ignore)
      )
      const context = yield* Layer.build(
        HybridCache.layer({ keyPrefix: prefix, l1: { ttl: "400 millis" } }).pipe(
          Layer.provideMerge(RedisConnection.layer({ url: REDIS_URL }))
        )
      )
      const cache = Context.get(context, HybridCache.HybridCache)
      let runs = 0
      const compute = Effect.sync(() => `v${++runs}`)
      const values = yield* Effect.forEach(Array.from({ length: 16 }), () => cache.getOrSetWith("k", compute), { concurrency: "unbounded" })
      expect(new Set(values)).toEqual(new Set(["v1"]))
      expect(runs).toBe(1)
      // Redis holds it; the next reads fill L1, then hit it.
      yield* Effect.sleep("50 millis")
      expect(yield* cache.get("k")).toEqual(Option.some("v1"))
      // Eager refresh at 50 % of the L1 TTL: the hit answers v1, the background factory writes v2 to Redis and L1.
      yield* cache.get("k")
      yield* Effect.sleep("250 millis")
      expect(yield* cache.getOrSetWith("k", compute, { eagerRefresh: 0.5 })).toBe("v1")
      yield* Effect.sleep("100 millis")
      expect(runs).toBe(2)
      const before = (yield* cache.stats).hybrid!.l1.hits
      expect(yield* cache.get("k")).toEqual(Option.some("v2"))
      expect((yield* cache.stats).hybrid!.l1.hits).toBe(before + 1) // refilled by the refresh
      const failed = yield* Effect.flip(cache.getOrSetWith("slow", Effect.as(Effect.sleep("300 millis"), "x"), { hardTimeout: "50 millis" }))
      expect(failed).toBeInstanceOf(HybridCache.FactoryTimeoutError)
      yield* Effect.sleep("350 millis")
      expect(yield* cache.get("slow")).toEqual(Option.some("x")) // finished in the background
      expect((yield* cache.stats).hybrid!.factory).toMatchObject({ eager_refresh: 1, hard_timeout: 1 })
    })))
})
