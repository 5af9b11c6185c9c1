/**
 * Sustained outages under load: 10 s of a stalled connection, 10 s of refused connections. Nothing may queue: the
 * heap (after full collections) stays flat, the socket count stays at the pool size, callers fail fast throughout.
 */
import { describe, expect, it } from "@effect/vitest"
import { ChaosProxy, Workload } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import {
  expectHeld,
  FAILURE_THRESHOLD,
  HALF_OPEN_MS,
  FAST_FAIL_P99_MS,
  heapAfterGc,
  nextTransition,
  RECOVERY_BOUND_MS,
  recovery,
  round,
  type Stack,
  scenario,
  transitionFigures,
  workloadFigures,
  workloadOptions
} from "./support/harness.js"

const OUTAGE_MS = 10_000
/**
 * "Bounded" = no per-call or per-second growth. At ~4,000 rejected calls per second, any per-call retention (a queued
 * command, a closure, a log line) of even 100 bytes would add ~4 MB over 10 s. Between two full GCs of an idle
 * steady state, heapUsed moves by a few hundred KiB (JIT, metric and log-rate-limiter maps reaching their fixed
 * sizes); 2 MiB separates the two cleanly.
 */
const MAX_HEAP_GROWTH_BYTES = 2 * 1024 * 1024

const sustained = (name: string, fault: (stack: Stack) => Effect.Effect<void>) =>
  scenario(
    name,
    {},
    (stack) =>
      Effect.gen(function*() {
        const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
        yield* Effect.sleep("1 second")
        yield* workload.window
        const mark = stack.transitions.length
        const faultAt = Date.now()
        yield* fault(stack)
        const opened = yield* nextTransition(stack, "OPEN", mark, 2000)
        // Steady state: breaker open, half-open probes every second, ioredis reconnecting.
        yield* Effect.sleep("1500 millis")
        const heapBefore = yield* heapAfterGc
        yield* workload.window
        const statsBefore = yield* stack.cache.stats
        const windowStart = Date.now()
        const accepted0 = (yield* stack.proxy.stats).accepted
        yield* Effect.sleep(OUTAGE_MS)
        const outage = yield* workload.window
        const windowEnd = Date.now()
        const connectsDuringOutage = (yield* stack.proxy.stats).accepted - accepted0
        const heapAfter = yield* heapAfterGc
        const statsAfter = yield* stack.cache.stats
        const sockets = yield* stack.proxy.connectionCount
        const status = yield* stack.connection.status
        const mark2 = stack.transitions.length
        const healedAt = Date.now()
        yield* stack.proxy.setFault(ChaosProxy.PassThrough())
        const recovered = yield* recovery(stack, mark2, healedAt)
        return {
          workload: workloadFigures(yield* workload.stats),
          outage: workloadFigures(outage),
          outageSeconds: OUTAGE_MS / 1000,
          heapBeforeMB: round(heapBefore / 2 ** 20, 2),
          heapAfterMB: round(heapAfter / 2 ** 20, 2),
          heapGrowthKB: Math.round((heapAfter - heapBefore) / 1024),
          // Connections the proxy still holds: under Stall it keeps the client's FIN with the held bytes (it is
          // delivered when the fault changes), so this counts the client's discarded sockets, already closed on
          // the client side.
          proxyHeldConnectionsAtEnd: sockets,
          clientConnectsDuringOutage: connectsDuringOutage,
          connectionStatusAtEnd: status,
          openedAtFailures: opened?.consecutiveFailures ?? null,
          openedAfterMs: opened ? opened.at - faultAt : null,
          fallbacksDuringOutage: statsAfter.fallbacks - statsBefore.fallbacks,
          probesDuringOutage: stack.transitions.filter((t) => t.to === "HALF_OPEN" && t.at >= windowStart && t.at <= windowEnd).length,
          ...recovered,
          circuitOpens: statsAfter.circuitOpens,
          cacheErrors: statsAfter.errors,
          transitions: transitionFigures(stack, faultAt).slice(0, 4),
          proxy: yield* stack.proxy.stats
        }
      }),
    (f) => {
      expectHeld(f.workload)
      expect(f.openedAtFailures).toBe(FAILURE_THRESHOLD)
      // Under load all along, failing fast all along.
      expect(f.outage.ops).toBeGreaterThan(10_000)
      expect(f.outage.p99Ms).toBeLessThanOrEqual(FAST_FAIL_P99_MS)
      expect(f.fallbacksDuringOutage).toBeGreaterThan(10_000)
      // One probe per halfOpenAfter (10 in 10 s, +1 for where the window falls), not one per call.
      expect(f.probesDuringOutage).toBeLessThanOrEqual(OUTAGE_MS / HALF_OPEN_MS + 1)
      // Nothing queued: heap flat; one socket at a time (status of the pool: 1 socket), replaced at most once per
      // socket timeout (625 ms, the silence watch) + reconnect delay: at most 16 new connections in 10 s, whatever the load.
      expect(f.heapGrowthKB * 1024).toBeLessThan(MAX_HEAP_GROWTH_BYTES)
      expect(f.connectionStatusAtEnd).toHaveLength(1)
      expect(f.clientConnectsDuringOutage).toBeLessThanOrEqual(16)
      expect(f.recoveryMs).not.toBeNull()
      expect(f.recoveryMs!).toBeLessThanOrEqual(RECOVERY_BOUND_MS)
      expect(f.leftoverResources).toEqual({})
    }
  )

describe("chaos: sustained outages", () => {
  it.live("10 s of a stalled connection under load: bounded heap, fail fast", () =>
    sustained("sustained-stall", (stack) => stack.proxy.setFault(ChaosProxy.Stall())))

  it.live("10 s of refused connections under load: bounded heap, fail fast", () =>
    sustained("sustained-refused", (stack) =>
      Effect.zipRight(stack.proxy.setFault(ChaosProxy.Refuse()), stack.proxy.resetConnections)))
})
