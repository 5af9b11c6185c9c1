/**
 * A bulkhead: at most `maxConcurrent` calls run at once, at most `maxQueue` more wait for a slot, and any call
 * beyond that is rejected **at once** with a {@link Errors.BulkheadRejectedError}, so a slow dependency cannot pile
 * up thousands of waiting fibers (and their memory, sockets and deadlines) behind it.
 *
 * - **Slots**: a call takes a slot when one is free and gives it back when it ends, however it ends (success,
 *   failure, defect, interruption).
 * - **Queue**: when every slot is taken, a call waits in a FIFO queue of at most `maxQueue` fibers (default `0`:
 *   no queue, reject when full, as Polly and cockatiel do by default). A freed slot goes to the oldest waiter, never
 *   to a newcomer.
 * - **Queue timeout** (optional): a call that waited `queueTimeout` without a slot leaves the queue and fails with
 *   reason `"queue_timeout"` (measured on Effect's `Clock`, so `TestClock` drives it).
 * - **Interruption**: a waiting fiber that is interrupted leaves the queue; a running one gives its slot back; a
 *   fiber interrupted just as a slot was handed to it passes the slot on.
 *
 * Works on any `Effect`. Order with the other policies: the bulkhead around the whole retried call bounds callers
 * (`retry` inside); around each attempt it bounds attempts (`retry` outside).
 *
 * @since 0.3.0
 */
import type * as Duration from "effect/Duration"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type { BulkheadRejectedError } from "./Errors.js"
import type * as Errors from "./Errors.js"
import * as internal from "./internal/bulkhead.js"

/**
 * @since 0.3.0
 * @category models
 */
export interface Options {
  /**
   * Calls that run at once. Integer >= 1. **Required**: the right number is the dependency's (a Redis connection
   * multiplexes hundreds of commands, a database pool has 10 connections); no default fits both.
   */
  readonly maxConcurrent: number
  /** Calls that may wait for a slot when all are taken. Integer >= 0. Default `0` (reject as soon as all are taken). */
  readonly maxQueue?: number | undefined
  /**
   * How long a call may wait in the queue before it is rejected with reason `"queue_timeout"`. A duration > 0;
   * default infinite (wait until a slot frees up or the caller is interrupted).
   */
  readonly queueTimeout?: Duration.DurationInput | undefined
  /** Names the bulkhead in its errors and snapshot. Default `"bulkhead"`. */
  readonly name?: string | undefined
}

/**
 * A point-in-time view of a bulkhead.
 *
 * @since 0.3.0
 * @category models
 */
export interface Snapshot {
  readonly name: string
  readonly maxConcurrent: number
  readonly maxQueue: number
  /** Infinite when there is no queue timeout. */
  readonly queueTimeout: Duration.Duration
  /** Slots taken: calls running, plus waiters a slot was just handed to that have not resumed yet. */
  readonly running: number
  /** Calls waiting for a slot. */
  readonly queued: number
  /** Calls rejected since the bulkhead was made, for either reason. */
  readonly rejected: number
  /** Of `rejected`, the calls that waited out the queue timeout. */
  readonly timedOut: number
}

/**
 * @since 0.3.0
 * @category models
 */
export interface Bulkhead {
  /**
   * Runs `self` in a slot: now if one is free, after waiting in the queue otherwise, or not at all (failing with a
   * {@link Errors.BulkheadRejectedError}) when the queue is full or the wait times out. `self`'s own result is
   * returned unchanged.
   */
  readonly execute: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadRejectedError, R>
  /** The snapshot, read synchronously (for health endpoints, metrics gauges and tests). Decides nothing. */
  readonly unsafeSnapshot: () => Snapshot
  /** The snapshot, as an effect. */
  readonly snapshot: Effect.Effect<Snapshot>
}

/**
 * Makes a bulkhead. Invalid options (`maxConcurrent` not an integer >= 1, `maxQueue` not an integer >= 0, a
 * `queueTimeout` that is not a duration > 0 or is malformed) are programming errors: the effect **dies** with a
 * `Cause.IllegalArgumentException`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulkhead } from "@steadfast/resilience"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ maxConcurrent: 10, maxQueue: 100, queueTimeout: "1 second" })
 *   return yield* bulkhead.execute(callDatabase)
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<Bulkhead> = internal.make

/**
 * Makes a bulkhead synchronously, for a module-level value. **Throws** a `Cause.IllegalArgumentException` on
 * invalid options (see {@link make}).
 *
 * @example
 * ```ts
 * import { Bulkhead } from "@steadfast/resilience"
 *
 * export const redisBulkhead = Bulkhead.unsafeMake({ maxConcurrent: 200, name: "redis" })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const unsafeMake: (options: Options) => Bulkhead = internal.unsafeMake

/**
 * Runs an effect through a bulkhead (the same as `bulkhead.execute(self)`), data-first or pipeable.
 *
 * @example
 * ```ts
 * import { Bulkhead, Retry } from "@steadfast/resilience"
 *
 * const limited = Bulkhead.limit(callDatabase, bulkhead)
 * const limited2 = callDatabase.pipe(Retry.retry(policy), Bulkhead.limit(bulkhead))
 * ```
 *
 * @since 0.3.0
 * @category combinators
 */
export const limit: {
  (bulkhead: Bulkhead): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadRejectedError, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, bulkhead: Bulkhead): Effect.Effect<A, E | BulkheadRejectedError, R>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, bulkhead: Bulkhead): Effect.Effect<A, E | BulkheadRejectedError, R> =>
    bulkhead.execute(self)
)

/**
 * The service tag for a shared bulkhead; the interface and the tag share the name `Bulkhead`, as
 * `CircuitBreaker.CircuitBreaker` does.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulkhead } from "@steadfast/resilience"
 *
 * const limited = Effect.flatMap(Bulkhead.Bulkhead, (bulkhead) => bulkhead.execute(callDatabase))
 * const runnable = limited.pipe(Effect.provide(Bulkhead.layer({ maxConcurrent: 10 })))
 * ```
 *
 * @since 0.3.0
 * @category tags
 */
export const Bulkhead: Context.Tag<Bulkhead, Bulkhead> = Context.GenericTag<Bulkhead>("@steadfast/resilience/Bulkhead")

/**
 * A layer providing {@link Bulkhead} built with {@link make}.
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Bulkhead> => Layer.effect(Bulkhead, make(options))
