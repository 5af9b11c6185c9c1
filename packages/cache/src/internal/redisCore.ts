/**
 * The Redis path shared by the strict and the resilient cache: each operation goes through the circuit breaker,
 * is retried by its own policy, counted, timed and (rate-limited) logged. Inputs are assumed valid: the public
 * facades check them first, so a bad key never reaches Redis, trips the breaker or triggers a fallback.
 *
 * @internal
 */
import { CircuitBreaker, type CircuitOpenError, type Errors, type PermanentError, Retry, TransientError } from "@steadfast/resilience"
import { RedisConfig, RedisConnection } from "@steadfast/redis"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { Health } from "../Cache.js"
import * as CacheMetrics from "../CacheMetrics.js"
import type { Unchecked } from "./checked.js"
import type { Recorder } from "./recorder.js"

export type Operation = "get" | "getMany" | "set" | "setMany" | "delete"
export type RedisCacheError = TransientError | PermanentError | CircuitOpenError

export interface CoreOptions {
  readonly keyPrefix?: string | undefined
  readonly retry?: Partial<Record<Operation, Retry.Policy>> | undefined
  readonly breaker?: CircuitBreaker.Options | undefined
  /** A breaker to share (e.g. across caches on one connection); overrides `breaker`. */
  readonly circuitBreaker?: CircuitBreaker.CircuitBreaker | undefined
  /**
   * Coalesce concurrent `get`s into one `MGET` and concurrent `set`s into one `MSET` or pipeline (default true; see
   * `RedisConnection.getBatched` / `setBatched`). With it, a key holding a non-string value reads as a miss instead of
   * failing with `wrong_type`.
   */
  readonly coalesce?: boolean | undefined
  /** At most one log line per operation and reason in this window (the rest are counted). Default 1 second. */
  readonly logInterval?: Duration.DurationInput | undefined
}

/**
 * Five consecutive failures, half-open after five seconds, and calls that fail together (on one reset socket) count
 * once: a single "connection reset by peer" must not send every caller to the fallback.
 */
export const defaultBreaker = { failureThreshold: 5, halfOpenAfter: Duration.seconds(5), countOverlappingOnce: true } as const

/** GET and MGET retried with the configured count and base delay (as the original service did); writes not. */
export const defaultRetry = (config: RedisConfig.RedisConfig): Record<Operation, Retry.Policy> => {
  const reads = Retry.make({ maxRetries: config.maxRetries, baseDelay: config.retryDelay })
  return { get: reads, getMany: reads, set: Retry.none, setMany: Retry.none, delete: Retry.none }
}

/** The unchecked operations (see `checked.ts`; `health` is a deadline-bound PING), plus what the facades show. */
export interface Core extends Omit<Unchecked<RedisCacheError>, "stats"> {
  readonly connection: RedisConnection.RedisConnection
  readonly breaker: CircuitBreaker.CircuitBreaker
  /** The breaker would reject a call made now (synchronous peek): callers with a fallback skip Redis entirely. */
  readonly rejecting: () => boolean
  readonly describe: () => Record<string, string | number | boolean>
}

export const reasonOf = (error: RedisCacheError): string =>
  error._tag === "CircuitOpenError" ? "circuit_open" : error.reason

export const makeCore = (
  options: CoreOptions,
  recorder: Recorder
): Effect.Effect<Core, never, RedisConnection.RedisConnection | Scope.Scope> =>
  Effect.gen(function*() {
    const connection = yield* RedisConnection.RedisConnection
    const breakerOptions = {
      ...options.breaker,
      failureThreshold: options.breaker?.failureThreshold ?? defaultBreaker.failureThreshold,
      halfOpenAfter: options.breaker?.halfOpenAfter ?? defaultBreaker.halfOpenAfter,
      countOverlappingOnce: options.breaker?.countOverlappingOnce ?? defaultBreaker.countOverlappingOnce
    }
    const breaker = options.circuitBreaker ?? (yield* CircuitBreaker.make(breakerOptions))
    const policies = { ...defaultRetry(connection.config), ...options.retry }
    const prefix = options.keyPrefix ?? ""
    const coalesce = options.coalesce ?? true
    const read = coalesce ? connection.getBatched : connection.get
    const write = coalesce ? connection.setBatched : connection.set
    const clock = yield* Effect.clock
    const logEvery = Duration.toMillis(Duration.decode(options.logInterval ?? Duration.seconds(1)))

    // Breaker transitions: counted, and logged once each (not once per rejected call).
    const transitions = yield* breaker.subscribe
    yield* Queue.take(transitions).pipe(
      Effect.flatMap((change) =>
        (change.to === "OPEN"
          ? Effect.logWarning("circuit breaker opened: Redis calls fail fast until a probe succeeds").pipe(
            Effect.tap(() => Effect.sync(() => CacheMetrics.circuitOpens.unsafeUpdate(1, [])))
          )
          : change.to === "CLOSED"
          ? Effect.logInfo("circuit breaker closed: Redis serves again")
          : Effect.logInfo("circuit breaker half-open: probing Redis")).pipe(
            Effect.annotateLogs({
              circuit_breaker_state: change.to,
              circuit_breaker_previous_state: change.from,
              error_count: change.consecutiveFailures
            })
          )
      ),
      Effect.forever,
      Effect.interruptible,
      Effect.forkScoped
    )

    // One line per (operation, reason) per window; the lines in between are counted and reported with the next.
    const lastLogged = new Map<string, { at: number; suppressed: number }>()
    const logFailure = (operation: Operation, error: TransientError | PermanentError) => {
      const id = `${operation}:${error.reason}`
      const now = clock.unsafeCurrentTimeMillis()
      const seen = lastLogged.get(id)
      if (seen && now - seen.at < logEvery) {
        seen.suppressed++
        return Effect.void
      }
      lastLogged.set(id, { at: now, suppressed: 0 })
      return Effect.flatMap(breaker.snapshot, (snapshot) =>
        // A permanent error is a bug or a misconfiguration: loud. A transient one is weather: a warning.
        (error._tag === "PermanentError" ? Effect.logError : Effect.logWarning)("redis operation failed").pipe(
          Effect.annotateLogs({
            operation,
            error_type: error.reason,
            error_class: error._tag,
            error_message: error.message,
            error_count: snapshot.consecutiveFailures,
            circuit_breaker_state: snapshot.state,
            suppressed_since_last_log: seen?.suppressed ?? 0
          })
        ))
    }

    /**
     * Breaker, then retry, then counting and timing. The happy path adds one frame (`matchEffect`) to the breaker:
     * this runs on every cache call. The whole call, retries included, stays within the command deadline: each
     * attempt is bounded by the connection, and once the first one failed, the retries race what is left of it.
     */
    const budgetMillis = Duration.toMillis(connection.config.commandTimeout)
    // The same slack the connection's deadline sweeper keeps: one tick, for a loaded event loop's late timers.
    const slackMillis = Math.min(100, Math.max(5, Math.floor(budgetMillis / 20)))
    const guard = <A, B>(
      operation: Operation,
      call: Effect.Effect<A, Errors.RedisFailure>,
      onSuccess: (a: A) => B
    ): Effect.Effect<B, RedisCacheError> =>
      Effect.suspend(() => {
        const start = clock.unsafeCurrentTimeNanos()
        const elapsedMillis = () => Number(clock.unsafeCurrentTimeNanos() - start) / 1e6
        // Admitted while the breaker is not CLOSED, a call is its probe: let it wait for the reconnect under way
        // rather than spend the probe on "not connected yet" (ioredis retries up to ~550 ms apart).
        const attempt = breaker.execute(
          operation,
          breaker.unsafeState() === "CLOSED" ? call : Effect.zipRight(connection.ready, call)
        )
        const policy = policies[operation]
        const retried = policy.maxRetries === 0 ? attempt : Effect.catchAll(attempt, (first) => {
          const remaining = budgetMillis - slackMillis - elapsedMillis()
          // Less time left than the first retry would sleep: it could never run, so fail now rather than late.
          return remaining <= Duration.toMillis(policy.baseDelay)
            ? Effect.fail(first)
            : Retry.retryAfterFailure(attempt, policy, first).pipe(
            Effect.timeoutFail({
              duration: Duration.millis(remaining),
              onTimeout: () =>
                new TransientError({
                  operation,
                  reason: "timeout",
                  message: `${operation} exceeded its ${budgetMillis} ms deadline (retries included)`
                })
            })
          )
        })
        return Effect.matchEffect(retried, {
          onSuccess: (a) => {
            recorder.latency(operation, elapsedMillis() / 1000)
            return Effect.succeed(onSuccess(a))
          },
          onFailure: (error: RedisCacheError): Effect.Effect<B, RedisCacheError> => {
            recorder.latency(operation, elapsedMillis() / 1000)
            recorder.error(operation, reasonOf(error))
            return error._tag === "CircuitOpenError"
              ? Effect.fail(error)
              : Effect.zipRight(logFailure(operation, error), Effect.fail(error))
          }
        })
      })

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

    const health: Effect.Effect<Health> = Effect.gen(function*() {
      const start = clock.unsafeCurrentTimeNanos()
      const ping = yield* Effect.either(connection.ping)
      const latencyMs = Number(clock.unsafeCurrentTimeNanos() - start) / 1e6
      const circuitState = yield* breaker.state
      return ping._tag === "Right"
        ? { status: "healthy", redis: "up", circuitState, latencyMs: Option.some(latencyMs), error: Option.none() }
        : { status: "degraded", redis: "down", circuitState, latencyMs: Option.none(), error: Option.some(ping.left.reason) }
    })

    const describe = () => ({
      ...RedisConfig.describe(connection.config),
      keyPrefix: prefix,
      coalesce: options.coalesce ?? true,
      breakerFailureThreshold: breakerOptions.failureThreshold,
      breakerHalfOpenAfterMs: Duration.toMillis(Duration.decode(breakerOptions.halfOpenAfter)),
      breakerCountOverlappingOnce: breakerOptions.countOverlappingOnce,
      getMaxRetries: policies.get.maxRetries,
      getManyMaxRetries: policies.getMany.maxRetries,
      setMaxRetries: policies.set.maxRetries,
      setManyMaxRetries: policies.setMany.maxRetries,
      deleteMaxRetries: policies.delete.maxRetries
    })

    return {
      connection,
      breaker,
      rejecting: breaker.rejectsNow,
      get: (key) => guard("get", read(prefix + key), found),
      getMany: (keys) =>
        keys.length === 0
          ? Effect.succeed([])
          : guard("getMany", connection.mget(prefix === "" ? keys : keys.map((k) => prefix + k)), foundMany),
      set: (key, value, ttl) => guard("set", write(prefix + key, value, ttl), unit),
      setMany: (entries, ttl) =>
        entries.length === 0 ? Effect.void : guard(
          "setMany",
          connection.mset(prefix === "" ? entries : entries.map(([k, v]) => [prefix + k, v] as const), ttl),
          unit
        ),
      delete: (key) => guard("delete", connection.del([prefix + key]), (n) => n > 0),
      health,
      describe
    }
  })

/** The breaker part of `stats`. */
export const breakerStats = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.map(breaker.snapshot, (s) => ({
    circuitState: s.state,
    failureCount: s.consecutiveFailures,
    circuitOpens: s.opens
  }))
