/**
 * Shared machinery of the chaos matrix: one resilient cache over one connection, through a `ChaosProxy`, to a
 * spawned `redis-server`; a captured log; the breaker's transitions; resource, heap and timing helpers; and the
 * figures every scenario reports (`[chaos]` console line + `build/chaos-figures.json`, see `globalSetup.ts`).
 */
import { expect } from "@effect/vitest"
import { Cache, RedisCache, ResilientCache } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import { CircuitBreaker, Errors, Retry } from "@steadfast/resilience"
import { ChaosProxy, LogCapture, RedisServer, Workload } from "@steadfast/testing"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as V8 from "node:v8"
import * as Vm from "node:vm"

// ---------------------------------------------------------------------------------------------------------------
// The configuration every scenario uses, and the bounds derived from it.
// ---------------------------------------------------------------------------------------------------------------

/** The command deadline (`commandTimeout`). */
export const DEADLINE_MS = 500
/** The deadline sweeper's tick (packages/redis/src/internal/deadlines.ts: deadline / 20, clamped to 5..100 ms). */
export const TICK_MS = Math.min(100, Math.max(5, Math.floor(DEADLINE_MS / 20)))
export const FAILURE_THRESHOLD = 5
export const HALF_OPEN_MS = 1000
/** Reads retry like the default policy (2 retries from 100 ms, jitter x0.8..1.2); writes are not retried. */
export const RETRY_BASE_MS = 100
export const RETRY_FIRST_DELAY_MAX_MS = RETRY_BASE_MS * 1.2
/** The first reconnect after a drop comes at once: 0-20 ms (RedisConnection.ts, reconnectDelay). */
export const FIRST_RECONNECT_MAX_MS = 20
/** ioredis' reconnect delay in RedisConnection.ts: min(50 * 2^(n-1), 500) + floor(random * 50) ms. */
export const RECONNECT_DELAY_MAX_MS = 549
/**
 * Event-loop margin: everything (workload, cache, proxy, harness) runs on one Node event loop on a 2-core machine
 * that also runs redis-server; a timer or an I/O callback can fire this late. Measured lag under the matrix's load is
 * a few ms with spikes to ~40 ms (GC, vitest's RPC); 100 ms keeps the bounds meaningful (a fifth of the deadline)
 * without making them flaky.
 */
export const LAG_MS = 100

/**
 * Longest a caller may wait during an outage. A write is one attempt: the sweeper fails it at most one tick after its
 * deadline (deadlines.ts now even expires calls two ticks early; the bound does not depend on that). A read whose attempt times out waits at most one backoff (<= 1.2 x base) more: its retry is rejected by the
 * breaker, which opened when the wave of concurrent timeouts landed (the workload's 16 in-flight calls exceed the
 * threshold of 5; they all time out within a tick or two, before the earliest retry at 0.8 x 100 ms). A read whose
 * attempts fail fast (reset, refused, not connected, an error reply) may run all 3 attempts: backoffs of at most
 * 120 + 240 ms, below this bound too. Plus the event-loop margin.
 */
export const MAX_CALL_MS = DEADLINE_MS + TICK_MS + RETRY_FIRST_DELAY_MAX_MS + LAG_MS
/** Once the breaker is open, calls are rejected in memory: "far below the deadline" = under a tenth of it. */
export const FAST_FAIL_P99_MS = DEADLINE_MS / 10
/**
 * From "the server serves again" to CLOSED. The breaker probes lazily once `halfOpenAfter` has passed since it
 * (re)opened. The probe succeeds only if ioredis' socket is ready; ioredis retries the connect on its own backoff
 * (capped at {@link RECONNECT_DELAY_MAX_MS}). A probe that lands in that gap fails fast ("not connected"), re-opens
 * the breaker for a fresh `halfOpenAfter`, and the next one succeeds: so the bound is halfOpenAfter + the reconnect
 * gap + one probe round trip + the event-loop margin.
 */
export const RECOVERY_BOUND_MS = HALF_OPEN_MS + RECONNECT_DELAY_MAX_MS + LAG_MS
/** Recovery bound when the socket never dropped (the server answered errors): halfOpenAfter + one probe. */
export const RECOVERY_BOUND_CONNECTED_MS = HALF_OPEN_MS + LAG_MS

export const readRetry = Retry.make({ maxRetries: 2, baseDelay: Duration.millis(RETRY_BASE_MS) })

/** Reads, writes and (5%) deletes: every scenario checks that an acknowledged delete never comes back. */
export const workloadOptions: Workload.Options = { keys: 64, concurrency: 16, readRatio: 0.8, deleteRatio: 0.05, pause: "2 millis" }

// ---------------------------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------------------------

/** Every line counted by level, the first 500 kept (the library rate-limits its logs: bounded). */
export const captureLogs = () => LogCapture.make({ maxLines: 500 })
export type CapturedLog = LogCapture.CapturedLog
export type Logs = LogCapture.LogCapture

// ---------------------------------------------------------------------------------------------------------------
// The stack under test
// ---------------------------------------------------------------------------------------------------------------

export interface StackOptions {
  readonly server?: RedisServer.Options
  /** The URL the connection uses. Default: the proxy, with the server's password. */
  readonly url?: (server: RedisServer.RedisServer, proxy: ChaosProxy.ChaosProxy) => string
  readonly connection?: Omit<Parameters<typeof RedisConnection.layer>[0], "url">
  readonly cache?: ResilientCache.Options
  /** The breaker's options over the harness' (a `rule` replaces the default consecutive threshold). */
  readonly breaker?: CircuitBreaker.Options
}

export interface Stack {
  readonly server: RedisServer.RedisServer
  readonly proxy: ChaosProxy.ChaosProxy
  readonly cache: Cache.Cache
  readonly connection: RedisConnection.RedisConnection
  readonly breaker: CircuitBreaker.CircuitBreaker
  /** Every breaker transition, in order (`at` is Date.now()-based: the breaker runs on the live clock). */
  readonly transitions: Array<CircuitBreaker.StateChange>
  readonly logs: Logs
  /** Date.now() when the stack was ready. */
  readonly t0: number
}

const makeStack = (options: StackOptions, logs: Logs) =>
  Effect.gen(function*() {
    const server = yield* RedisServer.make(options.server ?? {})
    const proxy = yield* ChaosProxy.make({ upstream: { host: server.host, port: server.port } })
    // The cache's own breaker, shared in so the test can subscribe to its transitions, with the cache's defaults
    // (calls failing together on one reset socket count once).
    const breaker = yield* CircuitBreaker.make({
      ...(options.breaker?.rule === undefined ? { failureThreshold: FAILURE_THRESHOLD } : {}),
      halfOpenAfter: Duration.millis(HALF_OPEN_MS),
      countOverlappingOnce: RedisCache.defaultBreaker.countOverlappingOnce,
      ...options.breaker
    })
    const transitions: Array<CircuitBreaker.StateChange> = []
    const changes = yield* breaker.subscribe
    yield* Queue.take(changes).pipe(
      Effect.flatMap((change) => Effect.sync(() => transitions.push(change))),
      Effect.forever,
      Effect.forkScoped
    )
    const url = options.url ? options.url(server, proxy) : proxy.url(server.password)
    const layer = ResilientCache.layer({
      keyPrefix: "chaos:",
      retry: { get: readRetry, getMany: readRetry },
      circuitBreaker: breaker,
      ...options.cache
    }).pipe(
      Layer.provideMerge(RedisConnection.layer({
        url,
        commandTimeout: Duration.millis(DEADLINE_MS),
        connectTimeout: Duration.millis(DEADLINE_MS),
        ...options.connection
      }))
    )
    const context = yield* Layer.build(layer)
    const stack: Stack = {
      server,
      proxy,
      cache: Context.get(context, Cache.Cache),
      connection: Context.get(context, RedisConnection.RedisConnection),
      breaker,
      transitions,
      logs,
      t0: Date.now()
    }
    return stack
  })

// ---------------------------------------------------------------------------------------------------------------
// Resources, heap
// ---------------------------------------------------------------------------------------------------------------

export const activeResources = (): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1
  return counts
}

const excess = (before: Record<string, number>, after: Record<string, number>) => {
  const out: Record<string, number> = {}
  for (const [kind, n] of Object.entries(after)) {
    const extra = n - (before[kind] ?? 0)
    if (extra > 0) out[kind] = extra
  }
  return out
}

/**
 * The resources active once the test runner is quiet. Vitest's own RPC timers (task updates at the start of a test)
 * come and go within a few ms; counted in `before` and gone by `after`, one of them would hide a leaked timer. So the
 * snapshot waits 100 ms first.
 */
export const quietResources = Effect.zipRight(Effect.sleep("100 millis"), Effect.sync(activeResources))

/**
 * How long the scope may take to be fully released: sockets' `close` callbacks, the child's exit and its stderr pipe
 * take a few ms. (It was 2,500 ms while closing the connection layer left ioredis' 2 s disconnect timer behind; see
 * scope-close.test.ts, now a regression test.)
 */
export const SETTLE_BOUND_MS = 500

/**
 * Waits (at most {@link SETTLE_BOUND_MS}, polling every 25 ms) until no kind of resource outnumbers `before`. Returns
 * what is still in excess (empty when clean) and how long it took.
 */
export const settleResources = (before: Record<string, number>, boundMs = SETTLE_BOUND_MS) =>
  Effect.gen(function*() {
    const started = performance.now()
    let left = excess(before, activeResources())
    while (Object.keys(left).length > 0 && performance.now() - started < boundMs) {
      yield* Effect.sleep("25 millis")
      left = excess(before, activeResources())
    }
    return { leftover: left, settleMs: Math.round(performance.now() - started) }
  })

/**
 * `global.gc`, exposed at run time when the process was not started with --expose-gc (vitest 3.2 does not apply a
 * project's `execArgv`): the flag, set now, takes effect for contexts created afterwards.
 */
const gc = (): (() => void) => {
  if (globalThis.gc !== undefined) return globalThis.gc
  V8.setFlagsFromString("--expose-gc")
  return Vm.runInNewContext("gc") as () => void
}

/** heapUsed after two full collections. */
export const heapAfterGc = Effect.sync(() => {
  const collect = gc()
  collect()
  collect()
  return process.memoryUsage().heapUsed
})

// ---------------------------------------------------------------------------------------------------------------
// Waiting and observing
// ---------------------------------------------------------------------------------------------------------------

/** Polls `check` every `everyMs` until true; the elapsed ms, or `undefined` after `timeoutMs`. */
export const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>, timeoutMs: number, everyMs = 10) =>
  Effect.gen(function*() {
    const started = performance.now()
    while (true) {
      if (yield* check) return performance.now() - started
      if (performance.now() - started >= timeoutMs) return undefined
      yield* Effect.sleep(Duration.millis(everyMs))
    }
  })

/** The first transition to `to` recorded at or after index `from`, waiting for it at most `timeoutMs`. */
export const nextTransition = (stack: Stack, to: CircuitBreaker.State, from: number, timeoutMs: number) =>
  Effect.gen(function*() {
    const find = () => stack.transitions.slice(from).find((t) => t.to === to)
    yield* waitUntil(Effect.sync(() => find() !== undefined), timeoutMs, 5)
    return find()
  })

/** Waits for a transition to CLOSED after index `from`; returns its time, or undefined. */
export const closedAfter = (stack: Stack, from: number, timeoutMs: number) =>
  Effect.map(nextTransition(stack, "CLOSED", from, timeoutMs), (t) => t?.at)

/**
 * Waits for CLOSED after the fault was healed at `healedAt` (transitions from index `mark` on); returns the recovery
 * time and how many probes failed after the heal (each one re-opens the breaker for a fresh halfOpenAfter).
 */
export const recovery = (stack: Stack, mark: number, healedAt: number, timeoutMs = RECOVERY_BOUND_MS + 2000) =>
  Effect.gen(function*() {
    const closedAt = (yield* stack.breaker.state) === "CLOSED" && stack.transitions.length === mark
      ? healedAt
      : yield* closedAfter(stack, mark, timeoutMs)
    const failedProbes = stack.transitions.slice(mark).filter((t) => t.from === "HALF_OPEN" && t.to === "OPEN" && t.at >= healedAt)
    return {
      recoveryMs: closedAt === undefined ? null : closedAt - healedAt,
      failedProbesAfterHeal: failedProbes.length
    }
  })

/** `INFO <section>` as a record. */
export const info = (server: RedisServer.RedisServer, section: string) =>
  Effect.map(server.command("INFO", section), (reply) => {
    const out: Record<string, string> = {}
    if (typeof reply !== "string") return out
    for (const line of reply.split("\r\n")) {
      const i = line.indexOf(":")
      if (i > 0) out[line.slice(0, i)] = line.slice(i + 1)
    }
    return out
  })

export const infoNumber = (server: RedisServer.RedisServer, section: string, field: string) =>
  Effect.map(info(server, section), (r) => Number(r[field] ?? Number.NaN))

// ---------------------------------------------------------------------------------------------------------------
// A non-idempotent counter, driven straight through the connection (no breaker, no retry)
// ---------------------------------------------------------------------------------------------------------------

export interface CounterResult {
  readonly successes: number
  readonly failures: number
  /** Failures whose INCR may have run (`Errors.mayHaveRun`: sent, reply lost); the others surely did not. */
  readonly mayHaveRun: number
  readonly failuresByReason: Record<string, number>
  /** The first message seen for each reason, to tell what an `unknown` was. */
  readonly sampleMessages: Record<string, string>
}

/**
 * `fibers` loops of `INCR key` through `RedisConnection.execute`. `stop` lets every loop finish its current call
 * (bounded by the deadline) and returns the counts: every INCR either succeeded (S) or failed (F, its effect on the
 * server unknown).
 */
export const startCounter = (connection: RedisConnection.RedisConnection, key: string, fibers = 4) =>
  Effect.gen(function*() {
    let running = true
    let successes = 0
    let failures = 0
    let mayHaveRun = 0
    const failuresByReason: Record<string, number> = {}
    const sampleMessages: Record<string, string> = {}
    const loop = Effect.gen(function*() {
      while (running) {
        const result = yield* Effect.either(connection.execute("incr", (c) => c.incr(key)))
        if (result._tag === "Right") successes++
        else {
          failures++
          if (Errors.mayHaveRun(result.left)) mayHaveRun++
          failuresByReason[result.left.reason] = (failuresByReason[result.left.reason] ?? 0) + 1
          sampleMessages[result.left.reason] ??= result.left.message
        }
        yield* Effect.sleep("1 millis")
      }
    })
    const workers = yield* Effect.forkScoped(Effect.all(Array.from({ length: fibers }, () => loop), { concurrency: "unbounded", discard: true }))
    const stop = Effect.gen(function*() {
      running = false
      yield* Fiber.join(workers).pipe(Effect.timeout(Duration.millis(DEADLINE_MS * 4)), Effect.orDie)
      const result: CounterResult = {
        successes,
        failures,
        mayHaveRun,
        failuresByReason: { ...failuresByReason },
        sampleMessages: { ...sampleMessages }
      }
      return result
    })
    return { stop }
  })

// ---------------------------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------------------------

const here = Path.dirname(fileURLToPath(import.meta.url))
export const BUILD_DIR = Path.resolve(here, "../../../build")
export const FIGURES_PARTS = Path.join(BUILD_DIR, "chaos-figures.parts.ndjson")
export const FIGURES_FILE = Path.join(BUILD_DIR, "chaos-figures.json")

export type Figures = Record<string, unknown>

/**
 * The invariants every scenario under load holds: no read or write error reached the caller, no read returned a value
 * never written for its key, no read returned a value an acknowledged write or delete had replaced before it started
 * (a stale read), and (unless told otherwise) no call outlived its bound.
 */
export const expectHeld = (
  workload: {
    readonly readErrors: number
    readonly writeErrors: number
    readonly wrongValues: number
    readonly staleReads: number
    readonly maxMs: number
  },
  maxMs: number | undefined = MAX_CALL_MS
) => {
  expect(workload.readErrors).toBe(0)
  expect(workload.writeErrors).toBe(0)
  expect(workload.wrongValues).toBe(0)
  expect(workload.staleReads).toBe(0)
  if (maxMs !== undefined) expect(workload.maxMs).toBeLessThanOrEqual(maxMs)
}

/** The workload's figures, rounded for reading. */
export const workloadFigures = (s: Workload.Stats) => ({
  ops: s.ops,
  reads: s.reads,
  writes: s.writes,
  deletes: s.deletes,
  hits: s.hits,
  misses: s.misses,
  readErrors: s.readErrors,
  writeErrors: s.writeErrors,
  deleteErrors: s.deleteErrors,
  wrongValues: s.wrongValues,
  staleReads: s.staleReads,
  errorsByKind: s.errorsByKind,
  p50Ms: round(s.p50Ms),
  p99Ms: round(s.p99Ms),
  maxMs: round(s.maxMs),
  seconds: round(s.seconds)
})

export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits

const report = (figures: Figures) => {
  console.log(`[chaos] ${JSON.stringify(figures)}`)
  Fs.mkdirSync(BUILD_DIR, { recursive: true })
  Fs.appendFileSync(FIGURES_PARTS, JSON.stringify(figures) + "\n")
}

/**
 * Runs one scenario: the stack is built in its own scope; `body` drives it and returns its figures; the scope is
 * closed; resources are compared with what was active before; the figures are reported; then `check` asserts the
 * invariants (after reporting, so a failing run still leaves its numbers in the output).
 */
export interface Common {
  readonly scenario: string
  /** What the sockets reported (the connection's "redis connection error" logs), by classified reason. */
  readonly connectionErrors: Record<string, number>
  readonly scenarioSeconds: number
  readonly logLines: Record<string, number>
  readonly leftoverResources: Record<string, number>
  readonly settleMs: number
}

export const scenario = <F extends Figures, E>(
  name: string,
  options: StackOptions,
  body: (stack: Stack) => Effect.Effect<F, E, Scope.Scope>,
  check: (figures: F & Common) => void
) =>
  Effect.gen(function*() {
    const before = yield* quietResources
    const started = performance.now()
    const logs = captureLogs()
    const figures = yield* Effect.scoped(Effect.flatMap(makeStack(options, logs), body)).pipe(Effect.provide(logs.layer))
    const scenarioSeconds = round((performance.now() - started) / 1000, 2)
    const { leftover, settleMs } = yield* settleResources(before)
    const connectionErrors: Record<string, number> = {}
    for (const l of logs.lines) {
      if (l.message !== "redis connection error") continue
      const reason = String(l.annotations["error_type"])
      connectionErrors[reason] = (connectionErrors[reason] ?? 0) + 1
    }
    const all: F & Common = {
      scenario: name,
      scenarioSeconds,
      ...figures,
      connectionErrors,
      logLines: { ...logs.byLevel },
      leftoverResources: leftover,
      settleMs
    }
    report(all)
    check(all)
  })

/** Transitions as compact figures, relative to `origin` (ms). */
export const transitionFigures = (stack: Stack, origin: number) =>
  stack.transitions.map((t) => `${t.from}->${t.to}@${t.at - origin}ms(f=${t.consecutiveFailures})`)
