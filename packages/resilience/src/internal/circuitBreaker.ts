import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import type * as CB from "../CircuitBreaker.js"
import { CircuitOpenError, isTransientError } from "../Errors.js"
import { decodeDuration, illegal } from "./validate.js"

/**
 * The breaker's internal state. One immutable object per state; `epoch` is bumped on every change of `state`
 * (and on `reset`) so that the result of a call admitted in an earlier epoch can never be applied to a later
 * one (a slow CLOSED call finishing after the breaker re-closed, a probe finishing after `reset`).
 *
 * @internal
 */
interface Internal {
  readonly state: CB.State
  readonly epoch: number
  /** Consecutive counted failures since the last success (kept while OPEN / HALF_OPEN). */
  readonly failures: number
  readonly opens: number
  /** OPEN only: the instant (Clock millis) from which a probe is allowed. */
  readonly probeAt: number
  /** HALF_OPEN only: a probe is in flight. */
  readonly probing: boolean
}

/** Capacity of the sliding PubSub behind `changes`: a slow subscriber loses the oldest changes, callers never wait. */
const CHANGES_CAPACITY = 1024

const DEFAULT_THRESHOLD = 5
const DEFAULT_HALF_OPEN_AFTER = Duration.seconds(30)

/**
 * Builds a `CircuitOpenError` without capturing a stack trace: it is raised on the hot path (possibly millions of
 * times per second) and its stack would only ever point into this module.
 */
const openError = (operation: string, retryAfter: Duration.Duration, message: string): CircuitOpenError => {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new CircuitOpenError({ operation, retryAfter, message })
  } finally {
    Error.stackTraceLimit = limit
  }
}

/** Bound of the per-breaker rejection caches, so unbounded distinct operation names cannot leak memory. */
const REJECTION_CACHE_LIMIT = 512

interface CachedRejection {
  readonly retryAfterMillis: number
  readonly effect: Effect.Effect<never, CircuitOpenError>
}

/**
 * Rejections are immutable values, so the failing effect for a given `(operation, retryAfter)` is built once and
 * reused: under a burst, thousands of calls share one millisecond and hence one `CircuitOpenError`.
 */
const makeRejections = () => {
  const open = new Map<string, CachedRejection>()
  const probing = new Map<string, Effect.Effect<never, CircuitOpenError>>()
  return {
    open: (operation: string, retryAfterMillis: number): Effect.Effect<never, CircuitOpenError> => {
      const cached = open.get(operation)
      if (cached !== undefined && cached.retryAfterMillis === retryAfterMillis) return cached.effect
      if (open.size >= REJECTION_CACHE_LIMIT) open.clear()
      const effect = Effect.failCause(Cause.fail(openError(
        operation,
        Duration.millis(retryAfterMillis),
        `Circuit breaker is open: "${operation}" rejected, retry after ${retryAfterMillis} ms`
      )))
      open.set(operation, { retryAfterMillis, effect })
      return effect
    },
    probing: (operation: string): Effect.Effect<never, CircuitOpenError> => {
      const cached = probing.get(operation)
      if (cached !== undefined) return cached
      if (probing.size >= REJECTION_CACHE_LIMIT) probing.clear()
      const effect = Effect.failCause(Cause.fail(openError(
        operation,
        Duration.zero,
        `Circuit breaker is half-open: "${operation}" rejected while a probe is in flight`
      )))
      probing.set(operation, effect)
      return effect
    }
  }
}

/** @internal */
export const validate = (options: CB.Options | undefined): { readonly threshold: number; readonly halfOpenMillis: number } => {
  const threshold = options?.failureThreshold ?? DEFAULT_THRESHOLD
  if (!Number.isInteger(threshold) || threshold < 1) {
    throw illegal(`CircuitBreaker failureThreshold must be an integer >= 1, got ${threshold}`)
  }
  const halfOpenAfter = options?.halfOpenAfter === undefined
    ? DEFAULT_HALF_OPEN_AFTER
    : decodeDuration("CircuitBreaker halfOpenAfter", options.halfOpenAfter)
  const halfOpenMillis = Duration.toMillis(halfOpenAfter)
  if (!(halfOpenMillis > 0) || !Number.isFinite(halfOpenMillis)) {
    throw illegal(`CircuitBreaker halfOpenAfter must be a finite duration > 0, got ${Duration.format(halfOpenAfter)}`)
  }
  return { threshold, halfOpenMillis }
}

/** @internal */
export const make = (options?: CB.Options): Effect.Effect<CB.CircuitBreaker> =>
  Effect.suspend(() => {
    let config: ReturnType<typeof validate>
    try {
      config = validate(options)
    } catch (error) {
      return Effect.die(error)
    }
    const { halfOpenMillis, threshold } = config
    const isFailure = options?.isFailure ?? isTransientError
    const overlappingOnce = options?.countOverlappingOnce ?? false
    const rejections = makeRejections()
    // The Clock is taken once, where the breaker is made (a per-call `clockWith` is a context lookup on the hot
    // path); under `TestClock`, make the breaker inside the test.
    return Effect.zipWith(Effect.clock, PubSub.sliding<CB.StateChange>(CHANGES_CAPACITY), (clock, pubsub) => {
      const initial: Internal = {
        state: "CLOSED",
        epoch: 0,
        failures: 0,
        opens: 0,
        probeAt: 0,
        probing: false
      }
      const ref = Ref.unsafeMake<Internal>(initial)

      /**
       * The Ref's current value, for the synchronous `rejectsNow` peek only. Written solely inside the Ref's own
       * update functions below (`update` / `modify`), so it is always what `Ref.get` would return; every decision is
       * still taken on the Ref.
       */
      let latest: Internal = initial
      const update = (f: (s: Internal) => Internal): Effect.Effect<void> => Ref.update(ref, (s) => (latest = f(s)))
      const modify = <B>(f: (s: Internal) => readonly [B, Internal]): Effect.Effect<B> =>
        Ref.modify(ref, (s) => {
          const result = f(s)
          latest = result[1]
          return result
        })

      /** Publishes a transition. Called inside `Ref.modify`, so changes are published in the order they happen. */
      const publish = (from: Internal, to: Internal, at: number): void => {
        pubsub.unsafeOffer({ from: from.state, to: to.state, at, consecutiveFailures: to.failures })
      }

      const open = (s: Internal, now: number): Internal => ({
        state: "OPEN",
        epoch: s.epoch + 1,
        failures: s.failures + 1,
        opens: s.opens + 1,
        probeAt: now + halfOpenMillis,
        probing: false
      })

      /** A throwing `isFailure` counts the error: noisy, but it can never leave the breaker wedged. */
      const counts = (exit: Exit.Exit<unknown, unknown>): boolean => {
        if (Exit.isSuccess(exit)) return false
        const failure = Cause.failureOption(exit.cause)
        if (Option.isNone(failure)) return false // defect or interruption
        try {
          return isFailure(failure.value)
        } catch {
          return true
        }
      }

      /** Records the outcome of a call admitted while CLOSED in `epoch`. */
      /**
       * Records the outcome of a call admitted while CLOSED in `epoch`, when the count was `admittedAt`. With
       * `countOverlappingOnce`, a failure counts only if no failure was counted while the call ran.
       */
      const recordClosed = (epoch: number, admittedAt: number, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
        if (Exit.isSuccess(exit)) {
          return update((s) =>
            s.state === "CLOSED" && s.epoch === epoch && s.failures !== 0 ? { ...s, failures: 0 } : s)
        }
        if (!counts(exit)) return Effect.void
        return update((s) => {
          if (s.state !== "CLOSED" || s.epoch !== epoch) return s
          if (overlappingOnce && s.failures !== admittedAt) return s
          if (s.failures + 1 < threshold) return { ...s, failures: s.failures + 1 }
          const now = clock.unsafeCurrentTimeMillis()
          const next = open(s, now)
          publish(s, next, now)
          return next
        })
      }

      /** Records the outcome of the probe admitted in HALF_OPEN `epoch`. Always releases the probe slot. */
      const recordProbe = (epoch: number, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
        const outcome = Exit.isSuccess(exit) ? "close" : counts(exit) ? "open" : "release"
        return Effect.clockWith((clock) => {
          const now = clock.unsafeCurrentTimeMillis()
          return update((s) => {
            if (s.state !== "HALF_OPEN" || s.epoch !== epoch) return s
            let next: Internal
            if (outcome === "close") {
              next = { state: "CLOSED", epoch: s.epoch + 1, failures: 0, opens: s.opens, probeAt: 0, probing: false }
            } else if (outcome === "open") {
              next = open(s, now)
            } else {
              return { ...s, probing: false }
            }
            publish(s, next, now)
            return next
          })
        })
      }

      /**
       * The admission decision that may change the state (claiming the probe slot): a single `Ref.modify`, run
       * uninterruptibly together with the registration of the exit handler, so an interruption can never land
       * between "I am the probe" and "release the probe slot when I am done".
       */
      const admit = <A, E, R>(
        operation: string,
        self: Effect.Effect<A, E, R>,
        now: number
      ): Effect.Effect<A, E | CircuitOpenError, R> =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatten(modify((s): readonly [Effect.Effect<A, E | CircuitOpenError, R>, Internal] => {
            switch (s.state) {
              case "CLOSED": {
                const epoch = s.epoch
                const admittedAt = s.failures
                return [Effect.onExit(restore(self), (exit) => recordClosed(epoch, admittedAt, exit)), s]
              }
              case "OPEN": {
                if (now < s.probeAt) return [rejections.open(operation, s.probeAt - now), s]
                const next: Internal = { ...s, state: "HALF_OPEN", epoch: s.epoch + 1, probeAt: 0, probing: true }
                publish(s, next, now)
                return [Effect.onExit(restore(self), (exit) => recordProbe(next.epoch, exit)), next]
              }
              case "HALF_OPEN": {
                if (s.probing) return [rejections.probing(operation), s]
                const epoch = s.epoch
                return [Effect.onExit(restore(self), (exit) => recordProbe(epoch, exit)), { ...s, probing: true }]
              }
            }
          }))
        )

      /**
       * Fast path: decisions that leave the state unchanged (run while CLOSED, reject while OPEN or while a probe is
       * in flight) are taken on one consistent `Ref.get` snapshot, exactly as `admit` would take them, without the
       * cost of an uninterruptible region. Everything else goes through `admit`.
       */
      const execute = <A, E, R>(operation: string, self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpenError, R> =>
        Effect.flatMap(Ref.get(ref), (s): Effect.Effect<A, E | CircuitOpenError, R> => {
            const now = clock.unsafeCurrentTimeMillis()
            switch (s.state) {
              case "CLOSED": {
                const epoch = s.epoch
                // With no failures counted, a success has nothing to record: only a failure needs handling, and a
                // catch frame is much cheaper than `onExit` on the path every healthy call takes.
                const admittedAt = s.failures
                // One frame instead of `onExit`'s uninterruptible region. A success only touches the Ref when there is
                // a count to reset *now* (others may have failed while this call ran): `latest` mirrors the Ref.
                return Effect.matchCauseEffect(self, {
                  onFailure: (cause) =>
                    Effect.zipRight(recordClosed(epoch, admittedAt, Exit.failCause(cause)), Effect.failCause(cause)),
                  onSuccess: (a) =>
                    latest.failures === 0 ? Effect.succeed(a) : Effect.as(recordClosed(epoch, admittedAt, Exit.succeed(a)), a)
                })
              }
              case "OPEN": {
                if (now < s.probeAt) return rejections.open(operation, s.probeAt - now)
                return admit(operation, self, now)
              }
              case "HALF_OPEN": {
                if (s.probing) return rejections.probing(operation)
                return admit(operation, self, now)
              }
            }
          })

      const state: Effect.Effect<CB.State> = Effect.map(Ref.get(ref), (s) => s.state)

      const snapshot: Effect.Effect<CB.Snapshot> = Effect.clockWith((clock) =>
        Effect.map(Ref.get(ref), (s): CB.Snapshot => ({
          state: s.state,
          consecutiveFailures: s.failures,
          opens: s.opens,
          retryAfter: s.state === "OPEN"
            ? Option.some(Duration.millis(Math.max(0, s.probeAt - clock.unsafeCurrentTimeMillis())))
            : Option.none()
        }))
      )

      const reset: Effect.Effect<void> = Effect.clockWith((clock) => {
        const now = clock.unsafeCurrentTimeMillis()
        return update((s) => {
          if (s.state === "CLOSED") return s.failures === 0 ? s : { ...s, failures: 0 }
          const next: Internal = { state: "CLOSED", epoch: s.epoch + 1, failures: 0, opens: s.opens, probeAt: 0, probing: false }
          publish(s, next, now)
          return next
        })
      })

      const rejectsNow = (): boolean =>
        latest.state === "OPEN" ? clock.unsafeCurrentTimeMillis() < latest.probeAt : latest.state === "HALF_OPEN" && latest.probing

      const breaker: CB.CircuitBreaker = {
        execute,
        rejectsNow,
        unsafeState: () => latest.state,
        state,
        snapshot,
        changes: Stream.fromPubSub(pubsub),
        subscribe: PubSub.subscribe(pubsub),
        reset
      }
      return breaker
    })
  })
