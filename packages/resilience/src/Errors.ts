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
 * A failure that may go away if the operation is tried again.
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
}> {}

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
