/**
 * The hybrid cache in the chaos matrix: L1 in this process + Redis (a spawned redis-server), its data connection
 * through one `ChaosProxy` and its invalidation subscriber through another, under
 *
 * - this process' own load: the matrix' Workload (16 workers, reads, writes and 5 % deletes on 64 keys), judged by its
 *   model: once a write or delete is acknowledged, no later read returns the value it replaced (0 tolerance);
 * - foreign writes: a plain ioredis client, straight to the server, writes 8 other keys every ~3 ms, while 16 fibers
 *   read them through the hybrid cache. The hybrid cache learns of those writes only from Redis' invalidations, so
 *   the rule is the stated bound: no read returns a value that a foreign write acknowledged more than the bound
 *   before the read started had replaced. The bound is the canary's `interval + timeout` (1.5 s), which is also the
 *   scenario's `fallbackTtl` (reads answered from the resilient cache's fallback while Redis is unreachable may be
 *   that old: the fallback cannot know of foreign writes either), plus the matrix' event-loop margin (100 ms);
 *
 * while faults hit the invalidation path (subscriber reset, stall, `CLIENT KILL`) and the data path (reset,
 * `CLIENT KILL` of the tracked connection, stall, a server restart). Every scenario asserts: no caller-visible error, no wrong value, no stale read of this process'
 * keys, no foreign read beyond the bound, and that L1 is trusted again (and answers) after each fault.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cache, HybridCache } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import { ChaosProxy, RedisServer, Workload } from "@steadfast/testing"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import * as Fs from "node:fs"
import {
  BUILD_DIR,
  captureLogs,
  DEADLINE_MS,
  expectHeld,
  FIGURES_PARTS,
  HALF_OPEN_MS,
  LAG_MS,
  MAX_CALL_MS,
  quietResources,
  readRetry,
  round,
  settleResources,
  waitUntil,
  workloadFigures,
  workloadOptions
} from "./support/harness.js"

/** The canary's interval + timeout (the defaults) and, in these scenarios, `fallbackTtl`. */
const BOUND_MS = 1500
const FOREIGN_KEYS = 8
const FOREIGN_READERS = 16
/** After a fault is healed, L1 must be trusted again within this. */
const RETRUST_MS = 10_000

interface HybridStack {
  readonly server: RedisServer.RedisServer
  /** In front of the data connection. */
  readonly data: ChaosProxy.ChaosProxy
  /** In front of the invalidation subscriber. */
  readonly subscriber: ChaosProxy.ChaosProxy
  readonly cache: Cache.Cache
}

const makeStack = Effect.gen(function*() {
  const server = yield* RedisServer.make()
  const data = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
  const subscriber = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
  const context = yield* Layer.build(
    HybridCache.layer({
      keyPrefix: "chaos:",
      retry: { get: readRetry, getMany: readRetry },
      breaker: { halfOpenAfter: Duration.millis(HALF_OPEN_MS) },
      fallbackTtl: Duration.millis(BOUND_MS),
      tracking: { subscriberAddress: { host: subscriber.host, port: subscriber.port } }
    }).pipe(Layer.provide(RedisConnection.layer({
      url: data.url(server.password),
      commandTimeout: Duration.millis(DEADLINE_MS),
      connectTimeout: Duration.millis(DEADLINE_MS)
    })))
  )
  const stack: HybridStack = { server, data, subscriber, cache: Context.get(context, Cache.Cache) }
  return stack
})

const hybridOf = (stack: HybridStack) => Effect.map(stack.cache.stats, (s) => s.hybrid!)
const trusted = (stack: HybridStack) => Effect.map(hybridOf(stack), (h) => h.trusted)

/** Waits until L1 is trusted again; the ms it took (null: not within {@link RETRUST_MS}). */
const retrusted = (stack: HybridStack) =>
  Effect.map(waitUntil(trusted(stack), RETRUST_MS, 5), (ms) => (ms === undefined ? null : Math.round(ms)))

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

/**
 * Foreign writes and their readers: a plain client writes `foreign:<k>#<seq>` (one sequence, key `seq % 8`) every
 * ~3 ms; 16 fibers read those keys through the hybrid cache. Each read is judged when it returns: wrong (a value no
 * write attempted), or beyond the bound (a foreign write acknowledged more than the bound before the read started
 * had replaced it). Runs until the scope closes.
 */
const foreignLoad = (stack: HybridStack) =>
  Effect.gen(function*() {
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const c = new Redis(stack.server.url, {
          protocol: 2,
          commandTimeout: DEADLINE_MS,
          connectTimeout: DEADLINE_MS,
          maxRetriesPerRequest: 0,
          enableOfflineQueue: false,
          retryStrategy: () => 50
        })
        c.on("error", () => {})
        return c
      }),
      (c) => Effect.sync(() => c.disconnect())
    )
    const attempted = new Array<number>(FOREIGN_KEYS).fill(-1)
    /** Per key, the acknowledged writes in order: [seq, ackAt]. */
    const acked = Array.from({ length: FOREIGN_KEYS }, () => [] as Array<readonly [number, number]>)
    /** Per key, per seq read: the start of the last read that returned it. */
    const lastSeen = Array.from({ length: FOREIGN_KEYS }, () => new Map<number, number>())
    const counts = { writesAcked: 0, writesFailed: 0, reads: 0, misses: 0, readErrors: 0, wrong: 0, beyondBound: 0 }
    const errorsByKind: Record<string, number> = {}
    let worstBeyond: Record<string, unknown> | undefined

    const writer = Effect.gen(function*() {
      for (let seq = 0;; seq++) {
        const k = seq % FOREIGN_KEYS
        attempted[k] = seq
        const ok = yield* Effect.promise(() =>
          client.set(`chaos:foreign:${k}`, `foreign:${k}#${seq}`).then(() => true, () => false)
        )
        if (ok) {
          acked[k]!.push([seq, performance.now()])
          counts.writesAcked++
        } else counts.writesFailed++
        yield* Effect.sleep("3 millis")
      }
    })

    const judge = (k: number, value: string | undefined, startedAt: number) => {
      counts.reads++
      if (value === undefined) return void counts.misses++
      const seq = Number(value.slice(`foreign:${k}#`.length))
      if (!value.startsWith(`foreign:${k}#`) || !Number.isSafeInteger(seq) || seq > attempted[k]!) return void counts.wrong++
      const seen = lastSeen[k]!
      if ((seen.get(seq) ?? 0) < startedAt) seen.set(seq, startedAt)
      // The newest write acknowledged more than the bound (plus the margin) before this read started.
      const writes = acked[k]!
      for (let i = writes.length - 1; i >= 0; i--) {
        const [s, at] = writes[i]!
        if (at > startedAt - BOUND_MS - LAG_MS) continue
        if (s > seq) {
          counts.beyondBound++
          worstBeyond ??= { key: k, read: seq, replacedBy: s, ackedMsBeforeRead: round(startedAt - at) }
        }
        break
      }
    }
    const reader = Effect.gen(function*() {
      for (;;) {
        const k = Math.floor(Math.random() * FOREIGN_KEYS)
        const startedAt = performance.now()
        const result = yield* Effect.either(stack.cache.get(`foreign:${k}`))
        if (result._tag === "Left") {
          counts.readErrors++
          const kind = String((result.left as { _tag?: string })._tag ?? "unknown")
          errorsByKind[kind] = (errorsByKind[kind] ?? 0) + 1
        } else judge(k, Option.getOrUndefined(result.right), startedAt)
        yield* Effect.sleep("1 millis")
      }
    })
    yield* Effect.forkScoped(writer)
    yield* Effect.forkScoped(Effect.all(Array.from({ length: FOREIGN_READERS }, () => reader), { concurrency: "unbounded", discard: true }))

    /** The figures so far, with each acknowledged write's staleness window (ack → last read of an older value). */
    const figures = Effect.sync(() => {
      const windows: Array<number> = []
      for (let k = 0; k < FOREIGN_KEYS; k++) {
        const seen = [...lastSeen[k]!]
        for (const [seq, at] of acked[k]!) {
          let last = 0
          for (const [s, t] of seen) if (s < seq && t > last) last = t
          windows.push(Math.max(0, last - at))
        }
      }
      windows.sort((a, b) => a - b)
      return {
        ...counts,
        errorsByKind: { ...errorsByKind },
        boundMs: BOUND_MS,
        worstBeyond: worstBeyond ?? null,
        windowP50Ms: round(percentile(windows, 50), 2),
        windowP99Ms: round(percentile(windows, 99), 2),
        windowMaxMs: round(windows[windows.length - 1] ?? 0, 2)
      }
    })
    return { figures }
  })

/** What Redis holds for every workload key, judged by the model once the workers stopped. */
const redisVerdicts = (stack: HybridStack, workload: Workload.Workload) =>
  Effect.map(
    stack.server.command("MGET", ...Array.from({ length: workloadOptions.keys! }, (_, i) => `chaos:workload:${i}`)),
    (reply) => {
      const verdicts: Record<Workload.Verdict, number> = { miss: 0, ok: 0, wrong: 0, stale: 0 }
      ;(Array.isArray(reply) ? reply : []).forEach((v, i) =>
        verdicts[workload.check(`workload:${i}`, typeof v === "string" ? v : undefined)]++
      )
      return verdicts
    }
  )

type Figures = Record<string, unknown>

/**
 * Runs one hybrid scenario: builds the stack, starts this process' workload and the foreign load, lets `drive` play
 * the faults, waits for L1 and the resilient cache to settle, stops the load, and reports the figures (`[chaos]`
 * line and build/chaos-figures.json, as the rest of the matrix) before `check` asserts on them.
 */
const hybridScenario = <F extends Figures, E>(
  name: string,
  drive: (stack: HybridStack) => Effect.Effect<F, E, Scope.Scope>,
  check: (figures: HybridFigures & F) => void
) =>
  Effect.gen(function*() {
    const before = yield* quietResources
    const started = performance.now()
    const logs = captureLogs()
    const figures = yield* Effect.scoped(Effect.gen(function*() {
      const stack = yield* makeStack
      const initiallyTrustedMs = yield* retrusted(stack)
      const { foreign, workload, driven } = yield* Effect.scoped(Effect.gen(function*() {
        const workload = yield* Workload.run(Workload.fromCache(stack.cache), workloadOptions)
        const foreign = yield* foreignLoad(stack)
        yield* Effect.sleep("500 millis")
        const driven = yield* drive(stack)
        // After the last fault: L1 trusted again, the resilient cache done reconciling, half a second of load.
        const finallyTrustedMs = yield* retrusted(stack)
        yield* waitUntil(
          Effect.map(stack.cache.stats, (s) => (s.reconciliation?.pendingKeys ?? 0) === 0 && !(s.reconciliation?.flushing ?? false)),
          5000,
          5
        )
        yield* Effect.sleep("500 millis")
        return { foreign: yield* foreign.figures, workload, driven: { ...driven, finallyTrustedMs } }
      }))
      const stats = yield* stack.cache.stats
      const h = stats.hybrid!
      return {
        initiallyTrustedMs,
        ...driven,
        workload: workloadFigures(yield* workload.stats),
        foreign,
        inRedis: yield* redisVerdicts(stack, workload),
        hybrid: {
          trusted: h.trusted,
          l1HitRatio: round(h.l1.hits / Math.max(1, h.l1.hits + h.l1.misses), 3),
          l1Hits: h.l1.hits,
          invalidations: h.l1.invalidations,
          clears: h.l1.clears,
          refusedFills: h.l1.refusedFills,
          losses: h.losses,
          canaryFailures: h.canaryFailures,
          flushes: h.flushes,
          invalidationMessages: h.invalidationMessages
        },
        fallbacks: stats.fallbacks,
        circuitOpens: stats.circuitOpens,
        proxies: { data: yield* stack.data.stats, subscriber: yield* stack.subscriber.stats }
      }
    })).pipe(Effect.provide(logs.layer))
    const scenarioSeconds = round((performance.now() - started) / 1000, 2)
    const { leftover, settleMs } = yield* settleResources(before)
    const all = {
      scenario: name,
      scenarioSeconds,
      ...figures,
      logLines: { ...logs.byLevel },
      leftoverResources: leftover,
      settleMs
    } as unknown as HybridFigures & F
    console.log(`[chaos] ${JSON.stringify(all)}`)
    Fs.mkdirSync(BUILD_DIR, { recursive: true })
    Fs.appendFileSync(FIGURES_PARTS, JSON.stringify(all) + "\n")
    check(all)
  })

interface HybridFigures {
  readonly initiallyTrustedMs: number | null
  readonly finallyTrustedMs: number | null
  readonly workload: ReturnType<typeof workloadFigures>
  readonly foreign: {
    readonly writesAcked: number
    readonly reads: number
    readonly readErrors: number
    readonly wrong: number
    readonly beyondBound: number
    readonly windowMaxMs: number
  }
  readonly inRedis: Record<Workload.Verdict, number>
  readonly hybrid: { readonly trusted: boolean; readonly l1Hits: number; readonly losses: Record<string, number>; readonly canaryFailures: number }
  readonly leftoverResources: Record<string, number>
}

/** What every hybrid scenario asserts. */
const expectHybridHeld = (f: HybridFigures) => {
  expect(f.initiallyTrustedMs).not.toBeNull()
  // This process' keys: no caller-visible error, no wrong value, no stale read (0 tolerance), calls bounded (the
  // matrix' bound, with one more event-loop margin: this process runs the foreign writer and 16 more readers).
  expectHeld(f.workload, MAX_CALL_MS + LAG_MS)
  expect(f.workload.deleteErrors).toBe(0)
  expect(f.workload.deletes).toBeGreaterThan(0)
  // What Redis holds after reconciliation: never a value an acknowledged write or delete replaced.
  expect(f.inRedis.stale).toBe(0)
  expect(f.inRedis.wrong).toBe(0)
  // Foreign writes: read back within the bound, never a wrong value, no caller-visible error.
  expect(f.foreign.writesAcked).toBeGreaterThan(100)
  expect(f.foreign.reads).toBeGreaterThan(100)
  expect(f.foreign.readErrors).toBe(0)
  expect(f.foreign.wrong).toBe(0)
  expect(f.foreign.beyondBound).toBe(0)
  // L1 answered, and is trusted again at the end.
  expect(f.hybrid.l1Hits).toBeGreaterThan(0)
  expect(f.finallyTrustedMs).not.toBeNull()
  expect(f.hybrid.trusted).toBe(true)
  expect(f.leftoverResources).toEqual({})
}

describe("chaos: the hybrid cache (L1 + Redis, invalidated by CLIENT TRACKING), own and foreign writes", () => {
  it.live("the invalidation path fails: subscriber reset, stalled (canary), CLIENT KILLed", () =>
    hybridScenario(
      "hybrid-invalidation-path",
      (stack) =>
        Effect.gen(function*() {
          yield* stack.subscriber.resetConnections
          const afterResetMs = yield* retrusted(stack)
          yield* Effect.sleep("500 millis")

          // Silent: bytes held both ways, sockets open. Only the canary can tell (its invalidation does not come).
          yield* stack.subscriber.setFault(ChaosProxy.Stall())
          yield* Effect.sleep(Duration.millis(BOUND_MS + 700))
          const duringStall = yield* hybridOf(stack)
          yield* stack.subscriber.setFault(ChaosProxy.PassThrough())
          const afterStallMs = yield* retrusted(stack)
          yield* Effect.sleep("500 millis")

          const id = (yield* hybridOf(stack)).subscriberId
          if (id !== undefined) yield* stack.server.command("CLIENT", "KILL", "ID", String(id))
          const afterKillMs = yield* retrusted(stack)
          yield* Effect.sleep("500 millis")
          return {
            afterResetMs,
            afterStallMs,
            afterKillMs,
            killedSubscriber: id ?? null,
            stall: { trusted: duringStall.trusted, canaryFailures: duringStall.canaryFailures }
          }
        }),
      (f) => {
        expectHybridHeld(f)
        expect(f.afterResetMs).not.toBeNull()
        expect(f.afterStallMs).not.toBeNull()
        expect(f.afterKillMs).not.toBeNull()
        expect(f.killedSubscriber).not.toBeNull()
        // The stall was found by the canary (L1 off while it lasted), the reset and the kill by the socket's close.
        expect(f.stall.canaryFailures).toBeGreaterThanOrEqual(1)
        expect(f.stall.trusted).toBe(false)
        expect(f.hybrid.losses["canary_timeout"]).toBeGreaterThanOrEqual(1)
        expect(f.hybrid.losses["subscriber_closed"]).toBeGreaterThanOrEqual(2)
      }
    ))

  it.live("the data path fails: reset, CLIENT KILLed, stalled, then the server restarts (empty)", () =>
    hybridScenario(
      "hybrid-data-path-restart",
      (stack) =>
        Effect.gen(function*() {
          yield* stack.data.resetConnections
          const afterResetMs = yield* retrusted(stack)
          yield* Effect.sleep("500 millis")

          // The tracked connection killed by the server: its tracking (and its keys' invalidations) die with it.
          const socket = (yield* hybridOf(stack)).sockets[0]?.clientId
          if (socket !== undefined) yield* stack.server.command("CLIENT", "KILL", "ID", String(socket))
          const afterKillMs = yield* retrusted(stack)
          yield* Effect.sleep("500 millis")

          // Commands held: reads time out (fallback), writes are kept pending and repaired after.
          yield* stack.data.setFault(ChaosProxy.Stall())
          yield* Effect.sleep("1200 millis")
          yield* stack.data.setFault(ChaosProxy.PassThrough())
          const afterStallMs = yield* retrusted(stack)
          yield* Effect.sleep("500 millis")

          // Both connections drop; the server comes back empty (no persistence).
          yield* stack.server.restart
          const afterRestartMs = yield* retrusted(stack)
          return { afterResetMs, killedDataSocket: socket ?? null, afterKillMs, afterStallMs, afterRestartMs }
        }),
      (f) => {
        expectHybridHeld(f)
        expect(f.afterResetMs).not.toBeNull()
        expect(f.killedDataSocket).not.toBeNull()
        expect(f.afterKillMs).not.toBeNull()
        expect(f.afterStallMs).not.toBeNull()
        expect(f.afterRestartMs).not.toBeNull()
        expect(f.hybrid.losses["data_socket_closed"]).toBeGreaterThanOrEqual(3)
        expect(f.hybrid.losses["subscriber_closed"]).toBeGreaterThanOrEqual(1)
      }
    ))
})
