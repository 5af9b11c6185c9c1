/**
 * The resilient cache: the strict `RedisCache` service (per-operation retries, circuit breaker) plus a
 * `FallbackStore` (by default `MemoryCache.layerFallback`) that mirrors what passes through and answers when Redis
 * fails or the breaker is open. Its operations fail only on bad input (`PermanentError` with reason
 * `invalid_argument`): a Redis failure of any kind is counted, logged and answered from the fallback.
 *
 * **Consistency.** Once a `set`, `setMany` or `delete` has been acknowledged, no later read through this cache returns
 * the value it replaced — during the fault, after recovery, after the breaker closes — and, once reconciliation has
 * run, no read through any process sharing the Redis does either. A miss is always a possible answer; an older value
 * is not. How:
 *
 * - a write or delete Redis did not acknowledge goes to the fallback and its key becomes **pending**: Redis is not
 *   read for it (its answer may be the value the write replaced) until the key is **reconciled**;
 * - a background fiber reconciles pending keys as soon as the breaker admits calls: policy `invalidate` (default)
 *   deletes them in Redis, so the next reader reloads from its source; `write-back` writes the newest value back
 *   (only for a cache with a single writer: a late write-back can overwrite a newer value another process wrote).
 *   Each round goes through the breaker and the deadline; a key stays pending until Redis acknowledged its repair,
 *   so a second outage in the middle just pauses it;
 * - at most `maxPending` keys are remembered (one entry per key, the newest intent wins). One more **overflows**:
 *   the pending set is dropped and the cache's whole namespace (`keyPrefix*`; the whole database without a prefix)
 *   is flushed in Redis by `SCAN` + `DEL`, a cursor that survives outages; until it completes Redis is read for no key
 *   (`cache_reconcile_overflow_total`, logged once per overflow);
 * - a value read from Redis is mirrored into the fallback only if no write or delete of its key went through the
 *   cache since the read started, so a reply that left Redis before a newer write never overwrites it;
 * - a write or delete that overlapped another of its key (both under way at once) leaves no copy in the fallback: the
 *   two may run on the server in one order and settle here in the other, so the last copy could be the older value.
 *
 * What the fallback holds: values read from or written to Redis (with `mirror`, the default) and writes Redis did not
 * take, each for at most the fallback's `ttl` (`fallbackTtl`, 60 s): the staleness bound of reads served while Redis
 * is down (another process may have written since). Pending keys live in this process only: a process that dies
 * during an outage takes its pending set with it.
 *
 * @since 0.1.0
 */
import { type RedisConfig, RedisConnection, Spans } from "@steadfast/redis"
import * as Cause from "effect/Cause"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { Cache, type Stats } from "./Cache.js"
import * as CacheMetrics from "./CacheMetrics.js"
import * as FallbackStore from "./FallbackStore.js"
import { checked } from "./internal/checked.js"
import { Fence, longestWriteMillis } from "./internal/fence.js"
import { type Intent, Pending } from "./internal/pending.js"
import { Recorder } from "./internal/recorder.js"
import * as MemoryCache from "./MemoryCache.js"
import * as RedisCache from "./RedisCache.js"

/**
 * How keys Redis missed are repaired once it answers again (see the module's documentation):
 *
 * - `policy`: `"invalidate"` (default: `DEL`, safe with many writers) or `"write-back"` (`SET` of the newest value,
 *   with what is left of its TTL; single-writer caches only);
 * - `maxPending`: the most keys remembered (default 10,000) before the namespace is flushed instead;
 * - `batchSize`: keys repaired per round trip (default 256);
 * - `retryEvery`: the pause between rounds while Redis still fails (default 100 ms).
 *
 * @since 0.2.0
 * @category models
 */
export interface ReconcileOptions {
  readonly policy?: "invalidate" | "write-back" | undefined
  readonly maxPending?: number | undefined
  readonly batchSize?: number | undefined
  readonly retryEvery?: Duration.DurationInput | undefined
}

/**
 * The strict cache's options (`keyPrefix`, per-operation `retry`, `breaker`, `coalesce`, `logInterval`), used by
 * {@link layer} to build it, plus:
 *
 * - `memory`, `fallbackTtl`: the default fallback's bounds (`maxEntries`, default 10,000; the longest a value lives
 *   there, default 60 seconds), used by {@link layer} to build it;
 * - `mirror`: keep a copy of what Redis returns and accepts, so an outage finds a warm fallback (default true);
 * - `reconcile`: see {@link ReconcileOptions}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends RedisCache.Options {
  readonly memory?: Pick<MemoryCache.Options, "maxEntries"> | undefined
  readonly fallbackTtl?: Duration.DurationInput | undefined
  readonly mirror?: boolean | undefined
  readonly reconcile?: ReconcileOptions | undefined
}

/**
 * @since 0.1.0
 * @category constants
 */
export const defaultFallbackTtl = FallbackStore.defaultTtl

/**
 * @since 0.2.0
 * @category constants
 */
export const defaultMaxPending = 10_000

type Operation = "get" | "getMany" | "set" | "setMany" | "delete"

const positiveInteger = (name: string, value: number) => {
  if (!Number.isInteger(value) || value < 1) {
    throw new Cause.IllegalArgumentException(`ResilientCache ${name} must be an integer >= 1, got ${value}`)
  }
  return value
}

const actionLabel = (action: string) => [MetricLabel.make("action", action)]
const deleted = actionLabel("delete")
const writtenBack = actionLabel("write_back")
const flushed = actionLabel("flush")



/** The writes in flight into each fallback store, shared by every resilient cache over it (see `Fence`). */
const fences = new WeakMap<FallbackStore.FallbackStore, Fence>()
const fenceOf = (store: FallbackStore.FallbackStore): Fence => {
  let fence = fences.get(store)
  if (fence === undefined) {
    fence = new Fence()
    fences.set(store, fence)
  }
  return fence
}

/**
 * The resilient cache over the `RedisCache` and `FallbackStore` services.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<Cache, never, RedisCache.RedisCache | FallbackStore.FallbackStore | Scope.Scope> =>
  Effect.gen(function*() {
    const redis = yield* RedisCache.RedisCache
    const store = yield* FallbackStore.FallbackStore
    // Invalid options are programming errors: a defect (`Cause.IllegalArgumentException`), as in `MemoryCache`.
    const { batchSize, maxPending, policy, retryEvery } = yield* Effect.try({
      catch: (error) => error,
      try: () => ({
        policy: options.reconcile?.policy ?? "invalidate",
        maxPending: positiveInteger("reconcile.maxPending", options.reconcile?.maxPending ?? defaultMaxPending),
        batchSize: positiveInteger("reconcile.batchSize", options.reconcile?.batchSize ?? 256),
        retryEvery: Duration.decode(options.reconcile?.retryEvery ?? Duration.millis(100))
      })
    }).pipe(Effect.orDie)
    if (policy !== "invalidate" && policy !== "write-back") {
      return yield* Effect.die(new Cause.IllegalArgumentException(`ResilientCache reconcile.policy must be "invalidate" or "write-back", got ${String(policy)}`))
    }
    const mirror = options.mirror ?? true
    const recorder = new Recorder("resilient")
    const clock = yield* Effect.clock
    const pending = new Pending(maxPending)
    const writeBack = policy === "write-back"

    // ---- Pending keys and the namespace flush ------------------------------------------------------------------
    let flushing = false
    /** Bumped by every overflow: a flush that completes for an older one leaves the newer one running. */
    let overflows = 0
    let flushCursor = "0"
    /** The current flush sent a SCAN: keys it may have passed already must be remembered again. */
    let flushStarted = false
    let reconciledKeys = 0
    /** Keys deleted by namespace flushes (for the `cache.reconcile` span). */
    let flushedKeys = 0
    /** Opened when there is work again (the first pending key, an overflow), and when the breaker closes. */
    const wake = yield* Effect.makeLatch(false)
    const closed = yield* Effect.makeLatch(false)

    /** Redis may be read for `key`: it has no write or delete Redis missed, and no flush is under way. */
    const trusts = (key: string) => !flushing && !pending.has(key)

    const markPending = (key: string, value: string | undefined, ttl: Option.Option<Duration.Duration>) => {
      // A flush that has not sent its first SCAN yet covers every key: nothing to remember one by one.
      if (flushing && !flushStarted) return
      // Only the first key wakes the reconciler (it loops while there is work): one call per outage, not per write.
      if (pending.size === 0 && !flushing) wake.unsafeOpen()
      const intent: Intent = writeBack && value !== undefined
        ? { value, expiresAt: Option.isSome(ttl) ? clock.unsafeCurrentTimeMillis() + Duration.toMillis(ttl.value) : Infinity }
        : { value: undefined, expiresAt: Infinity }
      if (!pending.mark(key, intent)) {
        // Past the bound: forget the keys, distrust them all, and flush the namespace (from the start).
        pending.clear()
        flushing = true
        flushStarted = false
        flushCursor = "0"
        overflows++
        CacheMetrics.reconcileOverflows.unsafeUpdate(1, [])
      }
    }

    const fromMemory = (key: string): Option.Option<string> => {
      const value = store.get(key)
      if (value === undefined) {
        recorder.miss()
        return Option.none()
      }
      recorder.hit()
      return Option.some(value)
    }

    // ---- Tracing ---------------------------------------------------------------------------------------------------
    // Decided per call, on the caller's fiber (`Spans`): nothing is made under Effect's built-in tracer or with tracing
    // off, so the fused get/set path does no new work; only a fallback asks.
    const breakerState = (operation: Operation) =>
      (operation === "get" || operation === "getMany" ? redis.breakers.reads : redis.breakers.writes).unsafeState()
    /**
     * A fallback as a `cache.fallback` event on the caller's current span; when the caller has none (or only an
     * external parent), as a `cache.fallback` span of its own, so an answer from memory is never invisible. Runs
     * synchronously inside the operation's own step (the running fiber is the caller's).
     */
    const traceFallback = (operation: Operation, reason: string): void =>
      Spans.event("cache.fallback", () => ({
        "cache.operation": operation,
        "cache.fallback.reason": reason,
        "circuit_breaker.state": breakerState(operation)
      }))

    /**
     * The one decision every operation makes: while the breaker rejects, answer from the fallback in one `sync` step
     * (no effect pipeline: see benchmarks/README.md); otherwise call Redis, and on any failure answer from the
     * fallback. `onRedis` and `fallback` run synchronously, where the answer is known. `get` and `set` make the same
     * decision through the strict cache's `getOr` / `setOr`, which fold it into the call's own frame.
     */
    const rejected = <B>(operation: Operation, fallback: () => B): Effect.Effect<B> =>
      Effect.sync(() => {
        recorder.error(operation, "circuit_open")
        recorder.fallback(operation)
        traceFallback(operation, "circuit_open")
        return fallback()
      })
    const route = <A, B>(operation: Operation, call: Effect.Effect<A, RedisCache.RedisCacheError>, onRedis: (a: A) => B, fallback: () => B): Effect.Effect<B> =>
      redis.rejecting(operation)
        ? rejected(operation, fallback)
        : Effect.match(call, {
          onSuccess: onRedis,
          onFailure: (error) => {
            recorder.fallback(operation)
            traceFallback(operation, RedisCache.reasonOf(error))
            return fallback()
          }
        })

    /**
     * A local answer for a key Redis is not trusted for (pending, or a flush under way). Not a fallback (Redis did not
     * fail): counted apart, as `reconciliation.localReads` and `cache_pending_read_total`.
     */
    let localReads = 0
    const servedLocally = (count: number) => {
      localReads += count
      CacheMetrics.pendingReads.unsafeUpdate(count, [])
    }
    const untrusted = (key: string) =>
      Effect.sync(() => {
        servedLocally(1)
        return fromMemory(key)
      })

    /** Redis answered `found` for a read that started at `since`. */
    const answered = (key: string, found: Option.Option<string>, since: number): Option.Option<string> => {
      // The key became pending while the read was in flight: Redis' answer may be the value a write replaced.
      if (!trusts(key)) {
        servedLocally(1)
        return fromMemory(key)
      }
      if (mirror) store.mirror(key, Option.getOrUndefined(found), since)
      return found
    }

    // ---- Writes in flight --------------------------------------------------------------------------------------
    /**
     * Writes and deletes sent to Redis and not settled yet. Two of one key under way at once can run on the server in
     * one order and settle here in the other (a pipeline of timed SETs settles a step after an MSET read from the same
     * reply chunk; two sockets; a retry): the copy written by the last to settle may then be the value the other
     * replaced. So a write that overlapped another of its key leaves no copy: a miss, never an older value. Caches
     * sharing one fallback store share the count (a write through one may overlap a write through another).
     */
    const inFlight = fenceOf(store)
    const now = () => clock.unsafeCurrentTimeMillis()
    const fenceMillis = () => longestWriteMillis(redis.connection.commandTimeout())
    const sending = (key: string): number => inFlight.enter(key, now, fenceMillis)

    const written = (key: string, value: string, ttl: Option.Option<Duration.Duration>, slot: number) => {
      // Without the mirror, or after a write of the key overlapped this one, an older copy must still go: an outage
      // would serve it.
      if (!inFlight.end(slot) && mirror) store.write(key, value, Option.getOrUndefined(ttl))
      else store.remove(key)
      // A pending key's write-back must never write the older value over this one Redis just acknowledged: the
      // newest intent becomes this value (writing it again is harmless).
      if (writeBack && pending.has(key)) markPending(key, value, ttl)
    }
    /**
     * Redis did not take the write (`slot`: it was sent; none when the breaker rejected it): the fallback keeps it,
     * overlapped or not (the caller's answer is this write, made last), and the key is pending.
     */
    const notWritten = (key: string, value: string, ttl: Option.Option<Duration.Duration>, slot?: number) => {
      if (slot !== undefined) inFlight.end(slot)
      store.write(key, value, Option.getOrUndefined(ttl))
      markPending(key, value, ttl)
    }

    const cache = checked<never>({
      // Each operation decides when it runs (`suspend`), not when it is built: an effect may be run many times.
      get: (key) =>
        Effect.suspend(() => {
          // While the breaker rejects, every read is a fallback (pending or not): `route` answers it in one step.
          if (!trusts(key) && !redis.rejecting("get")) return untrusted(key)
          const since = store.version()
          return redis.rejecting("get")
            ? rejected("get", () => fromMemory(key))
            : redis.unchecked.getOr(key, (found) => answered(key, found, since), (error) => {
              recorder.fallback("get")
              traceFallback("get", RedisCache.reasonOf(error))
              return fromMemory(key)
            })
        }),
      getMany: (keys) =>
        Effect.suspend(() => {
          const since = store.version()
          const remote = flushing ? [] : pending.size === 0 ? keys : keys.filter((k) => !pending.has(k))
          if (remote.length === 0 && !redis.rejecting("getMany")) {
            return Effect.sync(() => (servedLocally(keys.length), keys.map(fromMemory)))
          }
          return route("getMany", redis.unchecked.getMany(remote), (found) => {
            if (remote.length !== keys.length) servedLocally(keys.length - remote.length)
            const byKey = new Map<string, Option.Option<string>>()
            remote.forEach((key, i) => byKey.set(key, found[i]!))
            return keys.map((key) => {
              const value = byKey.get(key)
              return value === undefined ? fromMemory(key) : answered(key, value, since)
            })
          }, () => keys.map(fromMemory))
        }),
      set: (key, value, ttl) =>
        Effect.suspend(() => {
          if (redis.rejecting("set")) return rejected("set", () => notWritten(key, value, ttl))
          const slot = sending(key)
          return redis.unchecked.setOr(key, value, ttl, () => written(key, value, ttl, slot), (error) => {
            recorder.fallback("set")
            traceFallback("set", RedisCache.reasonOf(error))
            return notWritten(key, value, ttl, slot)
          })
        }),
      setMany: (entries, ttl) =>
        Effect.suspend(() => {
          if (redis.rejecting("setMany")) {
            return rejected("setMany", () => entries.forEach(([key, value]) => notWritten(key, value, ttl)))
          }
          const slots = entries.map(([key]) => sending(key))
          return route(
            "setMany",
            redis.unchecked.setMany(entries, ttl),
            () => entries.forEach(([key, value], i) => written(key, value, ttl, slots[i]!)),
            () => entries.forEach(([key, value], i) => notWritten(key, value, ttl, slots[i]!))
          )
        }),
      delete: (key) =>
        Effect.suspend(() => {
          // The fallback forgets first, whatever Redis says: a deleted value must not come back from it. And again
          // when Redis has answered: a read that started meanwhile may have mirrored the value Redis still had.
          const inMemory = store.remove(key)
          if (redis.rejecting("delete")) {
            return rejected("delete", () => (markPending(key, undefined, Option.none()), inMemory))
          }
          // In flight like a write: a write of the key that overlaps it leaves no copy.
          const slot = sending(key)
          return route("delete", redis.unchecked.delete(key), (existed) => {
            inFlight.end(slot)
            store.remove(key)
            return existed
          }, () => {
            inFlight.end(slot)
            store.remove(key)
            markPending(key, undefined, Option.none())
            return inMemory
          })
        }),
      health: redis.health,
      stats: Effect.map(redis.stats, (strict): Stats => {
        const errors: Record<string, number> = { ...strict.errors }
        for (const [reason, n] of Object.entries(recorder.errorsByReason())) errors[reason] = (errors[reason] ?? 0) + n
        return {
          ...strict,
          backend: "resilient",
          hits: strict.hits + recorder.hits,
          misses: strict.misses + recorder.misses,
          fallbacks: recorder.fallbacks,
          errors,
          memory: { entries: store.size(), maxEntries: store.maxEntries },
          reconciliation: { policy, pendingKeys: pending.size, maxPending, reconciledKeys, overflows, flushing, localReads },
          config: {
            ...strict.config,
            fallbackTtlMs: Duration.toMillis(store.ttl),
            mirror,
            memoryMaxEntries: store.maxEntries,
            reconcilePolicy: policy,
            reconcileMaxPending: maxPending
          }
        }
      })
    })

    // ---- Reconciliation --------------------------------------------------------------------------------------------
    const settled = (batch: ReadonlyArray<readonly [string, Intent]>, labels: ReadonlyArray<MetricLabel.MetricLabel>) => {
      let n = 0
      for (const [key, intent] of batch) if (pending.settle(key, intent)) n++
      reconciledKeys += n
      CacheMetrics.reconciled.unsafeUpdate(n, labels)
    }

    /** One round: a flush step, or one batch of pending keys. Succeeds with whether Redis took it. */
    const round: Effect.Effect<boolean> = Effect.suspend(() => {
      if (flushing) {
        const overflow = overflows
        flushStarted = true
        return redis.unchecked.scan(flushCursor, 1000).pipe(
          Effect.flatMap(([next, keys]) => Effect.as(redis.unchecked.deleteMany(keys), [next, keys.length] as const)),
          Effect.match({
            onFailure: () => false,
            onSuccess: ([next, n]) => {
              CacheMetrics.reconciled.unsafeUpdate(n, flushed)
              flushedKeys += n
              if (overflow !== overflows) return true // overflowed again meanwhile: that flush starts over
              flushCursor = next
              if (next === "0") flushing = false
              return true
            }
          })
        )
      }
      const batch = pending.oldest(batchSize)
      const now = clock.unsafeCurrentTimeMillis()
      const toDelete = batch.filter(([, i]) => i.value === undefined || i.expiresAt <= now)
      const toWrite = batch.filter(([, i]) => i.value !== undefined && i.expiresAt > now)
      const del = toDelete.length === 0
        ? Effect.succeed(true)
        : Effect.match(redis.unchecked.deleteMany(toDelete.map(([key]) => key)), {
          onFailure: () => false,
          onSuccess: () => (settled(toDelete, deleted), true)
        })
      const writeOne = ([key, intent]: readonly [string, Intent]) =>
        Effect.suspend(() => {
          // Superseded since the round began (a newer write, acknowledged or not): that intent's round writes it.
          if (pending.current(key) !== intent) return Effect.succeed(true)
          const ttl = intent.expiresAt === Infinity ? Option.none() : Option.some(Duration.millis(intent.expiresAt - now))
          return Effect.match(redis.unchecked.set(key, intent.value!, ttl), {
            onFailure: () => false,
            onSuccess: () => (settled([[key, intent]], writtenBack), true)
          })
        })
      // The first command may be the breaker's probe: the rest follow it, not race it (they would be rejected).
      const write = toWrite.length === 0 ? Effect.succeed([]) : Effect.flatMap(
        writeOne(toWrite[0]!),
        (first) => Effect.map(Effect.forEach(toWrite.slice(1), writeOne, { concurrency: 16 }), (rest) => [first, ...rest])
      )
      return Effect.map(Effect.zip(del, write), ([d, w]) => d && w.every((ok) => ok))
    })

    /**
     * With a tracer that reads spans (the reconciler's fiber's, from where the layer was built), each round is a
     * `cache.reconcile` span (a root: the reconciler outlives any request).
     */
    const spannedRound: Effect.Effect<boolean> = Effect.withSpan(
        Effect.suspend(() => {
          const mode = flushing ? "flush" : "keys"
          const repairedBefore = reconciledKeys
          const flushedBefore = flushedKeys
          return Effect.tap(round, (ok) =>
            Effect.annotateCurrentSpan({
              "cache.reconcile.mode": mode,
              "cache.reconcile.ok": ok,
              "cache.reconcile.keys_repaired": reconciledKeys - repairedBefore,
              "cache.reconcile.keys_flushed": flushedKeys - flushedBefore,
              "cache.reconcile.pending_keys": pending.size
            }))
        }),
        "cache.reconcile",
        { root: true, attributes: { "cache.reconcile.policy": policy } }
      )
    const tracedRound = Effect.suspend(() => Spans.enabled() ? spannedRound : round)

    const hasWork = () => flushing || pending.size > 0
    let reportedOverflows = 0
    let failedRounds = 0
    const retryEveryMillis = Duration.toMillis(retryEvery)
    const reconciler = Effect.gen(function*() {
      while (true) {
        if (!hasWork()) {
          yield* Metric.set(CacheMetrics.pendingKeys, 0)
          yield* wake.close
          // A mark between the check and the close opened nothing: look again before sleeping.
          if (!hasWork()) yield* wake.await
        }
        if (overflows !== reportedOverflows) {
          reportedOverflows = overflows
          yield* Effect.logWarning(
            "more keys awaited reconciliation than reconcile.maxPending: flushing the cache's namespace in Redis"
          ).pipe(Effect.annotateLogs({ operation: "reconcile", max_pending: maxPending, overflows, key_prefix: redis.keyPrefix }))
        }
        yield* Metric.set(CacheMetrics.pendingKeys, pending.size)
        // While the breaker rejects, wait: the round would be rejected too (and a probe is someone else's call).
        if (redis.rejecting("reconcile")) {
          // Woken early when the breaker closes (a probe succeeded): repair at once, before readers pile up.
          yield* closed.close
          yield* Effect.timeout(closed.await, retryEvery).pipe(Effect.ignore)
          continue
        }
        if (yield* tracedRound) {
          failedRounds = 0
          continue
        }
        // Redis answered with a failure the breaker does not count (a wrong password, no permission): back off,
        // doubling up to 5 s, rather than hammer it every `retryEvery`.
        const pause = Math.min(retryEveryMillis * 2 ** Math.min(failedRounds++, 10), Math.max(retryEveryMillis, 5000))
        yield* Effect.sleep(Duration.millis(pause))
      }
    })
    yield* Effect.forkScoped(Effect.interruptible(reconciler))
    const transitions = yield* redis.breakers.writes.subscribe
    yield* Queue.take(transitions).pipe(
      Effect.flatMap((change) => Effect.sync(() => change.to === "CLOSED" && closed.unsafeOpen())),
      Effect.forever,
      Effect.interruptible,
      Effect.forkScoped
    )

    return Cache.of(cache)
  })

/**
 * Provides {@link Cache} from the `RedisCache` and `FallbackStore` services: to share, size or swap either one.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerFrom = (
  options: Omit<Options, keyof RedisCache.Options | "memory" | "fallbackTtl"> = {}
): Layer.Layer<Cache, never, RedisCache.RedisCache | FallbackStore.FallbackStore> => Layer.scoped(Cache, make(options))

/**
 * Provides {@link Cache} from a `RedisConnection`: the strict cache built from `options`, the in-memory fallback
 * (`memory.maxEntries`, `fallbackTtl`), and the resilient cache over both.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Cache, never, RedisConnection.RedisConnection> =>
  layerFrom(options).pipe(
    Layer.provide(Layer.merge(
      RedisCache.layer(options),
      MemoryCache.layerFallback({ maxEntries: options.memory?.maxEntries, ttl: options.fallbackTtl })
    ))
  )

/**
 * The whole stack from configuration: the connection from `config` (the environment by default, with the
 * original service's variable names) and the resilient cache over it. Fails only on invalid configuration.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Options = {},
  config?: Config.Config<RedisConfig.RedisConfig>
): Layer.Layer<Cache, ConfigError.ConfigError> => layer(options).pipe(Layer.provide(RedisConnection.layerConfig(config)))
