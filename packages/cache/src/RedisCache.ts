/**
 * The strict Redis cache: every operation goes through the circuit breaker and its retry policy, is counted, timed and
 * (rate-limited) logged, and its failures reach the caller as `TransientError | PermanentError | CircuitOpenError`.
 * Use it where a caller must know that Redis failed; `ResilientCache` is this service plus a `FallbackStore`, for
 * programs the cache must never take down.
 *
 * Writes that never left the client (`outcome: "not_sent"`: no socket was writeable, e.g. in the few milliseconds
 * of a reconnect) are sent again once a socket is ready, within the call's deadline, whatever the retry policy: they
 * cannot have run. A write whose reply was lost (`outcome: "unknown"`) is not re-sent unless its policy says so.
 *
 * @since 0.1.0
 */
import {
  Bulkhead,
  type BulkheadRejectedError,
  CircuitBreaker,
  type CircuitOpenError,
  type Errors,
  type PermanentError,
  Retry,
  TransientError
} from "@steadfast/resilience"
import { RedisConfig, RedisConnection } from "@steadfast/redis"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type * as SubscriptionRef from "effect/SubscriptionRef"
import * as Scope from "effect/Scope"
import type { CacheService, Health, Stats } from "./Cache.js"
import * as CacheMetrics from "./CacheMetrics.js"
import { checked, type Unchecked } from "./internal/checked.js"
import { Recorder } from "./internal/recorder.js"

/** Effect's default clock (a runtime nobody configured has this one). */
const defaultClock = Effect.runSync(Effect.clock)

/**
 * The operations that take their own retry policy. `reconcile` is the resilient cache's repair of keys Redis missed
 * during an outage (see `ResilientCache`).
 *
 * @since 0.1.0
 * @category models
 */
export type Operation = "get" | "getMany" | "set" | "setMany" | "delete" | "reconcile"

/**
 * How an operation retries: a `Retry.Policy` (count, base delay, backoff, jitter), or any `Schedule` over its
 * errors (e.g. `Retry.decorrelatedJitter(...)` with `Schedule.recurs(3)`, or `Schedule.spaced("50 millis")`). Either
 * way only `TransientError`s are retried, and the retries stay within the call's deadline.
 *
 * @since 0.3.0
 * @category models
 */
export type RetryPolicy = Retry.Policy | Schedule.Schedule<unknown, RedisCacheError>

/**
 * What the strict cache's operations fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type RedisCacheError = TransientError | PermanentError | CircuitOpenError | BulkheadRejectedError

/**
 * - `keyPrefix`: prepended to every Redis key (default none).
 * - `retry`: a `Retry.Policy` per operation. Defaults: `get` and `getMany` retry `CACHE_MAX_RETRIES` times from
 *   `CACHE_RETRY_DELAY`, exponential with jitter; writes and deletes are not retried (except those never sent).
 * - `breaker`: `CircuitBreaker` options (default 5 consecutive transient failures, half-open after 5 seconds,
 *   `countOverlappingOnce: true`: calls failing together on one reset socket count once; any `rule`, `halfOpen`,
 *   `backoff` of `CircuitBreaker.Options`), or `circuitBreaker`: a breaker to share.
 * - `breakers`: `{ reads, writes }` gives reads (`get`, `getMany`) and writes (`set`, `setMany`, `delete` and the
 *   resilient cache's repairs) a breaker each, from these options over `breaker`'s: a server that refuses writes
 *   (out of memory, a read-only replica) then stops only the writes. Default: one breaker for all.
 * - `coalesce`: concurrent `get`s share one `MGET` and concurrent `set`s one `MSET` or pipeline (default true; see
 *   `RedisConnection.getBatched` / `setBatched`). With it, a key holding a non-string value reads as a miss instead of
 *   failing with `wrong_type`.
 * - `bulkhead`: at most `maxConcurrent` Redis calls of this cache at once (retries included), `maxQueue` more waiting
 *   (default 0), optionally for at most `queueTimeout`; the others fail at once with `BulkheadRejectedError` (the
 *   resilient cache answers them from memory), so a slow Redis cannot pile up thousands of waiting fibers. Default
 *   none. A rejection is not a failure of Redis: the breaker does not count it.
 * - `shardBreakers`: over a Redis Cluster (a connection with `shardOf`), a breaker (or a reads/writes pair, with
 *   `breakers`) per shard, made the first time one of its keys is used, from the same options (default true): a dead
 *   shard sends only its keys to the fallback while the other shards keep serving from Redis. Multi-key calls are
 *   split by shard, each part through its shard's breaker (the call fails if one part fails). `false`: one breaker for
 *   the whole cluster. Ignored on a standalone or Sentinel connection and with `circuitBreaker`.
 * - `logInterval`: at most one failure log per operation and reason per interval (default 1 second).
 * - `tuning`: a `SubscriptionRef<Tuning>` to change the breaker, retry and log settings of the live cache (see
 *   {@link Tuning}).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly keyPrefix?: string | undefined
  readonly retry?: Partial<Record<Operation, RetryPolicy>> | undefined
  readonly breaker?: CircuitBreaker.Options | undefined
  /** Separate breakers for reads and writes, each from its options merged over `breaker`'s. */
  readonly breakers?: {
    readonly reads?: CircuitBreaker.Options | undefined
    readonly writes?: CircuitBreaker.Options | undefined
  } | undefined
  /** A breaker to share (e.g. across caches on one connection); overrides `breaker` and `breakers`. */
  readonly circuitBreaker?: CircuitBreaker.CircuitBreaker | undefined
  readonly coalesce?: boolean | undefined
  readonly bulkhead?: Omit<Bulkhead.Options, "name"> | undefined
  readonly shardBreakers?: boolean | undefined
  readonly logInterval?: Duration.DurationInput | undefined
  readonly tuning?: SubscriptionRef.SubscriptionRef<Tuning> | undefined
}

/**
 * Runtime tuning: the settings a live cache takes from its `tuning` `SubscriptionRef`, each time it changes (and
 * once when the cache is built). Each value replaces the previous one as a whole (what it leaves out takes the
 * start-up option, then the default): `breaker` (any `CircuitBreaker.Options`), `breakers` (with read and write
 * breakers), `retry` (per operation), `logInterval`.
 *
 * A value is validated as start-up options are (a breaker is made from it, each retry policy's schedule is built)
 * before anything changes; an invalid one is logged as an error and ignored, the cache keeping its settings. A
 * valid one is applied in one synchronous step, so a call sees the old settings or the new ones, never half of
 * each, and no call is dropped or run twice; it is logged once ("cache tuning applied", with the new settings).
 * A breaker passed in as `circuitBreaker` is the caller's: tuning leaves it alone. `commandTimeout` changes the
 * connection's deadline (`RedisConnection.setCommandTimeout`), and with it the budget retries must fit in.
 *
 * @since 0.3.0
 * @category models
 */
export interface Tuning {
  readonly breaker?: CircuitBreaker.Options | undefined
  readonly breakers?: {
    readonly reads?: CircuitBreaker.Options | undefined
    readonly writes?: CircuitBreaker.Options | undefined
  } | undefined
  readonly retry?: Partial<Record<Operation, RetryPolicy>> | undefined
  readonly logInterval?: Duration.DurationInput | undefined
  /**
   * The command deadline (`commandTimeout`) of the connection under this cache, for calls started from now on (calls
   * in flight keep theirs); absent, the connection's start-up value. The connection is changed for all its users.
   */
  readonly commandTimeout?: Duration.DurationInput | undefined
}

/**
 * Five consecutive failures, half-open after five seconds, and calls that fail together (on one reset socket) count
 * once: a single "connection reset by peer" must not send every caller to the fallback.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBreaker = { failureThreshold: 5, halfOpenAfter: Duration.seconds(5), countOverlappingOnce: true } as const

/**
 * GET and MGET retried with the configured count and base delay (as the original service did); writes not.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultRetry = (config: RedisConfig.RedisConfig): Record<Operation, Retry.Policy> => {
  const reads = Retry.make({ maxRetries: config.maxRetries, baseDelay: config.retryDelay })
  return { get: reads, getMany: reads, set: Retry.none, setMany: Retry.none, delete: Retry.none, reconcile: Retry.none }
}

/**
 * The operations without input checks, for caches composed over this one (they check their input once, first, so
 * a bad key never reaches Redis, trips the breaker or triggers a fallback). Keys are the caller's: the prefix is
 * added here.
 *
 * @since 0.2.0
 * @category models
 */
export interface UncheckedOperations extends Omit<Unchecked<RedisCacheError>, "stats" | "health"> {
  /** `DEL` of many keys in one command; how many existed. */
  readonly deleteMany: (keys: ReadonlyArray<string>) => Effect.Effect<number, RedisCacheError>
  /** One `SCAN` step over this cache's keys (the prefix's namespace; the whole database without one). */
  readonly scan: (cursor: string, count: number) => Effect.Effect<readonly [string, ReadonlyArray<string>], RedisCacheError>
  /**
   * `get` whose answer is made in the same step as the call's bookkeeping: `onRedis(found)` when Redis answered,
   * `orElse(error)` (after the failure was counted and logged) when it did not. For callers with a fallback: one
   * frame less per call than `Effect.match(get(key), ...)`, on the path every healthy read takes.
   */
  readonly getOr: <B>(key: string, onRedis: (found: Option.Option<string>) => B, orElse: (error: RedisCacheError) => B) => Effect.Effect<B>
  /** `set` the same way: `onRedis()` once Redis acknowledged it, `orElse(error)` when it did not. */
  readonly setOr: <B>(
    key: string,
    value: string,
    ttl: Option.Option<Duration.Duration>,
    onRedis: () => B,
    orElse: (error: RedisCacheError) => B
  ) => Effect.Effect<B>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RedisCache extends CacheService<RedisCacheError> {
  /** The breaker of reads (the only one, unless `breakers` asked for two). */
  readonly breaker: CircuitBreaker.CircuitBreaker
  /** The breaker each kind of operation goes through (the same one twice by default). */
  readonly breakers: { readonly reads: CircuitBreaker.CircuitBreaker; readonly writes: CircuitBreaker.CircuitBreaker }
  readonly connection: RedisConnection.RedisConnection
  readonly keyPrefix: string
  readonly unchecked: UncheckedOperations
  /**
   * The breaker of `operation` would reject a call made now (synchronous peek): callers with a fallback skip Redis
   * entirely. With per-shard breakers, `key`'s shard's breaker; without a key, false (each shard decides per call).
   */
  readonly rejecting: (operation: Operation, key?: string) => boolean
  /**
   * Per-shard breakers (a cluster, see `shardBreakers`): each shard's reads and writes breakers, made so far. Empty
   * otherwise.
   */
  readonly shardBreakers: () => ReadonlyMap<string, { readonly reads: CircuitBreaker.CircuitBreaker; readonly writes: CircuitBreaker.CircuitBreaker }>
}

/**
 * @since 0.1.0
 * @category tags
 */
export const RedisCache = Context.GenericTag<RedisCache>("@steadfast/cache/RedisCache")

/** For `describe()`: a policy's retry count, or `"schedule"`. */
const maxRetriesOf = (policy: RetryPolicy): number | string => Schedule.isSchedule(policy) ? "schedule" : policy.maxRetries

/**
 * The `reason` a failure is counted under (`cache_error_total`, `stats.errors`): `circuit_open`, `bulkhead_<reason>`,
 * or the error's own `reason`.
 *
 * @since 0.3.0
 * @category utils
 */
export const reasonOf = (error: RedisCacheError): string =>
  error._tag === "CircuitOpenError"
    ? "circuit_open"
    : error._tag === "BulkheadRejectedError"
    ? `bulkhead_${error.reason}`
    : error.reason

const writes: ReadonlySet<Operation> = new Set(["set", "setMany", "delete", "reconcile"])

const severity: Record<CircuitBreaker.State, number> = { CLOSED: 0, HALF_OPEN: 1, OPEN: 2, ISOLATED: 3 }
/** The state to report for two breakers: the one further from CLOSED. */
const worst = (a: CircuitBreaker.State, b: CircuitBreaker.State) => severity[a] >= severity[b] ? a : b

/** `*`, `?`, `[`, `]` and `\` match literally in a SCAN pattern once escaped. */
const globEscape = (s: string) => s.replace(/[*?[\]\\]/g, (c) => `\\${c}`)

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<RedisCache, never, RedisConnection.RedisConnection | Scope.Scope> =>
  Effect.gen(function*() {
    const connection = yield* RedisConnection.RedisConnection
    const recorder = new Recorder("redis")
    const optionsOf = (own: CircuitBreaker.Options | undefined, base = options.breaker): CircuitBreaker.Options => {
      const merged = { ...base, ...own }
      return {
        ...merged,
        // A `rule` replaces the default threshold (giving both is an error).
        failureThreshold: merged.rule === undefined ? merged.failureThreshold ?? defaultBreaker.failureThreshold : undefined,
        halfOpenAfter: merged.halfOpenAfter ?? defaultBreaker.halfOpenAfter,
        countOverlappingOnce: merged.countOverlappingOnce ?? defaultBreaker.countOverlappingOnce
      }
    }
    const split = options.circuitBreaker === undefined && options.breakers !== undefined
    // `let`: runtime tuning replaces them (they are what `describe()` reports).
    let readOptions = optionsOf(split ? options.breakers?.reads : undefined)
    let writeOptions = split ? optionsOf(options.breakers?.writes) : readOptions
    const breaker = options.circuitBreaker ?? (yield* CircuitBreaker.make(readOptions))
    const writeBreaker = split ? yield* CircuitBreaker.make(writeOptions) : breaker
    const breakers = { reads: breaker, writes: writeBreaker }
    const breakerOf = (operation: Operation) => writes.has(operation) ? writeBreaker : breaker
    // Per-shard breakers (a cluster): made lazily, from the options of the moment, on the cache's runtime (its Clock).
    const shardOf = options.circuitBreaker === undefined && options.shardBreakers !== false ? connection.shardOf : undefined
    const perShard = shardOf !== undefined
    const shardBreakers = new Map<string, { reads: CircuitBreaker.CircuitBreaker; writes: CircuitBreaker.CircuitBreaker }>()
    const runSync = Runtime.runSync(yield* Effect.runtime<never>())
    const shardPair = (shard: string) => {
      let pair = shardBreakers.get(shard)
      if (pair === undefined) {
        const reads = runSync(CircuitBreaker.make(readOptions))
        pair = { reads, writes: split ? runSync(CircuitBreaker.make(writeOptions)) : reads }
        shardBreakers.set(shard, pair)
        for (const [name, watched] of split ? [[`${shard}/reads`, pair.reads], [`${shard}/writes`, pair.writes]] as const : [[shard, reads]] as const) {
          runSync(Scope.extend(watch(name, watched), scope))
        }
      }
      return pair
    }
    /** The breaker of `operation` on `key`: its shard's, or the cache's when there are no shards (or none known yet). */
    const breakerFor = (operation: Operation, key: string | undefined): CircuitBreaker.CircuitBreaker => {
      if (!perShard || key === undefined) return breakerOf(operation)
      const shard = shardOf(key)
      if (shard === undefined) return breakerOf(operation)
      const pair = shardPair(shard)
      return writes.has(operation) ? pair.writes : pair.reads
    }
    const bulkhead = options.bulkhead === undefined ? undefined : yield* Bulkhead.make({ ...options.bulkhead, name: "redis" })
    // `let`: runtime tuning (`tuning`) replaces them.
    let policies = { ...defaultRetry(connection.config), ...options.retry }
    const prefix = options.keyPrefix ?? ""
    const coalesce = options.coalesce ?? true
    const read = coalesce ? connection.getBatched : connection.get
    const write = coalesce ? connection.setBatched : connection.set
    // The callback forms of the coalesced calls, when the connection has them and no bulkhead wraps calls (see
    // `guardedFast`).
    const readNow = coalesce && options.bulkhead === undefined ? connection.unsafeGetBatched : undefined
    const writeNow = coalesce && options.bulkhead === undefined ? connection.unsafeSetBatched : undefined
    const clock = yield* Effect.clock
    /**
     * The time in milliseconds, as a double, for timing calls: `performance.now()` under Effect's own clock (the same
     * monotonic source; its `unsafeCurrentTimeNanos` allocates a BigInt per reading and another per subtraction, three
     * readings per call), the fiber's clock otherwise (`TestClock` in tests).
     */
    const nowMs: () => number = clock === defaultClock ? () => performance.now() : () => Number(clock.unsafeCurrentTimeNanos()) / 1e6
    let logEvery = Duration.toMillis(Duration.decode(options.logInterval ?? Duration.seconds(1)))

    const transitionLog = (change: CircuitBreaker.StateChange) => {
      switch (change.to) {
        case "OPEN":
          return Effect.zipRight(
            Effect.sync(() => CacheMetrics.circuitOpens.unsafeUpdate(1, [])),
            Effect.logWarning("circuit breaker opened: Redis calls fail fast until a probe succeeds")
          )
        case "CLOSED":
          return Effect.logInfo("circuit breaker closed: Redis serves again")
        case "HALF_OPEN":
          return Effect.logInfo("circuit breaker half-open: probing Redis")
        case "ISOLATED":
          return Effect.logWarning("circuit breaker isolated: Redis calls are rejected until it is reset")
      }
    }
    const scope = yield* Effect.scope
    const watch = (name: string, watched: CircuitBreaker.CircuitBreaker) =>
      Effect.flatMap(watched.subscribe, (transitions) =>
        Queue.take(transitions).pipe(
          Effect.flatMap((change) =>
            transitionLog(change).pipe(
              Effect.annotateLogs({
                circuit_breaker: name,
                circuit_breaker_state: change.to,
                circuit_breaker_previous_state: change.from,
                error_count: change.consecutiveFailures
              })
            )
          ),
          Effect.forever,
          Effect.interruptible,
          Effect.forkScoped
        ))

    // Breaker transitions: counted, and logged once each (not once per rejected call).
    for (const [name, watched] of split ? [["reads", breaker], ["writes", writeBreaker]] as const : [["all", breaker]] as const) {
      yield* watch(name, watched)
    }

    // One line per (operation, reason) per window; the lines in between are counted and reported with the next.
    const lastLogged = new Map<string, { at: number; suppressed: number }>()
    const logFailure = (
      operation: Operation,
      error: TransientError | PermanentError | BulkheadRejectedError,
      failedBreaker: CircuitBreaker.CircuitBreaker = breakerOf(operation)
    ) => {
      const id = `${operation}:${error.reason}`
      const now = clock.unsafeCurrentTimeMillis()
      const seen = lastLogged.get(id)
      if (seen && now - seen.at < logEvery) {
        seen.suppressed++
        return Effect.void
      }
      lastLogged.set(id, { at: now, suppressed: 0 })
      return Effect.flatMap(failedBreaker.snapshot, (snapshot) =>
        // A permanent error is a bug or a misconfiguration: loud. A transient one is weather: a warning.
        (error._tag === "PermanentError" ? Effect.logError : Effect.logWarning)("redis operation failed").pipe(
          Effect.annotateLogs({
            operation,
            error_type: error.reason,
            error_class: error._tag,
            error_message: error.message,
            ...(bulkhead === undefined ? {} : { bulkhead_running: bulkhead.unsafeSnapshot().running }),
            error_count: snapshot.consecutiveFailures,
            circuit_breaker_state: snapshot.state,
            suppressed_since_last_log: seen?.suppressed ?? 0
          })
        ))
    }

    /**
     * Breaker, then retry, then counting and timing. The whole call, retries included, stays within the command
     * deadline: each attempt is bounded by the connection, and once the first one failed, the retries race what is
     * left of it.
     *
     * This runs on every cache call, so the healthy case is fused into one frame: while the breaker is CLOSED the
     * admission is taken synchronously (`unsafeAdmit`), and one `matchCauseEffect` settles the permit, records the
     * latency and maps the value. Only a failure (to retry, count and log) or a breaker that is not CLOSED (to probe
     * or reject) takes the general pipeline below.
     */
    // The connection's deadline now (runtime tuning can change it), read when a call needs it: after a failure.
    const budgetMillis = () => Duration.toMillis(connection.commandTimeout())
    // The same slack the connection's deadline sweeper keeps: one tick, for a loaded event loop's late timers.
    const slackMillis = (budget: number) => Math.min(100, Math.max(5, Math.floor(budget / 20)))
    const deadlineError = (operation: Operation, budget: number) => () =>
      new TransientError({
        operation,
        reason: "timeout",
        message: `${operation} exceeded its ${budget} ms deadline (retries included)`,
        outcome: "unknown"
      })

    /** The retries of a call whose first attempt failed with `first`, `start` being the call's start (`nowMs`). */
    const retry = <A>(
      operation: Operation,
      attempt: Effect.Effect<A, RedisCacheError>,
      call: Effect.Effect<A, Errors.RedisFailure>,
      first: RedisCacheError,
      start: number,
      breaker: CircuitBreaker.CircuitBreaker
    ): Effect.Effect<A, RedisCacheError> => {
      const budget = budgetMillis()
      const remaining = () => budget - slackMillis(budget) - (nowMs() - start)
      const policy = policies[operation]
      if (!Schedule.isSchedule(policy) && policy.maxRetries === 0) {
        // A write that never left cannot have run: send it again once a socket is ready, within the deadline.
        if (!writes.has(operation) || first._tag !== "TransientError" || first.outcome !== "not_sent") return Effect.fail(first)
        const left = remaining()
        return left <= 0 ? Effect.fail(first) : breaker.execute(operation, Effect.zipRight(connection.ready, call)).pipe(
          Effect.timeoutFail({ duration: Duration.millis(left), onTimeout: deadlineError(operation, budget) })
        )
      }
      const left = remaining()
      // Less time left than the first retry would sleep: it could never run, so fail now rather than late.
      return left <= (Schedule.isSchedule(policy) ? 0 : Duration.toMillis(policy.baseDelay))
        ? Effect.fail(first)
        : Retry.retryAfterFailure(attempt, policy, first).pipe(
          Effect.timeoutFail({ duration: Duration.millis(left), onTimeout: deadlineError(operation, budget) })
        )
    }

    /**
     * Counts, times and logs a failed call (retries included), then fails with its error, or answers `orElse(error)`
     * when the caller has an answer of its own for failures (the resilient cache's fallback).
     */
    const failed = <B>(
      operation: Operation,
      error: RedisCacheError,
      start: number,
      orElse: ((error: RedisCacheError) => B) | undefined,
      failedBreaker?: CircuitBreaker.CircuitBreaker
    ): Effect.Effect<B, RedisCacheError> => {
      recorder.latency(operation, (nowMs() - start) / 1e3)
      recorder.error(operation, reasonOf(error))
      if (orElse === undefined) {
        return error._tag === "CircuitOpenError" ? Effect.fail(error) : Effect.zipRight(logFailure(operation, error, failedBreaker), Effect.fail(error))
      }
      return error._tag === "CircuitOpenError"
        ? Effect.sync(() => orElse(error))
        : Effect.map(logFailure(operation, error, failedBreaker), () => orElse(error))
    }

    /** A healthy call's bookkeeping, from its answer `a`: records the latency and answers `onSuccess(a)`. */
    const settled = <A, B>(operation: Operation, start: number, onSuccess: (a: A) => B, a: A): B => {
      recorder.latency(operation, (nowMs() - start) / 1e3)
      return onSuccess(a)
    }

    /**
     * A CLOSED call (admitted with `permit`) whose attempt failed with `cause`: the breaker counts it, then the
     * retries, then the failure's bookkeeping (or the caller's `orElse`).
     */
    const closedFailure = <A, B>(
      operation: Operation,
      cause: Cause.Cause<Errors.RedisFailure>,
      first: Effect.Effect<A, Errors.RedisFailure>,
      call: Effect.Effect<A, Errors.RedisFailure>,
      onSuccess: (a: A) => B,
      orElse: ((error: RedisCacheError) => B) | undefined,
      breaker: CircuitBreaker.CircuitBreaker,
      permit: CircuitBreaker.Permit,
      start: number
    ): Effect.Effect<B, RedisCacheError> => {
      const failure = Cause.failureOption(cause)
      if (Option.isNone(failure)) {
        // A defect or an interruption: no outcome for the breaker, and nothing to retry.
        breaker.unsafeRelease(permit)
        return Effect.failCause(cause)
      }
      breaker.unsafeFail(permit, failure.value, nowMs() - start)
      return Effect.matchEffect(retry(operation, breaker.execute(operation, first), call, failure.value, start, breaker), {
        onSuccess: (a) => Effect.sync(() => settled(operation, start, onSuccess, a)),
        onFailure: (error) => failed(operation, error, start, orElse, breaker)
      })
    }

    const guarded = <A, B>(
      operation: Operation,
      call: Effect.Effect<A, Errors.RedisFailure>,
      onSuccess: (a: A) => B,
      orElse?: (error: RedisCacheError) => B,
      key?: string
    ): Effect.Effect<B, RedisCacheError> =>
      Effect.suspend(() => {
        const start = nowMs()
        const breaker = perShard ? breakerFor(operation, key) : breakerOf(operation)
        const succeeded = (a: A) => Effect.succeed(settled(operation, start, onSuccess, a))
        if (breaker.unsafeState() !== "CLOSED") {
          // Admitted while the breaker is not CLOSED, a call is its probe: it waits for the reconnect under way whatever
          // its attempt, rather than be spent on "not connected yet" (ioredis retries up to ~550 ms apart).
          const attempt = breaker.execute(operation, Effect.zipRight(connection.ready, call))
          return Effect.matchEffect(attempt, {
            onSuccess: succeeded,
            onFailure: (first) =>
              Effect.matchEffect(retry(operation, attempt, call, first, start, breaker), {
                onSuccess: succeeded,
                onFailure: (error) => failed(operation, error, start, orElse, breaker)
              })
          })
        }
        // A socket that just dropped reconnects at once: a call made in those few ms waits for it (within its
        // deadline) rather than fail with "not connected", or else each call of the gap would count as one more
        // failure and open the breaker on a single reset. Once reconnecting fails too, calls fail fast again.
        const first = connection.availability() === "reconnecting" ? Effect.zipRight(connection.ready, call) : call
        const permit = breaker.unsafeAdmit(operation) as CircuitBreaker.Permit // CLOSED: always a permit
        return Effect.matchCauseEffect(first, {
          onSuccess: (a) => {
            breaker.unsafeSucceed(permit, breaker.timed ? nowMs() - start : 0)
            return succeeded(a)
          },
          onFailure: (cause) => closedFailure(operation, cause, first, call, onSuccess, orElse, breaker, permit, start)
        })
      })

    /**
     * `guarded` for a coalesced call of `key` the connection can take as a callback (`register`, its
     * `unsafeGetBatched` / `unsafeSetBatched`): the healthy case is two steps (one `async`, resumed with the `sync` that
     * settles it) instead of the four of `guarded`'s (its `suspend`, the match, the connection's `async`, the answer's
     * `succeed`): 1.11-1.14x the throughput at 64 callers (`benchmarks/dist/ab.js`, both orders; benchmarks/README.md,
     * "the coalesced fast path"). Anything else (a breaker not CLOSED, a socket reconnecting, a failure) continues as
     * `guarded` does, with `call(key)` as the call. Both take the key, so a read passes the connection's own functions
     * and allocates no closure for them.
     */
    const guardedFast = <A, B>(
      operation: Operation,
      key: string,
      register: (key: string, onExit: (exit: Exit.Exit<A, Errors.RedisFailure>) => void) => void,
      call: (key: string) => Effect.Effect<A, Errors.RedisFailure>,
      onSuccess: (a: A) => B,
      orElse: ((error: RedisCacheError) => B) | undefined
    ): Effect.Effect<B, RedisCacheError> =>
      Effect.async<B, RedisCacheError>((resume) => {
        const breaker = perShard ? breakerFor(operation, key) : breakerOf(operation)
        if (breaker.unsafeState() !== "CLOSED" || connection.availability() === "reconnecting") {
          return resume(guarded(operation, call(key), onSuccess, orElse, key))
        }
        const start = nowMs()
        const permit = breaker.unsafeAdmit(operation) as CircuitBreaker.Permit // CLOSED: always a permit
        // The outcome is settled on the caller's fiber (a step it resumes with), not in the reply's callback: a caller
        // interrupted meanwhile never runs it, as with `guarded` (the hybrid cache's write fence depends on it).
        register(key, (exit) =>
          resume(
            exit._tag === "Success"
              ? Effect.sync(() => {
                breaker.unsafeSucceed(permit, breaker.timed ? nowMs() - start : 0)
                return settled(operation, start, onSuccess, exit.value)
              })
              : Effect.suspend(() => {
                const effect = call(key)
                return closedFailure(operation, exit.cause, effect, effect, onSuccess, orElse, breaker, permit, start)
              })
          )
        )
      })

    // ---- Runtime tuning ----------------------------------------------------------------------------------------
    const applyTuning = (tuning: Tuning) =>
      Effect.gen(function*() {
        // Validate everything first: a breaker made from each breaker's options, each policy's schedule built.
        const base = tuning.breaker ?? options.breaker
        const nextRead = optionsOf(split ? tuning.breakers?.reads ?? options.breakers?.reads : undefined, base)
        const nextWrite = split ? optionsOf(tuning.breakers?.writes ?? options.breakers?.writes, base) : nextRead
        const problems: Array<string> = []
        const ownsBreakers = options.circuitBreaker === undefined
        if (ownsBreakers) {
          for (const candidate of split ? [nextRead, nextWrite] : [nextRead]) {
            const exit = yield* Effect.exit(CircuitBreaker.make(candidate))
            if (exit._tag === "Failure") problems.push(Cause.pretty(exit.cause).split("\n")[0]!)
          }
        }
        const nextPolicies = { ...defaultRetry(connection.config), ...options.retry, ...tuning.retry }
        for (const [operation, policy] of Object.entries(nextPolicies)) {
          if (Schedule.isSchedule(policy)) continue
          try {
            Retry.schedule(policy)
          } catch (error) {
            problems.push(`retry.${operation}: ${error instanceof Error ? error.message : String(error)}`)
          }
        }
        let nextLogEvery = logEvery
        try {
          nextLogEvery = Duration.toMillis(Duration.decode(tuning.logInterval ?? options.logInterval ?? Duration.seconds(1)))
          if (!(nextLogEvery >= 0)) problems.push(`logInterval must not be negative`)
        } catch {
          problems.push(`logInterval is not a valid duration: ${String(tuning.logInterval)}`)
        }
        const nextTimeout = RedisConfig.commandTimeoutFrom(tuning.commandTimeout ?? connection.config.commandTimeout)
        if (Either.isLeft(nextTimeout)) problems.push(String(nextTimeout.left))
        if (problems.length > 0 || Either.isLeft(nextTimeout)) {
          return yield* Effect.logError("cache tuning rejected: the cache keeps its settings").pipe(
            Effect.annotateLogs({ problems: problems.join("; ") })
          )
        }
        // Valid: apply in one step (the reconfigures are synchronous inside, and nothing here yields between them).
        if (ownsBreakers) {
          yield* Effect.orDie(breaker.reconfigure(nextRead))
          if (split) yield* Effect.orDie(writeBreaker.reconfigure(nextWrite))
          for (const pair of shardBreakers.values()) {
            yield* Effect.orDie(pair.reads.reconfigure(nextRead))
            if (split) yield* Effect.orDie(pair.writes.reconfigure(nextWrite))
          }
        }
        if (ownsBreakers) {
          readOptions = nextRead
          writeOptions = nextWrite
        }
        policies = nextPolicies
        logEvery = nextLogEvery
        yield* Effect.orDie(connection.setCommandTimeout(nextTimeout.right))
        yield* Effect.logInfo("cache tuning applied").pipe(Effect.annotateLogs({ ...describe(), tuned_breakers: ownsBreakers }))
      })
    /** `guarded`, inside the bulkhead when there is one: a rejected call is counted and answered like a failure. */
    const guard = <A, B>(
      operation: Operation,
      call: Effect.Effect<A, Errors.RedisFailure>,
      onSuccess: (a: A) => B,
      orElse?: (error: RedisCacheError) => B,
      key?: string
    ): Effect.Effect<B, RedisCacheError> => {
      if (bulkhead === undefined) return guarded(operation, call, onSuccess, orElse, key)
      const inner = guarded(operation, call, onSuccess, orElse, key)
      return Effect.suspend(() => {
        const start = nowMs()
        return Effect.catchTag(bulkhead.execute(inner), "BulkheadRejectedError", (error) => failed(operation, error, start, orElse))
      })
    }

    const found = (value: string | null): Option.Option<string> => {
      if (value === null) {
        recorder.miss()
        return Option.none()
      }
      recorder.hit()
      return Option.some(value)
    }
    const foundMany = (values: ReadonlyArray<string | null>) => {
      let hits = 0
      const out = values.map((v) => (v === null ? Option.none() : (hits++, Option.some(v))))
      recorder.hit(hits)
      recorder.miss(values.length - hits)
      return out
    }
    const unit = () => undefined
    const redisKeyOf = (key: string) => prefix + key
    const prefixed = (keys: ReadonlyArray<string>) => prefix === "" ? keys : keys.map((k) => prefix + k)
    const pattern = `${globEscape(prefix)}*`

    const health: Effect.Effect<Health> = Effect.gen(function*() {
      const start = nowMs()
      const ping = yield* Effect.either(connection.ping)
      const latencyMs = nowMs() - start
      let circuitState = worst(breaker.unsafeState(), writeBreaker.unsafeState())
      for (const pair of shardBreakers.values()) circuitState = worst(circuitState, worst(pair.reads.unsafeState(), pair.writes.unsafeState()))
      return ping._tag === "Right"
        ? { status: "healthy", redis: "up", circuitState, latencyMs: Option.some(latencyMs), error: Option.none() }
        : { status: "degraded", redis: "down", circuitState, latencyMs: Option.none(), error: Option.some(ping.left.reason) }
    })

    const describe = () => ({
      ...RedisConfig.describe(connection.config),
      // The deadline now (runtime tuning may have changed it since start-up).
      commandTimeoutMs: Duration.toMillis(connection.commandTimeout()),
      keyPrefix: prefix,
      coalesce,
      breakers: (perShard ? "per-shard " : "") + (split ? "reads-writes" : options.circuitBreaker === undefined ? "one" : "shared"),
      breakerRule: breaker.unsafeSnapshot().rule,
      // A shared breaker was made with options this cache does not know: only its rule is reported (the cache's own
      // breaker options, unused then, would describe a breaker that does not exist).
      ...(options.circuitBreaker !== undefined
        ? {}
        : {
          ...(readOptions.failureThreshold === undefined ? {} : { breakerFailureThreshold: readOptions.failureThreshold }),
          breakerHalfOpenAfterMs: Duration.toMillis(Duration.decode(readOptions.halfOpenAfter!)),
          breakerCountOverlappingOnce: readOptions.countOverlappingOnce!
        }),
      ...(split
        ? {
          writeBreakerRule: writeBreaker.unsafeSnapshot().rule,
          writeBreakerHalfOpenAfterMs: Duration.toMillis(Duration.decode(writeOptions.halfOpenAfter!))
        }
        : {}),
      getMaxRetries: maxRetriesOf(policies.get),
      getManyMaxRetries: maxRetriesOf(policies.getMany),
      setMaxRetries: maxRetriesOf(policies.set),
      setManyMaxRetries: maxRetriesOf(policies.setMany),
      deleteMaxRetries: maxRetriesOf(policies.delete),
      ...(bulkhead === undefined ? {} : (({ maxConcurrent, maxQueue, queueTimeout }) => ({
        bulkheadMaxConcurrent: maxConcurrent,
        bulkheadMaxQueue: maxQueue,
        ...(Duration.isFinite(queueTimeout) ? { bulkheadQueueTimeoutMs: Duration.toMillis(queueTimeout) } : {})
      }))(bulkhead.unsafeSnapshot()))
    })

    /**
     * Per-shard breakers: the indexes of `redisKeys` by shard, or undefined when they all go through one breaker (no
     * shards, or one shard), so the call takes the single-breaker path.
     */
    const splitByShard = (redisKeys: ReadonlyArray<string>): Array<Array<number>> | undefined => {
      if (!perShard || redisKeys.length < 2) return undefined
      const groups = new Map<string | undefined, Array<number>>()
      redisKeys.forEach((k, i) => {
        const shard = shardOf(k)
        const group = groups.get(shard)
        if (group === undefined) groups.set(shard, [i])
        else group.push(i)
      })
      return groups.size < 2 ? undefined : [...groups.values()]
    }
    /** Runs `part` on each shard's keys through that shard's breaker, at once; fails if one part fails. */
    const perShardParts = <A>(groups: Array<Array<number>>, part: (indexes: Array<number>) => Effect.Effect<A, RedisCacheError>) =>
      Effect.forEach(groups, part, { concurrency: "unbounded" })

    /** A guarded read of `redisKey`, answering `onSuccess` of Redis' reply. */
    const getOr = <B>(redisKey: string, onSuccess: (value: string | null) => B, orElse: ((error: RedisCacheError) => B) | undefined) =>
      readNow !== undefined
        ? guardedFast("get", redisKey, readNow, read, onSuccess, orElse)
        : guard("get", read(redisKey), onSuccess, orElse, redisKey)

    const unchecked: UncheckedOperations = {
      get: (key) => getOr(prefix + key, found, undefined),
      getOr: (key, onRedis, orElse) =>
        getOr(prefix + key, (value) => onRedis(found(value)), orElse) as Effect.Effect<ReturnType<typeof onRedis>>,
      setOr: (key, value, ttl, onRedis, orElse) => {
        const redisKey = prefix + key
        return (writeNow !== undefined
          ? guardedFast("set", redisKey, (k, onExit) => writeNow(k, value, ttl, onExit), (k) => write(k, value, ttl), onRedis, orElse)
          : guard("set", write(redisKey, value, ttl), onRedis, orElse, redisKey)) as Effect.Effect<ReturnType<typeof onRedis>>
      },
      getMany: (keys) => {
        if (keys.length === 0) return Effect.succeed([])
        const redisKeys = prefixed(keys)
        const groups = splitByShard(redisKeys)
        if (groups === undefined) return guard("getMany", connection.mget(redisKeys), foundMany, undefined, redisKeys[0])
        return Effect.map(
          perShardParts(groups, (indexes) =>
            guard("getMany", connection.mget(indexes.map((i) => redisKeys[i]!)), (values) => values, undefined, redisKeys[indexes[0]!])),
          (parts) => {
            const values: Array<string | null> = new Array(keys.length)
            groups.forEach((indexes, g) => indexes.forEach((i, j) => (values[i] = parts[g]![j] ?? null)))
            return foundMany(values)
          }
        )
      },
      set: (key, value, ttl) => guard("set", write(prefix + key, value, ttl), unit, undefined, prefix + key),
      setMany: (entries, ttl) => {
        if (entries.length === 0) return Effect.void
        const redisEntries = prefix === "" ? entries : entries.map(([k, v]) => [prefix + k, v] as const)
        const groups = splitByShard(redisEntries.map(([k]) => k))
        if (groups === undefined) return guard("setMany", connection.mset(redisEntries, ttl), unit, undefined, redisEntries[0]![0])
        return Effect.asVoid(perShardParts(groups, (indexes) =>
          guard("setMany", connection.mset(indexes.map((i) => redisEntries[i]!), ttl), unit, undefined, redisEntries[indexes[0]!]![0])))
      },
      delete: (key) => guard("delete", connection.del([prefix + key]), (n) => n > 0, undefined, prefix + key),
      deleteMany: (keys) => {
        if (keys.length === 0) return Effect.succeed(0)
        const redisKeys = prefixed(keys)
        const groups = splitByShard(redisKeys)
        if (groups === undefined) return guard("reconcile", connection.del(redisKeys), (n) => n, undefined, redisKeys[0])
        return Effect.map(
          perShardParts(groups, (indexes) =>
            guard("reconcile", connection.del(indexes.map((i) => redisKeys[i]!)), (n) => n, undefined, redisKeys[indexes[0]!])),
          (counts) => counts.reduce((a, b) => a + b, 0)
        )
      },
      scan: (cursor, count) =>
        guard("reconcile", connection.scan(cursor, pattern, count), ([next, keys]) =>
          [next, prefix === "" ? keys : keys.map((k) => k.slice(prefix.length))] as const)
    }

    const stats = Effect.sync((): Stats => {
      const r = breaker.unsafeSnapshot()
      const w = split ? writeBreaker.unsafeSnapshot() : r
      let state = worst(r.state, w.state)
      let failures = Math.max(r.consecutiveFailures, w.consecutiveFailures)
      let opens = split ? r.opens + w.opens : r.opens
      let shards: Record<string, { reads: CircuitBreaker.State; writes: CircuitBreaker.State; opens: number }> | undefined
      if (perShard) {
        shards = {}
        for (const [name, pair] of shardBreakers) {
          const sr = pair.reads.unsafeSnapshot()
          const sw = split ? pair.writes.unsafeSnapshot() : sr
          shards[name] = { reads: sr.state, writes: sw.state, opens: split ? sr.opens + sw.opens : sr.opens }
          state = worst(state, worst(sr.state, sw.state))
          failures = Math.max(failures, sr.consecutiveFailures, sw.consecutiveFailures)
          opens += shards[name].opens
        }
      }
      return {
        backend: "redis",
        circuitState: state,
        failureCount: failures,
        circuitOpens: opens,
        ...(split ? { circuits: { reads: r.state, writes: w.state } } : {}),
        ...(shards === undefined ? {} : { shards }),
        hits: recorder.hits,
        misses: recorder.misses,
        fallbacks: 0,
        errors: recorder.errorsByReason(),
        memory: undefined,
        reconciliation: undefined,
        config: describe()
      }
    })

    const cache = checked<RedisCacheError>({ ...unchecked, health, stats })
    if (options.tuning !== undefined) {
      // `changes` starts with the current value: a tuning set before the cache was built applies at once.
      yield* options.tuning.changes.pipe(
        Stream.runForEach(applyTuning),
        Effect.interruptible,
        Effect.forkScoped
      )
    }

    return RedisCache.of({
      ...cache,
      breaker,
      breakers,
      connection,
      keyPrefix: prefix,
      unchecked,
      rejecting: perShard
        ? (operation, key) => key !== undefined && breakerFor(operation, redisKeyOf(key)).rejectsNow()
        : split
        ? (operation) => breakerOf(operation).rejectsNow()
        : breaker.rejectsNow,
      shardBreakers: () => shardBreakers
    })
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<RedisCache, never, RedisConnection.RedisConnection> =>
  Layer.scoped(RedisCache, make(options))
