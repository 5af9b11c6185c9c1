import { describe, expect, it } from "@effect/vitest"
import { BreakerRule, CircuitBreaker, TransientError } from "@steadfast/resilience"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"

const transient = new TransientError({ operation: "get", reason: "connection_refused", message: "refused" })
const fail = (breaker: CircuitBreaker.CircuitBreaker, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => Effect.either(breaker.execute("get", Effect.fail(transient))), { discard: true })

describe("CircuitBreaker.reconfigure (runtime tuning)", () => {
  it.effect("invalid settings fail with IllegalArgumentException and change nothing", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 2, halfOpenAfter: "1 second" })
      const error = yield* Effect.flip(breaker.reconfigure({ failureThreshold: 0 }))
      expect(error).toBeInstanceOf(Cause.IllegalArgumentException)
      expect(error.message).toContain("failureThreshold must be an integer >= 1, got 0")
      expect((yield* Effect.flip(breaker.reconfigure({ halfOpen: { probes: 0 } }))).message).toContain("probes")
      // Still the old rule: two failures open it.
      expect((yield* breaker.snapshot).rule).toBe("consecutive(2)")
      yield* fail(breaker, 2)
      expect(yield* breaker.state).toBe("OPEN")
    }))

  it.effect("a new threshold applies at once; a new rule starts with fresh counts", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 3 })
      yield* fail(breaker, 2)
      yield* breaker.reconfigure({ failureThreshold: 5 })
      yield* fail(breaker, 4)
      expect(yield* breaker.state).toBe("CLOSED")
      yield* fail(breaker, 1)
      expect(yield* breaker.state).toBe("OPEN")
      expect((yield* breaker.snapshot).rule).toBe("consecutive(5)")
    }))

  it.effect("the same rule object keeps its counts", () =>
    Effect.gen(function*() {
      const rule = BreakerRule.countWindow({ size: 4, failureRatio: 0.5 })
      const breaker = yield* CircuitBreaker.make({ rule })
      yield* fail(breaker, 1)
      yield* breaker.reconfigure({ rule, halfOpenAfter: "2 seconds" })
      expect((yield* breaker.snapshot).window).toMatchObject({ calls: 1, failures: 1 })
    }))

  it.effect("an OPEN breaker keeps its break; the next break takes the new duration", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "10 seconds" })
      yield* fail(breaker, 1)
      yield* breaker.reconfigure({ failureThreshold: 1, halfOpenAfter: "1 second" })
      yield* TestClock.adjust("9 seconds")
      expect((yield* Effect.flip(breaker.execute("get", Effect.void)))._tag).toBe("CircuitOpenError")
      yield* TestClock.adjust("1 second")
      // The probe fails: re-opened for the new 1 second.
      yield* fail(breaker, 1)
      expect(yield* breaker.state).toBe("OPEN")
      yield* TestClock.adjust("1 second")
      expect(yield* breaker.execute("get", Effect.succeed("ok"))).toBe("ok")
      expect(yield* breaker.state).toBe("CLOSED")
    }))

  it.effect("more probes on a live HALF_OPEN round: the new count admits the next callers", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
      yield* fail(breaker, 1)
      yield* TestClock.adjust("1 second")
      const gate = Effect.never
      const first = yield* Effect.fork(breaker.execute("get", gate))
      yield* Effect.yieldNow()
      expect(breaker.rejectsNow()).toBe(true)
      yield* breaker.reconfigure({ failureThreshold: 1, halfOpenAfter: "1 second", halfOpen: { probes: 2 } })
      expect(breaker.rejectsNow()).toBe(false)
      expect(yield* breaker.execute("get", Effect.succeed(1))).toBe(1)
      yield* Fiber.interrupt(first)
    }))

  it.live("no call dropped or doubled while the settings change under 200 concurrent callers", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 5 })
      let runs = 0
      const callers = yield* Effect.fork(
        Effect.forEach(
          Array.from({ length: 2000 }, (_, i) => i),
          (i) => Effect.zipRight(Effect.yieldNow(), breaker.execute("get", Effect.sync(() => (runs++, i)))),
          { concurrency: 200 }
        )
      )
      for (let i = 0; i < 100; i++) {
        yield* breaker.reconfigure(
          i % 2 === 0
            ? { rule: BreakerRule.timeWindow({ window: "1 second", failureRatio: 0.5, minimumThroughput: 10 }) }
            : { failureThreshold: 3, halfOpen: { probes: 2 } }
        )
        yield* Effect.yieldNow()
      }
      const results = yield* Fiber.join(callers)
      expect(results).toEqual(Array.from({ length: 2000 }, (_, i) => i))
      expect(runs).toBe(2000)
      expect(yield* breaker.state).toBe("CLOSED")
    }))
})
