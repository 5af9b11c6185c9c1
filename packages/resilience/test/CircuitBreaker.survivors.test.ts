/**
 * Behaviour the mutation run of the breaker and its rules (MUTATION.md, "After the policy work") found untested: the
 * slow-call threshold's boundary, a clock that goes back under a time window, the consecutive count of a failed
 * probe, and the half-open rejection after the probe count is reconfigured.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as TestClock from "effect/TestClock"
import { BreakerRule, CircuitBreaker, TransientError } from "@steadfast/resilience"
import { recordingRule } from "./recordingRule.js"

const transient = new TransientError({ operation: "get", reason: "connection_refused", message: "refused" })

describe("BreakerRule.slowCalls: the threshold is inclusive", () => {
  it("a call taking exactly the threshold is slow; just under it is not", () => {
    const rule = BreakerRule.slowCalls({ threshold: "100 millis", rule: BreakerRule.consecutive(1) })
    expect(rule.slow?.(100)).toBe(true)
    expect(rule.slow?.(99.9)).toBe(false)
    const counter = rule.make()
    // A success of 99.9 ms is a success for the inner rule: nothing trips, nothing counted slow.
    expect(counter.record(false, 99.9, 0)).toBe(false)
    expect(counter.view(0).slowCalls).toBe(0)
    // A success of exactly 100 ms is a failure for the inner rule (consecutive(1): it trips) and is counted slow.
    expect(counter.record(false, 100, 0)).toBe(true)
    expect(counter.view(0).slowCalls).toBe(1)
  })

  it.effect("through a breaker: a call that takes exactly the threshold opens a slowCalls(consecutive(1)) breaker", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.slowCalls({ threshold: "100 millis", rule: BreakerRule.consecutive(1) }),
        halfOpenAfter: "1 second"
      })
      const fiber = yield* Effect.fork(breaker.execute("get", Effect.as(Effect.sleep("100 millis"), "v")))
      yield* TestClock.adjust("100 millis")
      // The caller gets its value (a slow call succeeds); the breaker counts it as a failure.
      expect(yield* Fiber.join(fiber)).toBe("v")
      expect(yield* breaker.state).toBe("OPEN")
    }))
})

describe("BreakerRule.timeWindow when the clock goes back", () => {
  it("a slot left by a later time is started afresh: its old counts do not stay in the window", () => {
    // 1 s in 10 slices of 100 ms; a failure ratio of 0.5 over at least 4 calls.
    const counter = BreakerRule.timeWindow({ window: "1 second", failureRatio: 0.5, minimumThroughput: 4, buckets: 10 }).make()
    for (let i = 0; i < 5; i++) counter.record(true, 0, 1_050) // slot 10, ring index 0
    expect(counter.view(1_050)).toMatchObject({ calls: 5, failures: 5 })
    // The clock went back 1 s: slot 0, the same ring index. The 5 failures belong to a slot that is not this one.
    expect(counter.record(false, 0, 50)).toBe(false)
    expect(counter.view(50)).toMatchObject({ calls: 1, failures: 0, failureRatio: 0 })
  })
})

describe("a failed probe counts as a consecutive failure", () => {
  it.effect("the snapshot's consecutiveFailures grows by one per failed probe, and a success resets it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
      yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
      expect((yield* breaker.snapshot).consecutiveFailures).toBe(1)
      yield* TestClock.adjust("1 second")
      yield* Effect.either(breaker.execute("get", Effect.fail(transient))) // the probe fails: OPEN again
      expect(yield* breaker.state).toBe("OPEN")
      expect((yield* breaker.snapshot).consecutiveFailures).toBe(2)
      yield* TestClock.adjust("1 second")
      yield* breaker.execute("get", Effect.succeed("v")) // the probe succeeds: CLOSED
      expect(yield* breaker.state).toBe("CLOSED")
      expect((yield* breaker.snapshot).consecutiveFailures).toBe(0)
    }))
})

describe("reconfigure while HALF_OPEN: the rejection names the new probe count", () => {
  it.effect("from 1 probe to 3: a call beyond the probes is rejected with a message about 3 probes", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
      yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
      yield* TestClock.adjust("1 second")
      yield* breaker.reconfigure({ failureThreshold: 1, halfOpenAfter: "1 second", halfOpen: { probes: 3 } })
      // Three probes in flight (they never settle here), the fourth call is rejected.
      for (let i = 0; i < 3; i++) yield* Effect.fork(breaker.execute("get", Effect.never))
      yield* Effect.yieldNow()
      const rejected = yield* Effect.flip(breaker.execute("get", Effect.succeed("v")))
      expect(rejected._tag).toBe("CircuitOpenError")
      expect(rejected.message).toContain("its 3 probes are in flight")
      expect(Duration.toMillis(rejected._tag === "CircuitOpenError" ? rejected.retryAfter : Duration.infinity)).toBe(0)
    }))
})

// ---------------------------------------------------------------------------------------------------------------
// The survivors triaged after the policy work (MUTATION.md, "After the policy work"): the gaps among them.
// ---------------------------------------------------------------------------------------------------------------

/** A call admitted now that fails with a transient error once `release` is run (it is in flight meanwhile). */
const heldFailure = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const gate = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(
      breaker.execute("get", Effect.zipRight(Deferred.succeed(started, undefined), Effect.zipRight(Deferred.await(gate), Effect.fail(transient))))
    )
    yield* Deferred.await(started)
    return Effect.zipRight(Deferred.succeed(gate, undefined), Effect.exit(Fiber.join(fiber)))
  })

/** `n` calls admitted together, all failing when released: what one socket reset does to the calls in flight. */
const burst = (breaker: CircuitBreaker.CircuitBreaker, n: number) =>
  Effect.gen(function*() {
    const releases = yield* Effect.forEach(Array.from({ length: n }), () => heldFailure(breaker))
    yield* Effect.forEach(releases, (release) => release)
  })

describe("isolate, then reset, of a breaker that never failed", () => {
  it.effect("failures count again after the reset: one failure opens a failureThreshold-1 breaker", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
      expect(yield* breaker.execute("get", Effect.succeed("v"))).toBe("v")
      yield* breaker.isolate
      yield* breaker.reset
      expect(yield* breaker.execute("get", Effect.succeed("v"))).toBe("v")
      expect(yield* Effect.either(breaker.execute("get", Effect.fail(transient)))).toStrictEqual(Either.left(transient))
      expect(yield* breaker.snapshot).toMatchObject({ state: "OPEN", opens: 1, consecutiveFailures: 1 })
    }))

  it.effect("a call admitted before the isolation that fails after the reset does not count", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 1, halfOpenAfter: "1 second" })
      const release = yield* heldFailure(breaker)
      yield* breaker.isolate
      yield* breaker.reset
      expect(yield* release).toStrictEqual(Exit.fail(transient))
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", opens: 0, consecutiveFailures: 0 })
      // A call admitted after the reset does count.
      yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
      expect(yield* breaker.state).toBe("OPEN")
    }))
})

describe("two probes timing out together", () => {
  it.scoped("the first expired probe re-opens the breaker; the second is not counted against the new break", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        failureThreshold: 1,
        halfOpenAfter: "1 second",
        halfOpen: { probes: 2, timeout: "5 seconds" }
      })
      yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
      yield* TestClock.adjust("1 second")
      const changes = yield* breaker.subscribe
      // Two probes that never answer.
      yield* Effect.fork(breaker.execute("get", Effect.never))
      yield* Effect.fork(breaker.execute("get", Effect.never))
      yield* Effect.yieldNow()
      expect((yield* breaker.snapshot).probes).toMatchObject({ permitted: 2, admitted: 2 })
      yield* TestClock.adjust("5 seconds")
      // The next caller finds both timed out: one failed probe is enough to re-open (successRatio 1 of 2).
      const rejected = yield* Effect.flip(breaker.execute("get", Effect.succeed("v")))
      expect(rejected._tag).toBe("CircuitOpenError")
      expect(yield* breaker.snapshot).toMatchObject({ state: "OPEN", opens: 2, consecutiveFailures: 2 })
      const seen = Chunk.toReadonlyArray(yield* Queue.takeAll(changes)).map((c) => `${c.from}->${c.to}`)
      expect(seen).toStrictEqual(["OPEN->HALF_OPEN", "HALF_OPEN->OPEN"])
    }))
})

describe("a custom rule that is not timed is given 0 as every call's duration", () => {
  it.effect("successes and failures that take 50 ms are recorded with 0 ms (the breaker does not time them)", () =>
    Effect.gen(function*() {
      const { rule, seen } = recordingRule("recording, untimed", false)
      const breaker = yield* CircuitBreaker.make({ rule })
      expect(breaker.timed).toBe(false)
      for (const outcome of [Effect.succeed("v"), Effect.fail(transient)] as const) {
        const fiber = yield* Effect.fork(Effect.either(breaker.execute("get", Effect.zipRight(Effect.sleep("50 millis"), outcome))))
        yield* TestClock.adjust("50 millis")
        yield* Fiber.join(fiber)
      }
      expect(seen).toStrictEqual([[false, 0], [true, 0]])
    }))
})

describe("reconfigure sets countOverlappingOnce as given, off when left out", () => {
  it.effect("turned on by reconfigure: eight calls failing together count once", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 5 })
      yield* breaker.reconfigure({ failureThreshold: 5, countOverlappingOnce: true })
      yield* burst(breaker, 8)
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 1 })
    }))

  it.effect("left out of the new options: off again, the same burst opens the breaker", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 5, countOverlappingOnce: true })
      yield* burst(breaker, 8)
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 1 })
      yield* breaker.reconfigure({ failureThreshold: 5 })
      yield* burst(breaker, 8)
      expect(yield* breaker.snapshot).toMatchObject({ state: "OPEN", opens: 1 })
    }))
})

describe("window rules in snapshots", () => {
  it.effect("a fresh countWindow breaker shows an empty window with a failure ratio of 0 (not NaN), and so after reset", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ rule: BreakerRule.countWindow({ size: 4, failureRatio: 0.5, minimumCalls: 2 }) })
      const empty = { calls: 0, failures: 0, slowCalls: 0, failureRatio: 0 }
      expect((yield* breaker.snapshot).window).toStrictEqual(empty)
      yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
      expect((yield* breaker.snapshot).window).toStrictEqual({ calls: 1, failures: 1, slowCalls: 0, failureRatio: 1 })
      yield* breaker.reset
      expect((yield* breaker.snapshot).window).toStrictEqual(empty)
    }))

  it.effect("a timeWindow breaker's snapshot names its rule", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.timeWindow({ window: "1 second", failureRatio: 0.5, minimumThroughput: 4 })
      })
      expect((yield* breaker.snapshot).rule).toBe("timeWindow(1000 ms, ratio 0.5, minimum 4)")
      expect((yield* breaker.snapshot).window).toStrictEqual({ calls: 0, failures: 0, slowCalls: 0, failureRatio: 0 })
    }))

  it.effect("timeWindow: a call leaves the window exactly one window after its slice began (the slice of 100-200 ms included)", () =>
    Effect.gen(function*() {
      // 1 s in 10 slices of 100 ms.
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.timeWindow({ window: "1 second", failureRatio: 0.5, minimumThroughput: 4, buckets: 10 })
      })
      yield* TestClock.adjust("150 millis") // slice 1: [100, 200)
      yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
      yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
      expect((yield* breaker.snapshot).window).toMatchObject({ calls: 2, failures: 2 })
      yield* TestClock.adjust("949 millis") // 1,099 ms: slice 10, the window is slices 1-10
      expect((yield* breaker.snapshot).window).toMatchObject({ calls: 2, failures: 2 })
      yield* TestClock.adjust("1 millis") // 1,100 ms: slice 11, slice 1 has left
      expect((yield* breaker.snapshot).window).toMatchObject({ calls: 0, failures: 0, failureRatio: 0 })
      // And it no longer counts towards a trip: two failures in slice 12 are 2 of the 4 calls needed.
      yield* TestClock.adjust("100 millis")
      yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
      yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", window: { calls: 2, failures: 2 } })
    }))
})
