/**
 * A call's result only ever applies to the breaker state it was admitted in: once the breaker has moved on (opened,
 * closed again, been reset, started another probe), a late result from before changes nothing, success or failure.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import { CircuitBreaker, CircuitOpenError, PermanentError, TransientError } from "@steadfast/resilience"

const transient = new TransientError({ operation: "get", reason: "connection_reset_peer", message: "reset" })
const permanent = new PermanentError({ operation: "get", reason: "wrong_type", message: "WRONGTYPE" })
const fail = (breaker: CircuitBreaker.CircuitBreaker) => Effect.either(breaker.execute("get", Effect.fail(transient)))

/** Starts a call that stays in flight until `finish`, then ends with `outcome`. */
const inFlight = <A, E>(breaker: CircuitBreaker.CircuitBreaker, outcome: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const gate = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(
      breaker.execute("get", Effect.zipRight(Deferred.succeed(started, undefined), Effect.zipRight(Deferred.await(gate), outcome)))
    )
    yield* Deferred.await(started)
    return Effect.zipRight(Deferred.succeed(gate, undefined), Effect.exit(Fiber.join(fiber)))
  })

describe("CircuitBreaker: results from an earlier state are ignored", () => {
  it.effect("a slow success admitted before the breaker opened does not reset the count it has after re-closing", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 3, halfOpenAfter: "1 second" })
      const slowRead = yield* inFlight(breaker, Effect.succeed("late"))
      for (let i = 0; i < 3; i++) yield* fail(breaker) // opens
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.execute("get", Effect.succeed("probe"))).toBe("probe") // closes
      yield* fail(breaker)
      yield* fail(breaker)
      expect((yield* breaker.snapshot).consecutiveFailures).toBe(2)

      // the read admitted long ago finishes now: its caller gets its value, the breaker's count is untouched
      expect(yield* slowRead).toStrictEqual(Exit.succeed("late"))
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 2 })
      yield* fail(breaker)
      expect(yield* breaker.snapshot).toMatchObject({ state: "OPEN", opens: 2 })
    }))

  const lateOutcomes: ReadonlyArray<readonly [string, Effect.Effect<string, TransientError | PermanentError>]> = [
    ["succeeds", Effect.succeed("late")],
    ["fails with a counted error", Effect.fail(transient)],
    ["fails with an uncounted error", Effect.fail(permanent)]
  ]
  for (const [how, outcome] of lateOutcomes) {
    it.effect(`a probe from before a reset that ${how} while a newer probe is in flight changes nothing`, () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
        yield* fail(breaker)
        yield* TestClock.adjust("1 second")
        const oldProbe = yield* inFlight(breaker, outcome)
        yield* breaker.reset
        yield* fail(breaker) // opens again
        yield* TestClock.adjust("1 second")
        const newProbe = yield* inFlight(breaker, Effect.succeed("new"))
        expect(yield* breaker.snapshot).toMatchObject({ state: "HALF_OPEN", opens: 2 })

        yield* oldProbe
        // still HALF_OPEN with the new probe holding the slot: others are rejected without running
        expect(yield* breaker.snapshot).toMatchObject({ state: "HALF_OPEN", opens: 2 })
        expect(breaker.rejectsNow()).toBe(true)
        const calls = yield* Ref.make(0)
        const error = yield* Effect.flip(breaker.execute("get", Ref.update(calls, (n) => n + 1)))
        expect(error).toBeInstanceOf(CircuitOpenError)
        expect(Duration.toMillis((error as CircuitOpenError).retryAfter)).toBe(0)
        expect(yield* Ref.get(calls)).toBe(0)

        // the new probe decides
        expect(yield* newProbe).toStrictEqual(Exit.succeed("new"))
        expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 0, opens: 2 })
      }))
  }
})
