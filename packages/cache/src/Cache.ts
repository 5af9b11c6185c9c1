/**
 * The `Cache` service: what programs call. Three implementations provide it:
 *
 * - `MemoryCache.layer`: bounded LRU + TTL in the process (a test double, an embedded default, the fallback);
 * - `ResilientCache.layer`: Redis with per-operation retries and a circuit breaker, falling back to memory, so its
 *   reads never fail because of Redis;
 * - `RedisCache` (strict, its own tag): the same Redis path without fallback, exposing
 *   `TransientError | PermanentError | CircuitOpenError`.
 *
 * Values are strings at this level; `TypedCache.make(cache, schema)` gives a typed view through `Schema`.
 *
 * @since 0.1.0
 */
import type { CircuitBreaker, PermanentError } from "@steadfast/resilience"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"

/**
 * @since 0.1.0
 * @category models
 */
export interface SetOptions {
  /** Time to live. Positive and finite; absent means "no expiry" (Redis) / "until evicted" (memory). */
  readonly ttl?: Duration.DurationInput | undefined
}

/**
 * A cache whose operations fail with `E`. For the service tag {@link Cache}, `E` is `PermanentError`, raised only
 * for bad input (an empty key, a TTL that is not positive): infrastructure faults never reach the caller.
 *
 * @since 0.1.0
 * @category models
 */
export interface CacheService<E> {
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, E>
  /** `get`, with `orElse()` on a miss (nothing is stored). */
  readonly getOrElse: (key: string, orElse: () => string) => Effect.Effect<string, E>
  readonly set: (key: string, value: string, options?: SetOptions) => Effect.Effect<void, E>
  /** Whether the key existed. */
  readonly delete: (key: string) => Effect.Effect<boolean, E>
  /** One result per key, in the order of `keys`. */
  readonly getMany: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Option.Option<string>>, E>
  readonly setMany: (entries: Iterable<readonly [string, string]>, options?: SetOptions) => Effect.Effect<void, E>
  /**
   * The value, or `compute`'s result, stored before it is returned. Concurrent calls for the same key in this
   * process share one `compute` (no stampede).
   */
  readonly getOrSet: <E2, R>(
    key: string,
    compute: Effect.Effect<string, E2, R>,
    options?: SetOptions
  ) => Effect.Effect<string, E | E2, R>
  readonly health: Effect.Effect<Health>
  readonly stats: Effect.Effect<Stats>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Cache extends CacheService<PermanentError> {}

/**
 * The cache programs use. Reads and writes fail only on bad input.
 *
 * @since 0.1.0
 * @category tags
 */
export const Cache = Context.GenericTag<Cache>("@steadfast/cache/Cache")

/**
 * @since 0.1.0
 * @category models
 */
export interface Health {
  /** `healthy`: every backend answers; `degraded`: serving from memory because Redis does not. */
  readonly status: "healthy" | "degraded"
  /** `up` when a deadline-bound PING succeeded, `down` when it failed, `none` for a memory-only cache. */
  readonly redis: "up" | "down" | "none"
  readonly circuitState: CircuitBreaker.State | "NONE"
  /** The PING's round trip, when there was one and it succeeded. */
  readonly latencyMs: Option.Option<number>
  /** The PING's failure reason, when it failed. */
  readonly error: Option.Option<string>
}

/**
 * @since 0.2.0
 * @category models
 */
export interface Reconciliation {
  readonly policy: "invalidate" | "write-back"
  /** Keys written or deleted while Redis did not acknowledge, not yet repaired: Redis is not read for them. */
  readonly pendingKeys: number
  readonly maxPending: number
  /** Keys repaired in Redis (deleted, or written back). */
  readonly reconciledKeys: number
  /** Times more keys were pending than `maxPending`, each answered by a flush of the cache's namespace. */
  readonly overflows: number
  /** A namespace flush is under way: Redis is not read for any key until it completes. */
  readonly flushing: boolean
  /** Reads answered from the fallback because their key awaited reconciliation (not counted as fallbacks). */
  readonly localReads: number
}

/**
 * A snapshot of a cache's counters. Counters are this cache instance's; the `Metric`s in `CacheMetrics` are
 * process-wide.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly backend: "memory" | "redis" | "resilient" | "hybrid"
  readonly circuitState: CircuitBreaker.State | "NONE"
  /** The breaker's consecutive counted failures. */
  readonly failureCount: number
  /** How many times the breaker opened (both breakers' opens, with separate read and write breakers). */
  readonly circuitOpens: number
  /** With separate read and write breakers (`breakers`), each one's state; `circuitState` is the worse of the two. */
  readonly circuits?: { readonly reads: CircuitBreaker.State; readonly writes: CircuitBreaker.State } | undefined
  /**
   * Over a Redis Cluster with per-shard breakers: each shard's breakers (by shard name, `slots:<first slot>`) and how
   * many times they opened; `circuitState` is the worst of all, `circuitOpens` includes them.
   */
  readonly shards?:
    | Readonly<Record<string, { readonly reads: CircuitBreaker.State; readonly writes: CircuitBreaker.State; readonly opens: number }>>
    | undefined
  readonly hits: number
  readonly misses: number
  /** Operations served by memory because Redis failed or the breaker was open. */
  readonly fallbacks: number
  /** Failures seen from Redis, by `reason` (`timeout`, `connection_reset_peer`, `circuit_open`, ...). */
  readonly errors: Readonly<Record<string, number>>
  readonly memory: { readonly entries: number; readonly maxEntries: number } | undefined
  /** The resilient cache's repair of what Redis missed during faults (see `ResilientCache`); absent elsewhere. */
  readonly reconciliation: Reconciliation | undefined
  /** The configuration, password redacted. */
  readonly config: Readonly<Record<string, string | number | boolean>>
  /** The hybrid cache's L1 and its invalidation path (see `HybridCache`); absent elsewhere. */
  readonly hybrid?: HybridStats | undefined
}

/**
 * @since 0.3.0
 * @category models
 */
export interface HybridStats {
  /** L1 answers now: tracking is established on every socket and the last canary is within the bound. */
  readonly trusted: boolean
  readonly mode: "default" | "bcast"
  readonly l1: {
    readonly entries: number
    readonly maxEntries: number
    /** The entries' approximate size: 2 bytes per UTF-16 code unit of each key and value. */
    readonly bytes?: number | undefined
    /** `l1.maxBytes`, when set. */
    readonly maxBytes?: number | undefined
    /** Fills not kept because the entry alone exceeded `maxBytes`. */
    readonly oversized?: number | undefined
    readonly hits: number
    readonly misses: number
    /** Fills refused because their key was invalidated (or L1 cleared) while the read was in flight. */
    readonly refusedFills: number
    readonly invalidations: number
    readonly clears: number
    readonly evictions: number
    /** Times trust was lost and, with fail-safe on, entries were kept as stale values only (not cleared). */
    readonly demotions?: number | undefined
  }
  /** Fail-safe: values served stale because Redis failed (or a factory was slow or failed), by reason. */
  readonly failSafe?: {
    readonly graceMs: number
    readonly throttleMs: number
    readonly staleServed: number
    readonly byReason: Readonly<Record<string, number>>
  } | undefined
  /**
   * `getOrSet` factory control (timeouts, background completions, eager refreshes, and the distributed lock's
   * `lock_*` events), by event; `inFlight`: factories running in this process.
   */
  readonly factory?: Readonly<Record<string, number>> | undefined
  readonly subscriber: "ready" | "down"
  readonly subscriberId: number | undefined
  readonly sockets: ReadonlyArray<{ readonly index: number; readonly clientId: number | undefined; readonly tracked: boolean }>
  readonly canaryRounds: number
  readonly canaryFailures: number
  readonly lastCanaryMillis: number | undefined
  /** No value L1 serves misses a write Redis processed longer ago than this (canary interval + timeout). */
  readonly boundMillis: number
  /** Times trust was lost and L1 cleared, by reason (`subscriber_closed`, `data_socket_closed`, `canary_timeout`, `flush`). */
  readonly losses: Readonly<Record<string, number>>
  readonly flushes: number
  readonly invalidationMessages: number
  /** An L1 answer needs the event loop seen polling its sockets within this long; otherwise the read waits a turn. */
  readonly maxLoopLagMillis: number
  /** Reads that waited a turn of the event loop before answering from L1 (it had not polled for `maxLoopLagMillis`). */
  readonly notFresh: number
}
