import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import type * as B from "../Bulkhead.js"
import { BulkheadRejectedError } from "../Errors.js"
import { decodeDuration, illegal } from "./validate.js"

/** @internal */
export interface Config {
  readonly name: string
  readonly maxConcurrent: number
  readonly maxQueue: number
  /** Infinite when calls may wait for ever. */
  readonly queueTimeout: Duration.Duration
}

/** @internal */
export const validate = (options: B.Options): Config => {
  // `options` comes from users, possibly untyped JavaScript: read it defensively.
  const maxConcurrent = (options as Partial<B.Options> | undefined)?.maxConcurrent
  if (typeof maxConcurrent !== "number" || !Number.isInteger(maxConcurrent) || maxConcurrent < 1) {
    throw illegal(`Bulkhead maxConcurrent must be an integer >= 1, got ${maxConcurrent}`)
  }
  const maxQueue = options.maxQueue ?? 0
  if (typeof maxQueue !== "number" || !Number.isInteger(maxQueue) || maxQueue < 0) {
    throw illegal(`Bulkhead maxQueue must be an integer >= 0, got ${maxQueue}`)
  }
  const queueTimeout = options.queueTimeout === undefined
    ? Duration.infinity
    : decodeDuration("Bulkhead queueTimeout", options.queueTimeout)
  if (!(Duration.toMillis(queueTimeout) > 0)) {
    throw illegal(`Bulkhead queueTimeout must be a duration > 0, got ${Duration.format(queueTimeout)}`)
  }
  const name = options.name ?? "bulkhead"
  if (typeof name !== "string") {
    throw illegal(`Bulkhead name must be a string, got ${String(name)}`)
  }
  return { name, maxConcurrent, maxQueue, queueTimeout }
}

/**
 * A fiber waiting for a slot: a node of the doubly linked FIFO queue (O(1) removal of a fiber that gives up).
 */
interface Waiter {
  readonly deferred: Deferred.Deferred<void>
  prev: Waiter | undefined
  next: Waiter | undefined
  /** In the queue (not yet granted, timed out or interrupted). */
  linked: boolean
  /** Handed a slot by a release: the slot is the waiter's from then on, and it must pass it on if it does not run. */
  granted: boolean
}

/**
 * The whole state is plain mutable fields changed only inside synchronous steps (`Effect.suspend` / `Effect.sync`):
 * a JavaScript runtime runs one fiber step at a time, so each decision (take a slot, queue, reject, hand the slot
 * over) is atomic without a `Ref`.
 *
 * Invariant: `queued > 0` implies `running === maxConcurrent`. A release with fibers waiting hands its slot to the
 * oldest waiter (`running` unchanged) instead of freeing it, so a newcomer can never overtake a waiter: FIFO.
 */
class BulkheadImpl implements B.Bulkhead {
  running = 0
  queued = 0
  rejected = 0
  timedOut = 0
  head: Waiter | undefined = undefined
  tail: Waiter | undefined = undefined
  readonly rejectFull: Effect.Effect<never, BulkheadRejectedError>
  readonly timeoutError: BulkheadRejectedError

  constructor(readonly config: Config) {
    const { maxConcurrent, maxQueue, name, queueTimeout } = config
    const limits = `maxConcurrent ${maxConcurrent}, maxQueue ${maxQueue}`
    // Both errors only carry the bulkhead's constant limits: built once, shared by every rejection (a full
    // bulkhead must reject fast).
    this.rejectFull = Effect.fail(
      new BulkheadRejectedError({
        bulkhead: name,
        reason: "queue_full",
        maxConcurrent,
        maxQueue,
        queueTimeout,
        message: `${name} is full (${limits})`
      })
    )
    this.timeoutError = new BulkheadRejectedError({
      bulkhead: name,
      reason: "queue_timeout",
      maxConcurrent,
      maxQueue,
      queueTimeout,
      message: `${name}: no slot within the ${Duration.format(queueTimeout)} queue timeout (${limits})`
    })
  }

  /**
   * One uninterruptible region from the slot's acquisition to its release: the slot cannot leak. A free slot is
   * taken synchronously and released by the same `matchCauseEffect` that ends the call (which runs however the call
   * ends, interruption included, since the region is uninterruptible outside `restore`): the path every call takes
   * while the bulkhead has room costs one frame. Only a call that must wait goes through `acquire`.
   */
  execute = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | BulkheadRejectedError, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const run = () =>
          Effect.matchCauseEffect(restore(self), {
            onFailure: (cause) => {
              this.release()
              return Effect.failCause(cause)
            },
            onSuccess: (a) => {
              this.release()
              return Effect.succeed(a)
            }
          })
        // `running < maxConcurrent` implies nobody waits (the invariant above): taking the slot overtakes no one.
        if (this.running < this.config.maxConcurrent) {
          this.running++
          return run()
        }
        return Effect.flatMap(this.acquire(restore), run)
      })
    )

  unsafeSnapshot = (): B.Snapshot => ({
    name: this.config.name,
    maxConcurrent: this.config.maxConcurrent,
    maxQueue: this.config.maxQueue,
    queueTimeout: this.config.queueTimeout,
    running: this.running,
    queued: this.queued,
    rejected: this.rejected,
    timedOut: this.timedOut
  })

  snapshot = Effect.sync(this.unsafeSnapshot)

  private acquire(restore: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>) {
    return Effect.suspend((): Effect.Effect<void, BulkheadRejectedError> => {
      if (this.running < this.config.maxConcurrent) {
        this.running++
        return Effect.void
      }
      if (this.queued >= this.config.maxQueue) {
        this.rejected++
        return this.rejectFull
      }
      const waiter = this.enqueue()
      // Only the wait itself is interruptible; whatever ends it, `leave` runs uninterruptibly.
      return Effect.matchCauseEffect(restore(this.wait(waiter)), {
        onSuccess: () => Effect.void,
        onFailure: (cause) => this.leave(waiter, cause)
      })
    })
  }

  private wait(waiter: Waiter): Effect.Effect<void, BulkheadRejectedError> {
    const await_ = Deferred.await(waiter.deferred)
    if (!Duration.isFinite(this.config.queueTimeout)) return await_
    const timeoutError = this.timeoutError
    return Effect.timeoutFail(await_, { duration: this.config.queueTimeout, onTimeout: () => timeoutError })
  }

  /** The wait ended without the slot reaching the fiber: interrupted, or timed out. */
  private leave(waiter: Waiter, cause: Cause.Cause<BulkheadRejectedError>): Effect.Effect<void, BulkheadRejectedError> {
    return Effect.suspend(() => {
      if (waiter.granted) {
        // The slot was handed over just as the wait ended.
        if (Cause.isInterrupted(cause)) {
          this.release() // pass it on to the next waiter (or free it)
          return Effect.failCause(cause)
        }
        return Effect.void // timed out in the same instant the slot came: keep it and run
      }
      this.unlink(waiter)
      if (!Cause.isInterrupted(cause)) {
        this.rejected++
        this.timedOut++
      }
      return Effect.failCause(cause)
    })
  }

  private enqueue(): Waiter {
    const waiter: Waiter = {
      deferred: Deferred.unsafeMake<void>(FiberId.none),
      prev: this.tail,
      next: undefined,
      linked: true,
      granted: false
    }
    if (this.tail === undefined) this.head = waiter
    else this.tail.next = waiter
    this.tail = waiter
    this.queued++
    return waiter
  }

  private unlink(waiter: Waiter): void {
    if (!waiter.linked) return
    waiter.linked = false
    if (waiter.prev === undefined) this.head = waiter.next
    else waiter.prev.next = waiter.next
    if (waiter.next === undefined) this.tail = waiter.prev
    else waiter.next.prev = waiter.prev
    waiter.prev = undefined
    waiter.next = undefined
    this.queued--
  }

  /** Gives a slot back: to the oldest waiter if there is one (FIFO), else to the pool. */
  private release(): void {
    const next = this.head
    if (next === undefined) {
      this.running--
      return
    }
    this.unlink(next)
    next.granted = true
    Deferred.unsafeDone(next.deferred, Exit.void)
  }
}

/** @internal */
export const unsafeMake = (options: B.Options): B.Bulkhead => new BulkheadImpl(validate(options))

/** @internal */
export const make = (options: B.Options): Effect.Effect<B.Bulkhead> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(unsafeMake(options))
    } catch (error) {
      return Effect.die(error)
    }
  })
