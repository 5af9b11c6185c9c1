/**
 * A concurrent read/write/delete workload against any cache-like target, with the invariants a resilience test
 * asserts: how many reads surfaced an error to the caller, whether any read returned a value that was never written
 * for its key (**wrong**), and whether any read returned a value that an acknowledged write or delete had already
 * replaced (**stale**).
 *
 * Every write stores `<key>#<sequence>`; every write and every delete takes the next number of one sequence that only
 * grows, when it starts. A write or delete is **acknowledged** when its effect succeeded; one that failed to the
 * caller is not, and its effect on the store is unknown. The model keeps, per key, the highest sequence a write
 * attempted, the highest sequence acknowledged (a write or a delete), and the writes still in flight; a read
 * snapshots the acknowledged part when it starts. A read that returned a value is:
 *
 * - **wrong** if the value does not start with `<key>#`, or carries a sequence no write of that key has attempted yet;
 * - **stale** if its sequence is below the highest sequence acknowledged for the key *when the read started*, unless
 *   that write was still in flight when the acknowledged operation started (overlapping operations may land in
 *   either order; a write that failed counts as finished when it failed); or if a read that ended before it started
 *   returned another value while its write was already acknowledged (of two overlapping writes, once one has been
 *   read as the last, the other never comes back);
 * - otherwise valid. A miss is always valid.
 *
 * So, for one key: write 5 acknowledged, write 7 failed, then a read returning 5 or 7 is valid, 3 is stale; after a
 * delete acknowledged, every value written before it is stale (a miss is the answer). A read overlapping a write or
 * delete may return the value before it. The model costs O(keys + concurrency) memory, whatever the run's length
 * (plus up to 1,024 failed writes remembered per key).
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
 * What the workload drives. `get` answers `undefined` for a miss. `delete` is needed only with `deleteRatio > 0`; its
 * result is ignored. Failures are caller-visible errors; their `_tag` (and `reason`, when present) are counted by
 * kind.
 *
 * @since 0.1.0
 * @category models
 */
export interface Target {
  readonly get: (key: string) => Effect.Effect<string | undefined, unknown>
  readonly set: (key: string, value: string) => Effect.Effect<void, unknown>
  readonly delete?: ((key: string) => Effect.Effect<unknown, unknown>) | undefined
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
  /**
   * Share of deletes, 0..1, taken from the writes' share (`readRatio + deleteRatio` at most 1; writes get the rest).
   * Default 0: no deletes. Needs `Target.delete`.
   */
  readonly deleteRatio?: number | undefined
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
  /** Reads, writes and deletes that completed (succeeded or failed). */
  readonly ops: number
  readonly reads: number
  readonly writes: number
  readonly deletes: number
  readonly hits: number
  readonly misses: number
  /** Reads that failed: errors the caller saw. */
  readonly readErrors: number
  readonly writeErrors: number
  readonly deleteErrors: number
  /** Caller-visible errors (reads, writes and deletes) by `_tag` or `_tag/reason`. */
  readonly errorsByKind: Readonly<Record<string, number>>
  /** Reads that returned a value never written for their key. */
  readonly wrongValues: number
  /**
   * Reads that returned a value an acknowledged write or delete had replaced before the read started (see the
   * module's documentation for the exact rule). Never counts a miss.
   */
  readonly staleReads: number
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
  /**
   * Checks a value read outside the workload against the model as it is now (e.g. after recovery): the value was
   * written for its key by some write, stale or not.
   */
  readonly isValid: (key: string, value: string) => boolean
  /**
   * Checks a value (or a miss: `undefined`) read outside the workload against the model as it is now, stale reads
   * included: read it after the operations it is compared with were acknowledged (e.g. once the scope of `run` has
   * closed, or for a key prefix the workers do not touch).
   */
  readonly check: (key: string, value: string | undefined) => Verdict
  /** The model the workers record into, to add scripted operations of your own (same keys, same sequence). */
  readonly model: Model
}

/**
 * What a read returned, according to the model: `"miss"` (always allowed), `"ok"`, `"wrong"` (never written for the
 * key) or `"stale"` (replaced by a write or delete acknowledged before the read started).
 *
 * @since 0.1.0
 * @category models
 */
export type Verdict = "miss" | "ok" | "wrong" | "stale"

/**
 * A write or delete that has started: call `done` exactly once, with whether it was acknowledged (its effect
 * succeeded). A write stores `value`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PendingUpdate {
  readonly seq: number
  readonly value: string
  readonly done: (acknowledged: boolean) => void
}

/**
 * A read that has started (the acknowledged operations it must not go behind are fixed now): `done` judges what
 * it returned.
 *
 * @since 0.1.0
 * @category models
 */
export interface PendingRead {
  readonly done: (value: string | undefined) => Verdict
}

/**
 * The workload's model of writes and deletes, usable on its own for scripted scenarios: start each operation just
 * before calling the store, end it just after. Timing slack only makes the model more lenient: an operation is
 * registered before it can have reached the store, an acknowledgement after it was given.
 *
 * @since 0.1.0
 * @category models
 */
export interface Model {
  /** A write of `key` starts: its sequence and the value to store. */
  readonly write: (key: string) => PendingUpdate
  /** A delete of `key` starts (`value` is the one a write with that sequence would store). */
  readonly delete: (key: string) => PendingUpdate
  /** A read of `key` starts. */
  readonly read: (key: string) => PendingRead
  /** A read that starts and ends now. */
  readonly check: (key: string, value: string | undefined) => Verdict
}

const NONE: ReadonlyArray<number> = []
/** Failed writes remembered per key for the pin rule (see {@link Pin}). */
const MAX_FAILED = 1024

/** Per key. */
interface KeyState {
  /** Highest sequence a write of this key attempted (-1: none). */
  attempted: number
  /** Highest sequence acknowledged for this key, write or delete (-1: none). */
  floor: number
  /** The writes of this key that were in flight when the `floor` operation started: they may land after it. */
  exempt: ReadonlyArray<number>
  /** The writes of this key in flight now. */
  readonly inFlight: Set<number>
  /** What the latest-started read that returned a value saw (see {@link Pin}); undefined before any. */
  pin: Pin | undefined
  /** The latest writes of this key that failed to their caller (at most {@link MAX_FAILED}), oldest first. */
  readonly failed: Set<number>
}

/**
 * A read that returned the value of write `value`: every write of its key acknowledged when that read started
 * (sequence below `started`, not in `inFlight`, not failed) is ordered before `value`'s, so no read that starts after
 * this one ended may return one of them. Overlapping writes may land in either order, but once a read has seen which
 * landed last, the other does not come back. (A write that failed to its caller is left out, as by the floor: its
 * effect is unknown, and may come late.)
 */
interface Pin {
  readonly value: number
  readonly started: number
  /** Reads in the order they started (reads take no sequence number): the latest-started read's pin is kept. */
  readonly order: number
  readonly inFlight: ReadonlyArray<number>
}

/**
 * Why the rule is exact for a linearizable store: a read may return the value of write `v` unless some operation `u`
 * acknowledged before the read started began after `v` had finished (then `v` is ordered before `u`). Operations
 * start in sequence order, so the latest-started acknowledged operation is the one with the highest sequence (the
 * floor), and `v` finished before it began exactly when `v < floor` and `v` was not in flight at that moment.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeModel = (): Model => {
  const state = new Map<string, KeyState>()
  let sequence = 0
  let reads = 0
  const of = (key: string): KeyState => {
    let s = state.get(key)
    if (s === undefined) {
      s = { attempted: -1, floor: -1, exempt: NONE, inFlight: new Set(), pin: undefined, failed: new Set() }
      state.set(key, s)
    }
    return s
  }

  const update = (key: string, isWrite: boolean): PendingUpdate => {
    const s = of(key)
    const seq = sequence++
    const inFlightAtStart = s.inFlight.size === 0 ? NONE : Array.from(s.inFlight)
    if (isWrite) {
      // Recorded before the write starts: a write whose reply is lost may still have been applied.
      s.attempted = seq
      s.inFlight.add(seq)
    }
    let ended = false
    return {
      seq,
      value: `${key}#${seq}`,
      done: (acknowledged) => {
        if (ended) return
        ended = true
        if (isWrite) s.inFlight.delete(seq)
        if (isWrite && !acknowledged) {
          s.failed.add(seq)
          // Bounded: the oldest failure goes first (a read judged against it is by then long past it).
          if (s.failed.size > MAX_FAILED) s.failed.delete(s.failed.values().next().value!)
        }
        if (acknowledged && seq > s.floor) {
          s.floor = seq
          s.exempt = inFlightAtStart
        }
      }
    }
  }

  /** The sequence of the write `value` carries for `key`, or undefined if no write of `key` could have stored it. */
  const sequenceOf = (key: string, value: string): number | undefined => {
    if (!value.startsWith(`${key}#`)) return undefined
    const digits = value.slice(key.length + 1)
    const seq = Number(digits)
    if (!/^\d+$/.test(digits) || !Number.isSafeInteger(seq)) return undefined
    return seq > (state.get(key)?.attempted ?? -1) ? undefined : seq
  }

  const read = (key: string): PendingRead => {
    const s = state.get(key)
    const floor = s?.floor ?? -1
    const exempt = s?.exempt ?? NONE
    // Only reads that ended before this one started have pinned anything.
    const pin = s?.pin
    const started = sequence
    const order = reads++
    const inFlightAtStart = s === undefined || s.inFlight.size === 0 ? NONE : Array.from(s.inFlight)
    return {
      done: (value) => {
        if (value === undefined) return "miss"
        const seq = sequenceOf(key, value)
        if (seq === undefined) return "wrong"
        if (seq < floor && !exempt.includes(seq)) return "stale"
        const current = of(key)
        if (
          pin !== undefined && seq !== pin.value && seq < pin.started && !pin.inFlight.includes(seq) &&
          !current.failed.has(seq)
        ) return "stale"
        if (current.pin === undefined || order > current.pin.order) {
          current.pin = { value: seq, started, order, inFlight: inFlightAtStart }
        }
        return "ok"
      }
    }
  }

  return {
    write: (key) => update(key, true),
    delete: (key) => update(key, false),
    read,
    check: (key, value) => read(key).done(value)
  }
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
  deletes = 0
  hits = 0
  misses = 0
  readErrors = 0
  writeErrors = 0
  deleteErrors = 0
  wrongValues = 0
  staleReads = 0
  readonly errorsByKind = new Map<string, number>()
  readonly latency = new Histogram()
  constructor(readonly startedAt: number) {}

  snapshot(now: number): Stats {
    return {
      ops: this.ops,
      reads: this.reads,
      writes: this.writes,
      deletes: this.deletes,
      hits: this.hits,
      misses: this.misses,
      readErrors: this.readErrors,
      writeErrors: this.writeErrors,
      deleteErrors: this.deleteErrors,
      errorsByKind: Object.fromEntries(this.errorsByKind),
      wrongValues: this.wrongValues,
      staleReads: this.staleReads,
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
 * Dies if `readRatio` / `deleteRatio` are out of range, or `deleteRatio > 0` without `target.delete`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = (target: Target, options: Options = {}): Effect.Effect<Workload, never, Scope.Scope> =>
  live(Effect.gen(function*() {
    const keyCount = options.keys ?? 100
    const concurrency = options.concurrency ?? 8
    const readRatio = options.readRatio ?? 0.8
    const deleteRatio = options.deleteRatio ?? 0
    const pause = Duration.decode(options.pause ?? Duration.millis(1))
    const prefix = options.keyPrefix ?? "workload:"
    if (!(readRatio >= 0 && deleteRatio >= 0 && readRatio + deleteRatio <= 1)) {
      return yield* Effect.dieMessage(`Workload: readRatio (${readRatio}) + deleteRatio (${deleteRatio}) must be within 0..1`)
    }
    if (deleteRatio > 0 && target.delete === undefined) {
      return yield* Effect.dieMessage("Workload: deleteRatio > 0 needs a target with delete")
    }
    const keys = Array.from({ length: keyCount }, (_, i) => `${prefix}${i}`)
    const model = makeModel()

    const total = new Counters(performance.now())
    let window = new Counters(performance.now())
    const both = (f: (c: Counters) => void) => {
      f(total)
      f(window)
    }

    const failed = (kind: "read" | "write" | "delete", error: unknown) =>
      both((c) => {
        if (kind === "read") c.readErrors++
        else if (kind === "write") c.writeErrors++
        else c.deleteErrors++
        const k = kindOf(error)
        c.errorsByKind.set(k, (c.errorsByKind.get(k) ?? 0) + 1)
      })

    /** Runs a write or delete, ending it in the model: acknowledged on success; failed or interrupted, unknown. */
    const update = (kind: "write" | "delete", pending: PendingUpdate, effect: Effect.Effect<unknown, unknown>, done: () => void) =>
      Effect.matchEffect(effect, {
        onFailure: (error) =>
          Effect.sync(() => {
            pending.done(false)
            done()
            both((c) => kind === "write" ? c.writes++ : c.deletes++)
            failed(kind, error)
          }),
        onSuccess: () =>
          Effect.sync(() => {
            pending.done(true)
            done()
            both((c) => kind === "write" ? c.writes++ : c.deletes++)
          })
      }).pipe(Effect.onInterrupt(() => Effect.sync(() => pending.done(false))))

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
      const draw = Math.random()
      if (draw < readRatio) {
        // The acknowledged state is fixed before the read can reach the store.
        const pending = model.read(key)
        return Effect.matchEffect(target.get(key), {
          onFailure: (error) => Effect.sync(() => (done(), both((c) => c.reads++), failed("read", error))),
          onSuccess: (value) =>
            Effect.sync(() => {
              done()
              const verdict = pending.done(value)
              both((c) => {
                c.reads++
                if (value === undefined) c.misses++
                else c.hits++
                if (verdict === "wrong") c.wrongValues++
                else if (verdict === "stale") c.staleReads++
              })
            })
        })
      }
      if (draw < readRatio + deleteRatio) {
        const pending = model.delete(key)
        return update("delete", pending, target.delete!(key), done)
      }
      const pending = model.write(key)
      return update("write", pending, target.set(key, pending.value), done)
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
      isValid: (key, value) => model.check(key, value) !== "wrong",
      check: model.check,
      model
    }
  }))

/**
 * A `Target` for a Steadfast `Cache` (any implementation): `Option` becomes `undefined`; `delete` is wired when the
 * cache has one.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromCache = <E>(cache: {
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, E>
  readonly set: (key: string, value: string) => Effect.Effect<void, E>
  readonly delete?: ((key: string) => Effect.Effect<unknown, E>) | undefined
}): Target => {
  const remove = cache.delete
  return {
    get: (key) => Effect.map(cache.get(key), Option.getOrUndefined),
    set: (key, value) => cache.set(key, value),
    ...(remove === undefined ? {} : { delete: (key: string) => remove.call(cache, key) })
  }
}

/**
 * A `Target` for a promise-based client (a plain ioredis client, say): rejections are caller-visible errors; `del`
 * becomes `delete` when the client has it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromPromises = (client: {
  readonly get: (key: string) => Promise<string | null>
  readonly set: (key: string, value: string) => Promise<unknown>
  readonly del?: ((key: string) => Promise<unknown>) | undefined
}): Target => {
  const del = client.del
  return {
    get: (key) => Effect.tryPromise({ try: () => client.get(key), catch: (e) => e }).pipe(Effect.map((v) => v ?? undefined)),
    set: (key, value) => Effect.tryPromise({ try: () => client.set(key, value), catch: (e) => e }).pipe(Effect.asVoid),
    ...(del === undefined ? {} : { delete: (key: string) => Effect.tryPromise({ try: () => del.call(client, key), catch: (e) => e }) })
  }
}
