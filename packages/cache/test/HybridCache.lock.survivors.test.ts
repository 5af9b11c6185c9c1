/**
 * The distributed lock of the hybrid cache's getOrSet (`internal/lock.ts`): what no other test pinned down (found by
 * mutation testing). Option messages; under TestClock over the in-memory lock store (`locks.utils.ts`), the
 * extension's cadence, a release that fails, `maxWait` to the millisecond; against Redis, the scripts on a server that has never seen them (EVALSHA
 * answered NOSCRIPT) and an extension that finds the lock taken.
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisServer } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { Redis } from "ioredis"
import * as Factory from "../src/internal/factory.js"
import * as Lock from "../src/internal/lock.js"
import type * as HybridCache from "../src/HybridCache.js"
import { hybrid, hybridStats } from "./hybrid.utils.js"
import { memoryLocks } from "./locks.utils.js"

const work = (events: Array<string>, produce: Effect.Effect<string>): Lock.Work<never, never> => ({
  peek: Effect.succeed(Option.none()),
  produce,
  refresh: false,
  event: (e, detail) => events.push(detail === undefined ? e : `${e}:${detail}`)
})

describe("lock options (survivors)", () => {
  it("messages name the option", () => {
    expect(() => Factory.resolve({ lock: "yes" as unknown as boolean })).toThrow("lock must be a boolean or an object, got yes")
    expect(() => Factory.resolve({ lock: null as unknown as boolean })).toThrow("lock must be a boolean or an object, got null")
    expect(() => Lock.resolve({ maxPoll: "0 millis" })).toThrow("lock.maxPoll must be a positive, finite duration")
  })
})

describe("lock under TestClock (survivors)", () => {
  it.effect("the holder extends its lock every ttl / 3 while the factory runs, and no faster", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const lock = Lock.resolve({ ttl: "300 millis" })!
      const fiber = yield* Effect.fork(Lock.run(memoryLocks().store, "k", lock, work(events, Effect.as(Effect.sleep("950 millis"), "v"))))
      yield* TestClock.adjust("950 millis")
      expect(yield* Fiber.join(fiber)).toBe("v")
      // At 100, 200, ..., 900 ms.
      expect(events.filter((e) => e === "lock_extended")).toHaveLength(9)
    }))

  it.effect("a release that fails is told (lock_release_failed); the value is still answered", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const locks = memoryLocks()
      // Redis becomes unreachable while the factory runs: the release fails.
      const produce = Effect.sync(() => (locks.setDown("timeout"), "v"))
      const value = yield* Lock.run(locks.store, "k", Lock.resolve(true)!, work(events, produce))
      expect(value).toBe("v")
      expect(events).toEqual(["lock_acquired", "lock_release_failed"])
    }))

  it.effect("a waiter runs the factory itself at maxWait exactly", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const lock = Lock.resolve({ poll: "50 millis", maxPoll: "50 millis", maxWait: "100 millis" })!
      const locks = memoryLocks()
      yield* locks.plant("k", Number.POSITIVE_INFINITY) // held by another instance
      const fiber = yield* Effect.fork(Lock.run(locks.store, "k", lock, work(events, Effect.succeed("mine"))))
      yield* TestClock.adjust("99 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* Effect.yieldNow()
      const done = yield* Fiber.poll(fiber) // answered at 100, not one poll later
      expect(Option.isSome(done)).toBe(true)
      expect(yield* Fiber.join(fiber)).toBe("mine")
      expect(events).toEqual(["lock_busy", "lock_wait_timeout"])
    }))
})

describe("lock against Redis (survivors)", () => {
  it.live("on a server that never saw the scripts (EVALSHA answers NOSCRIPT), the release still deletes the lock", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const { cache } = yield* hybrid(server.url, { keyPrefix: "h:" })
      const hybridCache = cache as HybridCache.HybridCache // the layer provides the same object as both services
      expect(yield* hybridCache.getOrSetWith("k", Effect.succeed("v"), { lock: true })).toBe("v")
      expect(yield* server.command("EXISTS", "h:__steadfast:lock:k")).toBe(0)
      const factory = (yield* hybridStats(cache)).factory!
      expect(factory["lock_acquired"]).toBe(1)
      expect(factory["lock_lost"]).toBeUndefined()
      expect(factory["lock_release_failed"]).toBeUndefined()
    })))

  it.live("an extension that finds the lock taken by another instance stops extending (lock_lost once)", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* RedisServer.make()
      const { cache } = yield* hybrid(server.url, { keyPrefix: "h:" })
      const hybridCache = cache as HybridCache.HybridCache
      const redis = yield* Effect.acquireRelease(Effect.sync(() => new Redis(server.url)), (r) => Effect.promise(() => r.quit()))
      // Extended every 200 ms; taken over at 300 ms, so the extension at 400 ms finds another token.
      const run = yield* Effect.fork(
        hybridCache.getOrSetWith("k", Effect.as(Effect.sleep("1 second"), "v"), { lock: { ttl: "600 millis" } })
      )
      yield* Effect.sleep("300 millis")
      yield* Effect.promise(() => redis.set("h:__steadfast:lock:k", "another instance", "PX", 5000))
      expect(yield* Fiber.join(run)).toBe("v")
      const factory = (yield* hybridStats(cache)).factory!
      expect(factory["lock_lost"]).toBe(1)
      expect(factory["lock_extended"] ?? 0).toBeLessThanOrEqual(2)
      expect(yield* Effect.promise(() => redis.get("h:__steadfast:lock:k"))).toBe("another instance")
    })))
})
