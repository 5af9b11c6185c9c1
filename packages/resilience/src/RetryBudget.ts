/**
 * A retry budget, shared by every call that retries against one dependency: retries are allowed only while the
 * retries made in the recent `window` stay under `ratio` × the calls made in it, plus a small floor of
 * `minPerSecond` retries per second. When the dependency is healthy, a failed call is retried as usual; during an
 * outage, when every call fails, retries are capped at `ratio` of the traffic instead of multiplying it by
 * `maxRetries + 1`. This is Finagle's `RetryBudget` (and the "retry budget" of Envoy and gRPC's retry throttling).
 *
 * - A **call** is a first attempt (`recordCall`; {@link retry} records one per run). A **retry** is a later attempt
 *   the budget allowed (`tryRetry`).
 * - A retry is allowed when `retries + 1 <= ratio * calls + minPerSecond * window` over the window; a retry denied
 *   ends the retry loop with the last error, as if the schedule had stopped.
 * - The window is kept in 10 slots of `window / 10`: a call or retry counts from the moment it is made until the
 *   clock enters the slot `window` after its own, so it stops counting between `0.9 × window` and `window` after it
 *   was made. Time is Effect's `Clock` (the one in context when the budget is made), so `TestClock` drives it.
 *
 * @since 0.3.0
 */
import type * as Duration from "effect/Duration"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as internal from "./internal/retryBudget.js"
import * as Retry from "./Retry.js"

/**
 * @since 0.3.0
 * @category models
 */
export interface Options {
  /** Retries allowed per call in the window. Finite, >= 0. Default `0.2` (at most 20 % extra load). */
  readonly ratio?: number | undefined
  /**
   * A floor of retries per second, so a quiet client can still retry (with few calls, `ratio * calls` rounds to
   * nothing). Finite, >= 0. Default `10` (Finagle's). The floor over the window is `minPerSecond × window`.
   */
  readonly minPerSecond?: number | undefined
  /** How far back calls and retries count. A finite duration > 0. Default `10 seconds`. */
  readonly window?: Duration.DurationInput | undefined
}

/**
 * A point-in-time view of a budget (counts over the current window).
 *
 * @since 0.3.0
 * @category models
 */
export interface Snapshot {
  readonly ratio: number
  readonly minPerSecond: number
  readonly window: Duration.Duration
  /** Calls recorded in the window. */
  readonly calls: number
  /** Retries allowed in the window. */
  readonly retries: number
  /** Retries that would be allowed now, in a row. */
  readonly available: number
  /** Retries denied since the budget was made. */
  readonly denied: number
}

/**
 * @since 0.3.0
 * @category models
 */
export interface RetryBudget {
  /** Records a call (a first attempt). */
  readonly recordCall: Effect.Effect<void>
  /** Asks for a retry: `true` (and the retry is counted) if the budget allows it now, `false` otherwise. */
  readonly tryRetry: Effect.Effect<boolean>
  readonly snapshot: Effect.Effect<Snapshot>
  /** {@link RetryBudget.recordCall}, synchronously. */
  readonly unsafeRecordCall: () => void
  /** {@link RetryBudget.tryRetry}, synchronously. */
  readonly unsafeTryRetry: () => boolean
  /** {@link RetryBudget.snapshot}, synchronously. */
  readonly unsafeSnapshot: () => Snapshot
}

/**
 * Makes a budget. It reads time from the `Clock` in context when it is made (under `TestClock`, make it inside the
 * test). Invalid options (`ratio` or `minPerSecond` not a finite number >= 0, a `window` that is not a finite
 * duration > 0) are programming errors: the effect **dies** with a `Cause.IllegalArgumentException`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry, RetryBudget } from "@steadfast/resilience"
 *
 * const program = Effect.gen(function*() {
 *   const budget = yield* RetryBudget.make({ ratio: 0.1, minPerSecond: 5, window: "10 seconds" })
 *   return yield* RetryBudget.retry(redisGet, budget, Retry.make({ maxRetries: 3 }))
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<RetryBudget> = internal.make

/**
 * Makes a schedule stop when the budget denies a retry. Each time `self` decides to recur, the budget is asked
 * (and the retry counted if allowed); when `self` itself stops, the budget is not asked. It does not record calls:
 * with `Effect.retry`, record each call with `budget.recordCall` yourself, or use {@link retry}, which does both.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { RetryBudget } from "@steadfast/resilience"
 *
 * const schedule = Schedule.exponential("100 millis").pipe(Schedule.intersect(Schedule.recurs(3)), RetryBudget.guard(budget))
 * const call = Effect.zipRight(budget.recordCall, Effect.retry(callService, schedule))
 * ```
 *
 * @since 0.3.0
 * @category schedules
 */
export const guard: {
  (budget: RetryBudget): <Out, In, R>(self: Schedule.Schedule<Out, In, R>) => Schedule.Schedule<Out, In, R>
  <Out, In, R>(self: Schedule.Schedule<Out, In, R>, budget: RetryBudget): Schedule.Schedule<Out, In, R>
} = dual(
  2,
  <Out, In, R>(self: Schedule.Schedule<Out, In, R>, budget: RetryBudget): Schedule.Schedule<Out, In, R> =>
    Schedule.checkEffect(self, () => budget.tryRetry)
)

/**
 * Retries `self` by a {@link Retry.Policy} or any `Schedule`, within the budget: each run records one call, and
 * each retry the policy or schedule wants must also be allowed by the budget; a denied retry ends the loop with the
 * last error. With a policy, the first attempt runs bare (as in {@link Retry.retry}) and only `TransientError`s are
 * retried; a schedule is used as given (filter it with {@link Retry.transientOnly} if it should be).
 *
 * @example
 * ```ts
 * import { Retry, RetryBudget } from "@steadfast/resilience"
 *
 * const policy = Retry.make({ maxRetries: 3 })
 * const get = RetryBudget.retry(redisGet, budget, policy)
 * const get2 = redisGet.pipe(RetryBudget.retry(budget, Retry.transientOnly(Retry.decorrelatedJitter({ base: "50 millis", cap: "1 second" }), 3)))
 * ```
 *
 * @since 0.3.0
 * @category combinators
 */
export const retry: {
  (budget: RetryBudget, policy: Retry.Policy): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <Out, In, R2>(
    budget: RetryBudget,
    schedule: Schedule.Schedule<Out, In, R2>
  ): <A, E extends In, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R | R2>
  <A, E, R>(self: Effect.Effect<A, E, R>, budget: RetryBudget, policy: Retry.Policy): Effect.Effect<A, E, R>
  <A, E extends In, R, Out, In, R2>(
    self: Effect.Effect<A, E, R>,
    budget: RetryBudget,
    schedule: Schedule.Schedule<Out, In, R2>
  ): Effect.Effect<A, E, R | R2>
} = dual(
  3,
  <A, E, R, R2>(
    self: Effect.Effect<A, E, R>,
    budget: RetryBudget,
    policyOrSchedule: Retry.Policy | Schedule.Schedule<unknown, E, R2>
  ): Effect.Effect<A, E, R | R2> => {
    let schedule: Schedule.Schedule<unknown, E, R2>
    if (Schedule.isSchedule(policyOrSchedule)) {
      schedule = policyOrSchedule
    } else {
      // `Retry.schedule` validates now, so a hand-built invalid policy fails where it is used.
      const policySchedule = Retry.schedule(policyOrSchedule)
      if (policyOrSchedule.maxRetries === 0) return Effect.zipRight(budget.recordCall, self)
      schedule = policySchedule
    }
    const guarded = guard(schedule, budget)
    return Effect.zipRight(
      budget.recordCall,
      Effect.catchAll(self, (first) =>
        Effect.flatMap(Schedule.driver(guarded), (driver) => {
          const loop = (error: E): Effect.Effect<A, E, R | R2> =>
            Effect.matchEffect(driver.next(error), {
              onFailure: () => Effect.fail(error),
              onSuccess: () => Effect.catchAll(self, loop)
            })
          return loop(first)
        }))
    )
  }
)

/**
 * The service tag for a shared budget; the interface and the tag share the name `RetryBudget`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry, RetryBudget } from "@steadfast/resilience"
 *
 * const get = Effect.flatMap(RetryBudget.RetryBudget, (budget) => RetryBudget.retry(redisGet, budget, Retry.make()))
 * const runnable = get.pipe(Effect.provide(RetryBudget.layer({ ratio: 0.2 })))
 * ```
 *
 * @since 0.3.0
 * @category tags
 */
export const RetryBudget: Context.Tag<RetryBudget, RetryBudget> = Context.GenericTag<RetryBudget>(
  "@steadfast/resilience/RetryBudget"
)

/**
 * A layer providing {@link RetryBudget} built with {@link make}.
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<RetryBudget> => Layer.effect(RetryBudget, make(options))
