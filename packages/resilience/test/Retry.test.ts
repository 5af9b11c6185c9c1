import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import {
  CircuitBreaker,
  CircuitOpenError,
  isCircuitOpenError,
  PermanentError,
  Retry,
  TransientError
} from "@steadfast/resilience"

const transient = new TransientError({ operation: "get", reason: "timeout", message: "timed out" })
const permanent = new PermanentError({ operation: "get", reason: "auth", message: "WRONGPASS" })

/** An effect that records the Clock time of each attempt, then runs `outcome(attempt)` (attempt from 1). */
const recording = <A, E>(outcome: (attempt: number) => Effect.Effect<A, E>) =>
  Effect.map(Ref.make<ReadonlyArray<number>>([]), (attempts) => ({
    attempts,
    effect: Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.flatMap(Ref.updateAndGet(attempts, (a) => [...a, now]), (a) => outcome(a.length)))
  }))

const alwaysTransient = recording(() => Effect.fail(transient))

/** Jittered delays are fractional millis, and TestClock instants sum them: compare with a float tolerance. */
const EPSILON = 1e-6

/** Delays between consecutive attempts. */
const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((t, i) => t - times[i]!)

/** Runs `self` in a fiber while advancing the TestClock by `total`, then joins it. */
const drive = <A, E>(self: Effect.Effect<A, E>, total: Duration.DurationInput) =>
  Effect.flatMap(Effect.fork(self), (fiber) => Effect.zipRight(TestClock.adjust(total), Effect.exit(Fiber.join(fiber))))

describe("Retry", () => {
  it("make applies the documented defaults", () => {
    const policy = Retry.make()
    expect(policy.maxRetries).toBe(2)
    expect(Duration.toMillis(policy.baseDelay)).toBe(100)
    expect(Duration.toMillis(policy.maxDelay)).toBe(2_000)
    expect(policy.factor).toBe(2)
    expect(policy.jitter).toBe(true)
    expect(Retry.make({ baseDelay: "1 second", jitter: false }).baseDelay).toStrictEqual(Duration.seconds(1))
  })

  it("make rejects invalid values with IllegalArgumentException", () => {
    const invalid: ReadonlyArray<Retry.PolicyOptions> = [
      { maxRetries: -1 },
      { maxRetries: 1.5 },
      { maxRetries: Number.NaN },
      { factor: 0.5 },
      { factor: Number.POSITIVE_INFINITY },
      { baseDelay: -1 },
      { baseDelay: Duration.infinity },
      { maxDelay: -1 },
      { maxDelay: "later" as Duration.DurationInput }
    ]
    for (const options of invalid) {
      let thrown: unknown = undefined
      try {
        Retry.make(options)
      } catch (error) {
        thrown = error
      }
      expect(Cause.isIllegalArgumentException(thrown), JSON.stringify(options)).toBe(true)
    }
    expect(() => Retry.make({ maxRetries: 0, baseDelay: 0, factor: 1 })).not.toThrow()
  })

  it.effect("exact exponential delays with jitter off: attempts at 0, +100ms, +200ms, +400ms and nothing in between", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* alwaysTransient
      const policy = Retry.make({ maxRetries: 3, baseDelay: "100 millis", factor: 2, jitter: false })
      const fiber = yield* Effect.fork(Retry.retry(effect, policy))
      yield* TestClock.adjust(Duration.millis(99))
      expect(yield* Ref.get(attempts)).toStrictEqual([0])
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Ref.get(attempts)).toStrictEqual([0, 100])
      yield* TestClock.adjust(Duration.millis(199))
      expect(yield* Ref.get(attempts)).toStrictEqual([0, 100])
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Ref.get(attempts)).toStrictEqual([0, 100, 300])
      yield* TestClock.adjust(Duration.millis(399))
      expect(yield* Ref.get(attempts)).toStrictEqual([0, 100, 300])
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Ref.get(attempts)).toStrictEqual([0, 100, 300, 700])
      expect(yield* Effect.flip(Fiber.join(fiber))).toBe(transient)
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(attempts)).toHaveLength(4)
    }))

  it.effect("maxDelay caps each delay", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* alwaysTransient
      const policy = Retry.make({ maxRetries: 4, baseDelay: "100 millis", factor: 10, maxDelay: "500 millis", jitter: false })
      yield* drive(Retry.retry(effect, policy), "1 minute")
      expect(gaps(yield* Ref.get(attempts))).toStrictEqual([100, 500, 500, 500])
    }))

  it.effect("jitter stays within Schedule.jittered's bounds [0.8x, 1.2x] and actually varies", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* alwaysTransient
      const policy = Retry.make({ maxRetries: 50, baseDelay: "1 second", factor: 1, maxDelay: "10 seconds" })
      yield* drive(Retry.retry(effect, policy), "2 minutes")
      const delays = gaps(yield* Ref.get(attempts))
      expect(delays).toHaveLength(50)
      for (const delay of delays) {
        expect(delay).toBeGreaterThanOrEqual(800 - EPSILON)
        expect(delay).toBeLessThanOrEqual(1_200 + EPSILON)
      }
      expect(new Set(delays).size).toBeGreaterThan(1)
    }))

  it.effect("maxDelay is a hard bound even with jitter", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* alwaysTransient
      const policy = Retry.make({ maxRetries: 30, baseDelay: "1 second", factor: 1, maxDelay: "900 millis" })
      yield* drive(Retry.retry(effect, policy), "2 minutes")
      const delays = gaps(yield* Ref.get(attempts))
      expect(delays).toHaveLength(30)
      for (const delay of delays) {
        expect(delay).toBeGreaterThanOrEqual(800 - EPSILON)
        expect(delay).toBeLessThanOrEqual(900 + EPSILON)
      }
    }))

  it.effect("maxRetries is respected exactly", () =>
    Effect.gen(function*() {
      for (const maxRetries of [0, 1, 4]) {
        const { attempts, effect } = yield* alwaysTransient
        const exit = yield* drive(Retry.retry(effect, Retry.make({ maxRetries, jitter: false })), "1 minute")
        expect(exit).toStrictEqual(Exit.fail(transient))
        expect(yield* Ref.get(attempts)).toHaveLength(maxRetries + 1)
      }
    }))

  it.effect("Retry.none runs once", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* alwaysTransient
      yield* drive(Retry.retry(effect, Retry.none), "1 minute")
      expect(yield* Ref.get(attempts)).toStrictEqual([0])
    }))

  it.effect("succeeds as soon as an attempt succeeds", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* recording((n) => n < 3 ? Effect.fail(transient) : Effect.succeed(n))
      const exit = yield* drive(effect.pipe(Retry.retry(Retry.make({ maxRetries: 5, jitter: false }))), "1 minute")
      expect(exit).toStrictEqual(Exit.succeed(3))
      expect(yield* Ref.get(attempts)).toStrictEqual([0, 100, 300])
    }))

  it.effect("a PermanentError is not retried", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* recording(() => Effect.fail(permanent))
      const exit = yield* drive(Retry.retry(effect, Retry.make({ maxRetries: 5 })), "1 minute")
      expect(exit).toStrictEqual(Exit.fail(permanent))
      expect(yield* Ref.get(attempts)).toHaveLength(1)
    }))

  it.effect("a CircuitOpenError is not retried", () =>
    Effect.gen(function*() {
      const open = new CircuitOpenError({ operation: "get", retryAfter: Duration.seconds(1), message: "open" })
      const { attempts, effect } = yield* recording(() => Effect.fail(open))
      const exit = yield* drive(Retry.retry(effect, Retry.make({ maxRetries: 5 })), "1 minute")
      expect(exit).toStrictEqual(Exit.fail(open))
      expect(yield* Ref.get(attempts)).toHaveLength(1)
    }))

  it.effect("stops at the first non-transient error in the middle of retries", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* recording((n): Effect.Effect<never, TransientError | PermanentError> =>
        n < 2 ? Effect.fail(transient) : Effect.fail(permanent)
      )
      const exit = yield* drive(Retry.retry(effect, Retry.make({ maxRetries: 5, jitter: false })), "1 minute")
      expect(exit).toStrictEqual(Exit.fail(permanent))
      expect(yield* Ref.get(attempts)).toStrictEqual([0, 100])
    }))

  it.effect("with a breaker (threshold 2, maxRetries 5) an always-transient effect runs exactly twice and ends with CircuitOpenError", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 2, halfOpenAfter: "30 seconds" })
      const { attempts, effect } = yield* alwaysTransient
      const policy = Retry.make({ maxRetries: 5, jitter: false })
      const exit = yield* drive(Retry.retry(policy)(breaker.execute("get", effect)), "1 minute")
      expect(yield* Ref.get(attempts)).toStrictEqual([0, 100])
      const error = exit._tag === "Failure" ? Cause.failureOption(exit.cause) : Option.none()
      expect(Option.exists(error, isCircuitOpenError)).toBe(true)
      // rejected at t = 300 (second retry), so 30 s - 200 ms were left
      expect(Option.map(Option.filter(error, isCircuitOpenError), (e) => Duration.toMillis(e.retryAfter)))
        .toStrictEqual(Option.some(29_800))
      expect(yield* breaker.state).toBe("OPEN")
    }))

  it("schedule is cached per policy and rejects an invalid hand-built policy", () => {
    const policy = Retry.make({ jitter: false })
    expect(Retry.schedule(policy)).toBe(Retry.schedule(policy))
    expect(() => Retry.schedule({ ...policy, factor: 0 })).toThrow(/factor/)
  })
})
