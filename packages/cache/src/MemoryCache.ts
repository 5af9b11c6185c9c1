/**
 * A bounded in-memory cache: LRU eviction past `maxEntries`, per-entry TTL, time from Effect's `Clock`.
 * Usable alone (an embedded cache, a test double for the Redis layers) and as the resilient cache's fallback.
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
        config: { maxEntries, ...(defaultTtlMillis === undefined ? {} : { defaultTtlMs: defaultTtlMillis }) }
      }))
    }))
  })

/**
 * Provides {@link Cache} from memory alone: for tests that swap out Redis, and programs that want no Redis.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Cache> => Layer.effect(Cache, make(options))
