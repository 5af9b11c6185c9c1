/**
 * Runtime tuning: a `SubscriptionRef<Tuning>` changes the breaker, retries and log interval of a live cache, under
 * `TestClock` over a scripted connection.
 */
import { describe, expect, it } from "@effect/vitest"
import { ScriptedConnection } from "@steadfast/redis"
import { CircuitBreaker, Retry } from "@steadfast/resilience"
import { LogCapture } from "@steadfast/testing"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as TestClock from "effect/TestClock"
import * as RedisCache from "../src/RedisCache.js"
import { settle } from "./utils.js"

const gets = Effect.map(
  Effect.flatMap(ScriptedConnection.ScriptedConnection, (s) => s.log),
  (log) => log.filter((e) => e.command === "get")
)

const withTuning = (initial: RedisCache.Tuning, body: (tuning: SubscriptionRef.SubscriptionRef<RedisCache.Tuning>, logs: LogCapture.LogCapture) => Effect.Effect<void, unknown, RedisCache.RedisCache | ScriptedConnection.ScriptedConnection>) =>
  Effect.gen(function*() {
    const tuning = yield* SubscriptionRef.make(initial)
    const logs = LogCapture.make()
    yield* body(tuning, logs).pipe(
      Effect.provide(
        RedisCache.layer({ tuning, retry: { get: Retry.none }, breaker: { failureThreshold: 3, halfOpenAfter: "1 second" } }).pipe(
          Layer.provideMerge(ScriptedConnection.layer({ commandTimeout: "500 millis" }))
        )
      ),
      Effect.provide(logs.layer)
    )
  })

const applied = (logs: LogCapture.LogCapture) => logs.lines.filter((l) => l.message === "cache tuning applied")
const rejected = (logs: LogCapture.LogCapture) => logs.lines.filter((l) => l.message === "cache tuning rejected: the cache keeps its settings")

describe("RedisCache runtime tuning", () => {
  it.scoped("a new breaker threshold and retry policy apply to the next calls, logged once each", () =>
    withTuning({}, (tuning, logs) =>
      Effect.gen(function*() {
        const redis = yield* ScriptedConnection.ScriptedConnection
        const cache = yield* RedisCache.RedisCache
        yield* settle
        expect(applied(logs)).toHaveLength(1) // the initial value
        yield* SubscriptionRef.set(tuning, {
          breaker: { failureThreshold: 10, halfOpenAfter: "1 second" },
          retry: { get: Schedule.spaced("20 millis").pipe(Schedule.intersect(Schedule.recurs(2))) }
        })
        yield* settle
        expect(applied(logs)).toHaveLength(2)
        expect(applied(logs)[1]!.annotations["breakerFailureThreshold"]).toBe(10)
        expect(applied(logs)[1]!.annotations["getMaxRetries"]).toBe("schedule")
        // The new retry: two transient failures, then the value, 20 ms apart.
        yield* redis.put("k", "v")
        yield* redis.push("get", ScriptedConnection.rejected("loading"), ScriptedConnection.rejected("loading"))
        const fiber = yield* Effect.fork(cache.get("k"))
        yield* TestClock.adjust("40 millis")
        expect(yield* Fiber.join(fiber)).toEqual(Option.some("v"))
        expect((yield* gets).map((e) => e.at)).toEqual([0, 20, 40])
        // The new threshold: 9 failures (3 calls x 3 attempts) leave it closed; the old one (3) would have opened.
        yield* redis.setDefault("get", ScriptedConnection.rejected("loading"))
        for (let i = 0; i < 3; i++) {
          const f = yield* Effect.fork(Effect.either(cache.get("k")))
          yield* TestClock.adjust("40 millis")
          yield* Fiber.join(f)
        }
        expect(cache.breaker.unsafeState()).toBe("CLOSED")
        expect((yield* cache.stats).failureCount).toBe(9)
      })))

  it.scoped("an invalid tuning is logged as an error and ignored: the cache keeps its settings", () =>
    withTuning({}, (tuning, logs) =>
      Effect.gen(function*() {
        const redis = yield* ScriptedConnection.ScriptedConnection
        const cache = yield* RedisCache.RedisCache
        yield* settle
        yield* SubscriptionRef.set(tuning, { breaker: { failureThreshold: 0 } })
        yield* settle
        yield* SubscriptionRef.set(tuning, { retry: { get: { ...Retry.make(), maxRetries: -1 } } })
        yield* settle
        expect(rejected(logs)).toHaveLength(2)
        expect(String(rejected(logs)[0]!.annotations["problems"])).toContain("failureThreshold must be an integer >= 1, got 0")
        expect(String(rejected(logs)[1]!.annotations["problems"])).toContain("retry.get")
        expect(rejected(logs)[0]!.level).toBe("ERROR")
        // Still the start-up settings: no retry of get, the breaker opens at 3.
        yield* redis.setDefault("get", ScriptedConnection.rejected("loading"))
        for (let i = 0; i < 3; i++) yield* Effect.either(cache.get("k"))
        expect((yield* gets)).toHaveLength(3)
        expect(cache.breaker.unsafeState()).toBe("OPEN")
      })))

  it.scoped("every problem of a tuning is named, one after the other; a logInterval that is not a duration is one", () =>
    withTuning({}, (tuning, logs) =>
      Effect.gen(function*() {
        yield* settle
        yield* SubscriptionRef.set(tuning, {
          breaker: { failureThreshold: 0 },
          logInterval: "soon" as unknown as Duration.DurationInput
        })
        yield* settle
        expect(rejected(logs)).toHaveLength(1)
        const problems = String(rejected(logs)[0]!.annotations["problems"])
        expect(problems).toMatch(/failureThreshold must be an integer >= 1, got 0.*; logInterval is not a valid duration: soon$/)
      })))

  it.scoped("with reads and writes split, each breaker takes its own new options", () =>
    Effect.gen(function*() {
      const tuning = yield* SubscriptionRef.make<RedisCache.Tuning>({})
      yield* Effect.gen(function*() {
        const redis = yield* ScriptedConnection.ScriptedConnection
        const cache = yield* RedisCache.RedisCache
        yield* settle
        // Writes now open at the first failure; reads keep their 3.
        yield* SubscriptionRef.set(tuning, { breakers: { writes: { failureThreshold: 1 } } })
        yield* settle
        yield* redis.setDefault("set", ScriptedConnection.rejected("loading"))
        yield* redis.setDefault("get", ScriptedConnection.rejected("loading"))
        yield* Effect.either(cache.set("k", "v"))
        expect(cache.breakers.writes.unsafeState()).toBe("OPEN")
        for (let i = 0; i < 2; i++) yield* Effect.either(cache.get("k"))
        expect(cache.breakers.reads.unsafeState()).toBe("CLOSED")
        yield* Effect.either(cache.get("k"))
        expect(cache.breakers.reads.unsafeState()).toBe("OPEN")
        // Then reads: 1 as well (a new tuning without `breakers.writes` keeps the start-up writes options: 3).
        yield* SubscriptionRef.set(tuning, { breakers: { reads: { failureThreshold: 1 } } })
        yield* settle
        expect(cache.breakers.reads.unsafeSnapshot().rule).toBe("consecutive(1)")
        expect(cache.breakers.writes.unsafeSnapshot().rule).toBe("consecutive(3)")
        // Each new breaker's options are validated: an invalid writes threshold rejects the whole tuning.
        yield* SubscriptionRef.set(tuning, { breakers: { reads: { failureThreshold: 2 }, writes: { failureThreshold: 0 } } })
        yield* settle
        expect(cache.breakers.reads.unsafeSnapshot().rule).toBe("consecutive(1)")
        expect(cache.breakers.writes.unsafeSnapshot().rule).toBe("consecutive(3)")
      }).pipe(
        Effect.provide(
          RedisCache.layer({
            tuning,
            retry: { get: Retry.none },
            breaker: { failureThreshold: 3, halfOpenAfter: "1 second" },
            breakers: { reads: {}, writes: {} }
          }).pipe(Layer.provideMerge(ScriptedConnection.layer({ commandTimeout: "500 millis" })))
        )
      )
    }))

  it.scoped("a shared circuitBreaker is not the cache's to retune: tuning leaves it as it was", () =>
    Effect.gen(function*() {
      const tuning = yield* SubscriptionRef.make<RedisCache.Tuning>({})
      const shared = yield* CircuitBreaker.make({ failureThreshold: 2, halfOpenAfter: "1 second" })
      const logs = LogCapture.make()
      yield* Effect.gen(function*() {
        yield* settle
        yield* SubscriptionRef.set(tuning, { breaker: { failureThreshold: 9 } })
        yield* settle
        expect(shared.unsafeSnapshot().rule).toBe("consecutive(2)")
        const applied = logs.lines.filter((l) => l.message === "cache tuning applied")
        // The start-up tuning, then the change: neither touched the shared breaker.
        expect(applied.map((l) => l.annotations["tuned_breakers"])).toEqual([false, false])
        // Breaker options it would not use are not its to judge either: an invalid one does not reject the rest.
        yield* SubscriptionRef.set(tuning, { breaker: { failureThreshold: 0 }, logInterval: "5 seconds" })
        yield* settle
        expect(rejected(logs)).toHaveLength(0)
        expect(logs.lines.filter((l) => l.message === "cache tuning applied")).toHaveLength(3)
      }).pipe(
        Effect.provide(
          RedisCache.layer({ tuning, circuitBreaker: shared }).pipe(
            Layer.provideMerge(ScriptedConnection.layer({ commandTimeout: "500 millis" }))
          )
        ),
        Effect.provide(logs.layer)
      )
    }))

  it.scoped("no call dropped or doubled while the settings change under 64 concurrent callers", () =>
    withTuning({}, (tuning) =>
      Effect.gen(function*() {
        const redis = yield* ScriptedConnection.ScriptedConnection
        const cache = yield* RedisCache.RedisCache
        for (let i = 0; i < 64; i++) yield* redis.put(`k${i}`, `v${i}`)
        yield* settle
        const callers = yield* Effect.fork(
          Effect.forEach(Array.from({ length: 1000 }, (_, i) => i), (i) => cache.get(`k${i % 64}`), { concurrency: 64 })
        )
        for (let i = 0; i < 50; i++) {
          yield* SubscriptionRef.set(tuning, i % 2 === 0 ? { breaker: { failureThreshold: 7 } } : { logInterval: "2 seconds" })
          yield* Effect.yieldNow()
        }
        const results = yield* Fiber.join(callers)
        expect(results).toEqual(Array.from({ length: 1000 }, (_, i) => Option.some(`v${i % 64}`)))
        // One GET (or one key of an MGET) per call: none lost, none sent twice.
        const keys = (yield* gets).flatMap((e) => e.keys)
        expect(keys).toHaveLength(1000)
      })))

  it.scoped("the command deadline changes for the calls started after it; a call in flight keeps its own; an invalid one is refused", () =>
    withTuning({}, (tuning, logs) =>
      Effect.gen(function*() {
        const redis = yield* ScriptedConnection.ScriptedConnection
        const cache = yield* RedisCache.RedisCache
        yield* settle
        yield* redis.put("k", "v")
        // A GET slower than any deadline here: each call fails at its own deadline.
        yield* redis.setDefault("get", ScriptedConnection.slow("10 seconds"))
        const before = yield* Effect.fork(Effect.either(cache.get("k")))
        yield* TestClock.adjust("100 millis")
        yield* SubscriptionRef.set(tuning, { commandTimeout: "200 millis" })
        yield* settle
        expect(applied(logs).at(-1)!.annotations["commandTimeoutMs"]).toBe(200)
        const after = yield* Effect.fork(Effect.either(cache.get("k")))
        // 300 ms in: the new call (started at 100 ms, deadline 200 ms) has failed, the first (500 ms) has not.
        yield* TestClock.adjust("200 millis")
        const afterResult = yield* Fiber.join(after)
        expect(afterResult._tag === "Left" && afterResult.left._tag === "TransientError" && afterResult.left.reason).toBe("timeout")
        expect(afterResult._tag === "Left" && afterResult.left.message).toContain("200 ms")
        expect(Option.isNone(yield* Fiber.poll(before))).toBe(true)
        yield* TestClock.adjust("200 millis")
        const beforeResult = yield* Fiber.join(before)
        expect(beforeResult._tag === "Left" && beforeResult.left.message).toContain("500 ms")
        // Invalid: refused as a whole, the deadline stays 200 ms.
        yield* SubscriptionRef.set(tuning, { commandTimeout: "-1 millis", logInterval: "5 seconds" })
        yield* settle
        expect(String(rejected(logs).at(-1)!.annotations["problems"])).toContain("commandTimeout must be a positive, finite duration")
        const still = yield* Effect.fork(Effect.either(cache.get("k")))
        yield* TestClock.adjust("200 millis")
        expect(Option.isSome(yield* Fiber.poll(still))).toBe(true)
        // Absent again: back to the connection's start-up deadline.
        yield* SubscriptionRef.set(tuning, {})
        yield* settle
        expect(applied(logs).at(-1)!.annotations["commandTimeoutMs"]).toBe(500)
      })))
})
