/**
 * The breaker's counting rules under real faults, through the resilient cache under load: a server that is slow
 * but alive (every reply at 80% of the deadline), where only the slow-call rule opens; and a stalled connection
 * with the sampling (time-window) rule and the slow-call rule, holding the same guarantees as the default rule.
 */
import { describe, expect, it } from "@effect/vitest"
import { BreakerRule } from "@steadfast/resilience"
import { ChaosProxy, Workload } from "@steadfast/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import {
  DEADLINE_MS,
  expectHeld,
  FAST_FAIL_P99_MS,
  HALF_OPEN_MS,
  LAG_MS,
  nextTransition,
  recovery,
  RECOVERY_BOUND_MS,
  RETRY_FIRST_DELAY_MAX_MS,
  scenario,
  type StackOptions,
  TICK_MS,
  transitionFigures,
  workloadFigures,
  workloadOptions
} from "./support/harness.js"

/** Every reply delayed by 80% of the deadline: no call fails, every call is slow. */
const SLOW_REPLY_MS = Math.round(DEADLINE_MS * 0.8)
/** A call slower than half the deadline is a slow call. */
const SLOW_CALL_MS = DEADLINE_MS / 2
const slowCalls = BreakerRule.slowCalls({
  threshold: Duration.millis(SLOW_CALL_MS),
  rule: BreakerRule.countWindow({ size: 10, failureRatio: 0.5 })
})
const SAMPLING_WINDOW_MS = 1000
const sampling = BreakerRule.timeWindow({
  window: Duration.millis(SAMPLING_WINDOW_MS),
  failureRatio: 0.5,
  minimumThroughput: 10,
  buckets: 5
})

/** Slow but alive for `slowMs`, then fast again; the figures of each phase. */
const slowButAlive = (slowMs: number) =>
  (stack: Parameters<Parameters<typeof scenario>[2]>[0]) =>
    Effect.gen(function*() {
      const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
      yield* Effect.sleep("500 millis")
      const baseline = yield* workload.window
      const mark = stack.transitions.length
      const slowAt = Date.now()
      yield* stack.proxy.setFault(ChaosProxy.Latency({ upstream: 0, downstream: Duration.millis(SLOW_REPLY_MS) }))
      const opened = yield* nextTransition(stack, "OPEN", mark, slowMs)
      yield* Effect.sleep(Duration.millis(Math.max(0, slowMs - (Date.now() - slowAt))))
      const slow = yield* workload.window
      const mark2 = stack.transitions.length
      const healedAt = Date.now()
      yield* stack.proxy.setFault(ChaosProxy.PassThrough())
      const recovered = yield* recovery(stack, mark2, healedAt, RECOVERY_BOUND_MS + SLOW_REPLY_MS + 2000)
      const stats = yield* stack.cache.stats
      return {
        /** Closes between the start of the slow phase and its end (a probe that succeeded while slow). */
        closesWhileSlow: stack.transitions.slice(mark, mark2).filter((t) => t.to === "CLOSED").length,
        workload: workloadFigures(yield* workload.stats),
        baseline: workloadFigures(baseline),
        slow: workloadFigures(slow),
        openedAfterMs: opened ? opened.at - slowAt : null,
        ...recovered,
        fallbacks: stats.fallbacks,
        circuitOpens: stats.circuitOpens,
        cacheErrors: stats.errors,
        transitions: transitionFigures(stack, slowAt)
      }
    })

describe("chaos: breaker rules", () => {
  it.live("slow but alive (every reply at 80% of the deadline), consecutive rule: never opens, every caller waits", () => {
    const options: StackOptions = {}
    return scenario(
      "slow-alive-consecutive",
      options,
      slowButAlive(3000),
      (f) => {
        expectHeld(f.workload)
        // Nothing failed, so the consecutive rule saw nothing: callers paid the slow replies for the whole phase.
        expect(f.openedAfterMs).toBeNull()
        expect(f.circuitOpens).toBe(0)
        expect(f.slow.p50Ms).toBeGreaterThanOrEqual(SLOW_REPLY_MS - LAG_MS)
        expect(f.leftoverResources).toEqual({})
      }
    )
  })

  it.live("slow but alive, slow-call rule: opens on slow successes, callers answered from memory, slow probes keep it open, closes once fast", () => {
    const options: StackOptions = { breaker: { rule: slowCalls } }
    return scenario(
      "slow-alive-slow-calls",
      options,
      slowButAlive(3000),
      (f) => {
        expectHeld(f.workload)
        // The first wave of slow replies fills the window (10 calls, all slower than half the deadline).
        expect(f.openedAfterMs).not.toBeNull()
        expect(f.openedAfterMs!).toBeLessThanOrEqual(2 * SLOW_REPLY_MS + LAG_MS)
        // While slow, callers were mostly answered from memory at once: the median call is far below the slow reply
        // (probes and the first wave paid it).
        expect(f.slow.p50Ms).toBeLessThan(FAST_FAIL_P99_MS)
        expect(f.fallbacks).toBeGreaterThan(0)
        // Probes during the slow phase were slow, so failed: the breaker re-opened rather than closed on them.
        expect(f.closesWhileSlow).toBe(0)
        expect(f.recoveryMs).not.toBeNull()
        expect(f.recoveryMs!).toBeLessThanOrEqual(HALF_OPEN_MS + SLOW_REPLY_MS + RECOVERY_BOUND_MS)
        expect(f.leftoverResources).toEqual({})
      }
    )
  })

  for (const [name, rule, opensWithinMs] of [
    // The window must first lose the healthy calls made before the stall.
    ["sampling (time window)", sampling, SAMPLING_WINDOW_MS + DEADLINE_MS + 2 * LAG_MS + 300],
    ["slow calls", slowCalls, 2 * DEADLINE_MS + 2 * LAG_MS]
  ] as const) {
    it.live(`a stalled connection, ${name} rule: deadline-bound calls, opens, fails fast, recovers`, () =>
      scenario(
        `stall-${name.split(" ")[0]}`,
        { breaker: { rule } },
        (stack) =>
          Effect.gen(function*() {
            const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
            yield* Effect.sleep("1 second")
            const mark = stack.transitions.length
            const stalledAt = Date.now()
            yield* stack.proxy.setFault(ChaosProxy.Stall())
            const opened = yield* nextTransition(stack, "OPEN", mark, opensWithinMs + 2000)
            yield* Effect.sleep(Duration.millis(RETRY_FIRST_DELAY_MAX_MS + TICK_MS + LAG_MS))
            yield* workload.window
            yield* Effect.sleep("800 millis")
            const open = yield* workload.window
            const mark2 = stack.transitions.length
            const healedAt = Date.now()
            yield* stack.proxy.setFault(ChaosProxy.PassThrough())
            const recovered = yield* recovery(stack, mark2, healedAt)
            const stats = yield* stack.cache.stats
            return {
              workload: workloadFigures(yield* workload.stats),
              breakerOpen: workloadFigures(open),
              openedAfterMs: opened ? opened.at - stalledAt : null,
              ...recovered,
              fallbacks: stats.fallbacks,
              circuitOpens: stats.circuitOpens,
              transitions: transitionFigures(stack, stalledAt)
            }
          }),
        (f) => {
          expectHeld(f.workload)
          expect(f.openedAfterMs).not.toBeNull()
          expect(f.openedAfterMs!).toBeLessThanOrEqual(opensWithinMs)
          expect(f.breakerOpen.ops).toBeGreaterThan(200)
          expect(f.breakerOpen.p99Ms).toBeLessThanOrEqual(FAST_FAIL_P99_MS)
          expect(f.recoveryMs).not.toBeNull()
          expect(f.recoveryMs!).toBeLessThanOrEqual(RECOVERY_BOUND_MS)
          expect(f.leftoverResources).toEqual({})
        }
      ))
  }
})
