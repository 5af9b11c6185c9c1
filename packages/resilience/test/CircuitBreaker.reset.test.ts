import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import { CircuitBreaker, TransientError } from "@steadfast/resilience"

const transient = new TransientError({ operation: "get", reason: "connection_reset_peer", message: "reset" })
const fail = (breaker: CircuitBreaker.CircuitBreaker) => Effect.either(breaker.execute("get", Effect.fail(transient)))

describe("CircuitBreaker.reset", () => {
  it.scoped("on a CLOSED breaker, clears the count without publishing a transition", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 3 })
      const changes = yield* breaker.subscribe
      yield* fail(breaker)
      yield* fail(breaker)
      yield* breaker.reset
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 0, opens: 0 })
      yield* breaker.reset // nothing to do
      // the count starts from zero again: two more failures do not open it, a third does
      yield* fail(breaker)
      yield* fail(breaker)
      expect(yield* breaker.state).toBe("CLOSED")
      yield* fail(breaker)
      expect(yield* breaker.state).toBe("OPEN")
      expect(Chunk.toReadonlyArray(yield* Queue.takeAll(changes)).map((c) => `${c.from}->${c.to}`)).toStrictEqual([
        "CLOSED->OPEN"
      ])
    }))

  it.effect("after a reset, a failure from a call admitted before the breaker opened does not count", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 minute" })
      const gate = yield* Deferred.make<void>()
      const slow = yield* Effect.fork(breaker.execute("get", Effect.zipRight(Deferred.await(gate), Effect.fail(transient))))
      yield* Effect.yieldNow()
      yield* fail(breaker) // opens
      yield* breaker.reset
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.await(slow)).toStrictEqual(Exit.fail(transient))
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 0, opens: 1 })
    }))
})
