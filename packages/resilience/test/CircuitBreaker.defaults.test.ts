/**
 * `CircuitBreaker.make()` and `CircuitBreaker.layer()` with no argument at all: the documented defaults (5
 * consecutive counted failures, 30 seconds, only `TransientError`s count, overlapping failures each count).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { CircuitBreaker, CircuitOpenError, PermanentError, TransientError } from "@steadfast/resilience"

const transient = new TransientError({ operation: "get", reason: "timeout", message: "timed out" })
const permanent = new PermanentError({ operation: "get", reason: "auth", message: "WRONGPASS" })
const fail = (breaker: CircuitBreaker.CircuitBreaker, error: TransientError | PermanentError = transient) =>
  Effect.either(breaker.execute("get", Effect.fail(error)))

/** What any breaker with the default options must show. */
const behavesWithDefaults = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    // a PermanentError does not count
    for (let i = 0; i < 10; i++) yield* fail(breaker, permanent)
    expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 0 })
    // 5 consecutive transient failures open it
    for (let i = 0; i < 4; i++) yield* fail(breaker)
    expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 4 })
    yield* fail(breaker)
    expect(yield* breaker.snapshot).toMatchObject({ state: "OPEN", consecutiveFailures: 5, opens: 1 })
    // for 30 seconds
    const rejected = yield* Effect.flip(breaker.execute("get", Effect.void))
    expect(rejected).toBeInstanceOf(CircuitOpenError)
    expect(Duration.toMillis((rejected as CircuitOpenError).retryAfter)).toBe(30_000)
    yield* TestClock.adjust("29999 millis")
    expect(breaker.rejectsNow()).toBe(true)
    yield* TestClock.adjust("1 millis")
    expect(yield* breaker.execute("get", Effect.succeed("probe"))).toBe("probe")
    expect(yield* breaker.state).toBe("CLOSED")
  })

describe("CircuitBreaker defaults", () => {
  it.effect("CircuitBreaker.make() with no argument uses the documented defaults", () =>
    Effect.flatMap(CircuitBreaker.make(), behavesWithDefaults))

  it.effect("CircuitBreaker.layer() with no argument provides a breaker with the documented defaults", () =>
    Effect.flatMap(CircuitBreaker.CircuitBreaker, behavesWithDefaults).pipe(Effect.provide(CircuitBreaker.layer())))

  it.effect("by default, failures of calls in flight together each count (five at once open it)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make()
      const gate = yield* Deferred.make<void>()
      const fibers = yield* Effect.forEach(Array.from({ length: 5 }), () =>
        Effect.fork(Effect.either(breaker.execute("get", Effect.zipRight(Deferred.await(gate), Effect.fail(transient))))))
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.forEach(fibers, Fiber.join)
      expect(yield* breaker.snapshot).toMatchObject({ state: "OPEN", opens: 1 })
    }))

  it("the service tag has the documented key", () => {
    expect(CircuitBreaker.CircuitBreaker.key).toBe("@steadfast/resilience/CircuitBreaker")
  })
})
