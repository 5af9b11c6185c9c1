import { describe, expect, it } from "@effect/vitest"
import { PermanentError, Retry, TransientError } from "@steadfast/resilience"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"

const transient = new TransientError({ operation: "get", reason: "timeout", message: "timed out" })
const permanent = new PermanentError({ operation: "get", reason: "wrong_type", message: "WRONGTYPE" })

/** The first `n` delays (millis) a schedule produces, read from its output without any clock. */
const delays = (schedule: Schedule.Schedule<Duration.Duration, unknown>, n: number) =>
  Effect.map(
    Schedule.run(schedule, 0, Array.from({ length: n }, () => transient)),
    (out) => Chunk.toReadonlyArray(out).map(Duration.toMillis)
  )

/** Float slack: TestClock instants and `nextRange` are float arithmetic. */
const EPSILON = 1e-6

describe("Retry.decorrelatedJitter", () => {
  it.effect("follows min(cap, random_between(base, previous * 3)) exactly (Random.fixed)", () =>
    Effect.gen(function*() {
      const schedule = Retry.decorrelatedJitter({ base: "100 millis", cap: "1 second" })
      // nextRange(min, max) = min + (max - min) * n
      const values = yield* delays(schedule, 6).pipe(Effect.withRandom(Random.fixed([0, 1, 0.5, 1, 1, 0])))
      // prev 100: [100, 300) at 0 -> 100; prev 100: at 1 -> 300; prev 300: [100, 900) at .5 -> 500;
      // prev 500: at 1 -> 1500, capped 1000; prev 1000: at 1 -> 3000, capped 1000; prev 1000: at 0 -> 100
      expect(values).toStrictEqual([100, 300, 500, 1_000, 1_000, 100])
    }))

  it.effect("the delays are the real waits between attempts (TestClock), and it retries for ever unless bounded", () =>
    Effect.gen(function*() {
      const times: Array<number> = []
      const attempt = Effect.zipRight(
        Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => times.push(now))),
        Effect.fail(transient)
      )
      const schedule = Retry.decorrelatedJitter({ base: "100 millis", cap: "400 millis" })
      const fiber = yield* Effect.fork(
        Effect.retry(attempt, schedule).pipe(Effect.withRandom(Random.fixed([1])))
      )
      yield* TestClock.adjust("2 seconds")
      // 300, then 900 -> capped 400, then 400, 400, ...
      expect(times.slice(0, 5)).toStrictEqual([0, 300, 700, 1_100, 1_500])
      expect(fiber.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(fiber)
    }))

  it.effect.prop(
    "every delay is within [base, cap] and at most 3x the previous one, for any seed, base and cap",
    {
      seed: FastCheck.integer(),
      base: FastCheck.integer({ min: 1, max: 5_000 }),
      capFactor: FastCheck.double({ min: 1, max: 1_000, noNaN: true }),
      n: FastCheck.integer({ min: 1, max: 60 })
    },
    ({ base, capFactor, n, seed }) =>
      Effect.gen(function*() {
        // whole millis: Duration rounds a fractional millis input to the nanosecond
        const cap = Math.round(base * capFactor)
        const values = yield* delays(Retry.decorrelatedJitter({ base, cap }), n).pipe(
          Effect.withRandom(Random.make(seed))
        )
        expect(values).toHaveLength(n)
        let previous = base
        for (const delay of values) {
          expect(delay).toBeGreaterThanOrEqual(base)
          expect(delay).toBeLessThanOrEqual(cap)
          expect(delay).toBeLessThanOrEqual(previous * 3 + EPSILON)
          previous = delay
        }
      })
  )

  it.effect("the same seed gives the same delays; the delays spread and reach the cap", () =>
    Effect.gen(function*() {
      const schedule = Retry.decorrelatedJitter({ base: "10 millis", cap: "1 second" })
      const a = yield* delays(schedule, 200).pipe(Effect.withRandom(Random.make(7)))
      const b = yield* delays(schedule, 200).pipe(Effect.withRandom(Random.make(7)))
      const c = yield* delays(schedule, 200).pipe(Effect.withRandom(Random.make(8)))
      expect(a).toStrictEqual(b)
      expect(a).not.toStrictEqual(c)
      expect(new Set(a).size).toBeGreaterThan(100)
      expect(a).toContain(1_000)
      expect(Math.max(...a)).toBe(1_000)
      expect(Math.min(...a)).toBeGreaterThanOrEqual(10)
    }))
})

describe("Retry.fullJitter", () => {
  it.effect("retry n waits random_between(0, min(cap, base * factor^n)): the top of the range, exactly (Random.fixed)", () =>
    Effect.gen(function*() {
      const top = yield* delays(Retry.fullJitter({ base: "100 millis", cap: "1 second" }), 7).pipe(
        Effect.withRandom(Random.fixed([1]))
      )
      expect(top).toStrictEqual([100, 200, 400, 800, 1_000, 1_000, 1_000])
      const middle = yield* delays(Retry.fullJitter({ base: "100 millis", cap: "10 seconds", factor: 3 }), 4).pipe(
        Effect.withRandom(Random.fixed([0.5]))
      )
      expect(middle).toStrictEqual([50, 150, 450, 1_350])
      const bottom = yield* delays(Retry.fullJitter({ base: "100 millis", cap: "1 second" }), 3).pipe(
        Effect.withRandom(Random.fixed([0]))
      )
      expect(bottom).toStrictEqual([0, 0, 0])
    }))

  it.effect.prop(
    "every delay is within [0, min(cap, base * factor^n)], for any seed",
    {
      seed: FastCheck.integer(),
      base: FastCheck.integer({ min: 1, max: 5_000 }),
      capFactor: FastCheck.double({ min: 1, max: 1_000, noNaN: true }),
      factor: FastCheck.double({ min: 1, max: 4, noNaN: true }),
      n: FastCheck.integer({ min: 1, max: 60 })
    },
    ({ base, capFactor, factor, n, seed }) =>
      Effect.gen(function*() {
        const cap = Math.round(base * capFactor)
        const values = yield* delays(Retry.fullJitter({ base, cap, factor }), n).pipe(Effect.withRandom(Random.make(seed)))
        expect(values).toHaveLength(n)
        values.forEach((delay, i) => {
          expect(delay).toBeGreaterThanOrEqual(0)
          expect(delay).toBeLessThanOrEqual(Math.min(cap, base * Math.pow(factor, i)) + EPSILON)
        })
      })
  )
})

describe("Retry.transientOnly", () => {
  it.effect("bounds a jitter schedule to maxRetries and retries only TransientErrors", () =>
    Effect.gen(function*() {
      let runs = 0
      const failing = <E>(error: E) => Effect.suspend(() => (runs++, Effect.fail(error)))
      const schedule = Retry.transientOnly(Retry.decorrelatedJitter({ base: "10 millis", cap: "50 millis" }), 3)
      const fiber = yield* Effect.fork(Effect.retry(failing(transient), schedule))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.await(fiber)).toStrictEqual(Exit.fail(transient))
      expect(runs).toBe(4)

      runs = 0
      const piped = Retry.fullJitter({ base: "10 millis", cap: "50 millis" }).pipe(Retry.transientOnly(5))
      const second = yield* Effect.fork(Effect.retry(failing(permanent), piped))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.await(second)).toStrictEqual(Exit.fail(permanent))
      expect(runs).toBe(1)
    }))
})

describe("jitter option validation", () => {
  const thrownMessage = (f: () => unknown): string => {
    try {
      f()
    } catch (error) {
      expect(Cause.isIllegalArgumentException(error)).toBe(true)
      return (error as Error).message
    }
    throw new Error("did not throw")
  }

  it("invalid bases, caps and factors throw IllegalArgumentException naming the option", () => {
    const cases: ReadonlyArray<readonly [() => unknown, string]> = [
      [() => Retry.decorrelatedJitter({ base: 0, cap: 10 }), "Retry.decorrelatedJitter base must be a finite duration > 0, got 0"],
      [
        () => Retry.decorrelatedJitter({ base: Duration.infinity, cap: Duration.infinity }),
        "Retry.decorrelatedJitter base must be a finite duration > 0, got Infinity"
      ],
      [() => Retry.decorrelatedJitter({ base: 100, cap: 99 }), "Retry.decorrelatedJitter cap must be a finite duration >= base, got 99ms"],
      [
        () => Retry.decorrelatedJitter({ base: 100, cap: Duration.infinity }),
        "Retry.decorrelatedJitter cap must be a finite duration >= base, got Infinity"
      ],
      [() => Retry.decorrelatedJitter({ base: -1, cap: 10 }), "Retry.decorrelatedJitter base must not be negative or NaN, got -1"],
      [() => Retry.fullJitter({ base: 10, cap: 5 }), "Retry.fullJitter cap must be a finite duration >= base, got 5ms"],
      [() => Retry.fullJitter({ base: 10, cap: 50, factor: 0.5 }), "Retry.fullJitter factor must be a finite number >= 1, got 0.5"],
      [
        () => Retry.fullJitter({ base: 10, cap: 50, factor: Number.NaN }),
        "Retry.fullJitter factor must be a finite number >= 1, got NaN"
      ],
      [() => Retry.transientOnly(Schedule.forever, -1), "Retry.transientOnly maxRetries must be an integer >= 0, got -1"]
    ]
    for (const [f, message] of cases) expect(thrownMessage(f)).toBe(`@steadfast/resilience: ${message}`)
    // the boundary cap === base is valid: every delay is exactly base
    expect(() => Retry.decorrelatedJitter({ base: 100, cap: 100 })).not.toThrow()
  })
})
