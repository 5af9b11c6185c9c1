/**
 * Behaviour the mutation run found untested in `Retry.ts` (MUTATION.md, resilience, run A): the messages of an
 * invalid jitter `cap`, the boundary values `factor: 1` and `maxRetries: 0` of the jitter helpers, and
 * `retryAfterFailure` returning a non-transient error without consulting the schedule (so a budget guarding the
 * schedule is not charged for a retry that never happens).
 */
import { describe, expect, it } from "@effect/vitest"
import { CircuitOpenError, PermanentError, Retry, RetryBudget, TransientError } from "@steadfast/resilience"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"

const transient = new TransientError({ operation: "get", reason: "timeout", message: "timed out" })
const permanent = new PermanentError({ operation: "get", reason: "auth", message: "WRONGPASS" })

const thrownMessage = (f: () => unknown): string => {
  try {
    f()
  } catch (error) {
    expect(Cause.isIllegalArgumentException(error)).toBe(true)
    return (error as Error).message
  }
  throw new Error("did not throw")
}

/** An effect that counts its runs and fails with `error` every time. */
const failingWith = <E>(error: E) => {
  const counter = { runs: 0 }
  return { counter, effect: Effect.suspend(() => (counter.runs++, Effect.fail(error))) }
}

/** Runs `self` in a fiber while advancing the TestClock by `total`, then returns its exit. */
const drive = <A, E>(self: Effect.Effect<A, E>, total: Duration.DurationInput = "1 second") =>
  Effect.flatMap(Effect.fork(self), (fiber) => Effect.zipRight(TestClock.adjust(total), Fiber.await(fiber)))

describe("Retry jitter helpers: the cap's messages and the valid boundaries", () => {
  it("a negative or malformed cap is reported under the helper's name", () => {
    expect(thrownMessage(() => Retry.decorrelatedJitter({ base: 10, cap: -1 }))).toBe(
      "@steadfast/resilience: Retry.decorrelatedJitter cap must not be negative or NaN, got -1"
    )
    expect(thrownMessage(() => Retry.fullJitter({ base: 10, cap: "later" as Duration.DurationInput }))).toBe(
      "@steadfast/resilience: Retry.fullJitter cap is not a valid duration: later"
    )
  })

  it.effect("fullJitter accepts factor 1 (documented as >= 1): every bound is base", () =>
    Effect.gen(function*() {
      const schedule = Retry.fullJitter({ base: "100 millis", cap: "1 second", factor: 1 })
      const out = yield* Schedule.run(schedule, 0, [transient, transient, transient, transient]).pipe(
        Effect.withRandom(Random.fixed([1]))
      )
      expect(Chunk.toReadonlyArray(out).map(Duration.toMillis)).toStrictEqual([100, 100, 100, 100])
    }))

  it.effect("transientOnly accepts maxRetries 0: a transient error is not retried", () =>
    Effect.gen(function*() {
      const schedule = Retry.transientOnly(Schedule.spaced("10 millis"), 0)
      const { counter, effect } = failingWith(transient)
      expect(yield* drive(Effect.retry(effect, schedule))).toStrictEqual(Exit.fail(transient))
      expect(counter.runs).toBe(1)
    }))
})

describe("Retry.retryAfterFailure with a Schedule", () => {
  it.effect("a non-transient first error is returned at once, without asking a budget that guards the schedule", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 0, minPerSecond: 1, window: "10 seconds" }) // 10 retries
      const guarded = RetryBudget.guard(Schedule.spaced("10 millis"), budget)
      const open = new CircuitOpenError({ operation: "get", retryAfter: Duration.seconds(1), message: "open" })
      for (const error of [permanent, open]) {
        const { counter, effect } = failingWith(error)
        expect(yield* drive(Retry.retryAfterFailure(effect, guarded, error))).toStrictEqual(Exit.fail(error))
        expect(counter.runs).toBe(0) // the failed first attempt is the caller's: nothing is run again
      }
      expect(yield* budget.snapshot).toMatchObject({ retries: 0, denied: 0, available: 10 })

      // a transient one is retried, each retry paid for (the same budget, the schedule bounded to 2 recurrences)
      const bounded = RetryBudget.guard(Schedule.spaced("10 millis").pipe(Schedule.intersect(Schedule.recurs(2))), budget)
      const { counter, effect } = failingWith(transient)
      expect(yield* drive(Retry.retryAfterFailure(effect, bounded, transient))).toStrictEqual(Exit.fail(transient))
      expect(counter.runs).toBe(2)
      expect(yield* budget.snapshot).toMatchObject({ retries: 2, denied: 0, available: 8 })
    }))
})
