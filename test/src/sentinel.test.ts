/**
 * Sentinel failovers under load through the resilient cache: a real Sentinel set (`RedisSentinel.make`: a primary,
 * 2 replicas, 3 sentinels, `down-after-milliseconds` 1 s), the connection pointed at it with a `redis+sentinel://`
 * URL, the harness' deadline, breaker and read retries, and the Workload at 16-way load (reads, writes, 5% deletes).
 *
 * Every scenario asserts the invariants of `expectHeld` (0 caller-visible errors, 0 wrong values, 0 stale reads,
 * every call within MAX_CALL_MS) and reports the recovery time (the first write the new primary received after it
 * was elected) and the acknowledged writes lost: once the workers stopped and the cache reconciled, every workload
 * key is read back from the new primary and judged by the Workload's model; a value older than what a caller was
 * told succeeded (`stale`) is an acknowledged write (or delete) that Redis lost and reconciliation did not repair.
 *
 * The killed primary's return (`restartOld`, ~10 s) is left to packages/redis/test/Sentinel.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cache, RedisCache, ResilientCache } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import { CircuitBreaker } from "@steadfast/resilience"
import { RedisSentinel, Workload } from "@steadfast/testing"
import type { RedisServer } from "@steadfast/testing"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Fs from "node:fs"
import {
  BUILD_DIR,
  captureLogs,
  DEADLINE_MS,
  expectHeld,
  FAILURE_THRESHOLD,
  FIGURES_PARTS,
  HALF_OPEN_MS,
  info,
  LAG_MS,
  quietResources,
  RECONNECT_DELAY_MAX_MS,
  readRetry,
  round,
  settleResources,
  waitUntil,
  workloadFigures,
  workloadOptions
} from "./support/harness.js"

const workloadKeys = Array.from({ length: workloadOptions.keys! }, (_, i) => `workload:${i}`)

/**
 * From "the new primary is elected" (the helper returned: every sentinel names it and it answers ROLE master) to the
 * first write it receives from us. After a graceful failover the connection is already there (the switch is followed
 * at `+switch-master`, before every sentinel agrees); after a kill the breaker may be open: halfOpenAfter + one
 * reconnect gap + the event-loop margin.
 */
const RECOVERY_BOUND_MS = HALF_OPEN_MS + RECONNECT_DELAY_MAX_MS + LAG_MS

/**
 * How long the scope may take to be released. Longer than the harness' 500 ms for one reason, found with
 * async_hooks: when a socket reconnects after `+switch-master`, ioredis' failover detector cleans up its previous
 * detector a second time (`SentinelConnector.initFailoverDetector` -> `FailoverDetector.cleanup`), calling
 * `disconnect()` on sentinel clients whose sockets already closed, which arms `AbstractConnector.disconnect`'s timer
 * of `disconnectTimeout` (2 s, ioredis' default: those clients take no options from us) that nothing clears. One per
 * sentinel; they end on their own within 2 s of the reconnect. Anything left after this bound is a leak.
 */
const SENTINEL_SETTLE_BOUND_MS = 2500

interface SentinelStack {
  readonly set: RedisSentinel.RedisSentinel
  readonly cache: Cache.Cache
  readonly connection: RedisConnection.RedisConnection
  readonly transitions: Array<CircuitBreaker.StateChange>
}

/** The resilient cache over a `redis+sentinel://` connection, with the harness' breaker, retries and deadline. */
const makeStack = Effect.gen(function*() {
  const set = yield* RedisSentinel.make()
  const breaker = yield* CircuitBreaker.make({
    failureThreshold: FAILURE_THRESHOLD,
    halfOpenAfter: Duration.millis(HALF_OPEN_MS),
    countOverlappingOnce: RedisCache.defaultBreaker.countOverlappingOnce
  })
  const transitions: Array<CircuitBreaker.StateChange> = []
  const changes = yield* breaker.subscribe
  yield* Queue.take(changes).pipe(
    Effect.flatMap((change) => Effect.sync(() => transitions.push(change))),
    Effect.forever,
    Effect.forkScoped
  )
  const url = `redis+sentinel://${set.sentinels.map((s) => `${s.host}:${s.port}`).join(",")}/${set.masterName}`
  const context = yield* Layer.build(
    ResilientCache.layer({
      keyPrefix: "chaos:",
      retry: { get: readRetry, getMany: readRetry },
      circuitBreaker: breaker
    }).pipe(
      Layer.provideMerge(RedisConnection.layer({
        url,
        commandTimeout: Duration.millis(DEADLINE_MS),
        connectTimeout: Duration.millis(DEADLINE_MS)
      }))
    )
  )
  const stack: SentinelStack = {
    set,
    cache: Context.get(context, Cache.Cache),
    connection: Context.get(context, RedisConnection.RedisConnection),
    transitions
  }
  return stack
})

const serverAt = (set: RedisSentinel.RedisSentinel, address: RedisSentinel.Address): RedisServer.RedisServer =>
  set.servers.find((s) => s.port === address.port)!

/** Writes the server has executed (SET, MSET, DEL), from `INFO commandstats`. */
const writesExecuted = (server: RedisServer.RedisServer) =>
  Effect.map(info(server, "commandstats"), (stats) =>
    ["cmdstat_set", "cmdstat_mset", "cmdstat_del"].reduce((n, name) => {
      const calls = /calls=(\d+)/.exec(stats[name] ?? "")?.[1]
      return n + Number(calls ?? 0)
    }, 0))

const reconciled = (cache: Cache.Cache, timeoutMs: number) =>
  waitUntil(
    Effect.map(cache.stats, (s) => s.reconciliation === undefined || (s.reconciliation.pendingKeys === 0 && !s.reconciliation.flushing)),
    timeoutMs,
    5
  )

const report = (figures: Record<string, unknown>) => {
  console.log(`[chaos] ${JSON.stringify(figures)}`)
  Fs.mkdirSync(BUILD_DIR, { recursive: true })
  Fs.appendFileSync(FIGURES_PARTS, JSON.stringify(figures) + "\n")
}

/**
 * One failover under load: the workload runs 1 s, `fault` changes the primary, the workload runs 1.5 s more; then
 * the workers stop, the cache reconciles, and the new primary is read back.
 */
const failoverScenario = (name: string, fault: (set: RedisSentinel.RedisSentinel) => Effect.Effect<RedisSentinel.Switch, RedisSentinel.RedisSentinelError>) =>
  Effect.gen(function*() {
    const before = yield* quietResources
    const started = performance.now()
    const logs = captureLogs()
    const figures = yield* Effect.scoped(Effect.gen(function*() {
      const stack = yield* makeStack
      const { workload, change, electedAt, faultAt, recoveryMs, reconcileMs } = yield* Effect.scoped(Effect.gen(function*() {
        const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
        yield* Effect.sleep("1 second")
        const faultAt = Date.now()
        const change = yield* fault(stack.set)
        const electedAt = Date.now()
        const primary = serverAt(stack.set, change.to)
        const atElection = yield* writesExecuted(primary)
        const wrote = yield* waitUntil(Effect.map(writesExecuted(primary), (n) => n > atElection), RECOVERY_BOUND_MS + 2000, 10)
        yield* Effect.sleep("1500 millis")
        const reconcileMs = yield* reconciled(stack.cache, 5000)
        return {
          workload,
          change,
          electedAt,
          faultAt,
          recoveryMs: wrote === undefined ? null : Math.round(wrote),
          reconcileMs
        }
      }))
      // The workers have stopped: let the cache finish repairing what it took while Redis could not.
      const settled = yield* reconciled(stack.cache, 5000)
      const primary = serverAt(stack.set, yield* stack.set.primary)
      const reply = yield* primary.command("MGET", ...workloadKeys.map((k) => `chaos:${k}`))
      const values = (Array.isArray(reply) ? reply : []).map((v) => (typeof v === "string" ? v : undefined))
      const inNewPrimary: Record<Workload.Verdict, number> = { miss: 0, ok: 0, wrong: 0, stale: 0 }
      workloadKeys.forEach((key, i) => inNewPrimary[workload.check(key, values[i])]++)
      const stats = yield* stack.cache.stats
      return {
        workload: workloadFigures(yield* workload.stats),
        switch: { from: change.from.port, to: change.to.port, electedAfterMs: electedAt - faultAt },
        recoveryMs,
        reconcileMs: reconcileMs === undefined ? null : Math.round(reconcileMs),
        reconciledAfterStop: settled !== undefined,
        inNewPrimary,
        ackedWritesLost: inNewPrimary.stale + inNewPrimary.wrong,
        fallbacks: stats.fallbacks,
        circuitOpens: stats.circuitOpens,
        cacheErrors: stats.errors,
        reconciledKeys: stats.reconciliation?.reconciledKeys ?? 0,
        transitions: stack.transitions.map((t) => `${t.from}->${t.to}@${t.at - faultAt}ms(f=${t.consecutiveFailures})`)
      }
    })).pipe(Effect.provide(logs.layer))
    const { leftover, settleMs } = yield* settleResources(before, SENTINEL_SETTLE_BOUND_MS)
    const connectionErrors: Record<string, number> = {}
    for (const l of logs.lines) {
      if (l.message !== "redis connection error") continue
      const reason = String(l.annotations["error_type"])
      connectionErrors[reason] = (connectionErrors[reason] ?? 0) + 1
    }
    const all = {
      scenario: name,
      scenarioSeconds: round((performance.now() - started) / 1000, 2),
      ...figures,
      connectionErrors,
      fences: logs.lines.filter((l) => l.message.startsWith("redis primary fenced")).length,
      logLines: { ...logs.byLevel },
      leftoverResources: leftover,
      settleMs
    }
    report(all)
    return all
  })

describe("chaos: Sentinel failovers through the resilient cache", () => {
  it.live("SENTINEL FAILOVER under 16-way load: no caller error, no stale read, no acknowledged write lost", () =>
    Effect.gen(function*() {
      const f = yield* failoverScenario("sentinel-failover", (set) => set.failover)
      expectHeld(f.workload)
      expect(f.recoveryMs).not.toBeNull()
      expect(f.recoveryMs!).toBeLessThanOrEqual(RECOVERY_BOUND_MS)
      expect(f.reconciledAfterStop).toBe(true)
      expect(f.inNewPrimary.stale).toBe(0)
      expect(f.inNewPrimary.wrong).toBe(0)
      expect(f.fences).toBeGreaterThanOrEqual(1)
      expect(f.leftoverResources).toEqual({})
    }))

  it.live("the primary killed under 16-way load: no caller error, no stale read, no acknowledged write lost", () =>
    Effect.gen(function*() {
      const f = yield* failoverScenario("sentinel-kill-primary", (set) => set.killPrimary)
      expectHeld(f.workload)
      expect(f.recoveryMs).not.toBeNull()
      expect(f.recoveryMs!).toBeLessThanOrEqual(RECOVERY_BOUND_MS)
      expect(f.reconciledAfterStop).toBe(true)
      expect(f.inNewPrimary.stale).toBe(0)
      expect(f.inNewPrimary.wrong).toBe(0)
      expect(f.leftoverResources).toEqual({})
    }))
})
