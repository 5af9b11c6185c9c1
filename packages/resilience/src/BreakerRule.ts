/**
 * When a circuit breaker opens: its counting rule. A rule sees the outcome of every counted call made while the
 * breaker is CLOSED and answers whether the breaker must open now. One rule per breaker, chosen at `make`:
 *
 * | rule | opens when | like |
 * | --- | --- | --- |
 * | {@link consecutive} | `threshold` counted failures in a row (a success resets the count) | cockatiel `ConsecutiveBreaker`, Polly v7 |
 * | {@link countWindow} | the failure ratio of the last `size` calls reaches `failureRatio` (once `minimumCalls` were seen) | resilience4j `COUNT_BASED` |
 * | {@link timeWindow} | the failure ratio over the last `window` reaches `failureRatio`, with at least `minimumThroughput` calls in it | Polly v8, cockatiel `SamplingBreaker`, resilience4j `TIME_BASED` |
 * | {@link slowCalls} | as its inner rule, where a call taking `threshold` or longer counts as a failure even if it succeeded | resilience4j slow-call rate |
 *
 * A rule only counts: which errors are failures (`isFailure`), overlapping failures (`countOverlappingOnce`), half-open
 * probing and the break duration are the breaker's, the same for every rule. The counters are reset whenever the
 * breaker (re-)closes.
 *
 * Write your own by implementing {@link Rule}: `make` is called once per breaker, and the counter it returns is
 * only ever called synchronously, from one breaker.
 *
 * @since 0.3.0
 */
import * as Duration from "effect/Duration"
import * as consecutiveRule from "./internal/rules/consecutive.js"
import * as countWindowRule from "./internal/rules/countWindow.js"
import * as slowCallsRule from "./internal/rules/slowCalls.js"
import * as timeWindowRule from "./internal/rules/timeWindow.js"
import { decodeDuration, illegal } from "./internal/validate.js"

/**
 * What a rule reports about the calls it has counted (for snapshots and health endpoints).
 *
 * @since 0.3.0
 * @category models
 */
export interface View {
  /** Counted calls the rule currently holds (its window; for `consecutive`, the failures in a row). */
  readonly calls: number
  readonly failures: number
  /** Calls counted as failures because they were slow (`slowCalls` only; 0 otherwise). */
  readonly slowCalls: number
  /** `failures / calls`, 0 when no call was counted. */
  readonly failureRatio: number
}

/**
 * A rule's live counter, owned by one breaker.
 *
 * @since 0.3.0
 * @category models
 */
export interface Counter {
  /**
   * Counts one call that ended while CLOSED: `failed` is whether it failed with a counted failure, `durationMillis`
   * how long it took (only measured when the rule says `timed`, 0 otherwise), `now` the Clock's millis. Answers
   * `true` when the breaker must open.
   */
  readonly record: (failed: boolean, durationMillis: number, now: number) => boolean
  /** Forgets every count (the breaker closed). */
  readonly reset: () => void
  readonly view: (now: number) => View
}

/**
 * @since 0.3.0
 * @category models
 */
export interface Rule {
  /** A short description for snapshots and logs, e.g. `"consecutive(5)"`. */
  readonly name: string
  /** Whether `record` needs call durations (the breaker reads the Clock twice per call only if so). */
  readonly timed: boolean
  /** Whether a success ever changes the counter when no failure is held (lets the breaker skip it on the hot path). */
  readonly countsSuccesses: boolean
  /**
   * Whether a call that succeeded after `durationMillis` is a failure all the same (`slowCalls`). Also applied to
   * HALF_OPEN probes: a slow probe is a failed probe, so a server still answering slowly is not closed on.
   */
  readonly slow?: ((durationMillis: number) => boolean) | undefined
  readonly make: () => Counter
}

const integerAtLeast = (name: string, value: number, min: number): number => {
  if (!Number.isInteger(value) || value < min) throw illegal(`${name} must be an integer >= ${min}, got ${value}`)
  return value
}

const ratio = (name: string, value: number): number => {
  if (!(value > 0 && value <= 1)) throw illegal(`${name} must be a number in (0, 1], got ${value}`)
  return value
}

const positiveMillis = (name: string, input: Duration.DurationInput): number => {
  const millis = Duration.toMillis(decodeDuration(name, input))
  if (!(millis > 0) || !Number.isFinite(millis)) throw illegal(`${name} must be a finite duration > 0, got ${String(input)}`)
  return millis
}

/**
 * Opens after `threshold` counted failures in a row; any success resets the count. Cheap (no per-call work while
 * healthy), and right when failures come in runs (a server that is down). It never opens on a steady trickle of
 * failures mixed with successes: use a window rule for that. Invalid input throws `IllegalArgumentException`.
 *
 * @example
 * ```ts
 * import { BreakerRule, CircuitBreaker } from "@steadfast/resilience"
 *
 * const breaker = CircuitBreaker.make({ rule: BreakerRule.consecutive(5) })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const consecutive = (threshold: number): Rule =>
  consecutiveRule.make(integerAtLeast("BreakerRule.consecutive threshold", threshold, 1))

/**
 * Opens when, over the last `size` counted calls, the failure ratio reaches `failureRatio`; not before
 * `minimumCalls` calls were counted since the breaker closed (default `size`). A ring of booleans: O(1) per call,
 * `size` bytes of memory.
 *
 * @example
 * ```ts
 * import { BreakerRule, CircuitBreaker } from "@steadfast/resilience"
 *
 * // half of the last 20 calls failed
 * const breaker = CircuitBreaker.make({ rule: BreakerRule.countWindow({ size: 20, failureRatio: 0.5 }) })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const countWindow = (options: {
  readonly size: number
  readonly failureRatio: number
  readonly minimumCalls?: number | undefined
}): Rule => {
  const size = integerAtLeast("BreakerRule.countWindow size", options.size, 1)
  const minimumCalls = integerAtLeast("BreakerRule.countWindow minimumCalls", options.minimumCalls ?? size, 1)
  if (minimumCalls > size) throw illegal(`BreakerRule.countWindow minimumCalls (${minimumCalls}) must be <= size (${size})`)
  return countWindowRule.make(size, ratio("BreakerRule.countWindow failureRatio", options.failureRatio), minimumCalls)
}

/**
 * Opens when, over the last `window` of time, the failure ratio reaches `failureRatio` and at least
 * `minimumThroughput` calls were counted in it (so three failures at 3 a.m. do not open it). The window is kept as
 * `buckets` slices (default 10): it slides by `window / buckets`, and memory is constant whatever the call rate.
 *
 * @example
 * ```ts
 * import { BreakerRule, CircuitBreaker } from "@steadfast/resilience"
 *
 * // 30% of the calls of the last 10 seconds failed, counted only from 20 calls on
 * const breaker = CircuitBreaker.make({
 *   rule: BreakerRule.timeWindow({ window: "10 seconds", failureRatio: 0.3, minimumThroughput: 20 })
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const timeWindow = (options: {
  readonly window: Duration.DurationInput
  readonly failureRatio: number
  readonly minimumThroughput: number
  readonly buckets?: number | undefined
}): Rule =>
  timeWindowRule.make(
    positiveMillis("BreakerRule.timeWindow window", options.window),
    ratio("BreakerRule.timeWindow failureRatio", options.failureRatio),
    integerAtLeast("BreakerRule.timeWindow minimumThroughput", options.minimumThroughput, 1),
    integerAtLeast("BreakerRule.timeWindow buckets", options.buckets ?? 10, 1)
  )

/**
 * Counts a call taking `threshold` or longer as a failure for `rule` (default: `countWindow({ size: 20, failureRatio:
 * 0.5 })`), even though it succeeded and its caller gets its value. A server that answers in 1.9 s of a 2 s
 * deadline is sick before it is dead: with `slowCalls`, the breaker opens while it is still answering, sheds its
 * load, and probes it again later. Slow *failures* are failures anyway.
 *
 * The breaker reads the Clock before and after each call for this rule (two `Clock.unsafeCurrentTimeMillis`).
 *
 * @example
 * ```ts
 * import { BreakerRule, CircuitBreaker } from "@steadfast/resilience"
 *
 * const breaker = CircuitBreaker.make({
 *   rule: BreakerRule.slowCalls({ threshold: "1500 millis", rule: BreakerRule.countWindow({ size: 50, failureRatio: 0.5 }) })
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const slowCalls = (options: { readonly threshold: Duration.DurationInput; readonly rule?: Rule | undefined }): Rule =>
  slowCallsRule.make(
    positiveMillis("BreakerRule.slowCalls threshold", options.threshold),
    options.rule ?? countWindow({ size: 20, failureRatio: 0.5 })
  )
