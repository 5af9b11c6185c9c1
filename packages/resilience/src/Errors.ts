/**
 * The error model shared by every Steadfast package.
 *
 * - {@link TransientError}: may succeed if tried again (a reset socket, a timeout, a server still loading).
 *   Only these are retried and counted by the circuit breaker.
 * - {@link PermanentError}: will fail the same way again (a wrong password, a wrong type, a syntax error).
 *   Never retried, never counted by the breaker: retrying a wrong password only hammers the server.
 * - {@link CircuitOpenError}: rejected by an open breaker without touching the server.
 *
 * All three are tagged, so `Effect.catchTag("TransientError", ...)` works.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"

/**
 * Stable, snake_case reasons for a {@link TransientError}. They are metric labels and log fields: adding one
 * is fine, renaming one breaks dashboards.
 *
 * @since 0.1.0
 * @category models
 */
export type TransientReason =
  | "connection_reset_peer"
  | "connection_refused"
  | "connection_closed"
  | "connection_unavailable"
  | "broken_pipe"
  | "host_unreachable"
  | "dns"
  | "timeout"
  | "socket_timeout"
  | "loading"
  | "busy"
  | "try_again"
  | "cluster_down"
  | "master_down"
  | "read_only"
  | "max_clients"
  | "out_of_memory"
  | "unknown"

/**
 * Stable, snake_case reasons for a {@link PermanentError}.
 *
 * @since 0.1.0
 * @category models
 */
export type PermanentReason =
  | "auth"
  | "no_permission"
  | "wrong_type"
  | "exec_abort"
  | "cross_slot"
  | "syntax"
  | "unknown_command"
  | "tls_certificate"
  | "moved"
  | "invalid_argument"
  | "command_error"

/**
 * What became of a command that failed transiently, as far as the client can know:
 *
 * - `not_sent`: it never left the client (no socket was writeable): it did not run, and sending it again is safe;
 * - `rejected`: the server answered with an error reply without running it (`LOADING`, `BUSY`, `READONLY`, `OOM`,
 *   `TRYAGAIN`, ...): it did not run;
 * - `unknown`: it was sent and its reply was lost (the socket closed, the deadline passed): it **may have run**.
 *   Never re-send a non-idempotent command (`INCR`, `LPUSH`, ...) on this outcome without a way to tell.
 *
 * @since 0.2.0
 * @category models
 */
export type Outcome = "not_sent" | "rejected" | "unknown"

/**
 * A failure that may go away if the operation is tried again. Whether trying again is *safe* depends on
 * {@link TransientError.outcome}: see {@link mayHaveRun}.
 *
 * @since 0.1.0
 * @category errors
 */
export class TransientError extends Data.TaggedError("TransientError")<{
  /** The operation that failed, e.g. `"get"`, `"mget"`, `"ping"`. */
  readonly operation: string
  readonly reason: TransientReason
  readonly message: string
  readonly cause?: unknown
  /** What became of the command; absent means `unknown` (the safe assumption). */
  readonly outcome?: Outcome | undefined
}> {}

/**
 * Whether the failed command may have run on the server: true unless it is known that it never left the client
 * (`not_sent`) or that the server refused it (`rejected`). A `PermanentError` from an error reply did not run the
 * command (a script's effects before its error stay, as Redis defines); one raised before sending (bad input, a
 * wrong password at connect) did not send it: both answer false.
 *
 * @since 0.2.0
 * @category refinements
 */
export const mayHaveRun = (error: TransientError | PermanentError): boolean =>
  error._tag === "TransientError" && error.outcome !== "not_sent" && error.outcome !== "rejected"

/**
 * A failure that will happen again the same way: retrying it is useless or harmful.
 *
 * @since 0.1.0
 * @category errors
 */
export class PermanentError extends Data.TaggedError("PermanentError")<{
  readonly operation: string
  readonly reason: PermanentReason
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * Raised by an open circuit breaker instead of calling the protected resource.
 *
 * @since 0.1.0
 * @category errors
 */
export class CircuitOpenError extends Data.TaggedError("CircuitOpenError")<{
  readonly operation: string
  /** How long until the breaker lets a probe through (zero when a probe is already in flight). */
  readonly retryAfter: Duration.Duration
  readonly message: string
}> {}

/**
 * What a Redis call can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type RedisFailure = TransientError | PermanentError

/**
 * @since 0.1.0
 * @category refinements
 */
export const isTransientError = (u: unknown): u is TransientError => Predicate.isTagged(u, "TransientError")

/**
 * @since 0.1.0
 * @category refinements
 */
export const isPermanentError = (u: unknown): u is PermanentError => Predicate.isTagged(u, "PermanentError")

/**
 * @since 0.1.0
 * @category refinements
 */
export const isCircuitOpenError = (u: unknown): u is CircuitOpenError => Predicate.isTagged(u, "CircuitOpenError")

/**
 * Why a {@link BulkheadRejectedError} was raised:
 *
 * - `queue_full`: every slot was busy and the wait queue was full; rejected at once, without waiting;
 * - `queue_timeout`: the call waited in the queue for the bulkhead's `queueTimeout` without getting a slot.
 *
 * @since 0.3.0
 * @category models
 */
export type BulkheadRejectedReason = "queue_full" | "queue_timeout"

/**
 * Raised by a bulkhead instead of running the effect: it was full (every slot busy, the queue full) or the call
 * waited in its queue for longer than the queue timeout. The effect was not run. Carries the bulkhead's limits.
 *
 * @since 0.3.0
 * @category errors
 */
export class BulkheadRejectedError extends Data.TaggedError("BulkheadRejectedError")<{
  /** The bulkhead's `name` (default `"bulkhead"`). */
  readonly bulkhead: string
  readonly reason: BulkheadRejectedReason
  /** Calls the bulkhead runs at once. */
  readonly maxConcurrent: number
  /** Calls that may wait for a slot. */
  readonly maxQueue: number
  /** How long a call may wait in the queue (infinite when there is no queue timeout). */
  readonly queueTimeout: Duration.Duration
  readonly message: string
}> {}

/**
 * @since 0.3.0
 * @category refinements
 */
export const isBulkheadRejectedError = (u: unknown): u is BulkheadRejectedError =>
  Predicate.isTagged(u, "BulkheadRejectedError")
