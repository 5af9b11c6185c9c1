/**
 * Call durations as the breaker measures them (survivors of the 2026-12-04 mutation run, see MUTATION.md; the other
 * named gaps are in CircuitBreaker.survivors.test.ts): a CLOSED call and a probe taking exactly the slow-call
 * threshold, and the duration a custom rule is given for a failed call.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as TestClock from "effect/TestClock"
import { BreakerRule, CircuitBreaker, TransientError } from "@steadfast/resilience"
import { recordingRule } from "./recordingRule.js"

const transient = new TransientError({ operation: "get", reason: "connection_refused", message: "refused" })
type Breaker = CircuitBreaker.CircuitBreaker


/** A call that takes `millis` of test time, then ends with `outcome`. */
const timedCall = <A, E>(breaker: Breaker, millis: number, outcome: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(
      breaker.execute(
        "get",
        Effect.zipRight(Deferred.succeed(started, undefined), Effect.zipRight(Effect.sleep(Duration.millis(millis)), outcome))
      )
    )
    yield* Deferred.await(started)
    yield* TestClock.adjust(Duration.millis(millis))
    return yield* Effect.exit(Fiber.join(fiber))
  })

describe("slowCalls: a call taking exactly the threshold is slow", () => {
  it.effect("a CLOSED call of exactly 1 s opens slowCalls(1 s, consecutive(1)); 999 ms does not", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        rule: BreakerRule.slowCalls({ threshold: "1 second", rule: BreakerRule.consecutive(1) })
      })
      yield* timedCall(breaker, 999, Effect.succeed("v"))
      expect(yield* breaker.state).toBe("CLOSED")
      expect(yield* timedCall(breaker, 1000, Effect.succeed("v"))).toStrictEqual(Exit.succeed("v"))
      expect(yield* breaker.state).toBe("OPEN")
      expect((yield* breaker.snapshot).window.slowCalls).toBe(1)
    }))

  it.effect("a probe that succeeds in exactly the threshold is a failed probe: the breaker opens again", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({
        halfOpenAfter: "5 seconds",
        rule: BreakerRule.slowCalls({ threshold: "1 second", rule: BreakerRule.consecutive(1) })
      })
      yield* timedCall(breaker, 1000, Effect.succeed("v"))
      expect(yield* breaker.state).toBe("OPEN")
      yield* TestClock.adjust("5 seconds")
      expect(yield* timedCall(breaker, 1000, Effect.succeed("v"))).toStrictEqual(Exit.succeed("v"))
      expect(yield* breaker.state).toBe("OPEN")
      // A probe just under the threshold closes it.
      yield* TestClock.adjust((yield* breaker.snapshot).breakMillis)
      yield* timedCall(breaker, 999, Effect.succeed("v"))
      expect(yield* breaker.state).toBe("CLOSED")
    }))
})

describe("a custom rule is given each call's duration", () => {
  it.effect("a failed call's duration is its own, measured from its start, whatever the clock reads", () =>
    Effect.gen(function*() {
      const { rule, seen } = recordingRule("recording", true)
      const breaker = yield* CircuitBreaker.make({ rule })
      yield* TestClock.adjust("10 seconds")
      yield* timedCall(breaker, 300, Effect.fail(transient))
      yield* timedCall(breaker, 200, Effect.succeed("v"))
      expect(seen).toStrictEqual([[true, 300], [false, 200]])
    }))
})
