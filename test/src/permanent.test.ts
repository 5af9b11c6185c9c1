/**
 * Permanent faults: a wrong password and an untrusted TLS certificate. Retrying cannot fix them, so: no reconnect
 * storm, no breaker flapping (permanent errors are never counted), a loud (ERROR) log, and reads still never fail.
 */
import { describe, expect, it } from "@effect/vitest"
import { type RedisServer, Workload } from "@steadfast/testing"
import * as Effect from "effect/Effect"
import { expectHeld, FAST_FAIL_P99_MS, infoNumber, scenario, workloadFigures, workloadOptions } from "./support/harness.js"

const PASSWORD = "chaos-right-password-5521"
const WRONG = "chaos-wrong-password-8830"
/** Long enough to contain one slowed reconnect (every 5 s while the failure is permanent), and show it is the only one. */
const WINDOW_MS = 5500
/**
 * At most: the reconnect due ~5 s after the initial attempt, plus one for timing slack. A transient classification
 * would reconnect on ioredis' backoff instead (50 ms doubling to ~0.5 s): 13 or more attempts in 5.5 s.
 */
const MAX_ATTEMPTS_IN_WINDOW = 2

/** Failed AUTHs the server logged (Redis 7.0 has no INFO counter for them): ACL LOG groups them, with a count. */
const rejectedAuths = (server: RedisServer.RedisServer) =>
  Effect.map(server.command("ACL", "LOG"), (reply) => {
    let total = 0
    for (const entry of Array.isArray(reply) ? reply : []) {
      if (!Array.isArray(entry)) continue
      const field = (name: string) => entry[entry.indexOf(name) + 1]
      if (field("reason") === "auth") total += Number(field("count"))
    }
    return total
  })

const errorLogs = (lines: ReadonlyArray<{ level: string; annotations: Record<string, unknown> }>, reason: string) =>
  lines.filter((l) => l.level === "ERROR" && l.annotations["error_type"] === reason).length

describe("chaos: permanent faults", () => {
  it.live("wrong password: no retry storm, no breaker, loud log, reads served from memory", () =>
    scenario(
      "wrong-password",
      { server: { password: PASSWORD }, url: (_server, proxy) => proxy.url(WRONG) },
      (stack) =>
        Effect.gen(function*() {
          const { proxy, server } = stack
          const connections0 = yield* infoNumber(server, "stats", "total_connections_received")
          const denied0 = yield* rejectedAuths(server)
          const accepted0 = (yield* proxy.stats).accepted
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
          yield* Effect.sleep(WINDOW_MS)
          const w = yield* workload.stats
          const accepted1 = (yield* proxy.stats).accepted
          const denied = (yield* rejectedAuths(server)) - denied0
          // Each `command` opens one connection of its own (authenticated with the right password): minus 3.
          const connections = (yield* infoNumber(server, "stats", "total_connections_received")) - connections0 - 3
          const stats = yield* stack.cache.stats
          const everything = [JSON.stringify(stats), ...stack.logs.lines.map((l) => l.line)].join("\n")
          return {
            workload: workloadFigures(w),
            windowMs: WINDOW_MS,
            clientConnectionsInWindow: connections,
            proxyAcceptedInWindow: accepted1 - accepted0,
            rejectedAuthsInWindow: denied,
            circuitOpens: stats.circuitOpens,
            circuitState: stats.circuitState,
            failureCount: stats.failureCount,
            transitions: stack.transitions.length,
            fallbacks: stats.fallbacks,
            cacheErrors: stats.errors,
            authErrorLogs: errorLogs(stack.logs.lines, "auth"),
            passwordLeaked: everything.includes(WRONG) || everything.includes(PASSWORD)
          }
        }),
      (f) => {
        expect(f.workload.ops).toBeGreaterThan(1000)
        expectHeld(f.workload, undefined)
        expect(f.workload.p99Ms).toBeLessThanOrEqual(FAST_FAIL_P99_MS)
        // No retry storm.
        expect(f.clientConnectionsInWindow).toBeLessThanOrEqual(MAX_ATTEMPTS_IN_WINDOW)
        expect(f.proxyAcceptedInWindow).toBeLessThanOrEqual(MAX_ATTEMPTS_IN_WINDOW)
        expect(f.rejectedAuthsInWindow).toBeLessThanOrEqual(MAX_ATTEMPTS_IN_WINDOW)
        // No breaker flapping: permanent errors are never counted.
        expect(f.circuitOpens).toBe(0)
        expect(f.transitions).toBe(0)
        expect(f.failureCount).toBe(0)
        expect(Object.keys(f.cacheErrors)).toEqual(["auth"])
        // Loud: ERROR lines (rate-limited to one per operation and reason per second).
        expect(f.authErrorLogs).toBeGreaterThanOrEqual(1)
        expect(f.passwordLeaked).toBe(false)
        expect(f.leftoverResources).toEqual({})
      }
    ))

  it.live("TLS with an untrusted certificate: no retry storm, no breaker, loud log, reads served from memory", () =>
    scenario(
      "tls-untrusted",
      // The proxy carries TLS unchanged; no `tlsCa`: the server's private CA is not trusted.
      { server: { tls: true }, url: (_server, proxy) => `rediss://127.0.0.1:${proxy.port}` },
      (stack) =>
        Effect.gen(function*() {
          const { proxy } = stack
          const accepted0 = (yield* proxy.stats).accepted
          const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
          yield* Effect.sleep(WINDOW_MS)
          const w = yield* workload.stats
          const accepted = (yield* proxy.stats).accepted - accepted0
          const stats = yield* stack.cache.stats
          return {
            workload: workloadFigures(w),
            windowMs: WINDOW_MS,
            connectAttemptsInWindow: accepted,
            circuitOpens: stats.circuitOpens,
            circuitState: stats.circuitState,
            failureCount: stats.failureCount,
            transitions: stack.transitions.length,
            fallbacks: stats.fallbacks,
            cacheErrors: stats.errors,
            tlsErrorLogs: errorLogs(stack.logs.lines, "tls_certificate")
          }
        }),
      (f) => {
        expect(f.workload.ops).toBeGreaterThan(1000)
        expectHeld(f.workload, undefined)
        expect(f.workload.p99Ms).toBeLessThanOrEqual(FAST_FAIL_P99_MS)
        expect(f.connectAttemptsInWindow).toBeLessThanOrEqual(MAX_ATTEMPTS_IN_WINDOW)
        expect(f.circuitOpens).toBe(0)
        expect(f.transitions).toBe(0)
        expect(f.failureCount).toBe(0)
        expect(Object.keys(f.cacheErrors)).toEqual(["tls_certificate"])
        expect(f.tlsErrorLogs).toBeGreaterThanOrEqual(1)
        expect(f.leftoverResources).toEqual({})
      }
    ))
})
