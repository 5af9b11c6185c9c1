/**
 * Retries as Schedules: any `Schedule` as an operation's retry policy, under `TestClock` over a scripted
 * connection. Only transient errors are retried, and the call's deadline still bounds the retries.
 */
import { describe, expect, it } from "@effect/vitest"
import { ScriptedConnection } from "@steadfast/redis"
import { Retry } from "@steadfast/resilience"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as RedisCache from "../src/RedisCache.js"

const strict = (retry: RedisCache.Options["retry"]) =>
  RedisCache.layer({ retry, breaker: { failureThreshold: 10 } }).pipe(
    Layer.provideMerge(ScriptedConnection.layer({ commandTimeout: "500 millis" }))
  )

const gets = Effect.map(
  Effect.flatMap(ScriptedConnection.ScriptedConnection, (s) => s.log),
  (log) => log.filter((e) => e.command === "get").map((e) => e.at)
)

describe("RedisCache retries with a Schedule", () => {
  it.effect("a read retried on the schedule's delays until it succeeds", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.put("k", "v")
      yield* redis.push("get", ScriptedConnection.rejected("loading"), ScriptedConnection.rejected("loading"))
      const fiber = yield* Effect.fork(cache.get("k"))
      yield* TestClock.adjust("40 millis")
      expect(yield* gets).toEqual([0, 40])
      yield* TestClock.adjust("40 millis")
      expect(yield* Fiber.join(fiber)).toEqual(Option.some("v"))
      // Three attempts, 40 ms apart: the schedule's delays, not the default policy's (100 ms, x2, jitter).
      expect(yield* gets).toEqual([0, 40, 80])
      expect((yield* cache.stats).config["getMaxRetries"]).toBe("schedule")
    }).pipe(Effect.provide(strict({ get: Schedule.spaced("40 millis").pipe(Schedule.intersect(Schedule.recurs(5))) }))))

  it.effect("the schedule's own stop rule ends the retries: the last transient error reaches the caller", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.setDefault("get", ScriptedConnection.rejected("loading"))
      const fiber = yield* Effect.fork(Effect.flip(cache.get("k")))
      yield* TestClock.adjust("100 millis")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "TransientError", reason: "loading" })
      expect(yield* gets).toEqual([0, 10, 20])
    }).pipe(Effect.provide(strict({ get: Schedule.spaced("10 millis").pipe(Schedule.intersect(Schedule.recurs(2))) }))))

  it.effect("a permanent error is never retried, whatever the schedule", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.setDefault("get", ScriptedConnection.permanent("wrong_type"))
      const error = yield* Effect.flip(cache.get("k"))
      expect(error).toMatchObject({ _tag: "PermanentError", reason: "wrong_type" })
      expect(yield* gets).toEqual([0])
    }).pipe(Effect.provide(strict({ get: Schedule.forever }))))

  it.effect("the deadline bounds a schedule that would retry for ever: the call fails with a timeout within it", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.setDefault("get", ScriptedConnection.rejected("loading"))
      const fiber = yield* Effect.fork(Effect.flip(cache.get("k")))
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "TransientError", reason: "timeout" })
      const attempts = yield* gets
      // Every attempt started within the 500 ms deadline (less its 25 ms slack).
      expect(attempts.length).toBeGreaterThan(5)
      expect(Math.max(...attempts)).toBeLessThan(475)
    }).pipe(Effect.provide(strict({ get: Schedule.spaced("50 millis") }))))

  it.effect("the jitter schedules of @steadfast/resilience plug in as they are", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.put("k", "v")
      yield* redis.push("get", ScriptedConnection.rejected("loading"))
      const fiber = yield* Effect.fork(cache.get("k"))
      yield* TestClock.adjust("200 millis")
      expect(yield* Fiber.join(fiber)).toEqual(Option.some("v"))
      const attempts = yield* gets
      expect(attempts).toHaveLength(2)
      // decorrelated jitter: the first delay is between base and 3 x base.
      expect(attempts[1]).toBeGreaterThanOrEqual(20)
      expect(attempts[1]).toBeLessThanOrEqual(60)
    }).pipe(
      Effect.provide(strict({ get: Retry.decorrelatedJitter({ base: "20 millis", cap: "100 millis" }).pipe(Retry.transientOnly(3)) }))
    ))
})

/**
 * The edges of the deadline budget (500 ms here, less one tick of slack: 475 ms for the whole call, retries included).
 * A retry that could not run before the budget ends is not attempted: the call fails at once with its first error
 * (neither later with a timeout nor by sending the command after its caller's deadline).
 */
describe("RedisCache retries at the deadline's edge", () => {
  const linear = strict({ get: Retry.make({ maxRetries: 2, baseDelay: "100 millis", jitter: false }) })
  const now = Effect.clockWith((clock) => clock.currentTimeMillis)

  it.effect("a read whose first attempt failed with exactly its first delay left fails at once with that error", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.push("get", ScriptedConnection.slow("375 millis", ScriptedConnection.rejected("loading")))
      const fiber = yield* Effect.fork(Effect.flip(cache.get("k")))
      yield* TestClock.adjust("375 millis")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "TransientError", reason: "loading" })
      expect(yield* now).toBe(375)
      expect(yield* gets).toEqual([0])
    }).pipe(Effect.provide(linear)))

  it.effect("with a millisecond more than its first delay left, it is retried, and answers", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.put("k", "v")
      yield* redis.push("get", ScriptedConnection.slow("374 millis", ScriptedConnection.rejected("loading")))
      const fiber = yield* Effect.fork(cache.get("k"))
      yield* TestClock.adjust("474 millis")
      expect(yield* Fiber.join(fiber)).toEqual(Option.some("v"))
      expect(yield* gets).toEqual([0, 474])
    }).pipe(Effect.provide(linear)))

  const sets = Effect.map(
    Effect.flatMap(ScriptedConnection.ScriptedConnection, (s) => s.log),
    (log) => log.filter((e) => e.command === "set" || e.command === "mset").map((e) => [e.at, e.applied])
  )

  it.effect("a write that was never sent, with no time left, is not sent again: it fails at once as not sent", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.push("set", ScriptedConnection.slow("475 millis", ScriptedConnection.notSent))
      const fiber = yield* Effect.fork(Effect.flip(cache.set("k", "v")))
      yield* TestClock.adjust("475 millis")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "TransientError", outcome: "not_sent" })
      yield* TestClock.adjust("1 second")
      expect(yield* redis.peek("k")).toBeNull()
      expect(yield* sets).toEqual([[0, false]])
    }).pipe(Effect.provide(strict({}))))

  it.effect("a write that was never sent, with a millisecond left, is sent again within it", () =>
    Effect.gen(function*() {
      const redis = yield* ScriptedConnection.ScriptedConnection
      const cache = yield* RedisCache.RedisCache
      yield* redis.push("set", ScriptedConnection.slow("474 millis", ScriptedConnection.notSent))
      const fiber = yield* Effect.fork(cache.set("k", "v"))
      yield* TestClock.adjust("474 millis")
      yield* Fiber.join(fiber)
      expect(yield* redis.peek("k")).toBe("v")
      expect(yield* sets).toEqual([[0, false], [474, true]])
    }).pipe(Effect.provide(strict({}))))
})
