import { describe, expect, it } from "@effect/vitest"
import { PermanentError, Retry, RetryBudget, TransientError } from "@steadfast/resilience"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"

const transient = new TransientError({ operation: "get", reason: "connection_refused", message: "ECONNREFUSED" })
const permanent = new PermanentError({ operation: "get", reason: "auth", message: "WRONGPASS" })

/** An effect that counts its runs and fails (or succeeds) as `outcome(run)` says (run from 1). */
const counting = <A, E>(outcome: (run: number) => Effect.Effect<A, E>) => {
  const counter = { runs: 0 }
  return { counter, effect: Effect.suspend(() => outcome(++counter.runs)) }
}

/**
 * Runs `self` in a fiber while advancing the TestClock by `total`, then returns its exit. Keep `total` short: the
 * budget's window moves with the clock.
 */
const drive = <A, E>(self: Effect.Effect<A, E>, total: Duration.DurationInput = "1 second") =>
  Effect.flatMap(Effect.fork(self), (fiber) => Effect.zipRight(TestClock.adjust(total), Fiber.await(fiber)))

const noRetryPolicy = Retry.make({ maxRetries: 3, jitter: false })

describe("RetryBudget", () => {
  it.effect("defaults: ratio 0.2, 10 retries per second over a 10 second window", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make()
      expect(yield* budget.snapshot).toStrictEqual({
        ratio: 0.2,
        minPerSecond: 10,
        window: Duration.seconds(10),
        calls: 0,
        retries: 0,
        available: 100,
        denied: 0
      })
    }))

  it.effect("exact allowance: retries + 1 <= ratio * calls (no floor)", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 0.5, minPerSecond: 0, window: "10 seconds" })
      expect(yield* budget.tryRetry).toBe(false) // no calls, no floor: nothing
      for (let i = 0; i < 4; i++) yield* budget.recordCall
      expect((yield* budget.snapshot).available).toBe(2)
      expect(yield* budget.tryRetry).toBe(true)
      expect(yield* budget.tryRetry).toBe(true)
      expect(yield* budget.tryRetry).toBe(false)
      expect(yield* budget.snapshot).toMatchObject({ calls: 4, retries: 2, available: 0, denied: 2 })
      yield* budget.recordCall // 5 calls: 2.5 allowed, still 2
      expect(yield* budget.tryRetry).toBe(false)
      yield* budget.recordCall // 6 calls: 3 allowed
      expect(yield* budget.tryRetry).toBe(true)
      expect(yield* budget.snapshot).toMatchObject({ calls: 6, retries: 3, available: 0, denied: 3 })
    }))

  it.effect("float ratios do not lose a retry to rounding (0.29 * 100 = 28.999999999999996)", () =>
    Effect.gen(function*() {
      for (const [ratio, calls, allowed] of [[0.7, 10, 7], [0.1, 30, 3], [0.29, 100, 29], [0.58, 50, 29]] as const) {
        const budget = yield* RetryBudget.make({ ratio, minPerSecond: 0 })
        for (let i = 0; i < calls; i++) budget.unsafeRecordCall()
        let granted = 0
        while (budget.unsafeTryRetry()) granted++
        expect(granted, `${ratio} x ${calls}`).toBe(allowed)
      }
    }))

  it.effect("the floor: minPerSecond x window retries with no calls at all", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 0, minPerSecond: 2, window: "5 seconds" })
      let granted = 0
      while (yield* budget.tryRetry) granted++
      expect(granted).toBe(10)
      expect(yield* budget.snapshot).toMatchObject({ calls: 0, retries: 10, available: 0, denied: 1 })
    }))

  it.effect("exhaustion and recovery as the window slides (TestClock, 1 s slots of a 10 s window)", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 0.5, minPerSecond: 0, window: "10 seconds" })
      // t = 0: 10 calls, 5 retries: exhausted
      for (let i = 0; i < 10; i++) yield* budget.recordCall
      for (let i = 0; i < 5; i++) expect(yield* budget.tryRetry).toBe(true)
      expect(yield* budget.tryRetry).toBe(false)
      // t = 5 s: 4 more calls and 2 more retries (14 calls, 7 retries): exhausted
      yield* TestClock.adjust("5 seconds")
      for (let i = 0; i < 4; i++) yield* budget.recordCall
      expect(yield* budget.tryRetry).toBe(true)
      expect(yield* budget.tryRetry).toBe(true)
      expect(yield* budget.tryRetry).toBe(false)
      // t = 9.999 s: everything still counts
      yield* TestClock.adjust("4999 millis")
      expect(yield* budget.snapshot).toMatchObject({ calls: 14, retries: 7, available: 0 })
      expect(yield* budget.tryRetry).toBe(false)
      // t = 10 s: the t = 0 slot leaves the window: 4 calls, 2 retries left: still exhausted
      yield* TestClock.adjust("1 millis")
      expect(yield* budget.snapshot).toMatchObject({ calls: 4, retries: 2, available: 0 })
      expect(yield* budget.tryRetry).toBe(false)
      // two new calls allow exactly one more retry
      yield* budget.recordCall
      yield* budget.recordCall
      expect(yield* budget.tryRetry).toBe(true)
      expect(yield* budget.tryRetry).toBe(false)
      // t = 15 s: the t = 5 s slot leaves too: 2 calls, 1 retry
      yield* TestClock.adjust("5 seconds")
      expect(yield* budget.snapshot).toMatchObject({ calls: 2, retries: 1, available: 0 })
      // t = 30 s: an empty window
      yield* TestClock.adjust("15 seconds")
      expect(yield* budget.snapshot).toMatchObject({ calls: 0, retries: 0, available: 0, denied: 5 })
      yield* budget.recordCall
      yield* budget.recordCall
      expect(yield* budget.tryRetry).toBe(true)
    }))

  it.effect("an outage: 10 always-failing calls with maxRetries 3 make 12 attempts, not 40 (ratio 0.2, no floor)", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 0.2, minPerSecond: 0 })
      const { counter, effect } = counting(() => Effect.fail(transient))
      const attemptsPerCall: Array<number> = []
      for (let i = 0; i < 10; i++) {
        const before = counter.runs
        expect(yield* drive(RetryBudget.retry(effect, budget, noRetryPolicy), "500 millis")).toStrictEqual(
          Exit.fail(transient)
        )
        attemptsPerCall.push(counter.runs - before)
      }
      // call 5 (5 calls: 1 retry allowed) and call 10 (10 calls: 2 allowed) each got one retry
      expect(attemptsPerCall).toStrictEqual([1, 1, 1, 1, 2, 1, 1, 1, 1, 2])
      expect(yield* budget.snapshot).toMatchObject({ calls: 10, retries: 2, denied: 10 })
    }))

  it.effect("while the budget lasts, a policy retries as usual, with the policy's delays", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make() // floor of 100 retries
      const times: Array<number> = []
      const { effect } = counting((run) =>
        Effect.zipRight(
          Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => times.push(now))),
          run < 3 ? Effect.fail(transient) : Effect.succeed(run)
        )
      )
      const exit = yield* drive(effect.pipe(RetryBudget.retry(budget, noRetryPolicy)))
      expect(exit).toStrictEqual(Exit.succeed(3))
      expect(times).toStrictEqual([0, 100, 300])
      expect(yield* budget.snapshot).toMatchObject({ calls: 1, retries: 2 })
    }))

  it.effect("nothing is charged for errors the policy does not retry, nor for retries the policy has run out of", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 1, minPerSecond: 0 })
      const perm = counting(() => Effect.fail(permanent))
      expect(yield* drive(RetryBudget.retry(perm.effect, budget, noRetryPolicy))).toStrictEqual(Exit.fail(permanent))
      expect(perm.counter.runs).toBe(1)
      expect(yield* budget.snapshot).toMatchObject({ calls: 1, retries: 0, denied: 0 })
      // 3 more calls in the bank, maxRetries 1: one retry, and the budget is asked once only
      for (let i = 0; i < 3; i++) yield* budget.recordCall
      const trans = counting(() => Effect.fail(transient))
      yield* drive(RetryBudget.retry(trans.effect, budget, Retry.make({ maxRetries: 1, jitter: false })))
      expect(trans.counter.runs).toBe(2)
      expect(yield* budget.snapshot).toMatchObject({ calls: 5, retries: 1, denied: 0 })
      // Retry.none: one attempt, one call recorded
      const none = counting(() => Effect.fail(transient))
      yield* drive(RetryBudget.retry(none.effect, budget, Retry.none))
      expect(none.counter.runs).toBe(1)
      expect(yield* budget.snapshot).toMatchObject({ calls: 6, retries: 1 })
    }))

  it.effect("works with any Schedule, data-first or piped; guard stops a schedule on a denied retry", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 0, minPerSecond: 0.3, window: "10 seconds" }) // 3 retries
      const { counter, effect } = counting(() => Effect.fail("nope" as const))
      const schedule = Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(10)))
      expect(yield* drive(effect.pipe(RetryBudget.retry(budget, schedule)), "5 seconds")).toStrictEqual(Exit.fail("nope"))
      expect(counter.runs).toBe(4)
      expect(yield* drive(RetryBudget.retry(effect, budget, schedule), "5 seconds")).toStrictEqual(Exit.fail("nope"))
      expect(counter.runs).toBe(5)

      // guard with Effect.retry: the schedule stopping on its own does not charge the budget
      const other = yield* RetryBudget.make({ ratio: 0, minPerSecond: 1, window: "10 seconds" }) // 10 retries
      const runs = counting(() => Effect.fail("x" as const))
      yield* drive(Effect.retry(runs.effect, Schedule.recurs(2).pipe(RetryBudget.guard(other))))
      expect(runs.counter.runs).toBe(3)
      expect(yield* other.snapshot).toMatchObject({ retries: 2, denied: 0 })
      yield* drive(Effect.retry(runs.effect, RetryBudget.guard(Schedule.forever, other)))
      expect(runs.counter.runs).toBe(3 + 1 + 8)
      expect(yield* other.snapshot).toMatchObject({ retries: 10, denied: 1 })
    }))

  it.effect("200 concurrent failing callers share the budget: total retries never exceed ratio x calls + floor", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.make({ ratio: 0.1, minPerSecond: 0.5, window: "10 seconds" }) // floor 5
      const { counter, effect } = counting(() => Effect.fail(transient))
      const all = Effect.forEach(
        Array.from({ length: 200 }, (_, i) => i),
        () => Effect.exit(RetryBudget.retry(effect, budget, noRetryPolicy)),
        { concurrency: "unbounded" }
      )
      const exits = yield* drive(all, "5 seconds")
      expect(Exit.isSuccess(exits)).toBe(true)
      expect(counter.runs).toBe(200 + 25) // 0.1 * 200 + 5
      expect(yield* budget.snapshot).toMatchObject({ calls: 200, retries: 25 })
    }))

  it.effect.prop(
    "matches a reference model of the sliding window for any sequence of calls, retries and clock steps",
    {
      ratio: FastCheck.constantFrom(0, 0.1, 0.25, 0.5, 1, 2),
      minPerSecond: FastCheck.constantFrom(0, 0.2, 1),
      windowMillis: FastCheck.constantFrom(1_000, 2_500, 10_000),
      steps: FastCheck.array(
        FastCheck.oneof(
          FastCheck.constant({ op: "call" as const }),
          FastCheck.constant({ op: "retry" as const }),
          FastCheck.record({ op: FastCheck.constant("advance" as const), millis: FastCheck.integer({ min: 0, max: 3_000 }) })
        ),
        { maxLength: 200 }
      )
    },
    ({ minPerSecond, ratio, steps, windowMillis }) =>
      Effect.gen(function*() {
        const budget = yield* RetryBudget.make({ ratio, minPerSecond, window: Duration.millis(windowMillis) })
        const slot = windowMillis / 10
        const reserve = minPerSecond * windowMillis / 1_000
        const events: Array<{ readonly at: number; readonly kind: "call" | "retry" }> = []
        let now = 0
        const inWindow = (kind: "call" | "retry") =>
          events.filter((e) => e.kind === kind && Math.floor(e.at / slot) > Math.floor(now / slot) - 10).length
        for (const step of steps) {
          if (step.op === "advance") {
            now += step.millis
            yield* TestClock.adjust(Duration.millis(step.millis))
          } else if (step.op === "call") {
            events.push({ at: now, kind: "call" })
            yield* budget.recordCall
          } else {
            const expected = inWindow("retry") + 1 <= ratio * inWindow("call") + reserve + 1e-9
            if (expected) events.push({ at: now, kind: "retry" })
            expect(yield* budget.tryRetry).toBe(expected)
            if (expected) {
              // the invariant the budget exists for, when a retry is admitted (calls may leave the window before
              // the retries they paid for, so it need not hold later)
              const snapshot = yield* budget.snapshot
              expect(snapshot.retries).toBeLessThanOrEqual(ratio * snapshot.calls + reserve + 1e-9)
            }
          }
          const snapshot = yield* budget.snapshot
          expect(snapshot.calls).toBe(inWindow("call"))
          expect(snapshot.retries).toBe(inWindow("retry"))
        }
      }),
    { fastCheck: { numRuns: 200 } }
  )

  it.effect("RetryBudget.layer provides the tag; the budget reads the Clock it was built with", () =>
    Effect.gen(function*() {
      const budget = yield* RetryBudget.RetryBudget
      expect((yield* budget.snapshot).available).toBe(2)
      yield* budget.tryRetry
      yield* budget.tryRetry
      expect(yield* budget.tryRetry).toBe(false)
      yield* TestClock.adjust("2 seconds")
      expect(yield* budget.tryRetry).toBe(true)
    }).pipe(Effect.provide(RetryBudget.layer({ ratio: 0, minPerSecond: 1, window: "2 seconds" }))))

  it.effect("invalid options die with IllegalArgumentException naming the option", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [RetryBudget.Options, string]> = [
        [{ ratio: -0.1 }, "RetryBudget ratio must be a finite number >= 0, got -0.1"],
        [{ ratio: Number.NaN }, "RetryBudget ratio must be a finite number >= 0, got NaN"],
        [{ ratio: Number.POSITIVE_INFINITY }, "RetryBudget ratio must be a finite number >= 0, got Infinity"],
        [{ minPerSecond: -1 }, "RetryBudget minPerSecond must be a finite number >= 0, got -1"],
        [{ window: 0 }, "RetryBudget window must be a finite duration > 0, got 0"],
        [{ window: Duration.infinity }, "RetryBudget window must be a finite duration > 0, got Infinity"],
        [{ window: -5 }, "RetryBudget window must not be negative or NaN, got -5"],
        [{ window: "a while" as Duration.DurationInput }, "RetryBudget window is not a valid duration: a while"]
      ]
      for (const [options, message] of cases) {
        const exit = yield* Effect.exit(RetryBudget.make(options))
        const defect = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined
        expect(Cause.isIllegalArgumentException(defect), message).toBe(true)
        expect((defect as Error).message).toBe(`@steadfast/resilience: ${message}`)
      }
    }))
})
