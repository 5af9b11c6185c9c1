/**
 * A circuit breaker: stop calling a resource that keeps failing, give it time to recover, then let a single
 * probe find out whether it did.
 *
 * ```text
 *            N consecutive counted failures
 *   CLOSED ──────────────────────────────────▶ OPEN ◀──────────┐
 *     ▲                                          │              │ probe fails (counted)
 *     │ probe succeeds                            │ halfOpenAfter elapsed, first caller
 *     │                                          ▼              │
 *     └────────────────────────────────────── HALF_OPEN ────────┘
 * ```
 *
 * - **Counted failures**: a failure `E` for which `isFailure(E)` is true (default: {@link Errors.isTransientError}).
 *   A success resets the count. A failure that is *not* counted (a `PermanentError` by default), a defect or an
 *   interruption neither counts nor resets: it says nothing about the health of the resource.
 * - **OPEN**: every call fails at once with a {@link Errors.CircuitOpenError} whose `retryAfter` is the time left
 *   before a probe is allowed; the protected effect is not run.
 * - **HALF_OPEN**: the first caller after `halfOpenAfter` becomes the single probe (decided atomically); every other
 *   caller is rejected with `retryAfter` zero while it is in flight. A probe success closes the breaker, a counted
 *   probe failure re-opens it for a fresh `halfOpenAfter`. A probe that ends otherwise (uncounted failure, defect,
 *   interruption) releases the probe slot: the breaker stays HALF_OPEN and the next caller probes.
 * - OPEN → HALF_OPEN happens lazily, on the first call after `halfOpenAfter` (no timer): `state` and `snapshot`
 *   keep reporting OPEN, with `retryAfter` zero, until somebody calls.
 *
 * All timing is read from Effect's `Clock`, so `TestClock` drives it.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { CircuitOpenError } from "./Errors.js"
import type * as Errors from "./Errors.js"
import * as internal from "./internal/circuitBreaker.js"

/**
 * @since 0.1.0
 * @category models
 */
export type State = "CLOSED" | "OPEN" | "HALF_OPEN"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Consecutive counted failures that open the breaker. Integer >= 1. Default `5`. */
  readonly failureThreshold?: number | undefined
  /** How long the breaker stays OPEN before letting a probe through. Finite, > 0. Default `30 seconds`. */
  readonly halfOpenAfter?: Duration.DurationInput | undefined
  /**
   * Which failures count towards opening the breaker. Default {@link Errors.isTransientError}, so a
   * `PermanentError` (a wrong password, a wrong type) never opens it. If the predicate throws, the error counts.
   */
  readonly isFailure?: ((error: unknown) => boolean) | undefined
  /**
   * Count failures of calls that were in flight together once. With `true`, a failure counts only if no other
   * failure was counted while its call was running: eight requests multiplexed on one socket that is reset are one
   * incident, not eight consecutive failures. Sequential failures (new calls, retries) still count one by one, so an
   * outage opens the breaker after `failureThreshold` waves. Default `false` (every counted failure counts).
   */
  readonly countOverlappingOnce?: boolean | undefined
}

/**
 * A point-in-time view of a breaker.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly state: State
  /** Consecutive counted failures since the last success (kept while OPEN / HALF_OPEN, zero once CLOSED again). */
  readonly consecutiveFailures: number
  /** How many times the breaker has opened (CLOSED → OPEN and HALF_OPEN → OPEN) since it was made. */
  readonly opens: number
  /** `Some(time left before a probe is allowed)` when OPEN (zero once it is due), `None` otherwise. */
  readonly retryAfter: Option.Option<Duration.Duration>
}

/**
 * One state transition, as published on {@link CircuitBreaker.changes}.
 *
 * @since 0.1.0
 * @category models
 */
export interface StateChange {
  readonly from: State
  readonly to: State
  /** `Clock.currentTimeMillis` at the transition. */
  readonly at: number
  /** Consecutive counted failures after the transition (the threshold when CLOSED → OPEN, `0` when → CLOSED). */
  readonly consecutiveFailures: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface CircuitBreaker {
  /**
   * Runs `self` through the breaker. When the breaker rejects the call, `self` is not run and the result is a
   * `CircuitOpenError` tagged with `operation`. Otherwise `self`'s own result is returned unchanged.
   */
  readonly execute: <A, E, R>(operation: string, self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpenError, R>
  /**
   * A synchronous peek for hot paths: `true` when a call made now would be rejected without running (OPEN before its
   * probe time, or HALF_OPEN with a probe in flight). It decides nothing: when it says `false`, go through `execute`
   * (which may still reject, or make this call the probe). Lets a caller with a fallback skip the whole Effect
   * pipeline while the breaker is open.
   */
  readonly rejectsNow: () => boolean
  /** The state, read synchronously (the same value `state` would produce now). For hot paths; decides nothing. */
  readonly unsafeState: () => State
  readonly state: Effect.Effect<State>
  readonly snapshot: Effect.Effect<Snapshot>
  /**
   * Every transition, in order. Subscribes when the stream starts running: transitions before that are not seen.
   * Backed by a sliding PubSub (capacity 1024): a slow consumer loses the oldest changes, callers never wait.
   */
  readonly changes: Stream.Stream<StateChange>
  /**
   * Like {@link CircuitBreaker.changes}, but the subscription is taken when this effect runs (and released with the
   * scope), so no transition after it can be missed.
   */
  readonly subscribe: Effect.Effect<Queue.Dequeue<StateChange>, never, Scope.Scope>
  /** Forces the breaker CLOSED with a zero count. An in-flight probe's result is then ignored. */
  readonly reset: Effect.Effect<void>
}

/**
 * Makes a breaker. Invalid options (a threshold that is not an integer >= 1, a `halfOpenAfter` that is not a finite
 * duration > 0, a malformed duration) are programming errors: the effect **dies** with a
 * `Cause.IllegalArgumentException`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<CircuitBreaker> = internal.make

/**
 * The service tag for a shared breaker, following Effect's own convention (`Clock.Clock`): the interface and the
 * tag share the name `CircuitBreaker`.
 *
 * @since 0.1.0
 * @category tags
 */
export const CircuitBreaker: Context.Tag<CircuitBreaker, CircuitBreaker> = Context.GenericTag<CircuitBreaker>(
  "@steadfast/resilience/CircuitBreaker"
)

/**
 * A layer providing {@link CircuitBreaker} built with {@link make}.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<CircuitBreaker> => Layer.effect(CircuitBreaker, make(options))
