import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { CircuitBreaker, TransientError } from "@steadfast/resilience"

const failure = Effect.fail(new TransientError({ operation: "get", reason: "connection_refused", message: "refused" }))

describe("CircuitBreaker.rejectsNow", () => {
  it.effect("follows the breaker: closed, open until halfOpenAfter, probing, closed again", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 2, halfOpenAfter: "1 second" })
      expect(breaker.rejectsNow()).toBe(false)
      yield* Effect.either(breaker.execute("get", failure))
      yield* Effect.either(breaker.execute("get", failure))
      expect(yield* breaker.state).toBe("OPEN")
      expect(breaker.rejectsNow()).toBe(true)
      yield* TestClock.adjust("999 millis")
      expect(breaker.rejectsNow()).toBe(true)
      yield* TestClock.adjust("1 millis")
      // Due for a probe: the peek says "go through execute", which makes this call the probe.
      expect(breaker.rejectsNow()).toBe(false)
      const gate = yield* Deferred.make<void>()
      const probe = yield* Effect.fork(breaker.execute("get", Deferred.await(gate)))
      yield* Effect.yieldNow()
      expect(yield* breaker.state).toBe("HALF_OPEN")
      expect(breaker.rejectsNow()).toBe(true)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(probe)
      expect(yield* breaker.state).toBe("CLOSED")
      expect(breaker.rejectsNow()).toBe(false)
    }))
})
