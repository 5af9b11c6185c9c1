import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { CircuitBreaker, TransientError } from "@steadfast/resilience"

const reset = new TransientError({ operation: "get", reason: "connection_reset_peer", message: "reset" })

/** `n` calls admitted together, all failing when `gate` opens: what one socket reset does to its in-flight calls. */
const burst = (breaker: CircuitBreaker.CircuitBreaker, n: number) =>
  Effect.gen(function*() {
    const gate = yield* Deferred.make<void>()
    const fibers = yield* Effect.forEach(Array.from({ length: n }), () =>
      Effect.fork(Effect.either(breaker.execute("get", Effect.zipRight(Deferred.await(gate), Effect.fail(reset))))))
    yield* Effect.yieldNow()
    yield* Deferred.succeed(gate, undefined)
    yield* Effect.forEach(fibers, Fiber.join)
  })

describe("CircuitBreaker countOverlappingOnce", () => {
  it.effect("eight calls failing together on one reset count once", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 5, countOverlappingOnce: true })
      yield* burst(breaker, 8)
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 1 })
    }))

  it.effect("without the option (the classic count), the same burst opens the breaker", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 5 })
      yield* burst(breaker, 8)
      expect(yield* breaker.snapshot).toMatchObject({ state: "OPEN", opens: 1 })
    }))

  it.effect("sequential failures still count one by one and open at the threshold", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 3, countOverlappingOnce: true })
      for (let i = 0; i < 2; i++) yield* burst(breaker, 4)
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 2 })
      yield* burst(breaker, 4)
      expect(yield* breaker.snapshot).toMatchObject({ state: "OPEN", opens: 1, consecutiveFailures: 3 })
    }))
})
