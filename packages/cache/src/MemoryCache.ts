/**
 * A bounded in-memory cache: approximate-LRU eviction (CLOCK, "second chance") past `maxEntries`, per-entry TTL, time
 * from Effect's `Clock`. Usable alone (an embedded cache, a test double for the Redis layers) and, through
 * {@link layerFallback}, as the resilient cache's `FallbackStore`.
 *
 * @since 0.1.0
 */
import { PermanentError } from "@steadfast/resilience"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Cache, type Health, type Stats } from "./Cache.js"
import * as FallbackStore from "./FallbackStore.js"
import { checked } from "./internal/checked.js"
import { parseTtl } from "./internal/input.js"
import { LruStore } from "./internal/lru.js"
import { Recorder } from "./internal/recorder.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The most entries kept; the least recently used goes first. Integer >= 1. Default `10_000`. */
  readonly maxEntries?: number | undefined
  /** TTL of entries set without one. Default: none (kept until evicted). */
  readonly defaultTtl?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxEntries = 10_000

const health: Health = {
  status: "healthy",
  redis: "none",
  circuitState: "NONE",
  latencyMs: Option.none(),
  error: Option.none()
}

/**
 * Validated options. Invalid values are programming errors: this throws `Cause.IllegalArgumentException`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveOptions = (options: Options = {}): { maxEntries: number; defaultTtlMillis: number | undefined } => {
  const maxEntries = options.maxEntries ?? defaultMaxEntries
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new Cause.IllegalArgumentException(`MemoryCache maxEntries must be an integer >= 1, got ${maxEntries}`)
  }
  const ttl = parseTtl("MemoryCache", options.defaultTtl)
  if (ttl instanceof PermanentError) {
    throw new Cause.IllegalArgumentException("MemoryCache defaultTtl must be a positive, finite duration")
  }
  return { maxEntries, defaultTtlMillis: Option.match(ttl, { onNone: () => undefined, onSome: Duration.toMillis }) }
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Cache> =>
  Effect.gen(function*() {
    const { defaultTtlMillis, maxEntries } = resolveOptions(options)
    const clock = yield* Effect.clock
    const store = new LruStore(maxEntries)
    const recorder = new Recorder("memory")
    const now = () => clock.unsafeCurrentTimeMillis()

    const ttlMillis = (ttl: Option.Option<Duration.Duration>) =>
      Option.isSome(ttl) ? Duration.toMillis(ttl.value) : defaultTtlMillis

    const lookup = (key: string) => {
      const value = store.get(key, now())
      if (value === undefined) {
        recorder.miss()
        return Option.none<string>()
      }
      recorder.hit()
      return Option.some(value)
    }

    return Cache.of(checked<never>({
      get: (key) => Effect.sync(() => lookup(key)),
      getMany: (keys) => Effect.sync(() => keys.map(lookup)),
      set: (key, value, ttl) => Effect.sync(() => store.set(key, value, ttlMillis(ttl), now())),
      setMany: (entries, ttl) =>
        Effect.sync(() => {
          const at = now()
          const millis = ttlMillis(ttl)
          for (const [key, value] of entries) store.set(key, value, millis, at)
        }),
      delete: (key) => Effect.sync(() => store.delete(key, now())),
      health: Effect.succeed(health),
      stats: Effect.sync((): Stats => ({
        backend: "memory",
        circuitState: "NONE",
        failureCount: 0,
        circuitOpens: 0,
        hits: recorder.hits,
        misses: recorder.misses,
        fallbacks: 0,
        errors: {},
        memory: { entries: store.size, maxEntries },
        reconciliation: undefined,
        config: { maxEntries, ...(defaultTtlMillis === undefined ? {} : { defaultTtlMs: defaultTtlMillis }) }
      }))
    }))
  })

/**
 * - `maxEntries`: the most entries kept (default 10,000);
 * - `ttl`: the longest a value lives, whatever its own TTL (default 60 seconds): the staleness bound of what an
 *   outage serves.
 *
 * @since 0.2.0
 * @category models
 */
export interface FallbackOptions {
  readonly maxEntries?: number | undefined
  readonly ttl?: Duration.DurationInput | undefined
}

/**
 * The in-memory `FallbackStore`. Invalid options are programming errors: this dies with
 * `Cause.IllegalArgumentException`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeFallback = (options: FallbackOptions = {}): Effect.Effect<FallbackStore.FallbackStore> =>
  Effect.gen(function*() {
    const { maxEntries } = yield* Effect.try({
      try: () => resolveOptions({ maxEntries: options.maxEntries }),
      catch: (error) => error
    }).pipe(Effect.orDie)
    const ttl = parseTtl("MemoryCache fallback", options.ttl ?? FallbackStore.defaultTtl)
    if (ttl instanceof PermanentError || Option.isNone(ttl)) {
      return yield* Effect.die(new Cause.IllegalArgumentException("MemoryCache fallback ttl must be a positive, finite duration"))
    }
    const ttlMillis = Duration.toMillis(ttl.value)
    const clock = yield* Effect.clock
    const store = new LruStore(maxEntries)
    const now = () => clock.unsafeCurrentTimeMillis()
    return FallbackStore.FallbackStore.of({
      maxEntries,
      ttl: ttl.value,
      size: () => store.size,
      get: (key) => store.get(key, now()),
      write: (key, value, valueTtl) =>
        store.set(key, value, valueTtl === undefined ? ttlMillis : Math.min(Duration.toMillis(valueTtl), ttlMillis), now()),
      remove: (key) => store.delete(key, now()),
      version: () => store.version(),
      mirror: (key, value, since) => store.mirror(key, value, since, ttlMillis, now()),
      clear: () => store.clear()
    })
  })

/**
 * Provides the in-memory `FallbackStore` (see {@link makeFallback}). Build it once and provide it to several
 * resilient caches over the same keys to share it.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerFallback = (options: FallbackOptions = {}): Layer.Layer<FallbackStore.FallbackStore> =>
  Layer.effect(FallbackStore.FallbackStore, makeFallback(options))

/**
 * Provides {@link Cache} from memory alone: for tests that swap out Redis, and programs that want no Redis.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Cache> => Layer.effect(Cache, make(options))
