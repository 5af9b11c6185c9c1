/**
 * The strict Redis cache: every operation goes through the circuit breaker and its retry policy, and its failures
 * reach the caller as `TransientError | PermanentError | CircuitOpenError`. Use it where a caller must know that
 * Redis failed; use `ResilientCache` where the cache must never take the program down.
 *
 * @since 0.1.0
 */
import type { CircuitBreaker, Retry } from "@steadfast/resilience"
import type { RedisConfig, RedisConnection } from "@steadfast/redis"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { CacheService, Stats } from "./Cache.js"
import { checked } from "./internal/checked.js"
import { Recorder } from "./internal/recorder.js"
import * as core from "./internal/redisCore.js"

/**
 * The operations that take their own retry policy.
 *
 * @since 0.1.0
 * @category models
 */
export type Operation = core.Operation

/**
 * What the strict cache's operations fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type RedisCacheError = core.RedisCacheError

/**
 * - `keyPrefix`: prepended to every Redis key (default none).
 * - `retry`: a `Retry.Policy` per operation. Defaults: `get` and `getMany` retry `CACHE_MAX_RETRIES` times from
 *   `CACHE_RETRY_DELAY`, exponential with jitter; writes and deletes are not retried.
 * - `breaker`: `CircuitBreaker` options (default 5 consecutive transient failures, half-open after 5 seconds,
 *   `countOverlappingOnce: true`: calls failing together on one reset socket count once), or `circuitBreaker`: a
 *   breaker to share.
 * - `logInterval`: at most one failure log per operation and reason per interval (default 1 second).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends core.CoreOptions {}

/**
 * The breaker the cache uses unless told otherwise.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBreaker = core.defaultBreaker

/**
 * The per-operation retry policies the cache uses unless told otherwise.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultRetry: (config: RedisConfig.RedisConfig) => Record<Operation, Retry.Policy> = core.defaultRetry

/**
 * @since 0.1.0
 * @category models
 */
export interface RedisCache extends CacheService<RedisCacheError> {
  readonly breaker: CircuitBreaker.CircuitBreaker
}

/**
 * @since 0.1.0
 * @category tags
 */
export const RedisCache = Context.GenericTag<RedisCache>("@steadfast/cache/RedisCache")

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<RedisCache, never, RedisConnection.RedisConnection | Scope.Scope> =>
  Effect.gen(function*() {
    const recorder = new Recorder("redis")
    const redis = yield* core.makeCore(options, recorder)
    const cache = checked<RedisCacheError>({
      get: redis.get,
      getMany: redis.getMany,
      set: redis.set,
      setMany: redis.setMany,
      delete: redis.delete,
      health: redis.health,
      stats: Effect.map(core.breakerStats(redis.breaker), (breaker): Stats => ({
        backend: "redis",
        ...breaker,
        hits: recorder.hits,
        misses: recorder.misses,
        fallbacks: 0,
        errors: recorder.errorsByReason(),
        memory: undefined,
        config: redis.describe()
      }))
    })
    return RedisCache.of({ ...cache, breaker: redis.breaker })
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<RedisCache, never, RedisConnection.RedisConnection> =>
  Layer.scoped(RedisCache, make(options))
