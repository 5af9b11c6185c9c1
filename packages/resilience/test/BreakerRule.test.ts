/**
 * The counting rules (`BreakerRule`), each seen through a real breaker: the exact call that opens it, what stops
 * counting (a success, an outcome leaving the ring, time sliding the window), slow successes counted as failures,
 * the counts starting again from zero when the breaker re-closes, and invalid input.
 *
 * Every breaker is made inside its test, so it reads the test's `TestClock` (the clock starts at 0).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { BreakerRule, CircuitBreaker, PermanentError, TransientError } from "@steadfast/resilience"

const transient = new TransientError({ operation: "get", reason: "connection_refused", message: "refused" })
const permanent = new PermanentError({ operation: "get", reason: "wrong_type", message: "WRONGTYPE" })

type Breaker = CircuitBreaker.CircuitBreaker

const fail = (breaker: Breaker) => Effect.asVoid(Effect.either(breaker.execute("get", Effect.fail(transient))))
const succeed = (breaker: Breaker) => Effect.asVoid(Effect.either(breaker.execute("get", Effect.succeed("ok"))))

/**
 * Plays `outcomes` ("F" a counted failure, "S" a success, "P" an uncounted PermanentError) one call after the other
 * and answers the state after each call.
 */
const play = (breaker: Breaker, outcomes: string) =>
  Effect.forEach(outcomes.split(""), (outcome) =>
    Effect.zipRight(
      outcome === "F"
        ? fail(breaker)
        : outcome === "S"
        ? succeed(breaker)
        : Effect.asVoid(Effect.either(breaker.execute("get", Effect.fail(permanent)))),
      breaker.state
    ))

/** The 1-based index of the call after which the breaker was first OPEN, or 0 if it never opened. */
const tripPoint = (states: ReadonlyArray<CircuitBreaker.State>): number => states.indexOf("OPEN") + 1

/**
 * A call that takes `millis` of (test) time and then ends with `outcome`: the call is started, the clock is moved,
 * and its result is returned as an `Exit`.
 */
const timedCall = <A, E>(breaker: Breaker, millis: number, outcome: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(
      breaker.execute("get", Effect.zipRight(Deferred.succeed(started, undefined), Effect.zipRight(Effect.sleep(Duration.millis(millis)), outcome)))
    )
    yield* Deferred.await(started)
    yield* TestClock.adjust(Duration.millis(millis))
    return yield* Effect.exit(Fiber.join(fiber))
  })

const slowSuccess = (breaker: Breaker, millis: number) => timedCall(breaker, millis, Effect.succeed("value"))

/** Opens a breaker (already tripped), waits out its break and closes it with a successful probe. */
const reclose = (breaker: Breaker, halfOpenAfter: Duration.DurationInput) =>
  Effect.gen(function*() {
    expect(yield* breaker.state).toBe("OPEN")
    yield* TestClock.adjust(halfOpenAfter)
    expect(yield* breaker.execute("get", Effect.succeed("probe"))).toBe("probe")
    expect(yield* breaker.state).toBe("CLOSED")
  })

describe("BreakerRule.consecutive", () => {
  it.effect("opens on exactly the threshold-th failure in a row; a success starts the count again", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.consecutive(3) })
      expect(tripPoint(yield* play(breaker, "FFSFFSFF"))).toBe(0)
      expect((yield* breaker.snapshot).rule).toBe("consecutive(3)")
      expect(yield* play(breaker, "F")).toStrictEqual(["OPEN"])
    }))

  it.effect("an uncounted failure neither counts nor breaks the run", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.consecutive(3) })
      expect(tripPoint(yield* play(breaker, "FPFPPF"))).toBe(6)
    }))

  it.effect("consecutive(1) opens on the first failure; failureThreshold is the same rule", () =>
    Effect.gen(function*() {
      const byRule = yield* CircuitBreaker.make({ rule: BreakerRule.consecutive(1) })
      const byThreshold = yield* CircuitBreaker.make({ failureThreshold: 1 })
      expect(yield* play(byRule, "SF")).toStrictEqual(["CLOSED", "OPEN"])
      expect(yield* play(byThreshold, "SF")).toStrictEqual(["CLOSED", "OPEN"])
      expect((yield* byThreshold.snapshot).rule).toBe("consecutive(1)")
    }))
})

describe("BreakerRule.countWindow", () => {
  it.effect("does not open before minimumCalls (default size) were seen, even at 100% failures", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.countWindow({ size: 4, failureRatio: 0.5 }) })
      const states = yield* play(breaker, "FFFF")
      expect(states).toStrictEqual(["CLOSED", "CLOSED", "CLOSED", "OPEN"])
    }))

  it.effect("with minimumCalls below size, opens as soon as minimumCalls were seen and the ratio is reached", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.countWindow({ size: 10, failureRatio: 0.5, minimumCalls: 2 })
      })
      // 1 call: below the minimum. 2 calls, 1 failed: 0.5 reached.
      expect(yield* play(breaker, "SF")).toStrictEqual(["CLOSED", "OPEN"])
    }))

  it.effect("opens on the call that brings the ratio to exactly failureRatio, not one before", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.countWindow({ size: 10, failureRatio: 0.3 }) })
      // 10 calls, 2 failed (0.2): closed. The 11th call pushes out the first success: 3 of 10 failed.
      const states = yield* play(breaker, "SSSSSSSSFFF")
      expect(tripPoint(states)).toBe(11)
      const snapshot = yield* breaker.snapshot
      expect(snapshot.window).toStrictEqual({ calls: 10, failures: 3, slowCalls: 0, failureRatio: 0.3 })
    }))

  it.effect("a ratio reached exactly opens it even where ratio × size is not exact in floating point (0.55 of 100)", () =>
    Effect.gen(function*() {
      // 0.55 * 100 === 55.00000000000001: 55 failures of 100 calls are a failure ratio of exactly 0.55.
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.countWindow({ size: 100, failureRatio: 0.55 }) })
      const states = yield* play(breaker, "S".repeat(45) + "F".repeat(55))
      expect(tripPoint(states)).toBe(100)
    }))

  it.effect("old outcomes leave the ring: failures older than the last size calls no longer count", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.countWindow({ size: 4, failureRatio: 0.5 }) })
      // FF then 4 successes: the two failures have left the ring. One more failure is 1 of 4, the next 2 of 4.
      const states = yield* play(breaker, "FFSSSSF")
      expect(tripPoint(states)).toBe(0)
      expect((yield* breaker.snapshot).window).toStrictEqual({ calls: 4, failures: 1, slowCalls: 0, failureRatio: 0.25 })
      expect(yield* play(breaker, "F")).toStrictEqual(["OPEN"])
    }))

  it.effect("a steady trickle the consecutive rule never sees opens a window rule", () =>
    Effect.gen(function*() {
      const pattern = "SF".repeat(10)
      const consecutive = yield* CircuitBreaker.make({ rule: BreakerRule.consecutive(2) })
      const window = yield* CircuitBreaker.make({ rule: BreakerRule.countWindow({ size: 6, failureRatio: 0.5 }) })
      expect(tripPoint(yield* play(consecutive, pattern))).toBe(0)
      expect(tripPoint(yield* play(window, pattern))).toBe(6)
    }))

  it.effect("uncounted failures are not calls of the window", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.countWindow({ size: 2, failureRatio: 1 }) })
      expect(tripPoint(yield* play(breaker, "FPPPF"))).toBe(5)
    }))
})

describe("BreakerRule.timeWindow", () => {
  const rule = (minimumThroughput = 4) =>
    BreakerRule.timeWindow({ window: "10 seconds", failureRatio: 0.5, minimumThroughput, buckets: 10 })

  it.effect("does not open below minimumThroughput calls in the window, even at 100% failures", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: rule() })
      expect(yield* play(breaker, "FFFF")).toStrictEqual(["CLOSED", "CLOSED", "CLOSED", "OPEN"])
    }))

  it.effect("opens when the failure ratio over the window reaches failureRatio", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: rule() })
      // 2 of 5 failed: closed; 3 of 6: open.
      expect(tripPoint(yield* play(breaker, "SSSFF"))).toBe(0)
      expect(yield* play(breaker, "F")).toStrictEqual(["OPEN"])
    }))

  it.effect("failures still in the window count: 3 at t=0 and one at 9.999 s open it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: rule() })
      yield* play(breaker, "FFF")
      yield* TestClock.adjust("9999 millis")
      expect((yield* breaker.snapshot).window.calls).toBe(3)
      expect(yield* play(breaker, "F")).toStrictEqual(["OPEN"])
    }))

  it.effect("the window slides: failures a whole window old stop counting", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: rule() })
      yield* play(breaker, "FFF")
      yield* TestClock.adjust("10 seconds")
      expect((yield* breaker.snapshot).window).toStrictEqual({ calls: 0, failures: 0, slowCalls: 0, failureRatio: 0 })
      // 3 new failures: the window holds 3 calls, below the minimum throughput; the 4th opens it.
      expect(yield* play(breaker, "FFFF")).toStrictEqual(["CLOSED", "CLOSED", "CLOSED", "OPEN"])
    }))

  it.effect("the window slides one slice at a time: the oldest failures drop out first", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.timeWindow({ window: "10 seconds", failureRatio: 1, minimumThroughput: 4, buckets: 10 })
      })
      for (let i = 0; i < 3; i++) {
        yield* fail(breaker) // t = 0, 1 s, 2 s
        yield* TestClock.adjust("1 second")
      }
      yield* TestClock.adjust("7 seconds") // t = 10 s: the failure of t = 0 is out, those of 1 s and 2 s are in
      expect((yield* breaker.snapshot).window.calls).toBe(2)
      expect(yield* play(breaker, "F")).toStrictEqual(["CLOSED"]) // 3 in the window
      yield* TestClock.adjust("500 millis")
      expect(yield* play(breaker, "F")).toStrictEqual(["OPEN"]) // 4 in the window, all failed
    }))

  it.effect("a Clock that moved past the whole window (several times over) starts from an empty window", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: rule() })
      yield* play(breaker, "SFF")
      yield* TestClock.adjust("25 seconds") // 2.5 windows: the ring came round to the same slices
      yield* play(breaker, "FF")
      expect((yield* breaker.snapshot).window).toStrictEqual({ calls: 2, failures: 2, slowCalls: 0, failureRatio: 1 })
      expect(yield* breaker.state).toBe("CLOSED")
      yield* TestClock.adjust("1 hour")
      expect((yield* breaker.snapshot).window.calls).toBe(0)
      expect(yield* play(breaker, "FFFF")).toStrictEqual(["CLOSED", "CLOSED", "CLOSED", "OPEN"])
    }))

  it.effect("a ratio reached exactly opens it even where ratio × calls is not exact in floating point (0.07 of 100)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.timeWindow({ window: "1 minute", failureRatio: 0.07, minimumThroughput: 100 })
      })
      // 0.07 * 100 === 7.000000000000001
      expect(tripPoint(yield* play(breaker, "S".repeat(93) + "F".repeat(7)))).toBe(100)
    }))
})

describe("BreakerRule.slowCalls", () => {
  it.effect("a success slower than the threshold counts as a failure, and its caller still gets the value", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.slowCalls({ threshold: "1 second", rule: BreakerRule.consecutive(2) })
      })
      expect(breaker.timed).toBe(true)
      expect(yield* slowSuccess(breaker, 1500)).toStrictEqual(Exit.succeed("value"))
      expect(yield* breaker.state).toBe("CLOSED")
      expect((yield* breaker.snapshot).window).toStrictEqual({ calls: 1, failures: 1, slowCalls: 1, failureRatio: 1 })
      // The call that opens the breaker is a success: its caller gets its value all the same.
      expect(yield* slowSuccess(breaker, 1500)).toStrictEqual(Exit.succeed("value"))
      expect(yield* breaker.state).toBe("OPEN")
      expect((yield* breaker.snapshot).window.slowCalls).toBe(2)
    }))

  it.effect("a success faster than the threshold does not count (and, with consecutive, breaks the run)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.slowCalls({ threshold: "1 second", rule: BreakerRule.consecutive(2) })
      })
      yield* slowSuccess(breaker, 1500)
      expect(yield* slowSuccess(breaker, 999)).toStrictEqual(Exit.succeed("value"))
      yield* slowSuccess(breaker, 1500)
      expect(yield* breaker.state).toBe("CLOSED")
      expect((yield* breaker.snapshot).window).toMatchObject({ failures: 1, slowCalls: 2 })
      for (let i = 0; i < 5; i++) yield* slowSuccess(breaker, 999)
      expect(yield* breaker.state).toBe("CLOSED")
    }))

  it.effect("the time is measured around the call: instant calls never count, however late on the clock", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.slowCalls({ threshold: "1 second", rule: BreakerRule.consecutive(1) })
      })
      for (let i = 0; i < 5; i++) {
        yield* TestClock.adjust("10 seconds")
        yield* succeed(breaker)
      }
      expect(yield* breaker.state).toBe("CLOSED")
      expect((yield* breaker.snapshot).window.slowCalls).toBe(0)
    }))

  it.effect("slow failures are failures; fast failures too", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.slowCalls({ threshold: "1 second", rule: BreakerRule.consecutive(3) })
      })
      expect(yield* timedCall(breaker, 2000, Effect.fail(transient))).toStrictEqual(Exit.fail(transient))
      yield* fail(breaker)
      expect(yield* breaker.state).toBe("CLOSED")
      yield* slowSuccess(breaker, 1000 + 1)
      expect(yield* breaker.state).toBe("OPEN")
      // only the slow success is a slow call; the failures are failures anyway
      expect((yield* breaker.snapshot).window.slowCalls).toBe(1)
    }))

  it.effect("wrapping consecutive vs countWindow: alternating slow and fast calls open only the window rule", () =>
    Effect.gen(function*() {
      const overConsecutive = yield* CircuitBreaker.make({
        rule: BreakerRule.slowCalls({ threshold: "1 second", rule: BreakerRule.consecutive(2) })
      })
      const overWindow = yield* CircuitBreaker.make({
        rule: BreakerRule.slowCalls({ threshold: "1 second", rule: BreakerRule.countWindow({ size: 4, failureRatio: 0.5 }) })
      })
      const pattern = [2000, 10, 2000, 10, 2000, 10, 2000, 10]
      const trips = { overConsecutive: 0, overWindow: 0 }
      for (let i = 0; i < pattern.length; i++) {
        // (once OPEN, a breaker rejects the call without running it: no time to pass then)
        if (trips.overConsecutive === 0) yield* slowSuccess(overConsecutive, pattern[i]!)
        if (trips.overWindow === 0) yield* slowSuccess(overWindow, pattern[i]!)
        if (trips.overConsecutive === 0 && (yield* overConsecutive.state) === "OPEN") trips.overConsecutive = i + 1
        if (trips.overWindow === 0 && (yield* overWindow.state) === "OPEN") trips.overWindow = i + 1
      }
      // window [slow, fast, slow, fast] is 2 of 4 but only a slow call trips: the 5th call
      expect(trips).toStrictEqual({ overConsecutive: 0, overWindow: 5 })
    }))

  it.effect("the default inner rule is a count window of 20 at 50%", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.slowCalls({ threshold: "100 millis" }) })
      expect((yield* breaker.snapshot).rule).toContain("countWindow(size 20, ratio 0.5")
      for (let i = 0; i < 10; i++) yield* slowSuccess(breaker, 10)
      for (let i = 0; i < 9; i++) yield* slowSuccess(breaker, 200)
      expect(yield* breaker.state).toBe("CLOSED") // 19 calls: below the minimum of 20
      yield* slowSuccess(breaker, 200)
      expect(yield* breaker.state).toBe("OPEN") // 10 of 20 slow
    }))

  it.effect("a rule that is not slowCalls does not time calls", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.countWindow({ size: 1, failureRatio: 1 }) })
      expect(breaker.timed).toBe(false)
      expect(yield* slowSuccess(breaker, 60_000)).toStrictEqual(Exit.succeed("value"))
      expect(yield* breaker.state).toBe("CLOSED")
    }))
})

describe("every rule starts counting from zero when the breaker re-closes", () => {
  it.effect("consecutive", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.consecutive(2), halfOpenAfter: "1 second" })
      yield* play(breaker, "FF")
      yield* reclose(breaker, "1 second")
      expect(yield* play(breaker, "F")).toStrictEqual(["CLOSED"])
      expect((yield* breaker.snapshot).consecutiveFailures).toBe(1)
    }))

  it.effect("countWindow", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.countWindow({ size: 4, failureRatio: 0.5, minimumCalls: 2 }),
        halfOpenAfter: "1 second"
      })
      yield* play(breaker, "FF")
      yield* reclose(breaker, "1 second")
      expect((yield* breaker.snapshot).window.calls).toBe(0)
      // With the old ring, [F, F, F] would be 3 of 3 calls.
      expect(yield* play(breaker, "F")).toStrictEqual(["CLOSED"])
      expect(yield* play(breaker, "S")).toStrictEqual(["CLOSED"])
      expect(yield* play(breaker, "F")).toStrictEqual(["OPEN"])
    }))

  it.effect("timeWindow (the old failures are still within the window's time)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.timeWindow({ window: "1 minute", failureRatio: 0.5, minimumThroughput: 2 }),
        halfOpenAfter: "1 second"
      })
      yield* play(breaker, "FF")
      yield* reclose(breaker, "1 second")
      expect((yield* breaker.snapshot).window.calls).toBe(0)
      expect(yield* play(breaker, "F")).toStrictEqual(["CLOSED"])
      expect(yield* play(breaker, "F")).toStrictEqual(["OPEN"])
    }))

  it.effect("slowCalls (and its slow-call count)", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.slowCalls({ threshold: "1 second", rule: BreakerRule.consecutive(2) }),
        halfOpenAfter: "1 second"
      })
      yield* slowSuccess(breaker, 2000)
      yield* slowSuccess(breaker, 2000)
      yield* reclose(breaker, "1 second")
      expect((yield* breaker.snapshot).window).toStrictEqual({ calls: 0, failures: 0, slowCalls: 0, failureRatio: 0 })
      yield* slowSuccess(breaker, 2000)
      expect(yield* breaker.state).toBe("CLOSED")
      expect((yield* breaker.snapshot).window.slowCalls).toBe(1)
    }))

  it.effect("reset while CLOSED forgets the counts too", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.countWindow({ size: 4, failureRatio: 0.5 }) })
      yield* play(breaker, "FFF")
      yield* breaker.reset
      expect((yield* breaker.snapshot).window.calls).toBe(0)
      expect(tripPoint(yield* play(breaker, "FFF"))).toBe(0)
      expect(yield* play(breaker, "F")).toStrictEqual(["OPEN"])
    }))
})

describe("invalid rules", () => {
  const thrown = (f: () => unknown): unknown => {
    try {
      f()
    } catch (error) {
      return error
    }
    return undefined
  }

  const invalid: ReadonlyArray<readonly [string, () => unknown, string]> = [
    ["consecutive(0)", () => BreakerRule.consecutive(0), "consecutive threshold"],
    ["consecutive(1.5)", () => BreakerRule.consecutive(1.5), "consecutive threshold"],
    ["consecutive(NaN)", () => BreakerRule.consecutive(Number.NaN), "consecutive threshold"],
    ["countWindow size 0", () => BreakerRule.countWindow({ size: 0, failureRatio: 0.5 }), "countWindow size"],
    ["countWindow size 2.5", () => BreakerRule.countWindow({ size: 2.5, failureRatio: 0.5 }), "countWindow size"],
    ["countWindow ratio 0", () => BreakerRule.countWindow({ size: 5, failureRatio: 0 }), "countWindow failureRatio"],
    ["countWindow ratio 1.01", () => BreakerRule.countWindow({ size: 5, failureRatio: 1.01 }), "countWindow failureRatio"],
    ["countWindow ratio NaN", () => BreakerRule.countWindow({ size: 5, failureRatio: Number.NaN }), "countWindow failureRatio"],
    ["countWindow minimumCalls 0", () => BreakerRule.countWindow({ size: 5, failureRatio: 0.5, minimumCalls: 0 }), "countWindow minimumCalls"],
    ["countWindow minimumCalls > size", () => BreakerRule.countWindow({ size: 5, failureRatio: 0.5, minimumCalls: 6 }), "minimumCalls (6) must be <= size (5)"],
    ["timeWindow window 0", () => BreakerRule.timeWindow({ window: 0, failureRatio: 0.5, minimumThroughput: 1 }), "timeWindow window"],
    ["timeWindow window -1", () => BreakerRule.timeWindow({ window: -1, failureRatio: 0.5, minimumThroughput: 1 }), "timeWindow window"],
    ["timeWindow window infinite", () => BreakerRule.timeWindow({ window: Duration.infinity, failureRatio: 0.5, minimumThroughput: 1 }), "timeWindow window"],
    ["timeWindow window malformed", () => BreakerRule.timeWindow({ window: "ten seconds" as Duration.DurationInput, failureRatio: 0.5, minimumThroughput: 1 }), "timeWindow window"],
    ["timeWindow ratio 0", () => BreakerRule.timeWindow({ window: "1 second", failureRatio: 0, minimumThroughput: 1 }), "timeWindow failureRatio"],
    ["timeWindow minimumThroughput 0", () => BreakerRule.timeWindow({ window: "1 second", failureRatio: 0.5, minimumThroughput: 0 }), "timeWindow minimumThroughput"],
    ["timeWindow buckets 0", () => BreakerRule.timeWindow({ window: "1 second", failureRatio: 0.5, minimumThroughput: 1, buckets: 0 }), "timeWindow buckets"],
    ["slowCalls threshold 0", () => BreakerRule.slowCalls({ threshold: 0 }), "slowCalls threshold"],
    ["slowCalls threshold infinite", () => BreakerRule.slowCalls({ threshold: Duration.infinity }), "slowCalls threshold"]
  ]

  for (const [name, make, mentions] of invalid) {
    it(`${name} throws an IllegalArgumentException naming the option`, () => {
      const error = thrown(make)
      expect(Cause.isIllegalArgumentException(error)).toBe(true)
      expect((error as Error).message).toContain("@steadfast/resilience: BreakerRule.")
      expect((error as Error).message).toContain(mentions)
    })
  }

  it.effect("an invalid rule built inside an effect makes it die with the IllegalArgumentException", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.gen(function*() {
        return yield* CircuitBreaker.make({ rule: BreakerRule.countWindow({ size: 0, failureRatio: 0.5 }) })
      }))
      expect(Exit.isFailure(exit) && Option.map(Cause.dieOption(exit.cause), Cause.isIllegalArgumentException))
        .toStrictEqual(Option.some(true))
    }))

  it.effect("failureThreshold together with rule dies (one or the other)", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(CircuitBreaker.make({ failureThreshold: 3, rule: BreakerRule.consecutive(3) }))
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const defect = Option.getOrUndefined(Cause.dieOption(exit.cause))
        expect(Cause.isIllegalArgumentException(defect)).toBe(true)
        expect((defect as Error).message).toBe(
          "@steadfast/resilience: CircuitBreaker takes either failureThreshold or rule, not both"
        )
      }
    }))

  it("the boundaries are valid: ratio 1, minimumCalls = size, one bucket", () => {
    expect(BreakerRule.countWindow({ size: 1, failureRatio: 1, minimumCalls: 1 }).name).toBe("countWindow(size 1, ratio 1, minimum 1)")
    expect(BreakerRule.timeWindow({ window: "1 milli", failureRatio: 1, minimumThroughput: 1, buckets: 1 }).timed).toBe(false)
    expect(BreakerRule.slowCalls({ threshold: "1 milli" }).timed).toBe(true)
  })
})
