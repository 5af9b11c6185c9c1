/**
 * A concurrent read/write workload against any cache-like target, with the invariants a resilience test asserts:
 * how many reads surfaced an error to the caller, and whether any read returned a value that was never written for
 * its key.
 *
 * Every write stores `<key>#<sequence>`, with a sequence that only grows; the model keeps, per key, the highest
 * sequence attempted. A read is **wrong** if its value does not start with its own key, or carries a sequence no
 * write has attempted yet. A stale value (an older write) is allowed: that is what a cache may return. The check
 * costs O(keys) memory, whatever the run's length.
 *
 * Latencies go into a log-linear histogram (8 buckets per power of two, ~9% resolution) for p50 / p99 over the whole
 * run and over each `window`.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { live } from "./internal/live.js"

/**
 * What the workload drives. `get` answers `undefined` for a miss. Failures are caller-visible errors; their `_tag`
 * (and `reason`, when present) are counted by kind.
 *
 * @since 0.1.0
 * @category models
 */
export interface Target {
  readonly get: (key: string) => Effect.Effect<string | undefined, unknown>
  readonly set: (key: string, value: string) => Effect.Effect<void, unknown>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Distinct keys. Default 100. */
  readonly keys?: number | undefined
  /** Concurrent workers. Default 8. */
  readonly concurrency?: number | undefined
  /** Share of reads, 0..1. Default 0.8. */
  readonly readRatio?: number | undefined
  /** Pause of each worker between operations (bounds the rate). Default 1 millisecond. */
  readonly pause?: Duration.DurationInput | undefined
  /** Prepended to every key. Default `"workload:"`. */
  readonly keyPrefix?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly ops: number
  readonly reads: number
  readonly writes: number
  readonly hits: number
  readonly misses: number
  /** Reads that failed: errors the caller saw. */
  readonly readErrors: number
  readonly writeErrors: number
  /** Caller-visible errors by `_tag` or `_tag/reason`. */
  readonly errorsByKind: Readonly<Record<string, number>>
  /** Reads that returned a value never written for their key. */
  readonly wrongValues: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** Wall-clock length of the period, in seconds. */
  readonly seconds: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Workload {
  /** Since the start. */
  readonly stats: Effect.Effect<Stats>
  /** Since the previous `window` (or the start), then starts a new window. */
  readonly window: Effect.Effect<Stats>
  /** Checks a value read outside the workload against the model (e.g. after recovery). */
  readonly isValid: (key: string, value: string) => boolean
}

const BUCKETS_PER_OCTAVE = 8
const OCTAVES = 30 // 1 µs .. ~18 minutes

/** Log-linear latency histogram, in microseconds. */
class Histogram {
  readonly counts = new Float64Array(OCTAVES * BUCKETS_PER_OCTAVE)
  total = 0
  max = 0

  record(ms: number): void {
    const us = Math.max(1, ms * 1000)
    const index = Math.min(this.counts.length - 1, Math.floor(Math.log2(us) * BUCKETS_PER_OCTAVE))
    this.counts[index]! += 1
    this.total++
    if (ms > this.max) this.max = ms
  }

  /** The upper bound of the bucket holding the q-quantile, in ms (0 when empty). */
  quantile(q: number): number {
    if (this.total === 0) return 0
    const rank = Math.ceil(q * this.total)
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return Math.min(this.max, 2 ** ((i + 1) / BUCKETS_PER_OCTAVE) / 1000)
    }
    return this.max
  }
}

class Counters {
  ops = 0
  reads = 0
  writes = 0
  hits = 0
  misses = 0
  readErrors = 0
  writeErrors = 0
  wrongValues = 0
  readonly errorsByKind = new Map<string, number>()
  readonly latency = new Histogram()
  constructor(readonly startedAt: number) {}

  snapshot(now: number): Stats {
    return {
      ops: this.ops,
      reads: this.reads,
      writes: this.writes,
      hits: this.hits,
      misses: this.misses,
      readErrors: this.readErrors,
      writeErrors: this.writeErrors,
      errorsByKind: Object.fromEntries(this.errorsByKind),
      wrongValues: this.wrongValues,
      p50Ms: this.latency.quantile(0.5),
      p99Ms: this.latency.quantile(0.99),
      maxMs: this.latency.max,
      seconds: (now - this.startedAt) / 1000
    }
  }
}

const kindOf = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const { _tag, reason } = error as { _tag?: unknown; reason?: unknown }
    if (typeof _tag === "string") return typeof reason === "string" ? `${_tag}/${reason}` : _tag
    const { code, name } = error as { code?: unknown; name?: unknown }
    if (typeof code === "string") return code
    if (typeof name === "string") return name
  }
  return "unknown"
}

/**
 * Starts the workers; they run until the scope closes. Runs on the real clock (it measures real sockets).
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = (target: Target, options: Options = {}): Effect.Effect<Workload, never, Scope.Scope> =>
  live(Effect.gen(function*() {
    const keyCount = options.keys ?? 100
    const concurrency = options.concurrency ?? 8
    const readRatio = options.readRatio ?? 0.8
    const pause = Duration.decode(options.pause ?? Duration.millis(1))
    const prefix = options.keyPrefix ?? "workload:"
    const keys = Array.from({ length: keyCount }, (_, i) => `${prefix}${i}`)
    const highest = new Map<string, number>()
    let sequence = 0

    const total = new Counters(performance.now())
    let window = new Counters(performance.now())
    const both = (f: (c: Counters) => void) => {
      f(total)
      f(window)
    }

    const isValid = (key: string, value: string): boolean => {
      if (!value.startsWith(`${key}#`)) return false
      const seq = Number(value.slice(key.length + 1))
      return Number.isInteger(seq) && seq <= (highest.get(key) ?? -1)
    }

    const failed = (kind: "read" | "write", error: unknown) =>
      both((c) => {
        if (kind === "read") c.readErrors++
        else c.writeErrors++
        const k = kindOf(error)
        c.errorsByKind.set(k, (c.errorsByKind.get(k) ?? 0) + 1)
      })

    const one = Effect.suspend(() => {
      const key = keys[Math.floor(Math.random() * keys.length)]!
      const start = performance.now()
      const done = () => {
        const ms = performance.now() - start
        both((c) => {
          c.ops++
          c.latency.record(ms)
        })
      }
      if (Math.random() < readRatio) {
        return Effect.matchEffect(target.get(key), {
          onFailure: (error) => Effect.sync(() => (done(), both((c) => c.reads++), failed("read", error))),
          onSuccess: (value) =>
            Effect.sync(() => {
              done()
              both((c) => {
                c.reads++
                if (value === undefined) c.misses++
                else c.hits++
              })
              if (value !== undefined && !isValid(key, value)) both((c) => c.wrongValues++)
            })
        })
      }
      const seq = sequence++
      // Recorded before the write starts: a write whose reply is lost may still have been applied.
      highest.set(key, seq)
      return Effect.matchEffect(target.set(key, `${key}#${seq}`), {
        onFailure: (error) => Effect.sync(() => (done(), both((c) => c.writes++), failed("write", error))),
        onSuccess: () => Effect.sync(() => (done(), both((c) => c.writes++)))
      })
    })

    const worker = Effect.forever(Effect.zipRight(one, Effect.sleep(pause)))
    yield* Effect.forkScoped(Effect.all(Array.from({ length: concurrency }, () => worker), { concurrency: "unbounded", discard: true }))

    return {
      stats: Effect.sync(() => total.snapshot(performance.now())),
      window: Effect.sync(() => {
        const now = performance.now()
        const stats = window.snapshot(now)
        window = new Counters(now)
        return stats
      }),
      isValid
    }
  }))

/**
 * A `Target` for a Steadfast `Cache` (any implementation): `Option` becomes `undefined`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromCache = <E>(cache: {
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, E>
  readonly set: (key: string, value: string) => Effect.Effect<void, E>
}): Target => ({
  get: (key) => Effect.map(cache.get(key), Option.getOrUndefined),
  set: (key, value) => cache.set(key, value)
})

/**
 * A `Target` for a promise-based client (a plain ioredis client, say): rejections are caller-visible errors.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromPromises = (client: {
  readonly get: (key: string) => Promise<string | null>
  readonly set: (key: string, value: string) => Promise<unknown>
}): Target => ({
  get: (key) => Effect.tryPromise({ try: () => client.get(key), catch: (e) => e }).pipe(Effect.map((v) => v ?? undefined)),
  set: (key, value) => Effect.tryPromise({ try: () => client.set(key, value), catch: (e) => e }).pipe(Effect.asVoid)
})
