/**
 * A circuit breaker: stop calling a resource that keeps failing, give it time to recover, then let probes find out
 * whether it did.
 *
 * ```text
 *            the rule trips (default: 5 counted failures in a row)
 *   CLOSED ──────────────────────────────────▶ OPEN ◀──────────┐
 *     ▲                                          │              │ too many probes fail (or one times out)
 *     │ enough probes succeed                    │ break elapsed, first caller
 *     │                                          ▼              │
 *     └────────────────────────────────────── HALF_OPEN ────────┘
 *
 *   isolate: any state ──▶ ISOLATED (every call rejected) ──reset──▶ CLOSED
 * ```
 *
 * - **Counted failures**: a failure `E` for which `isFailure(E)` is true (default: {@link Errors.isTransientError}).
 *   A failure that is *not* counted (a `PermanentError` by default), a defect or an interruption is no outcome: it
 *   says nothing about the health of the resource.
 * - **When it opens** is the {@link BreakerRule.Rule} (`rule`): consecutive failures (the default, `failureThreshold`
 *   in a row), a count window, a time window with a minimum throughput, or slow calls counted as failures.
 * - **OPEN**: every call fails at once with a {@link Errors.CircuitOpenError} whose `retryAfter` is the time left
 *   before a probe is allowed; the protected effect is not run. The break is `halfOpenAfter`, or with `backoff`,
 *   `halfOpenAfter × factor^n` up to `backoff.max` for the n-th open since the breaker last stayed closed for
 *   `backoff.resetAfter`.
 * - **HALF_OPEN**: the first `halfOpen.probes` callers (default 1) are probes, decided atomically; every other caller
 *   is rejected with `retryAfter` zero. Once `halfOpen.successRatio` of the probes (default all) succeeded the
 *   breaker closes; once that can no longer happen it re-opens. A probe that ends without an outcome (uncounted
 *   failure, defect, interruption) gives its slot back; a probe still running after `halfOpen.timeout` counts as a
 *   failed probe (decided by the next caller), so a probe that never settles cannot wedge the breaker.
 * - OPEN → HALF_OPEN happens lazily, on the first call after the break (no timer): `state` and `snapshot` keep
 *   reporting OPEN, with `retryAfter` zero, until somebody calls.
 * - **ISOLATED** (manual): every call is rejected until `reset`.
 *
 * All timing is read from Effect's `Clock`, so `TestClock` drives it.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Context from "effect/Context"
import { isEffect } from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as BreakerRule from "./BreakerRule.js"
import type { CircuitOpenError } from "./Errors.js"
import type * as Errors from "./Errors.js"
import * as internal from "./internal/circuitBreaker.js"

/**
 * @since 0.1.0
 * @category models
 */
export type State = "CLOSED" | "OPEN" | "HALF_OPEN" | "ISOLATED"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Consecutive counted failures that open the breaker: shorthand for `rule: BreakerRule.consecutive(n)`. Integer
   * >= 1. Default `5`. Give this or `rule`, not both.
   */
  readonly failureThreshold?: number | undefined
  /** When the breaker opens (see {@link BreakerRule}). Default `BreakerRule.consecutive(failureThreshold)`. */
  readonly rule?: BreakerRule.Rule | undefined
  /** How long the breaker stays OPEN before letting a probe through. Finite, > 0. Default `30 seconds`. */
  readonly halfOpenAfter?: Duration.DurationInput | undefined
  /**
   * Exponential breaks: the n-th open in a row (n = 0, 1, ...) lasts `halfOpenAfter × factor^n`, at most `max`; the
   * count starts again once the breaker stayed CLOSED for `resetAfter` (default `max`). `factor` >= 1, default 2;
   * `max` >= `halfOpenAfter`. Without it every break lasts `halfOpenAfter`.
   */
  readonly backoff?: {
    readonly factor?: number | undefined
    readonly max: Duration.DurationInput
    readonly resetAfter?: Duration.DurationInput | undefined
  } | undefined
  /**
   * HALF_OPEN: `probes` calls are let through (integer >= 1, default 1); the breaker closes once `successRatio` of
   * them succeeded (in (0, 1], default 1: all) and re-opens once that is out of reach; a probe running longer than
   * `timeout` (default 30 seconds) counts as a failed one.
   */
  readonly halfOpen?: {
    readonly probes?: number | undefined
    readonly successRatio?: number | undefined
    readonly timeout?: Duration.DurationInput | undefined
  } | undefined
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
  /**
   * Consecutive counted failures (errors) since the last success (kept while OPEN / HALF_OPEN, zero once CLOSED again).
   * Slow successes under `BreakerRule.slowCalls` are not errors: they show in `window.slowCalls`, so a breaker opened
   * by slow calls alone reports 0 here.
   */
  readonly consecutiveFailures: number
  /** How many times the breaker has opened (CLOSED → OPEN and HALF_OPEN → OPEN) since it was made. */
  readonly opens: number
  /** `Some(time left before a probe is allowed)` when OPEN (zero once it is due), `Some(infinity)` when ISOLATED. */
  readonly retryAfter: Option.Option<Duration.Duration>
  /** The same in milliseconds, `null` when not OPEN (and when ISOLATED): for JSON health endpoints. */
  readonly retryAfterMillis: number | null
  /** The rule's name, e.g. `"consecutive(5)"`. */
  readonly rule: string
  /** What the rule currently counts (its window). */
  readonly window: BreakerRule.View
  /** The length of the current (or last) break, in milliseconds. */
  readonly breakMillis: number
  /** HALF_OPEN probes: permitted, admitted so far, their outcomes (zeros outside HALF_OPEN). */
  readonly probes: { readonly permitted: number; readonly admitted: number; readonly succeeded: number; readonly failed: number }
}

/**
 * The right to make one call, from {@link CircuitBreaker.unsafeAdmit}. Opaque: hand it back, once, to `unsafeSucceed`,
 * `unsafeFail` or `unsafeRelease`.
 *
 * @since 0.3.0
 * @category models
 */
export interface Permit {
  readonly _tag: "Permit"
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
  /**
   * The admission decision, synchronously, for callers that fuse the breaker into their own frame (the cache does):
   * a {@link Permit}, or the failing effect to return instead of making the call. A permit must be settled exactly
   * once with `unsafeSucceed`, `unsafeFail` or `unsafeRelease`, whatever happens to the call (interruption included),
   * or a probe slot stays taken until the probe timeout. `execute` is this plus the settling.
   */
  readonly unsafeAdmit: (operation: string) => Permit | Effect.Effect<never, CircuitOpenError>
  /** Settles a permit whose call succeeded, after `durationMillis` (only read when `timed`). */
  readonly unsafeSucceed: (permit: Permit, durationMillis: number) => void
  /** Settles a permit whose call failed with `error` (counted if `isFailure(error)`, else released). */
  readonly unsafeFail: (permit: Permit, error: unknown, durationMillis: number) => void
  /** Settles a permit whose call ended without an outcome (a defect, an interruption). */
  readonly unsafeRelease: (permit: Permit) => void
  /** Whether the rule needs call durations (`BreakerRule.slowCalls`): callers of `unsafeAdmit` must then time calls. */
  readonly timed: boolean
  readonly unsafeSnapshot: () => Snapshot
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
  /** Forces the breaker CLOSED with zero counts (also out of ISOLATED). An in-flight probe's result is then ignored. */
  readonly reset: Effect.Effect<void>
  /** Holds the breaker open: every call is rejected (`retryAfter` infinite) until `reset`. For maintenance windows. */
  readonly isolate: Effect.Effect<void>
  /**
   * Replaces the settings of the live breaker (runtime tuning): validated as `make` validates them, failing with
   * `Cause.IllegalArgumentException` (the breaker unchanged) when invalid; applied in one synchronous step otherwise.
   * The state is kept (an OPEN breaker stays open until its break ends; the next break takes the new duration), calls
   * in flight settle as admitted, and a new `rule` starts with fresh counts. Options left out take their defaults,
   * as in `make`.
   */
  readonly reconfigure: (options: Options) => Effect.Effect<void, Cause.IllegalArgumentException>
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
 * Whether `unsafeAdmit` answered a permit (rather than a rejection).
 *
 * @since 0.3.0
 * @category guards
 */
export const isPermit: (u: Permit | Effect.Effect<never, CircuitOpenError>) => u is Permit = internal.isPermit

/**
 * Runs an effect through a breaker: `effect.pipe(CircuitBreaker.protect(breaker))`, or
 * `CircuitBreaker.protect(effect, breaker, "charge")`. The same as `breaker.execute(operation, effect)`; `operation`
 * (default `"call"`) names the call in the `CircuitOpenError`.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@steadfast/resilience"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ failureThreshold: 3 })
 *   return yield* Effect.tryPromise(() => fetch("https://example.com")).pipe(CircuitBreaker.protect(breaker, "fetch"))
 * })
 * ```
 *
 * @since 0.3.0
 * @category combinators
 */
export const protect: {
  (breaker: CircuitBreaker, operation?: string): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpenError, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, breaker: CircuitBreaker, operation?: string): Effect.Effect<A, E | CircuitOpenError, R>
} = function(first: unknown, second?: unknown, third?: unknown): any {
  // Written out rather than with `dual`: its variadic form spreads `arguments` on every call, which measured at about
  // the cost of the breaker itself (benchmarks/README.md, "Policies").
  if (isEffect(first)) return (second as CircuitBreaker).execute((third as string | undefined) ?? "call", first)
  const breaker = first as CircuitBreaker
  const operation = (second as string | undefined) ?? "call"
  return <A, E, R>(self: Effect.Effect<A, E, R>) => breaker.execute(operation, self)
}

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
