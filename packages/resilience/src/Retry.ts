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
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
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
    // failure; `maxRetries: 0` included (as `RetryBudget.retry` does).
    (schedule(policy), policy.maxRetries === 0 ? self : retryLazily(self, policy))
)

/**
 * Continues retrying `self` after it already failed once with `first`: sleeps the policy's first delay, runs it
 * again, and so on. `policy` may also be any `Schedule` over the errors (the caller's own delays and stop rule):
 * either way only a `TransientError` is retried. `retry` is `catchAll(self, (first) => retryAfterFailure(self, policy, first))`; callers that
 * must bound the whole call (a deadline that includes the retries) race this part against what is left.
 *
 * @since 0.1.0
 * @category combinators
 */
export const retryAfterFailure = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  policy: Policy | Schedule.Schedule<unknown, E>,
  first: E
): Effect.Effect<A, E, R> => {
  // A policy is validated (and cached) here, whatever the error: a hand-built invalid one fails where it is used.
  const built = Schedule.isSchedule(policy) ? undefined : schedule(policy)
  return !isTransientError(first) || (!Schedule.isSchedule(policy) && policy.maxRetries === 0)
    ? Effect.fail(first)
    : Effect.flatMap(
      Schedule.driver(built ?? Schedule.whileInput(policy as Schedule.Schedule<unknown, E>, isTransientError)),
      (driver) => {
        const loop = (error: E): Effect.Effect<A, E, R> =>
          Effect.matchEffect(driver.next(error), {
            onFailure: () => Effect.fail(error),
            onSuccess: () => Effect.catchAll(self, loop)
          })
        return loop(first)
      }
    )
}

/**
 * `Effect.retry` builds the schedule's driver (a `Ref` and its state) before the first attempt, on every call; this
 * is a cache's hot path, where the first attempt nearly always succeeds. Here the first attempt runs bare and the
 * driver is built after its first failure: the same delays and stop rules, for one `catchAll` on the happy path.
 */
const retryLazily = <A, E, R>(self: Effect.Effect<A, E, R>, policy: Policy) =>
  Effect.catchAll(self, (first) => retryAfterFailure(self, policy, first))

/**
 * The input of {@link decorrelatedJitter} and {@link fullJitter}.
 *
 * @since 0.3.0
 * @category models
 */
export interface JitterOptions {
  /** The smallest delay (decorrelated) or the first delay's upper bound (full). A finite duration > 0. */
  readonly base: Duration.DurationInput
  /** Upper bound of every delay. A finite duration >= `base`. */
  readonly cap: Duration.DurationInput
}

/**
 * The input of {@link fullJitter}.
 *
 * @since 0.3.0
 * @category models
 */
export interface FullJitterOptions extends JitterOptions {
  /** Growth of the exponential bound between retries. Finite, >= 1. Default `2`. */
  readonly factor?: number | undefined
}

const jitterBounds = (name: string, options: JitterOptions): { readonly base: number; readonly cap: number } => {
  const base = Duration.toMillis(decodeDuration(`Retry.${name} base`, options.base))
  const cap = Duration.toMillis(decodeDuration(`Retry.${name} cap`, options.cap))
  if (!(base > 0) || !Number.isFinite(base)) {
    throw illegal(`Retry.${name} base must be a finite duration > 0, got ${Duration.format(Duration.millis(base))}`)
  }
  if (!Number.isFinite(cap) || cap < base) {
    throw illegal(`Retry.${name} cap must be a finite duration >= base, got ${Duration.format(Duration.millis(cap))}`)
  }
  return { base, cap }
}

/** A schedule that recurs for ever, each delay chosen by `next(state)` (millis), outputting the delay. */
const delaysWithState = <S>(
  initial: S,
  next: (state: S) => Effect.Effect<readonly [S, number]>
): Schedule.Schedule<Duration.Duration, unknown> =>
  Schedule.makeWithState(initial, (now, _, state) =>
    Effect.map(next(state), ([nextState, delay]) =>
      [
        nextState,
        Duration.millis(delay),
        ScheduleDecision.continueWith(ScheduleInterval.after(now + delay))
      ] as const))

/**
 * AWS's "decorrelated jitter" as a `Schedule`: each delay is `min(cap, random_between(base, previous * 3))`,
 * starting from `previous = base`. Delays grow roughly like an exponential backoff but stay spread out, so clients
 * that failed together do not retry together (see "Exponential Backoff And Jitter", AWS Architecture Blog). Every
 * delay is in `[base, cap]`.
 *
 * The randomness comes from Effect's `Random` service: `Effect.withRandom(Random.make(seed))` makes the delays
 * reproducible, and `Random.fixed` makes them exact in tests. The schedule recurs for ever and retries any error,
 * and its output is the delay: bound and filter it yourself (see the example). **Throws** a
 * `Cause.IllegalArgumentException` if `base` is not a finite duration > 0 or `cap` is not a finite duration >=
 * `base`.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { Errors, Retry } from "@steadfast/resilience"
 *
 * const schedule = Retry.decorrelatedJitter({ base: "50 millis", cap: "2 seconds" }).pipe(
 *   Schedule.intersect(Schedule.recurs(4)),
 *   Schedule.whileInput(Errors.isTransientError)
 * )
 * const get = Effect.retry(redisGet, schedule)
 * ```
 *
 * @since 0.3.0
 * @category schedules
 */
export const decorrelatedJitter = (options: JitterOptions): Schedule.Schedule<Duration.Duration, unknown> => {
  const { base, cap } = jitterBounds("decorrelatedJitter", options)
  return delaysWithState(base, (previous) =>
    Effect.map(Random.nextRange(base, previous * 3), (random) => {
      const delay = Math.min(cap, random)
      return [delay, delay] as const
    }))
}

/**
 * AWS's "full jitter" as a `Schedule`: retry `n` (from 0) waits `random_between(0, min(cap, base * factor^n))`.
 * The spread is the widest of the jitter rules (a delay may be close to zero), which is what drains a thundering herd
 * fastest. Every delay is in `[0, cap]`.
 *
 * Randomness from Effect's `Random` service, as in {@link decorrelatedJitter}; recurs for ever on any error (bound
 * and filter it yourself). **Throws** a `Cause.IllegalArgumentException` on a `base` that is not a finite duration
 * > 0, a `cap` below `base` or infinite, or a `factor` that is not a finite number >= 1.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { Retry } from "@steadfast/resilience"
 *
 * const schedule = Retry.fullJitter({ base: "100 millis", cap: "5 seconds" }).pipe(
 *   Schedule.intersect(Schedule.recurs(3))
 * )
 * const call = Effect.retry(callService, schedule)
 * ```
 *
 * @since 0.3.0
 * @category schedules
 */
export const fullJitter = (options: FullJitterOptions): Schedule.Schedule<Duration.Duration, unknown> => {
  const { base, cap } = jitterBounds("fullJitter", options)
  const factor = options.factor ?? 2
  if (typeof factor !== "number" || !Number.isFinite(factor) || factor < 1) {
    throw illegal(`Retry.fullJitter factor must be a finite number >= 1, got ${factor}`)
  }
  return delaysWithState(0, (attempt) =>
    Effect.map(Random.nextRange(0, Math.min(cap, base * Math.pow(factor, attempt))), (delay) =>
      [attempt + 1, delay] as const))
}

/**
 * Narrows any schedule to this package's retry rule: it recurs at most `maxRetries` times, and only while the error
 * is a `TransientError` (a `PermanentError` or a `CircuitOpenError` stops it at once, as with a {@link Policy}).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "@steadfast/resilience"
 *
 * const schedule = Retry.transientOnly(Retry.decorrelatedJitter({ base: "50 millis", cap: "1 second" }), 3)
 * const get = Effect.retry(redisGet, schedule)
 * ```
 *
 * @since 0.3.0
 * @category schedules
 */
export const transientOnly: {
  (maxRetries: number): <Out, In, R>(self: Schedule.Schedule<Out, In, R>) => Schedule.Schedule<[Out, number], In, R>
  <Out, In, R>(self: Schedule.Schedule<Out, In, R>, maxRetries: number): Schedule.Schedule<[Out, number], In, R>
} = dual(2, <Out, In, R>(self: Schedule.Schedule<Out, In, R>, maxRetries: number) => {
  if (!Number.isInteger(maxRetries) || maxRetries < 0) {
    throw illegal(`Retry.transientOnly maxRetries must be an integer >= 0, got ${maxRetries}`)
  }
  return self.pipe(Schedule.intersect(Schedule.recurs(maxRetries)), Schedule.whileInput((input: In) => isTransientError(input)))
})
