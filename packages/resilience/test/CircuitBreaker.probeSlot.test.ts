/**
 * HALF_OPEN after a probe gave up its slot (it ended with an uncounted error, a defect or an interruption): the next
 * caller becomes the probe, and that re-claimed slot is as exclusive as the first one.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import { CircuitBreaker, CircuitOpenError, PermanentError, TransientError } from "@steadfast/resilience"

const transient = new TransientError({ operation: "get", reason: "connection_refused", message: "refused" })
const permanent = new PermanentError({ operation: "get", reason: "wrong_type", message: "WRONGTYPE" })

/** A breaker (threshold 1, 1 second) that opened and is now due for a probe. */
const dueForProbe = Effect.gen(function*() {
  const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
  yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
  yield* TestClock.adjust("1 second")
  return breaker
})

/** Starts a call that stays in flight until `finish`, then ends with `outcome`. */
const inFlight = <A, E>(breaker: CircuitBreaker.CircuitBreaker, outcome: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const gate = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(
      breaker.execute("get", Effect.zipRight(Deferred.succeed(started, undefined), Effect.zipRight(Deferred.await(gate), outcome)))
    )
    yield* Deferred.await(started)
    return { fiber, finish: Effect.zipRight(Deferred.succeed(gate, undefined), Effect.exit(Fiber.join(fiber))) }
  })

/** The ways a probe gives up its slot without deciding anything. */
const givingUp: ReadonlyArray<readonly [string, (breaker: CircuitBreaker.CircuitBreaker) => Effect.Effect<void>]> = [
  ["a PermanentError", (breaker) => Effect.asVoid(Effect.either(breaker.execute("get", Effect.fail(permanent))))],
  ["a defect", (breaker) => Effect.asVoid(Effect.exit(breaker.execute("get", Effect.dieMessage("bug"))))],
  ["an interruption", (breaker) =>
    Effect.gen(function*() {
      const { fiber } = yield* inFlight(breaker, Effect.void)
      yield* Fiber.interrupt(fiber)
    })]
]

describe("CircuitBreaker: the probe slot after a probe gave it up", () => {
  for (const [how, giveUp] of givingUp) {
    it.effect(`after a probe ends with ${how}, rejectsNow says the next call is admitted, and it is`, () =>
      Effect.gen(function*() {
        const breaker = yield* dueForProbe
        yield* giveUp(breaker)
        expect(breaker.unsafeState()).toBe("HALF_OPEN")
        // A caller with a fallback (the resilient cache) asks before calling: it must not be told "rejected" forever.
        expect(breaker.rejectsNow()).toBe(false)
        const calls = yield* Ref.make(0)
        expect(yield* breaker.execute("get", Effect.as(Ref.update(calls, (n) => n + 1), "ok"))).toBe("ok")
        expect(yield* Ref.get(calls)).toBe(1)
        expect(yield* breaker.state).toBe("CLOSED")
        expect(breaker.rejectsNow()).toBe(false)
      }))
  }

  it.effect("a probe slot re-claimed after a release is exclusive: others are rejected, without running, until it ends", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbe
      yield* Effect.either(breaker.execute("get", Effect.fail(permanent))) // the first probe gives up its slot
      const probe = yield* inFlight(breaker, Effect.succeed("probed"))
      expect(breaker.rejectsNow()).toBe(true)

      const others = yield* Ref.make(0)
      const other = Effect.as(Ref.update(others, (n) => n + 1), "other")
      const results = yield* Effect.forEach(
        Array.from({ length: 10 }),
        () => Effect.flip(breaker.execute("get", other)),
        { concurrency: "unbounded" }
      )
      for (const error of results) {
        expect(error).toBeInstanceOf(CircuitOpenError)
        expect(Duration.toMillis((error as CircuitOpenError).retryAfter)).toBe(0)
      }
      expect(yield* Ref.get(others)).toBe(0)
      expect(yield* breaker.state).toBe("HALF_OPEN")

      expect(yield* probe.finish).toStrictEqual(yield* Effect.exit(Effect.succeed("probed")))
      expect(yield* breaker.state).toBe("CLOSED")
      expect(yield* breaker.execute("get", other)).toBe("other")
      expect(yield* Ref.get(others)).toBe(1)
    }))

  it.effect("a re-claimed probe that fails with a counted error re-opens the breaker for a fresh halfOpenAfter", () =>
    Effect.gen(function*() {
      const breaker = yield* dueForProbe
      yield* Effect.exit(breaker.execute("get", Effect.dieMessage("bug")))
      yield* TestClock.adjust("300 millis") // the slot stays free however long nobody calls
      const probe = yield* inFlight(breaker, Effect.fail(transient))
      yield* TestClock.adjust("200 millis")
      yield* probe.finish
      const snapshot = yield* breaker.snapshot
      expect(snapshot.state).toBe("OPEN")
      expect(snapshot.opens).toBe(2)
      expect(Option.map(snapshot.retryAfter, Duration.toMillis)).toStrictEqual(Option.some(1_000))
      expect(breaker.rejectsNow()).toBe(true)
    }))
})
