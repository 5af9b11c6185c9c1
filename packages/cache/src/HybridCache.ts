/**
 * The hybrid cache: an in-process L1 (bounded, approximate LRU, its own TTL) in front of the resilient cache (L2:
 * Redis with retries, breaker, fallback and reconciliation), kept in sync by Redis itself through server-assisted
 * client-side caching (`CLIENT TRACKING ... REDIRECT` to a dedicated subscriber connection). It provides the same
 * `Cache` service: a program switches by swapping `ResilientCache.layer` for `HybridCache.layer`.
 *
 * - **Reads**: an L1 hit answers with no round trip. A miss reads L2 (coalesced into one `MGET` with the reads of the
 *   same tick) and fills L1 only if the answer came from Redis (not from the fallback), tracking was established
 *   when the read started and still is, and no invalidation of the key (nor a clear) arrived while it was in flight.
 * - **Writes and deletes** go to L2 and remove the key from L1, before the call and again once L2 answered; in
 *   between no fill of the key is kept (a fence, which outlives a write whose caller was interrupted until the write
 *   can no longer be under way). L1 is not filled with the written value: in the default mode Redis tracks only keys a
 *   connection *read*, and the write's own invalidation races the fill; the next read refills L1 with one round trip.
 *   So a write never lets an older value be served afterwards in this process.
 * - **getOrSet** has factory control (soft and hard timeouts, eager refresh) and, optionally, a distributed lock per
 *   key so that one instance runs the factory (`internal/lock.ts`).
 * - **Invalidation, whoever wrote**: `mode: "default"` (Redis remembers, per client, the keys it read, in a table
 *   bounded by `tracking-table-max-keys`) or `mode: "bcast"` with `prefixes` (Redis remembers nothing per key, but
 *   pushes every change of every key under the prefixes to every client in BCAST mode, read or not: the cost is
 *   one message per write per instance). A `FLUSHALL` / `FLUSHDB` (of any database) clears L1.
 * - **Never stale by silence**: L1 answers only while tracking is established on every data socket for the current
 *   subscriber and the last canary round is recent. A subscriber or data socket that closes clears L1 until tracking
 *   is re-established; a canary (a key read then written every `canary.interval`, whose invalidation must arrive
 *   within `canary.timeout`) bounds how long a silently dead or stalled subscriber goes unnoticed. The bound: no
 *   value L1 serves misses a write Redis processed more than `interval + timeout` earlier (defaults 1 s + 500 ms).
 *
 * @since 0.3.0
 */
import { RedisConnection } from "@steadfast/redis"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { RedisConfig } from "@steadfast/redis"
import { PermanentError } from "@steadfast/resilience"
import { Cache, type Stats } from "./Cache.js"
import * as CacheMetrics from "./CacheMetrics.js"
import * as FallbackStore from "./FallbackStore.js"
import { derive } from "./internal/derive.js"
import * as Factory from "./internal/factory.js"
import { FactoryTimeoutError, type FactoryOptions } from "./internal/factory.js"
import { longestWriteMillis } from "./internal/fence.js"
import { checkEntries, checkKey, checkKeys } from "./internal/input.js"
import { type Entry, L1 } from "./internal/l1.js"
import * as Lock from "./internal/lock.js"
import * as Tracking from "./internal/tracking.js"
import * as MemoryCache from "./MemoryCache.js"
import * as RedisCache from "./RedisCache.js"
import * as ResilientCache from "./ResilientCache.js"

/**
 * - `l1.maxEntries`: the most entries L1 keeps (default 10,000); `l1.ttl`: the longest an entry lives there, a
 *   safety net behind invalidation (default 60 s; a value's own shorter TTL is not known to L1: keep `l1.ttl` below
 *   the shortest TTL you write, or accept that an expired value may be served until `l1.ttl`).
 * - `l1.maxBytes` (optional, no bound by default): L1 also evicts to keep its entries' approximate size under this:
 *   2 bytes per UTF-16 code unit of each key and value (the per-entry overhead of the map, ~100 B, is not counted).
 *   A value that alone exceeds it is not kept in L1 (its reads go to Redis).
 * - `tracking.mode`: `"default"` (Redis tracks the keys each instance read) or `"bcast"` (every change under
 *   `tracking.prefixes`, relative to `keyPrefix`, default `[""]`, is pushed to every instance).
 * - `tracking.canary`: `interval` (default 1 s) and `timeout` (default 500 ms): the staleness bound is their sum.
 * - `tracking.subscriberAddress`: connect the subscriber there instead of the data connection's server (a proxy in
 *   tests).
 * - `failSafe.grace`: how long past its L1 TTL (or after L1 lost trust) a value may still be served when Redis fails
 *   (default 0: off). `failSafe.throttle`: after a stale answer, reads of that key are answered stale without trying
 *   Redis for this long (default 1 s). Only values nobody invalidated and no write through this process replaced are
 *   served stale; such answers are counted (`hybrid.failSafe.staleServed`, `cache_stale_served_total`).
 *
 * @since 0.3.0
 * @category models
 */
export interface Options extends ResilientCache.Options {
  readonly l1?: {
    readonly maxEntries?: number | undefined
    readonly maxBytes?: number | undefined
    readonly ttl?: Duration.DurationInput | undefined
  } | undefined
  readonly tracking?: {
    readonly mode?: "default" | "bcast" | undefined
    readonly prefixes?: ReadonlyArray<string> | undefined
    readonly canary?: {
      readonly interval?: Duration.DurationInput | undefined
      readonly timeout?: Duration.DurationInput | undefined
    } | undefined
    readonly subscriberAddress?: { readonly host: string; readonly port: number } | undefined
  } | undefined
  readonly failSafe?: {
    readonly grace?: Duration.DurationInput | undefined
    readonly throttle?: Duration.DurationInput | undefined
  } | undefined
  /**
   * Defaults for `getOrSet` / `getOrSetWith`: `softTimeout`, `hardTimeout`, `eagerRefresh`, `lock` (the distributed
   * stampede control, off by default; see {@link FactoryOptions} and {@link LockOptions}).
   */
  readonly factory?: Omit<FactoryOptions, "ttl"> | undefined
}

/**
 * The hybrid cache's own service: the `Cache` plus `getOrSetWith`, `getOrSet` with per-call factory control and
 * the hard timeout's typed failure.
 *
 * @since 0.3.0
 * @category models
 */
export interface HybridCache extends Cache {
  /**
   * The value, or `compute`'s (single-flight per key). `softTimeout`: when a stale value exists (fail-safe), answer it
   * after this long and let the factory finish in the background (it then updates Redis and L1). `hardTimeout`: fail
   * with `FactoryTimeoutError` after this long (the stale value instead, if there is one; the factory still finishes
   * in the background). `eagerRefresh`: on a hit past this fraction of the L1 TTL, run the factory in the background.
   * A factory that fails answers the stale value when there is one. Options not given take `Options.factory`'s.
   */
  readonly getOrSetWith: <E2, R>(
    key: string,
    compute: Effect.Effect<string, E2, R>,
    options?: FactoryOptions
  ) => Effect.Effect<string, PermanentError | FactoryTimeoutError | E2, R>
}

/**
 * @since 0.3.0
 * @category tags
 */
export const HybridCache = Context.GenericTag<HybridCache>("@steadfast/cache/HybridCache")

export {
  /**
   * @since 0.3.0
   * @category errors
   */
  FactoryTimeoutError,
  /**
   * @since 0.3.0
   * @category models
   */
  type FactoryOptions
} from "./internal/factory.js"

export {
  /**
   * @since 0.3.0
   * @category models
   */
  type LockOptions
} from "./internal/lock.js"

/**
 * @since 0.3.0
 * @category constants
 */
export const defaults = {
  l1MaxEntries: 10_000,
  l1Ttl: Duration.seconds(60),
  canaryInterval: Duration.seconds(1),
  canaryTimeout: Duration.millis(500),
  failSafeGrace: Duration.zero,
  failSafeThrottle: Duration.seconds(1)
} as const

/** Keys under `__steadfast:` are the cache's own (getOrSet locks, the canary): never read or written as values. */
const reserved = (operation: string, key: unknown): PermanentError | undefined =>
  typeof key === "string" && key.charCodeAt(0) === 95 && key.startsWith(Lock.reservedNamespace)
    ? new PermanentError({
      operation,
      reason: "invalid_argument",
      message: `${operation}: keys starting with "${Lock.reservedNamespace}" are reserved for the hybrid cache's own keys (locks, canary)`
    })
    : undefined
const firstReserved = (operation: string, keys: ReadonlyArray<unknown>): PermanentError | undefined => {
  for (const key of keys) {
    const bad = reserved(operation, key)
    if (bad) return bad
  }
  return undefined
}

const nonNegativeDuration = (name: string, input: Duration.DurationInput): Duration.Duration => {
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded) || !Duration.isFinite(decoded.value) || Duration.toMillis(decoded.value) < 0) {
    throw new Cause.IllegalArgumentException(`HybridCache ${name} must be a finite duration >= 0`)
  }
  return decoded.value
}

const positiveDuration = (name: string, input: Duration.DurationInput): Duration.Duration => {
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded) || !Duration.isFinite(decoded.value) || Duration.toMillis(decoded.value) <= 0) {
    throw new Cause.IllegalArgumentException(`HybridCache ${name} must be a positive, finite duration`)
  }
  return decoded.value
}

/**
 * The hybrid cache over a `RedisConnection` (which must be `RedisConnection.layer`'s: it needs `watchSockets`).
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<HybridCache, never, RedisConnection.RedisConnection | Scope.Scope> =>
  Effect.gen(function*() {
    const connection = yield* RedisConnection.RedisConnection
    const resolved = yield* Effect.try({
      catch: (error) => error,
      try: () => {
        const maxEntries = options.l1?.maxEntries ?? defaults.l1MaxEntries
        if (!Number.isInteger(maxEntries) || maxEntries < 1) {
          throw new Cause.IllegalArgumentException(`HybridCache l1.maxEntries must be an integer >= 1, got ${maxEntries}`)
        }
        const maxBytes = options.l1?.maxBytes
        if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes < 1)) {
          throw new Cause.IllegalArgumentException(`HybridCache l1.maxBytes must be an integer >= 1, got ${maxBytes}`)
        }
        const mode = options.tracking?.mode ?? "default"
        if (mode !== "default" && mode !== "bcast") {
          throw new Cause.IllegalArgumentException(`HybridCache tracking.mode must be "default" or "bcast", got ${String(mode)}`)
        }
        const prefixes = options.tracking?.prefixes ?? [""]
        if (mode === "bcast" && prefixes.length === 0) {
          throw new Cause.IllegalArgumentException("HybridCache tracking.prefixes must not be empty")
        }
        return {
          maxEntries,
          maxBytes,
          mode,
          prefixes,
          l1Ttl: positiveDuration("l1.ttl", options.l1?.ttl ?? defaults.l1Ttl),
          interval: positiveDuration("tracking.canary.interval", options.tracking?.canary?.interval ?? defaults.canaryInterval),
          timeout: positiveDuration("tracking.canary.timeout", options.tracking?.canary?.timeout ?? defaults.canaryTimeout),
          grace: nonNegativeDuration("failSafe.grace", options.failSafe?.grace ?? defaults.failSafeGrace),
          throttle: nonNegativeDuration("failSafe.throttle", options.failSafe?.throttle ?? defaults.failSafeThrottle),
          factory: (() => {
            try {
              return Factory.resolve(options.factory)
            } catch (error) {
              throw new Cause.IllegalArgumentException(`HybridCache factory.${(error as Error).message}`)
            }
          })()
        }
      }
    }).pipe(Effect.orDie)
    const l1TtlMillis = Duration.toMillis(resolved.l1Ttl)
    const graceMillis = Duration.toMillis(resolved.grace)
    const throttleMillis = Duration.toMillis(resolved.throttle)
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()

    // ---- L2: the resilient cache, over a fallback and a strict cache that tell what it does ------------------------
    /**
     * L2's writes, seen from inside its own frames (set when L1 and the factory control exist; see "Writes" below):
     * `writing` when the resilient cache sends a `set` to Redis (its `setOr`), `written` when it settled (either
     * callback), `touched` whenever it writes or removes a key in its fallback (after a write Redis acknowledged, one it
     * did not, one the breaker rejected, and around a delete).
     */
    const hooks = {
      writing: (_key: string): number => 0,
      written: (_key: string, _slot: number): void => {},
      touched: (_key: string): void => {}
    }
    const fallback = yield* MemoryCache.makeFallback({ maxEntries: options.memory?.maxEntries, ttl: options.fallbackTtl })
    /** Bumped whenever the fallback answers a read: a read that saw it move may have been answered from memory. */
    let fallbackAnswers = 0
    /** Keys read with a fail-safe candidate in L1: how many times the fallback answered for each (Redis failed). */
    const watched = new Map<string, { refs: number; fell: number }>()
    const counted = FallbackStore.FallbackStore.of({
      ...fallback,
      get: (key) => {
        fallbackAnswers++
        if (watched.size > 0) {
          const w = watched.get(key)
          if (w !== undefined) w.fell++
        }
        return fallback.get(key)
      },
      write: (key, value, ttl) => {
        hooks.touched(key)
        fallback.write(key, value, ttl)
      },
      remove: (key) => {
        hooks.touched(key)
        return fallback.remove(key)
      }
    })
    const redis = yield* RedisCache.make(options)
    const strict = RedisCache.RedisCache.of({
      ...redis,
      unchecked: {
        ...redis.unchecked,
        setOr: <B>(
          key: string,
          value: string,
          ttl: Option.Option<Duration.Duration>,
          onRedis: () => B,
          orElse: (error: RedisCache.RedisCacheError) => B
        ) => {
          const slot = hooks.writing(key)
          return redis.unchecked.setOr(key, value, ttl, () => {
            hooks.written(key, slot)
            return onRedis()
          }, (error) => {
            hooks.written(key, slot)
            return orElse(error)
          })
        }
      }
    })
    const l2 = yield* ResilientCache.make(options).pipe(
      Effect.provideService(RedisCache.RedisCache, strict),
      Effect.provideService(FallbackStore.FallbackStore, counted)
    )

    // ---- L1 and its invalidation ----------------------------------------------------------------------------------
    const l1 = new L1(resolved.maxEntries, 4096, graceMillis, resolved.maxBytes ?? Infinity)
    const tracking = yield* Tracking.make({
      connection,
      keyPrefix: options.keyPrefix ?? "",
      mode: resolved.mode,
      prefixes: resolved.prefixes,
      canaryInterval: resolved.interval,
      canaryTimeout: resolved.timeout,
      subscriberAddress: options.tracking?.subscriberAddress,
      invalidate: (key) => l1.invalidate(key),
      clear: () => l1.clear(),
      demote: () => l1.demote()
    })
    let l1Hits = 0
    let l1Misses = 0
    const staleServed: Record<string, number> = {}
    const served = (reason: string, count = 1) => {
      staleServed[reason] = (staleServed[reason] ?? 0) + count
      CacheMetrics.staleServed.unsafeUpdate(count, [MetricLabel.make("reason", reason)])
    }

    /** A read of `keys` from L2, filling L1 with what Redis answered when nothing made it untrustworthy meanwhile. */
    const fromL2 = <A, B = A>(
      read: Effect.Effect<A, never>,
      fill: (result: A, since: number, at: number) => void,
      after?: (result: A, filled: boolean, at: number) => B
    ): Effect.Effect<B> =>
      Effect.suspend(() => {
        const trustedAtStart = tracking.trusted(now())
        const since = l1.begin()
        const answers = fallbackAnswers
        return Effect.ensuring(
          Effect.map(read, (result) => {
            const at = now()
            const filled = trustedAtStart && answers === fallbackAnswers && tracking.trusted(at)
            if (filled) fill(result, since, at)
            return after === undefined ? result as unknown as B : after(result, filled, at)
          }),
          Effect.sync(() => l1.end())
        )
      })

    // ---- Fail-safe ------------------------------------------------------------------------------------------------
    const watch = (keys: ReadonlyArray<string>): Array<number> =>
      keys.map((key) => {
        const w = watched.get(key)
        if (w === undefined) {
          watched.set(key, { refs: 1, fell: 0 })
          return 0
        }
        w.refs++
        return w.fell
      })
    /** Stops watching `keys`; whether the fallback answered for each since `marks`. */
    const unwatch = (keys: ReadonlyArray<string>, marks: ReadonlyArray<number>): Array<boolean> =>
      keys.map((key, i) => {
        const w = watched.get(key)!
        const fell = w.fell !== marks[i]
        if (--w.refs === 0) watched.delete(key)
        return fell
      })
    /**
     * The answer for a key read with a fail-safe candidate `entry`: when the fallback answered (Redis failed, or the
     * breaker is open) with nothing and the entry is still there, the stale value (and the key is throttled); when
     * Redis answered and the answer did not fill L1, the entry goes (it must not outlive a newer answer).
     */
    const candidate = (key: string, entry: Entry, found: Option.Option<string>, fell: boolean, filled: boolean, at: number) => {
      if (!fell) {
        // Redis answered: an entry it did not refresh (no fill, or no value) must not outlive that answer.
        if (!filled || Option.isNone(found)) l1.discard(key, entry)
        return undefined
      }
      if (Option.isSome(found) || !l1.same(key, entry, at)) return undefined
      entry.throttleUntil = at + throttleMillis
      return entry.value
    }
    const resolveStale = (key: string, entry: Entry, found: Option.Option<string>, fell: boolean, filled: boolean, at: number) => {
      const stale = candidate(key, entry, found, fell, filled, at)
      if (stale === undefined) return found
      served("l2_failed")
      return Option.some(stale)
    }
    /** A throttled candidate: answered stale without trying Redis. */
    const throttled = (key: string, at: number): string | undefined => {
      if (graceMillis <= 0) return undefined
      const entry = l1.stale(key, at)
      if (entry === undefined || entry.throttleUntil <= at) return undefined
      served("throttled")
      return entry.value
    }

    // An L1 answer needs the event loop seen polling its sockets (the subscriber's) within `maxLoopLag` (2 ms): after
    // a pause (GC, a long task, the process descheduled), the invalidations that arrived meanwhile are applied first,
    // by waiting one turn of the loop (`tracking.turn`, no round trip), then L1 is asked again. Without it, the window
    // of a write grew with the reader's pauses (p99 9-397 ms across processes; with it 0-1.5 ms: see the README).
    const get = (key: string, waited = false): Effect.Effect<Option.Option<string>> =>
      Effect.suspend(() => {
        const at = now()
        if (tracking.trusted(at)) {
          const value = l1.get(key, at)
          if (value !== undefined) {
            if (!waited && !tracking.fresh(at)) return Effect.zipRight(tracking.turn, get(key, true))
            l1Hits++
            return Effect.succeed(Option.some(value))
          }
        }
        l1Misses++
        const fill = (found: Option.Option<string>, since: number, at: number) => {
          if (Option.isSome(found)) l1.fill(key, found.value, since, l1TtlMillis, at)
        }
        const read = l2.get(key) as Effect.Effect<Option.Option<string>>
        const entry = l1.stale(key, at)
        if (entry === undefined) return fromL2(read, fill)
        if (entry.throttleUntil > at) {
          served("throttled")
          return Effect.succeed(Option.some(entry.value))
        }
        const keys = [key]
        const marks = watch(keys)
        return fromL2(read, fill, (found, filled, at) => resolveStale(key, entry, found, unwatch(keys, marks)[0]!, filled, at))
      })

    // ---- getOrSet with factory control ------------------------------------------------------------------------
    const miss: Factory.Lookup = { _tag: "Miss" }
    const toLookup = (found: Option.Option<string>): Factory.Lookup =>
      Option.isSome(found) ? { _tag: "Value", value: found.value } : miss
    /** `get`'s miss path, telling a fail-safe stale value apart (not counted here: the factory decides). */
    const lookup = (key: string): Effect.Effect<Factory.Lookup> =>
      Effect.suspend(() => {
        const at = now()
        l1Misses++
        const fill = (found: Option.Option<string>, since: number, at: number) => {
          if (Option.isSome(found)) l1.fill(key, found.value, since, l1TtlMillis, at)
        }
        const read = l2.get(key) as Effect.Effect<Option.Option<string>>
        const entry = l1.stale(key, at)
        if (entry === undefined) return fromL2(read, fill, toLookup)
        if (entry.throttleUntil > at) return Effect.succeed<Factory.Lookup>({ _tag: "Stale", value: entry.value })
        const keys = [key]
        const marks = watch(keys)
        return fromL2(read, fill, (found, filled, at): Factory.Lookup => {
          const stale = candidate(key, entry, found, unwatch(keys, marks)[0]!, filled, at)
          return stale === undefined ? toLookup(found) : { _tag: "Stale", value: stale }
        })
      })
    /** A lock waiter's check for the value another instance stored: L2, filling L1 (not counted as an L1 miss). */
    const peek = (key: string): Effect.Effect<Option.Option<string>> =>
      Effect.suspend(() =>
        fromL2(l2.get(key) as Effect.Effect<Option.Option<string>>, (found, since, at) => {
          if (Option.isSome(found)) l1.fill(key, found.value, since, l1TtlMillis, at)
        })
      )
    const lockStore = Lock.redisStore(connection, options.keyPrefix ?? "", (lockKey) => strict.rejecting("set", lockKey))
    const factoryEvents: Record<string, number> = {}
    const scope = yield* Effect.scope
    const factory = Factory.make({
      hit: (key) => {
        const at = now()
        // Freshness (see `get`) is settled before the factory is asked: `getOrSetWith` waits a turn when needed.
        if (!tracking.trusted(at)) return undefined
        const value = l1.get(key, at)
        if (value === undefined) return undefined
        l1Hits++
        return { value, age: l1.age(key, at, l1TtlMillis) }
      },
      lookup,
      store: (key, value, setOptions, refill) => {
        const write = cache.set(key, value, setOptions)
        return refill ? Effect.zipRight(write, get(key)) : write
      },
      servedStale: served,
      event: (name, detail) => {
        factoryEvents[name] = (factoryEvents[name] ?? 0) + 1
        // Stats only: `lock_unavailable:circuit_open` etc. (the metric keeps one label value per event).
        if (detail !== undefined) factoryEvents[`${name}:${detail}`] = (factoryEvents[`${name}:${detail}`] ?? 0) + 1
        CacheMetrics.factoryEvents.unsafeUpdate(1, [MetricLabel.make("event", name)])
      },
      locks: { store: lockStore, peek }
    }, scope)
    const defaultsOf = options.factory
    const getOrSetWith = <E2, R>(key: string, compute: Effect.Effect<string, E2, R>, callOptions?: FactoryOptions) =>
      Effect.suspend((): Effect.Effect<string, PermanentError | FactoryTimeoutError | E2, R> => {
        const bad = checkKey("getOrSet", key) ?? reserved("getOrSet", key)
        if (bad) return Effect.fail(bad)
        const merged = callOptions === undefined ? defaultsOf : { ...defaultsOf, ...callOptions }
        let resolvedCall: Factory.Resolved
        try {
          resolvedCall = callOptions === undefined ? resolved.factory : Factory.resolve(merged)
        } catch (error) {
          return Effect.die(new Cause.IllegalArgumentException(`getOrSet ${(error as Error).message}`))
        }
        const run = factory.getOrSet(key, compute, merged, resolvedCall) as Effect.Effect<string, PermanentError | FactoryTimeoutError | E2, R>
        // As `get`: the factory's synchronous L1 check (which also decides an eager refresh) runs only once the event
        // loop was seen polling recently; otherwise after one turn of it.
        const at = now()
        return tracking.trusted(at) && !tracking.fresh(at) ? Effect.zipRight(tracking.turn, run) : run
      })

    const getMany = (keys: ReadonlyArray<string>, waited = false): Effect.Effect<ReadonlyArray<Option.Option<string>>> =>
      Effect.suspend(() => {
        const at = now()
        const trusted = tracking.trusted(at)
        // As `get`: answer from L1 only once the loop was seen polling recently.
        if (trusted && !waited && !tracking.fresh(at)) return Effect.zipRight(tracking.turn, getMany(keys, true))
        const out: Array<Option.Option<string>> = new Array(keys.length)
        const missing: Array<number> = []
        let hits = 0
        for (let i = 0; i < keys.length; i++) {
          const value = trusted ? l1.get(keys[i]!, at) : undefined
          if (value !== undefined) {
            out[i] = Option.some(value)
            hits++
            continue
          }
          const stale = throttled(keys[i]!, at)
          if (stale === undefined) missing.push(i)
          else out[i] = Option.some(stale)
        }
        l1Hits += hits
        l1Misses += keys.length - hits
        if (missing.length === 0) return Effect.succeed(out)
        const remote = missing.map((i) => keys[i]!)
        const entries = graceMillis > 0 ? remote.map((key) => l1.stale(key, at)) : []
        const candidates = remote.filter((_, j) => entries[j] !== undefined)
        const marks = watch(candidates)
        return fromL2(
          l2.getMany(remote) as Effect.Effect<ReadonlyArray<Option.Option<string>>>,
          (found, since, at) => {
            found.forEach((value, j) => {
              if (Option.isSome(value)) l1.fill(remote[j]!, value.value, since, l1TtlMillis, at)
            })
          },
          (found, filled, at) => {
            const fell = unwatch(candidates, marks)
            let c = 0
            found.forEach((value, j) => {
              const entry = entries[j]
              out[missing[j]!] = entry === undefined ? value : resolveStale(remote[j]!, entry, value, fell[c++]!, filled, at)
            })
            return out
          }
        )
      })

    /**
     * Writes and deletes through L2. The key leaves L1 when the write starts, and again when L2 answered (a read that
     * raced the write on another socket may be bringing the old value: it is in flight then, so its fill is refused);
     * in between, no fill of the key is kept (L1's fence). A caller interrupted while Redis has the write never sees
     * the answer: the fence then lasts until the write can no longer be under way (twice the command deadline, retries
     * included, plus a second), so no read fills the value it may be replacing. The input is checked once, by L2.
     *
     * `set`, the hot one, adds no frame of its own: the work is done inside L2's frames, through `hooks` (above). The
     * resilient cache sends a set through the strict cache's `setOr` (wrapped: the fence goes up when it is called, at
     * run time, and comes down in either callback, synchronously where the answer is known) and, when the breaker
     * rejects it, writes the fallback in the same step (`touched` drops the key there). Measured (README, "The write
     * path"): CPU per set 1.26-1.37x the resilient cache's with `Effect.ensuring` in a `suspend` and the checks twice,
     * 1.11x with a `suspend` + `matchCauseEffect`, 1.08-1.10x this way. This leans on how `ResilientCache` calls its
     * strict cache and its fallback: were it to stop sending sets through `setOr`, a set would drop the key only where
     * the fallback is written after the answer, and lose the fence; `test/HybridCache.l1.test.ts` fails then.
     * `delete` and `setMany` keep frames of their own (`ended`).
     */
    // The deadline of a call started now (tunable at runtime): a write cannot be under way past twice it + 1 s.
    let deadline = connection.commandTimeout()
    let fenceMillis = longestWriteMillis(deadline)
    /** Before the write: drop the key, fence it; the fence's slot, for `l1.endWrite`. */
    const begin = (key: string): number => {
      const current = connection.commandTimeout()
      if (current !== deadline) {
        deadline = current
        fenceMillis = longestWriteMillis(current)
      }
      const at = now()
      factory.noteWrite(key)
      return l1.beginWrite(key, at + fenceMillis, at)
    }
    hooks.writing = begin
    hooks.written = (key, slot) => l1.endWrite(key, slot)
    // After a set Redis acknowledged, this drops the key a second time (the mirror's write): ~20 ns, kept rather than
    // guessing which fallback writes follow a settled set.
    hooks.touched = (key) => {
      l1.invalidate(key)
      factory.noteWrite(key)
    }
    /** `write` in a frame of its own: fenced from now; answered or failed (not interrupted), the key drops again. */
    const ended = <A>(key: string, write: Effect.Effect<A, PermanentError>): Effect.Effect<A, PermanentError> => {
      const slot = begin(key)
      return Effect.matchCauseEffect(write, {
        onFailure: (cause) => {
          l1.endWrite(key, slot)
          return Effect.failCause(cause)
        },
        onSuccess: (a) => {
          l1.endWrite(key, slot)
          return Effect.succeed(a)
        }
      })
    }

    const cache = derive<PermanentError>({
      get: (key) => {
        const bad = checkKey("get", key) ?? reserved("get", key)
        return bad ? Effect.fail(bad) : get(key)
      },
      getMany: (keys) => {
        const bad = checkKeys("getMany", keys) ?? firstReserved("getMany", keys)
        return bad ? Effect.fail(bad) : getMany(keys)
      },
      set: (key, value, setOptions) => {
        const bad = reserved("set", key)
        return bad ? Effect.fail(bad) : l2.set(key, value, setOptions)
      },
      setMany: (entries, setOptions) => {
        const list = checkEntries("setMany", entries)
        if (list instanceof PermanentError) return Effect.fail(list)
        const keys = list.map(([key]) => key)
        const bad = firstReserved("setMany", keys)
        if (bad) return Effect.fail(bad)
        return Effect.suspend(() => {
          const slots = keys.map(begin)
          const end = () => keys.forEach((key, i) => l1.endWrite(key, slots[i]!))
          return Effect.matchCauseEffect(l2.setMany(list, setOptions), {
            onFailure: (cause) => (end(), Effect.failCause(cause)),
            onSuccess: () => (end(), Effect.void)
          })
        })
      },
      delete: (key) => {
        const bad = reserved("delete", key)
        if (bad) return Effect.fail(bad)
        return Effect.suspend(() => ended(key, l2.delete(key)))
      },
      health: l2.health,
      stats: Effect.map(l2.stats, (inner): Stats => {
        const t = tracking.status()
        return {
          ...inner,
          backend: "hybrid",
          hits: inner.hits + l1Hits,
          misses: inner.misses,
          config: {
            ...inner.config,
            l1MaxEntries: resolved.maxEntries,
            ...(resolved.maxBytes === undefined ? {} : { l1MaxBytes: resolved.maxBytes }),
            l1TtlMs: l1TtlMillis,
            trackingMode: resolved.mode,
            canaryIntervalMs: Duration.toMillis(resolved.interval),
            canaryTimeoutMs: Duration.toMillis(resolved.timeout),
            failSafeGraceMs: graceMillis,
            failSafeThrottleMs: throttleMillis
          },
          hybrid: {
            factory: { ...factoryEvents, inFlight: factory.inFlight() },
            trusted: t.trusted,
            mode: t.mode,
            l1: {
              entries: l1.size,
              maxEntries: resolved.maxEntries,
              bytes: l1.bytes,
              ...(resolved.maxBytes === undefined ? {} : { maxBytes: resolved.maxBytes }),
              oversized: l1.oversized,
              hits: l1Hits,
              misses: l1Misses,
              refusedFills: l1.refusedFills,
              invalidations: l1.invalidations,
              clears: l1.clears,
              evictions: l1.evictions,
              demotions: l1.demotions
            },
            failSafe: {
              graceMs: graceMillis,
              throttleMs: throttleMillis,
              staleServed: Object.values(staleServed).reduce((a, b) => a + b, 0),
              byReason: { ...staleServed }
            },
            subscriber: t.subscriber,
            subscriberId: t.subscriberId,
            sockets: t.sockets,
            canaryRounds: t.canaryRounds,
            canaryFailures: t.canaryFailures,
            lastCanaryMillis: t.lastCanaryMillis,
            boundMillis: t.boundMillis,
            losses: t.losses,
            flushes: t.flushes,
            invalidationMessages: t.invalidationMessages,
            maxLoopLagMillis: t.maxLoopLagMillis,
            notFresh: t.notFresh
          }
        }
      })
    })
    return HybridCache.of({
      ...cache,
      // Cache's getOrSet cannot fail with FactoryTimeoutError: it takes `factory`'s defaults without the hard timeout.
      getOrSet: (key, compute, setOptions) =>
        getOrSetWith(key, compute, { ...setOptions, hardTimeout: undefined }) as Effect.Effect<string, PermanentError | never, never>,
      getOrSetWith
    })
  })

/**
 * Provides {@link Cache} from a `RedisConnection`: the resilient cache as L2, an L1 in front of it, and the
 * invalidation subscriber (one more connection to the same server).
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Cache | HybridCache, never, RedisConnection.RedisConnection> =>
  Layer.scopedContext(Effect.map(make(options), (hybrid) => Context.make(Cache, hybrid).pipe(Context.add(HybridCache, hybrid))))

/**
 * The whole stack from configuration, as `ResilientCache.layerConfig`.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerConfig = (
  options: Options = {},
  config?: Config.Config<RedisConfig.RedisConfig>
): Layer.Layer<Cache | HybridCache, ConfigError.ConfigError> => layer(options).pipe(Layer.provide(RedisConnection.layerConfig(config)))
