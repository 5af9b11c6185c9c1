/**
 * A typed view of a cache through a `Schema` (from `effect`): values are encoded to JSON on the way in and decoded on
 * the way out. A stored value that does not decode — written by an older release, another service, or by hand — is a
 * miss: counted (`cache_decode_error_total`), logged, never returned as a wrongly typed value.
 *
 * @since 0.1.0
 */
import { PermanentError } from "@steadfast/resilience"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { CacheService, SetOptions, Stats } from "./Cache.js"
import * as CacheMetrics from "./CacheMetrics.js"
import * as SingleFlight from "./internal/singleFlight.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface TypedCache<A, E> {
  readonly get: (key: string) => Effect.Effect<Option.Option<A>, E>
  readonly getOrElse: (key: string, orElse: () => A) => Effect.Effect<A, E>
  /** Fails with `PermanentError` (`invalid_argument`) if the value does not encode with the schema. */
  readonly set: (key: string, value: A, options?: SetOptions) => Effect.Effect<void, E | PermanentError>
  readonly delete: (key: string) => Effect.Effect<boolean, E>
  readonly getMany: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Option.Option<A>>, E>
  readonly setMany: (entries: Iterable<readonly [string, A]>, options?: SetOptions) => Effect.Effect<void, E | PermanentError>
  /**
   * A value that does not decode counts as a miss: `compute` runs and its result replaces it. Concurrent misses for
   * one key share one `compute`.
   */
  readonly getOrSet: <E2, R>(key: string, compute: Effect.Effect<A, E2, R>, options?: SetOptions) => Effect.Effect<A, E | E2 | PermanentError, R>
  /** The underlying cache's stats, with this view's decode failures counted as misses (not hits). */
  readonly stats: Effect.Effect<Stats & { readonly decodeErrors: number }>
}

/**
 * - `logInterval`: at most one decode-failure log line per interval (default 1 second); the lines in between are
 *   counted and reported with the next (`suppressed_since_last_log`).
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly logInterval?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, I, E>(
  cache: CacheService<E>,
  schema: Schema.Schema<A, I>,
  options: Options = {}
): TypedCache<A, E> => {
  const codec = Schema.parseJson(schema)
  const decode = Schema.decodeUnknownEither(codec)
  const encode = Schema.encodeEither(codec)
  const logEvery = Duration.toMillis(Duration.decode(options.logInterval ?? Duration.seconds(1)))
  let decodeErrors = 0
  /** When the last decode failure was logged, and how many were not since. */
  let lastLogged: number | undefined
  let suppressed = 0
  const singleFlight = SingleFlight.make()

  const decodeOrMiss = (key: string, raw: Option.Option<string>) => {
    if (Option.isNone(raw)) return Effect.succeed(Option.none<A>())
    const decoded = decode(raw.value)
    if (Either.isRight(decoded)) return Effect.succeed(Option.some(decoded.right))
    decodeErrors++
    CacheMetrics.decodeErrors.unsafeUpdate(1, [])
    // A miss to the caller, so a miss in the metrics too (the string cache below counted it found).
    CacheMetrics.misses.unsafeUpdate(1, [])
    return Effect.flatMap(Effect.clock, (clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      if (lastLogged !== undefined && now - lastLogged < logEvery) {
        suppressed++
        return Effect.succeed(Option.none<A>())
      }
      const skipped = suppressed
      lastLogged = now
      suppressed = 0
      return Effect.logWarning("cached value does not decode; treated as a miss").pipe(
        Effect.annotateLogs({
          operation: "decode",
          key,
          error_type: "decode",
          error_message: ParseResult.TreeFormatter.formatErrorSync(decoded.left),
          suppressed_since_last_log: skipped
        }),
        Effect.as(Option.none<A>())
      )
    })
  }

  const encodeOrFail = (operation: string, key: string, value: A) => {
    const encoded = encode(value)
    return Either.isRight(encoded)
      ? Effect.succeed(encoded.right)
      : Effect.fail(
        new PermanentError({
          operation,
          reason: "invalid_argument",
          message: `${operation}: the value for key "${key}" does not encode: ${ParseResult.TreeFormatter.formatErrorSync(encoded.left)}`
        })
      )
  }

  const get = (key: string) => Effect.flatMap(cache.get(key), (raw) => decodeOrMiss(key, raw))
  const set = (key: string, value: A, options?: SetOptions) =>
    Effect.flatMap(encodeOrFail("set", key, value), (raw) => cache.set(key, raw, options))

  return {
    get,
    getOrElse: (key, orElse) => Effect.map(get(key), Option.getOrElse(orElse)),
    set,
    delete: cache.delete,
    getMany: (keys) =>
      Effect.flatMap(cache.getMany(keys), (raws) => Effect.forEach(raws, (raw, i) => decodeOrMiss(keys[i]!, raw))),
    setMany: (entries, options) =>
      Effect.flatMap(
        Effect.forEach(Array.from(entries), ([key, value]) =>
          Effect.map(encodeOrFail("setMany", key, value), (raw) => [key, raw] as const)),
        (encoded) => cache.setMany(encoded, options)
      ),
    // Decoding happens here, not in the string cache, so a stale shape is recomputed rather than returned.
    getOrSet: (key, compute, options) =>
      Effect.flatMap(get(key), (found) =>
        Option.isSome(found)
          ? Effect.succeed(found.value)
          : singleFlight(key, Effect.tap(compute, (value) => set(key, value, options)))),
    // A value that did not decode was found by the cache below but answered as a miss: it is a miss here.
    stats: Effect.map(cache.stats, (stats) => ({
      ...stats,
      hits: Math.max(0, stats.hits - decodeErrors),
      misses: stats.misses + decodeErrors,
      decodeErrors
    }))
  }
}
