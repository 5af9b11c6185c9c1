/**
 * The resilient cache: Redis behind per-operation retries and a circuit breaker, with a bounded in-memory cache
 * that mirrors what passes through and serves when Redis fails or the breaker is open.
 *
 * Its operations fail only on bad input (`PermanentError` with reason `invalid_argument`): a Redis failure of any
 * kind — down, slow, reset, wrong password, wrong type — is counted, logged and answered from memory.
 *
 * What the memory holds: every value read from or written to Redis (with `mirror`, the default) and every write made
 * while Redis was failing, each for at most `fallbackTtl`. So during an outage, reads return values at most
 * `fallbackTtl` old; writes made during an outage live only in this process's memory (they are not replayed to Redis
 * later: a replay queue is what grows without bound in an outage).
 *
 * @since 0.1.0
 */
import { type RedisConfig, RedisConnection } from "@steadfast/redis"
import * as Cause from "effect/Cause"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { Cache, type Stats } from "./Cache.js"
import { checked } from "./internal/checked.js"
import { LruStore } from "./internal/lru.js"
import { Recorder } from "./internal/recorder.js"
import * as core from "./internal/redisCore.js"
import * as MemoryCache from "./MemoryCache.js"

/**
 * The strict cache's options (`keyPrefix`, per-operation `retry`, `breaker`, `logInterval`) plus:
 *
 * - `memory`: the fallback's bounds (`maxEntries`, default 10,000);
 * - `fallbackTtl`: the longest a value lives in the fallback (default 60 seconds): the staleness bound of reads
 *   served during an outage;
 * - `mirror`: keep a copy of what Redis returns and accepts, so an outage finds a warm fallback (default true).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends core.CoreOptions {
  readonly memory?: Pick<MemoryCache.Options, "maxEntries"> | undefined
  readonly fallbackTtl?: Duration.DurationInput | undefined
  readonly mirror?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category constants
 */
export const defaultFallbackTtl = Duration.seconds(60)

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Cache, never, RedisConnection.RedisConnection | Scope.Scope> =>
  Effect.gen(function*() {
    const { maxEntries } = MemoryCache.resolveOptions(options.memory)
    const fallbackTtl = Duration.decodeUnknown(options.fallbackTtl ?? defaultFallbackTtl)
    if (Option.isNone(fallbackTtl) || !Duration.isFinite(fallbackTtl.value) || Duration.toMillis(fallbackTtl.value) <= 0) {
      return yield* Effect.die(new Cause.IllegalArgumentException("ResilientCache fallbackTtl must be a positive, finite duration"))
    }
    const fallbackMillis = Duration.toMillis(fallbackTtl.value)
    const mirror = options.mirror ?? true
    const recorder = new Recorder("resilient")
    const redis = yield* core.makeCore(options, recorder)
    const memory = new LruStore(maxEntries)
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const memoryTtl = (ttl: Option.Option<Duration.Duration>) =>
      Option.isSome(ttl) ? Math.min(Duration.toMillis(ttl.value), fallbackMillis) : fallbackMillis

    const fromMemory = (key: string): Option.Option<string> => {
      const value = memory.get(key, now())
      if (value === undefined) {
        recorder.miss()
        return Option.none()
      }
      recorder.hit()
      return Option.some(value)
    }
    const remember = (key: string, found: Option.Option<string>) => {
      // Redis is the truth while it answers: a miss there drops what memory still held.
      if (Option.isSome(found)) memory.set(key, found.value, fallbackMillis, now())
      else memory.delete(key, now())
    }

    /**
     * While the breaker rejects, the answer is memory's, and nothing needs the Effect pipeline: one `sync` step per
     * call instead of the ~10 that the Redis path takes to be told "open" (see benchmarks/README.md).
     */
    const whileOpen = <A>(operation: core.Operation, answer: () => A): Effect.Effect<A> =>
      Effect.sync(() => {
        recorder.error(operation, "circuit_open")
        recorder.fallback(operation)
        return answer()
      })
    const storeAll = (entries: ReadonlyArray<readonly [string, string]>, ttl: Option.Option<Duration.Duration>) => {
      const at = now()
      for (const [key, value] of entries) memory.set(key, value, memoryTtl(ttl), at)
    }

    return Cache.of(checked<never>({
      // Each operation decides when it runs (`suspend`), not when it is built: an effect may be run many times.
      get: (key) => Effect.suspend(() =>
        redis.rejecting() ? whileOpen("get", () => fromMemory(key)) : redis.get(key).pipe(
          Effect.map((found) => {
            if (mirror) remember(key, found)
            return found
          }),
          Effect.catchAll(() =>
            Effect.sync(() => {
              recorder.fallback("get")
              return fromMemory(key)
            })
          )
        )),
      getMany: (keys) => Effect.suspend(() =>
        redis.rejecting() ? whileOpen("getMany", () => keys.map(fromMemory)) : redis.getMany(keys).pipe(
          Effect.map((found) => {
            if (mirror) found.forEach((value, i) => remember(keys[i]!, value))
            return found
          }),
          Effect.catchAll(() =>
            Effect.sync(() => {
              recorder.fallback("getMany")
              return keys.map(fromMemory)
            })
          )
        )),
      set: (key, value, ttl) => Effect.suspend(() =>
        redis.rejecting() ? whileOpen("set", () => memory.set(key, value, memoryTtl(ttl), now())) : redis.set(key, value, ttl).pipe(
          Effect.matchEffect({
            onSuccess: () => Effect.sync(() => mirror && memory.set(key, value, memoryTtl(ttl), now())),
            onFailure: () =>
              Effect.sync(() => {
                recorder.fallback("set")
                memory.set(key, value, memoryTtl(ttl), now())
              })
          }),
          Effect.asVoid
        )),
      setMany: (entries, ttl) => Effect.suspend(() =>
        redis.rejecting() ? whileOpen("setMany", () => storeAll(entries, ttl)) : redis.setMany(entries, ttl).pipe(
          Effect.matchEffect({
            onSuccess: () => Effect.sync(() => mirror && storeAll(entries, ttl)),
            onFailure: () =>
              Effect.sync(() => {
                recorder.fallback("setMany")
                storeAll(entries, ttl)
              })
          }),
          Effect.asVoid
        )),
      delete: (key) =>
        Effect.suspend(() => {
          // Memory forgets first, whatever Redis says: a deleted value must not come back from the fallback.
          const inMemory = memory.delete(key, now())
          if (redis.rejecting()) return whileOpen("delete", () => inMemory)
          return redis.delete(key).pipe(
            Effect.catchAll(() =>
              Effect.sync(() => {
                recorder.fallback("delete")
                return inMemory
              })
            )
          )
        }),
      health: redis.health,
      stats: Effect.map(core.breakerStats(redis.breaker), (breaker): Stats => ({
        backend: "resilient",
        ...breaker,
        hits: recorder.hits,
        misses: recorder.misses,
        fallbacks: recorder.fallbacks,
        errors: recorder.errorsByReason(),
        memory: { entries: memory.size, maxEntries },
        config: { ...redis.describe(), fallbackTtlMs: fallbackMillis, mirror, memoryMaxEntries: maxEntries }
      }))
    }))
  })

/**
 * Provides {@link Cache} from a `RedisConnection`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Cache, never, RedisConnection.RedisConnection> =>
  Layer.scoped(Cache, make(options))

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
): Layer.Layer<Cache, ConfigError.ConfigError> =>
  layer(options).pipe(Layer.provide(RedisConnection.layerConfig(config)))
