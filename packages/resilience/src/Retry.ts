/**
 * Retry policies: plain, tunable values turned into an Effect `Schedule`.
 *
 * A policy retries **only `TransientError`s**: a `PermanentError` (retrying a wrong password only hammers the server)
 * or a `CircuitOpenError` (the breaker opened mid-retry) stops at once and is returned as is.
 *
 * Delays are exponential (`baseDelay * factor^n`), optionally jittered with Effect's `Schedule.jittered`
 * (each delay multiplied by a random factor in `[0.8, 1.2)`), then capped at `maxDelay`: `maxDelay` is a hard bound
 * even with jitter.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Schedule from "effect/Schedule"
import { isTransientError } from "./Errors.js"
import { decodeDuration, illegal } from "./internal/validate.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Policy {
  /** Retries after the first attempt (so at most `maxRetries + 1` attempts). Integer >= 0. */
  readonly maxRetries: number
  /** Delay before the first retry. Finite. */
  readonly baseDelay: Duration.Duration
  /** Upper bound of every delay, jitter included. */
  readonly maxDelay: Duration.Duration
  /** Growth of the delay between retries. Finite, >= 1. */
  readonly factor: number
  /** Jitter each delay with `Schedule.jittered` (x0.8 to x1.2) before the `maxDelay` cap. */
  readonly jitter: boolean
}

/**
 * The input of {@link make}: every field optional, durations as `DurationInput`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PolicyOptions {
  /** Default `2`. */
  readonly maxRetries?: number | undefined
  /** Default `100 millis`. */
  readonly baseDelay?: Duration.DurationInput | undefined
  /** Default `2 seconds`. */
  readonly maxDelay?: Duration.DurationInput | undefined
  /** Default `2`. */
  readonly factor?: number | undefined
  /** Default `true`. */
  readonly jitter?: boolean | undefined
}

const validate = (policy: Policy): Policy => {
  if (!Number.isInteger(policy.maxRetries) || policy.maxRetries < 0) {
    throw illegal(`Retry maxRetries must be an integer >= 0, got ${policy.maxRetries}`)
  }
  if (!Duration.isFinite(policy.baseDelay)) {
    throw illegal(`Retry baseDelay must be finite, got ${Duration.format(policy.baseDelay)}`)
  }
  if (!Number.isFinite(policy.factor) || policy.factor < 1) {
    throw illegal(`Retry factor must be a finite number >= 1, got ${policy.factor}`)
  }
  return policy
}

/**
 * Makes a policy from partial options. Defaults: `maxRetries` 2, `baseDelay` 100 millis, `factor` 2,
 * `maxDelay` 2 seconds, `jitter` true.
 *
 * Invalid values (a negative or fractional `maxRetries`, a negative / NaN / malformed / infinite `baseDelay`, a
 * negative or malformed `maxDelay`, a `factor` below 1 or not finite) are configuration bugs: `make` **throws** a
 * `Cause.IllegalArgumentException`, so a bad policy fails at startup, not on the first Redis error.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: PolicyOptions = {}): Policy =>
  validate({
    maxRetries: options.maxRetries ?? 2,
    baseDelay: decodeDuration("Retry baseDelay", options.baseDelay ?? Duration.millis(100)),
    maxDelay: decodeDuration("Retry maxDelay", options.maxDelay ?? Duration.seconds(2)),
    factor: options.factor ?? 2,
    jitter: options.jitter ?? true
  })

/**
 * The policy that never retries.
 *
 * @since 0.1.0
 * @category constructors
 */
export const none: Policy = make({ maxRetries: 0, jitter: false })

const cache = new WeakMap<Policy, Schedule.Schedule<unknown, unknown>>()

/**
 * The `Schedule` of a policy: exponential, jittered when `jitter` is on, each delay capped at `maxDelay`, at most
 * `maxRetries` recurrences, and only while the error is a `TransientError`. Schedules are cached per policy object.
 * Throws a `Cause.IllegalArgumentException` for a hand-built invalid policy.
 *
 * @since 0.1.0
 * @category schedules
 */
export const schedule = (policy: Policy): Schedule.Schedule<unknown, unknown> => {
  const cached = cache.get(policy)
  if (cached !== undefined) return cached
  validate(policy)
  const base = Schedule.exponential(policy.baseDelay, policy.factor)
  const maxDelay = policy.maxDelay
  const built = (policy.jitter ? Schedule.jittered(base) : base).pipe(
    Schedule.modifyDelay((_, delay) => Duration.min(delay, maxDelay)),
    Schedule.intersect(Schedule.recurs(policy.maxRetries)),
    Schedule.whileInput(isTransientError)
  )
  cache.set(policy, built)
  return built
}

/**
 * Retries `self` according to `policy` (see {@link schedule}). The final error is the last attempt's error.
 *
 * @example
 * ```ts
 * import { Retry } from "@steadfast/resilience"
 *
 * const get = Retry.retry(redisGet, Retry.make({ maxRetries: 3 }))
 * const get2 = redisGet.pipe(Retry.retry(Retry.make({ maxRetries: 3 })))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const retry: {
  (policy: Policy): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, policy: Policy): Effect.Effect<A, E, R>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, policy: Policy): Effect.Effect<A, E, R> =>
    // `schedule` validates (and caches) now, so a hand-built invalid policy fails where it is used, not on the first
    // failure.
    policy.maxRetries === 0 ? self : (schedule(policy), retryLazily(self, policy))
)

/**
 * Continues retrying `self` after it already failed once with `first`: sleeps the policy's first delay, runs it
 * again, and so on. `retry` is `catchAll(self, (first) => retryAfterFailure(self, policy, first))`; callers that
 * must bound the whole call (a deadline that includes the retries) race this part against what is left.
 *
 * @since 0.1.0
 * @category combinators
 */
export const retryAfterFailure = <A, E, R>(self: Effect.Effect<A, E, R>, policy: Policy, first: E): Effect.Effect<A, E, R> =>
  policy.maxRetries === 0 || !isTransientError(first)
    ? Effect.fail(first)
    : Effect.flatMap(Schedule.driver(schedule(policy)), (driver) => {
      const loop = (error: E): Effect.Effect<A, E, R> =>
        Effect.matchEffect(driver.next(error), {
          onFailure: () => Effect.fail(error),
          onSuccess: () => Effect.catchAll(self, loop)
        })
      return loop(first)
    })

/**
 * `Effect.retry` builds the schedule's driver (a `Ref` and its state) before the first attempt, on every call; this
 * is a cache's hot path, where the first attempt nearly always succeeds. Here the first attempt runs bare and the
 * driver is built after its first failure: the same delays and stop rules, for one `catchAll` on the happy path.
 */
const retryLazily = <A, E, R>(self: Effect.Effect<A, E, R>, policy: Policy) =>
  Effect.catchAll(self, (first) => retryAfterFailure(self, policy, first))
