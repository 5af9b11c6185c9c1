/**
 * Network faults between the client and a healthy server: a reset, repeated resets, the server's idle timeout, a
 * blackholed (stalled) connection, and the recovery timing when a probe lands between ioredis' reconnect attempts.
 */
import { describe, expect, it } from "@effect/vitest"
import { ChaosProxy, Workload } from "@steadfast/testing"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import {
  expectHeld,
  closedAfter,
  DEADLINE_MS,
  FAILURE_THRESHOLD,
  FAST_FAIL_P99_MS,
  HALF_OPEN_MS,
  infoNumber,
  LAG_MS,
  nextTransition,
  RECOVERY_BOUND_MS,
  recovery,
  RETRY_FIRST_DELAY_MAX_MS,
  scenario,
  startCounter,
  TICK_MS,
  transitionFigures,
  waitUntil,
  workloadFigures,
  workloadOptions
} from "./support/harness.js"

describe("chaos: network faults", () => {
  it.live("connection reset by peer mid-traffic", () =>
    scenario(
      "reset-once",
      {},
      (stack) =>
        Effect.gen(function*() {
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
          yield* Effect.sleep("1 second")
          const before = yield* workload.window
          const statsBefore = yield* stack.cache.stats
          const mark = stack.transitions.length
          const resetAt = Date.now()
          yield* stack.proxy.resetConnections
          // The proxy keeps passing traffic: the server "serves again" at once; recovery is measured from the reset.
          const opened = yield* nextTransition(stack, "OPEN", mark, 1000)
          const closedAt = yield* closedAfter(stack, mark, RECOVERY_BOUND_MS + 1000)
          const during = yield* workload.window
          // Recovered: a further half second is served by Redis alone (no fallback).
          const fallbacksAtClose = (yield* stack.cache.stats).fallbacks
          yield* Effect.sleep("500 millis")
          const after = yield* workload.window
          const stats = yield* stack.cache.stats
          return {
            workload: workloadFigures(yield* workload.stats),
            baseline: workloadFigures(before),
            during: workloadFigures(during),
            afterRecovery: workloadFigures(after),
            fallbacks: stats.fallbacks - statsBefore.fallbacks,
            fallbacksAfterRecovery: stats.fallbacks - fallbacksAtClose,
            circuitOpens: stats.circuitOpens,
            cacheErrors: stats.errors,
            openedAtFailures: opened?.consecutiveFailures ?? null,
            openedAfterMs: opened ? opened.at - resetAt : null,
            recoveryMs: closedAt === undefined ? null : closedAt - resetAt,
            closedAfterOpenMs: closedAt === undefined || opened === undefined ? null : closedAt - opened.at,
            transitions: transitionFigures(stack, resetAt),
            proxy: yield* stack.proxy.stats
          }
        }),
      (f) => {
        expectHeld(f.workload)
        // One reset is one incident: the calls in flight on the socket fail together and count once, reads retry on
        // the reconnected socket, so the breaker stays closed. At most each in-flight caller (16 workers) fell back
        // once (writes are not retried).
        expect(f.openedAtFailures).toBeNull()
        expect(f.circuitOpens).toBe(0)
        expect(f.fallbacks).toBeLessThanOrEqual(workloadOptions.concurrency ?? 0)
        expect(f.fallbacksAfterRecovery).toBe(0)
        expect(f.afterRecovery.ops).toBeGreaterThan(0)
        expect(f.leftoverResources).toEqual({})
      }
    ))
  it.live("repeated resets (every connection reset after 32 KiB) with a non-idempotent counter", () =>
    scenario(
      "repeated-resets",
      {},
      (stack) =>
        Effect.gen(function*() {
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
          const counter = yield* startCounter(stack.connection, "counter")
          yield* Effect.sleep("800 millis")
          yield* workload.window
          const resetsBefore = (yield* stack.proxy.stats).resets
          // Every connection, including each reconnect, is reset once 32 KiB went through it (the handshake's INFO
          // reply alone is ~5 KiB): a reset every few hundred ms, for 3 s.
          yield* stack.proxy.setFault(ChaosProxy.ResetAfter({ bytes: 32 * 1024 }))
          yield* Effect.sleep("3 seconds")
          const mark = stack.transitions.length
          const healedAt = Date.now()
          yield* stack.proxy.setFault(ChaosProxy.PassThrough())
          const resets = (yield* stack.proxy.stats).resets - resetsBefore
          const during = yield* workload.window
          // The breaker may be OPEN or CLOSED at this point; if it is not CLOSED, wait for it.
          const recovered = yield* recovery(stack, mark, healedAt)
          yield* Effect.sleep("300 millis")
          const result = yield* counter.stop
          // Nothing is queued or re-sent: what the server counted is final once every loop has returned.
          const counted = Number(yield* stack.server.command("GET", "counter"))
          const stats = yield* stack.cache.stats
          const opens = stack.transitions.filter((t) => t.to === "OPEN" && t.from === "CLOSED")
          return {
            workload: workloadFigures(yield* workload.stats),
            duringResets: workloadFigures(during),
            resets,
            fallbacks: stats.fallbacks,
            circuitOpens: stats.circuitOpens,
            openedAtFailures: opens.map((t) => t.consecutiveFailures),
            cacheErrors: stats.errors,
            ...recovered,
            counter: { ...result, serverValue: counted, executedButFailed: counted - result.successes },
            transitions: stack.transitions.length
          }
        }),
      (f) => {
        expect(f.resets).toBeGreaterThanOrEqual(3)
        expectHeld(f.workload)
        // No INCR executed twice, none invented: S <= C <= S + F.
        expect(f.counter.successes).toBeGreaterThan(0)
        expect(f.counter.serverValue).toBeGreaterThanOrEqual(f.counter.successes)
        // Only a failure whose outcome is unknown may have run: S <= C <= S + F(may have run).
        expect(f.counter.serverValue).toBeLessThanOrEqual(f.counter.successes + f.counter.mayHaveRun)
        // Each reset is one incident (the calls in flight count once) and the successes between resets clear the
        // count, so whether the breaker opens at all depends on how the resets fall: when it does, it opens at exactly
        // the threshold and the cache recovers within the bound.
        for (const failures of f.openedAtFailures) expect(failures).toBe(FAILURE_THRESHOLD)
        if (f.circuitOpens > 0) {
          expect(f.recoveryMs).not.toBeNull()
          expect(f.recoveryMs!).toBeLessThanOrEqual(RECOVERY_BOUND_MS)
        }
        expect(f.leftoverResources).toEqual({})
      }
    ))

  it.live("the server's idle timeout closes idle clients: the client reconnects before the next request", () =>
    scenario(
      "idle-timeout",
      { server: { config: ["timeout 1"] } },
      (stack) =>
        Effect.gen(function*() {
          const connectionsBefore = yield* infoNumber(stack.server, "stats", "total_connections_received")
          // Bursts of 4 concurrent calls every 2.5 s. Redis closes a client idle for more than `timeout` whole
          // seconds of its clock (clientsCron, 10 Hz): between 1 and ~2.1 s of idleness. So the socket is closed
          // (FIN) in every gap, and there is >= 0.4 s left for the reconnect (50-100 ms) before the next burst.
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), {
            keys: 16,
            concurrency: 4,
            readRatio: 0.5,
            pause: "2500 millis"
          })
          yield* Effect.sleep("5600 millis") // bursts at ~0, 2.5 and 5 s
          const stats = yield* stack.cache.stats
          const w = yield* workload.stats
          // Minus the 2 INFO connections of this test (each `command` opens a fresh one).
          const connections = (yield* infoNumber(stack.server, "stats", "total_connections_received")) - connectionsBefore - 1
          return {
            workload: workloadFigures(w),
            clientReconnects: connections,
            fallbacks: stats.fallbacks,
            cacheErrors: stats.errors,
            circuitOpens: stats.circuitOpens,
            proxy: yield* stack.proxy.stats
          }
        }),
      (f) => {
        expect(f.workload.ops).toBe(12)
        // The server closed the idle socket in each of the two gaps, and the client reconnected each time.
        expect(f.clientReconnects).toBeGreaterThanOrEqual(2)
        // ... before the next request: not one call paid for it (no Redis error, no fallback).
        expect(f.cacheErrors).toEqual({})
        expect(f.fallbacks).toBe(0)
        expect(f.workload.readErrors).toBe(0)
        expect(f.workload.wrongValues).toBe(0)
        expect(f.workload.maxMs).toBeLessThan(DEADLINE_MS / 5)
        expect(f.leftoverResources).toEqual({})
      }
    ))

  it.live("a stalled (blackholed) connection: deadline-bound calls, breaker opens, fail fast, recovery", () =>
    scenario(
      "stall",
      {},
      (stack) =>
        Effect.gen(function*() {
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
          // INCRs that time out in the stall are held by the proxy and delivered when it ends: executed after the
          // caller was told they failed. Allowed (F), but never twice.
          const counter = yield* startCounter(stack.connection, "counter")
          yield* Effect.sleep("1 second")
          const baseline = yield* workload.window
          const mark = stack.transitions.length
          const stalledAt = Date.now()
          yield* stack.proxy.setFault(ChaosProxy.Stall())
          const opened = yield* nextTransition(stack, "OPEN", mark, DEADLINE_MS * 3)
          // Calls that started before the breaker opened may still finish after it (their retry is rejected at
          // ~100 ms): start the fail-fast window once they are all done.
          yield* Effect.sleep(Duration.millis(RETRY_FIRST_DELAY_MAX_MS + TICK_MS + LAG_MS))
          yield* workload.window
          yield* Effect.sleep("2 seconds")
          const open = yield* workload.window
          const mark2 = stack.transitions.length
          const healedAt = Date.now()
          yield* stack.proxy.setFault(ChaosProxy.PassThrough())
          const recovered = yield* recovery(stack, mark2, healedAt)
          const result = yield* counter.stop
          const counted = Number(yield* stack.server.command("GET", "counter"))
          const stats = yield* stack.cache.stats
          return {
            workload: workloadFigures(yield* workload.stats),
            baseline: workloadFigures(baseline),
            breakerOpen: workloadFigures(open),
            counter: { ...result, serverValue: counted, executedButFailed: counted - result.successes },
            openedAtFailures: opened?.consecutiveFailures ?? null,
            openedAfterMs: opened ? opened.at - stalledAt : null,
            ...recovered,
            fallbacks: stats.fallbacks,
            circuitOpens: stats.circuitOpens,
            cacheErrors: stats.errors,
            transitions: transitionFigures(stack, stalledAt),
            proxy: yield* stack.proxy.stats
          }
        }),
      (f) => {
        // Every call returned within its deadline (plus the bounded margin, see MAX_CALL_MS).
        expectHeld(f.workload)
        // The breaker opened at exactly the threshold. The calls in flight when the stall began time out together
        // (within [T - 2 ticks, T - tick]) and, overlapping, count once; then the connection's silence watch destroys
        // the silent socket (T + T/4 after it went silent, plus at most two of its ticks of a twentieth of that), the
        // calls after it fail fast one after another, and the count reaches the threshold. So: not before the first
        // deadlines (a reply the loaded event loop had not yet forwarded when the stall began is held too, hence the
        // lag margin), not after the socket timeout plus the margin.
        const silenceMs = DEADLINE_MS + Math.max(50, DEADLINE_MS / 4)
        expect(f.openedAtFailures).toBe(FAILURE_THRESHOLD)
        expect(f.openedAfterMs!).toBeGreaterThanOrEqual(DEADLINE_MS - 2 * TICK_MS - LAG_MS)
        expect(f.openedAfterMs!).toBeLessThanOrEqual(silenceMs + 2 * Math.floor(silenceMs / 20) + LAG_MS)
        // Fail fast while open.
        expect(f.breakerOpen.ops).toBeGreaterThan(1000)
        expect(f.breakerOpen.p99Ms).toBeLessThanOrEqual(FAST_FAIL_P99_MS)
        expect(f.counter.serverValue).toBeGreaterThanOrEqual(f.counter.successes)
        // Only a failure whose outcome is unknown may have run: S <= C <= S + F(may have run).
        expect(f.counter.serverValue).toBeLessThanOrEqual(f.counter.successes + f.counter.mayHaveRun)
        // The silence watch replaced the silent socket (the proxy saw reconnects).
        expect(f.proxy.accepted).toBeGreaterThanOrEqual(2)
        expect(f.recoveryMs).not.toBeNull()
        expect(f.recoveryMs!).toBeLessThanOrEqual(RECOVERY_BOUND_MS)
        expect(f.leftoverResources).toEqual({})
      }
    ))
  it.live("recovery timing: a probe due before ioredis has reconnected waits for the socket; closed within halfOpenAfter + one probe", () =>
    scenario(
      "probe-gap",
      {},
      (stack) =>
        Effect.gen(function*() {
          const { proxy } = stack
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
          yield* Effect.sleep("500 millis")
          // Every (re)connection is accepted then reset: each reconnect attempt is visible as `accepted`. After
          // 50 + 100 + 200 + 400 ms of attempts, ioredis' delay sits at its cap (500-549 ms).
          yield* proxy.setFault(ChaosProxy.Reset())
          yield* Effect.sleep("1500 millis")
          // Heal right after a reconnect attempt, when the breaker's next probe is due in 150-450 ms: the server then
          // serves, but ioredis only retries ~500 ms after its last attempt, so the probe finds no socket.
          let aligned: { retryAfterMs: number; tries: number } | undefined
          const alignStarted = Date.now()
          // Best effort: a probe now waits for the reconnect, so re-openings line up with attempts and this window is
          // not always reached; the assertion below uses the time to the probe measured at the heal, whatever it is.
          for (let tries = 1; aligned === undefined && Date.now() - alignStarted < 3_000; tries++) {
            const before = (yield* proxy.stats).accepted
            yield* waitUntil(Effect.map(proxy.stats, (st) => st.accepted > before), 1500, 2)
            const snapshot = yield* stack.breaker.snapshot
            const retryAfterMs = snapshot.state === "OPEN" && Option.isSome(snapshot.retryAfter)
              ? Duration.toMillis(snapshot.retryAfter.value)
              : -1
            if (retryAfterMs >= 150 && retryAfterMs <= 450) aligned = { retryAfterMs, tries }
          }
          const mark = stack.transitions.length
          const atHeal = yield* stack.breaker.snapshot
          const probeDueInMs = Option.match(atHeal.retryAfter, { onNone: () => 0, onSome: Duration.toMillis })
          const healedAt = Date.now()
          yield* proxy.setFault(ChaosProxy.PassThrough())
          const recovered = yield* recovery(stack, mark, healedAt)
          const stats = yield* stack.cache.stats
          return {
            aligned: aligned ?? null,
            probeDueInMs,
            ...recovered,
            halfOpenAfterMs: HALF_OPEN_MS,
            meetsHalfOpenPlusOneProbe: recovered.recoveryMs !== null && recovered.recoveryMs <= HALF_OPEN_MS + LAG_MS,
            transitionsAfterHeal: transitionFigures(stack, healedAt).slice(mark),
            workload: workloadFigures(yield* workload.stats),
            circuitOpens: stats.circuitOpens,
            cacheErrors: stats.errors
          }
        }),
      (f) => {
        expect(f.workload.readErrors).toBe(0)
        expect(f.workload.wrongValues).toBe(0)
        // The probe lands between ioredis' reconnect attempts; it waits for the socket (bounded by the deadline)
        // instead of failing on "not connected" and re-opening the breaker. So: closed within halfOpenAfter + one
        // probe (which includes the wait for the reconnect, <= 549 ms) + the event-loop margin, with no failed probe.
        expect(f.recoveryMs).not.toBeNull()
        expect(f.failedProbesAfterHeal).toBe(0)
        // Precisely: the probe is due `probeDueInMs` after the heal, then waits at most one reconnect gap.
        expect(f.recoveryMs!).toBeLessThanOrEqual(f.probeDueInMs + 549 + LAG_MS)
        expect(f.meetsHalfOpenPlusOneProbe).toBe(true)
        expect(f.leftoverResources).toEqual({})
      }
    ))
})
