/**
 * The store `ResilientCache` answers from when Redis cannot: a service of its own, so a program can size it, share
 * it between caches over the same keys, swap it, or test it alone. `MemoryCache.layerFallback` provides the bounded
 * in-memory one.
 *
 * Its operations are synchronous on purpose: while the breaker is open, every cache call is answered by this store
 * in one `Effect.sync` step (over a million calls a second), with no effect pipeline to build.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"

/**
 * @since 0.2.0
 * @category models
 */
export interface FallbackStore {
  /** The most entries kept. */
  readonly maxEntries: number
  /** The longest any value lives here, whatever its own TTL: the staleness bound of what an outage serves. */
  readonly ttl: Duration.Duration
  readonly size: () => number
  /** The live value, if any. */
  readonly get: (key: string) => string | undefined
  /** A write made through the cache: kept for `min(ttl, this store's ttl)`. */
  readonly write: (key: string, value: string, ttl?: Duration.Duration | undefined) => void
  /** A delete made through the cache: whether a live value was there. */
  readonly remove: (key: string) => boolean
  /**
   * A position in the store's history of writes and deletes. Take it before reading Redis and hand it to
   * {@link mirror} with the answer.
   */
  readonly version: () => number
  /**
   * Keeps a copy of what Redis answered (`undefined`: a miss there, so the copy here goes too), unless a write or
   * delete of the key went through this store after `since`: an answer that left Redis before a newer write never
   * overwrites it.
   */
  readonly mirror: (key: string, value: string | undefined, since: number) => void
  readonly clear: () => void
}

/**
 * @since 0.2.0
 * @category tags
 */
export const FallbackStore = Context.GenericTag<FallbackStore>("@steadfast/cache/FallbackStore")

/**
 * The default bound on how long a value lives in the fallback.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultTtl: Duration.Duration = Duration.seconds(60)
