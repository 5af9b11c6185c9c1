/**
 * Behaviour the mutation run of the breaker and its rules (MUTATION.md, "After the policy work") found untested: the
 * slow-call threshold's boundary, a clock that goes back under a time window, the consecutive count of a failed
 * probe, and the half-open rejection after the probe count is reconfigured.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { BreakerRule, CircuitBreaker, TransientError } from "@steadfast/resilience"

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
