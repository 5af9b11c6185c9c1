/**
 * `@steadfast/resilience`: the error model, a circuit breaker, retry policies and deadlines for Effect.
 *
 * @since 0.1.0
 */

/**
 * The shared error model: `TransientError`, `PermanentError`, `CircuitOpenError` and their refinements.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Errors from "./Errors.js"

/**
 * The circuit breaker.
 *
 * @since 0.1.0
 * @category modules
 */
export * as CircuitBreaker from "./CircuitBreaker.js"

/**
 * @since 0.3.0
 */
export * as BreakerRule from "./BreakerRule.js"

/**
 * Retry policies.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Retry from "./Retry.js"

/**
 * Deadlines.
 *
 * @since 0.1.0
 * @category modules
 */
export * as Deadline from "./Deadline.js"

/**
 * The error classes and refinements, re-exported flat because callers catch them constantly.
 *
 * @since 0.1.0
 * @category errors
 */
export {
  CircuitOpenError,
  isCircuitOpenError,
  isPermanentError,
  isTransientError,
  PermanentError,
  TransientError
} from "./Errors.js"

/**
 * The error models, re-exported flat.
 *
 * @since 0.1.0
 * @category models
 */
export type { PermanentReason, RedisFailure, TransientReason } from "./Errors.js"

/**
 * Bulkheads: bounded concurrency with a bounded wait queue.
 *
 * @since 0.3.0
 * @category modules
 */
export * as Bulkhead from "./Bulkhead.js"

/**
 * The bulkhead's error and refinement, re-exported flat like the other errors.
 *
 * @since 0.3.0
 * @category errors
 */
export { BulkheadRejectedError, isBulkheadRejectedError } from "./Errors.js"

/**
 * @since 0.3.0
 * @category models
 */
export type { BulkheadRejectedReason } from "./Errors.js"

/**
 * Retry budgets: retries capped at a ratio of recent calls, shared across calls.
 *
 * @since 0.3.0
 * @category modules
 */
export * as RetryBudget from "./RetryBudget.js"
