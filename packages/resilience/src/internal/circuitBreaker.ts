import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import * as BreakerRule from "../BreakerRule.js"
import type * as CB from "../CircuitBreaker.js"
import { CircuitOpenError, isTransientError } from "../Errors.js"
import { decodeDuration, illegal } from "./validate.js"

/**
 * The breaker's state: one variant per state, each with only the data that state has. `epoch` is bumped on every
 * change of state (and on `reset`), so the outcome of a call admitted in an earlier epoch is never applied to a
 * later one (a slow CLOSED call finishing after the breaker re-closed, a probe finishing after `reset`).
 *
 * The state lives in one variable, read and written only by the synchronous functions below. JavaScript runs each
 * of them to completion, so every decision is atomic exactly as a `Ref.modify` would be (a `Ref` is a mutable cell
 * updated by a synchronous function too), and the same decision can be taken inline by a caller's own frame
 * (`unsafeAdmit`) instead of costing one more effect per call.
 *
 * @internal
 */
type Internal =
  | { readonly _tag: "CLOSED"; readonly epoch: number }
  | { readonly _tag: "OPEN"; readonly epoch: number; readonly until: number }
  | HalfOpen
  | { readonly _tag: "ISOLATED"; readonly epoch: number }

interface HalfOpen {
  readonly _tag: "HALF_OPEN"
  readonly epoch: number
  /** Probe slots taken (a probe that ends without an outcome gives its slot back). */
  admitted: number
  successes: number
  failures: number
  /** The probes still running. */
  readonly inFlight: Set<Permit>
}

/** @internal */
export interface Permit extends CB.Permit {
  readonly epoch: number
  readonly probe: boolean
  /** The count of counted failures when admitted (for `countOverlappingOnce`). */
  readonly seq: number
  /** Probes only: Clock millis at admission (for the probe timeout). */
  readonly start: number
}

/** @internal */
export const isPermit = <P extends CB.Permit>(u: P | Effect.Effect<never, CircuitOpenError>): u is P =>
  (u as CB.Permit)._tag === "Permit"

/** Capacity of the sliding PubSub behind `changes`: a slow subscriber loses the oldest changes, callers never wait. */
const CHANGES_CAPACITY = 1024

const DEFAULT_THRESHOLD = 5
const DEFAULT_HALF_OPEN_AFTER = Duration.seconds(30)
const DEFAULT_PROBE_TIMEOUT = Duration.seconds(30)

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

type Rejection = Effect.Effect<never, CircuitOpenError>

interface CachedRejection {
  readonly retryAfterMillis: number
  readonly effect: Rejection
}

const failWith = (error: CircuitOpenError): Rejection => Effect.failCause(Cause.fail(error))

/**
 * Rejections are immutable values, so the failing effect for a given `(operation, retryAfter)` is built once and
 * reused: under a burst, thousands of calls share one millisecond and hence one `CircuitOpenError`.
 */
const makeRejections = (probes: number) => {
  const open = new Map<string, CachedRejection>()
  const probing = new Map<string, Rejection>()
  const isolated = new Map<string, Rejection>()
  const fixed = (cache: Map<string, Rejection>, operation: string, message: string, retryAfter: Duration.Duration) => {
    const cached = cache.get(operation)
    if (cached !== undefined) return cached
    if (cache.size >= REJECTION_CACHE_LIMIT) cache.clear()
    const effect = failWith(openError(operation, retryAfter, message))
    cache.set(operation, effect)
    return effect
  }
  return {
    open: (operation: string, retryAfterMillis: number): Rejection => {
      const cached = open.get(operation)
      if (cached !== undefined && cached.retryAfterMillis === retryAfterMillis) return cached.effect
      if (open.size >= REJECTION_CACHE_LIMIT) open.clear()
      const effect = failWith(openError(
        operation,
        Duration.millis(retryAfterMillis),
        `Circuit breaker is open: "${operation}" rejected, retry after ${retryAfterMillis} ms`
      ))
      open.set(operation, { retryAfterMillis, effect })
      return effect
    },
    probing: (operation: string): Rejection =>
      fixed(probing, operation, `Circuit breaker is half-open: "${operation}" rejected while ${probes === 1 ? "a probe is" : `its ${probes} probes are`} in flight`, Duration.zero),
    isolated: (operation: string): Rejection =>
      fixed(isolated, operation, `Circuit breaker is isolated: "${operation}" rejected until the breaker is reset`, Duration.infinity)
  }
}

const positiveMillis = (name: string, input: Duration.DurationInput): number => {
  const millis = Duration.toMillis(decodeDuration(name, input))
  if (!(millis > 0) || !Number.isFinite(millis)) {
    throw illegal(`${name} must be a finite duration > 0, got ${Duration.format(Duration.decode(input))}`)
  }
  return millis
}

/** @internal */
export interface Config {
  readonly rule: BreakerRule.Rule
  readonly halfOpenMillis: number
  readonly probes: number
  readonly successesToClose: number
  readonly probeTimeoutMillis: number
  readonly backoff: { readonly factor: number; readonly maxMillis: number; readonly resetAfterMillis: number } | undefined
}

/** @internal */
export const validate = (options: CB.Options | undefined): Config => {
  if (options?.rule !== undefined && options.failureThreshold !== undefined) {
    throw illegal("CircuitBreaker takes either failureThreshold or rule, not both")
  }
  const threshold = options?.failureThreshold ?? DEFAULT_THRESHOLD
  if (!Number.isInteger(threshold) || threshold < 1) {
    throw illegal(`CircuitBreaker failureThreshold must be an integer >= 1, got ${threshold}`)
  }
  const rule = options?.rule ?? BreakerRule.consecutive(threshold)
  const halfOpenMillis = positiveMillis("CircuitBreaker halfOpenAfter", options?.halfOpenAfter ?? DEFAULT_HALF_OPEN_AFTER)
  const probes = options?.halfOpen?.probes ?? 1
  if (!Number.isInteger(probes) || probes < 1) {
    throw illegal(`CircuitBreaker halfOpen.probes must be an integer >= 1, got ${probes}`)
  }
  const successRatio = options?.halfOpen?.successRatio ?? 1
  if (!(successRatio > 0 && successRatio <= 1)) {
    throw illegal(`CircuitBreaker halfOpen.successRatio must be a number in (0, 1], got ${successRatio}`)
  }
  const probeTimeoutMillis = positiveMillis("CircuitBreaker halfOpen.timeout", options?.halfOpen?.timeout ?? DEFAULT_PROBE_TIMEOUT)
  let backoff: Config["backoff"]
  if (options?.backoff !== undefined) {
    const factor = options.backoff.factor ?? 2
    if (!(factor >= 1) || !Number.isFinite(factor)) {
      throw illegal(`CircuitBreaker backoff.factor must be a finite number >= 1, got ${factor}`)
    }
    const maxMillis = positiveMillis("CircuitBreaker backoff.max", options.backoff.max)
    if (maxMillis < halfOpenMillis) {
      throw illegal(`CircuitBreaker backoff.max (${maxMillis} ms) must be >= halfOpenAfter (${halfOpenMillis} ms)`)
    }
    const resetAfterMillis = options.backoff.resetAfter === undefined
      ? maxMillis
      : positiveMillis("CircuitBreaker backoff.resetAfter", options.backoff.resetAfter)
    backoff = { factor, maxMillis, resetAfterMillis }
  }
  // Rounded with a tolerance, so 0.6 of 5 probes is 3 (not 4 from 3.0000000000000004).
  const successesToClose = Math.max(1, Math.ceil(successRatio * probes - 1e-9))
  return { rule, halfOpenMillis, probes, successesToClose, probeTimeoutMillis, backoff }
}

/** @internal */
export const make = (options?: CB.Options): Effect.Effect<CB.CircuitBreaker> =>
  Effect.suspend(() => {
    let config: Config
    try {
      config = validate(options)
    } catch (error) {
      return Effect.die(error)
    }
    // The settings are variables, not constants: `reconfigure` swaps them on a live breaker (see there).
    let { backoff, halfOpenMillis, probeTimeoutMillis, probes, rule, successesToClose } = config
    let isFailure = options?.isFailure ?? isTransientError
    let overlappingOnce = options?.countOverlappingOnce ?? false
    let rejections = makeRejections(probes)
    let counter = rule.make()
    let timed = rule.timed
    // The Clock is taken once, where the breaker is made (a per-call `clockWith` is a context lookup on the hot
    // path); under `TestClock`, make the breaker inside the test.
    return Effect.zipWith(Effect.clock, PubSub.sliding<CB.StateChange>(CHANGES_CAPACITY), (clock, pubsub) => {
      let state: Internal = { _tag: "CLOSED", epoch: 0 }
      /** Counted failures since the last success (kept while OPEN / HALF_OPEN, zeroed on close). */
      let consecutive = 0
      /** Counted failures ever (for `countOverlappingOnce`: a failure counts only if none was counted meanwhile). */
      let seq = 0
      let opens = 0
      /** Opens since the breaker last stayed closed for `backoff.resetAfter` (the exponent of the break). */
      let streak = 0
      let closedAt = Number.NEGATIVE_INFINITY
      let lastBreakMillis = halfOpenMillis

      /** The permit of CLOSED calls: one object per (epoch, seq), shared by every call admitted meanwhile. */
      let closedPermit: Permit = { _tag: "Permit", epoch: 0, probe: false, seq: 0, start: 0 }
      const closedPermitFor = (epoch: number): Permit =>
        closedPermit.epoch === epoch && closedPermit.seq === seq
          ? closedPermit
          : (closedPermit = { _tag: "Permit", epoch, probe: false, seq, start: 0 })

      const transition = (next: Internal, now: number): void => {
        const from = state._tag
        state = next
        pubsub.unsafeOffer({ from, to: next._tag, at: now, consecutiveFailures: consecutive })
      }

      const open = (now: number): void => {
        // Only an open from CLOSED can end the streak: a probe failing (HALF_OPEN -> OPEN) continues it, however
        // long ago the breaker last closed.
        if (backoff !== undefined && state._tag === "CLOSED" && now - closedAt >= backoff.resetAfterMillis) streak = 0
        lastBreakMillis = backoff === undefined
          ? halfOpenMillis
          : Math.min(backoff.maxMillis, halfOpenMillis * Math.pow(backoff.factor, streak))
        streak++
        opens++
        transition({ _tag: "OPEN", epoch: state.epoch + 1, until: now + lastBreakMillis }, now)
      }

      const close = (now: number): void => {
        consecutive = 0
        counter.reset()
        closedAt = now
        transition({ _tag: "CLOSED", epoch: state.epoch + 1 }, now)
      }

      /** After a probe's outcome: close once enough probes succeeded, re-open once too many failed. */
      const decide = (h: HalfOpen, now: number): void => {
        if (h.successes >= successesToClose) close(now)
        else if (h.failures > probes - successesToClose) open(now)
      }

      /** A probe that has run longer than the probe timeout is a failed probe (its own outcome will be ignored). */
      const expireProbes = (h: HalfOpen, now: number): void => {
        for (const probe of h.inFlight) {
          if (state !== h) return
          if (now - probe.start >= probeTimeoutMillis) {
            h.inFlight.delete(probe)
            h.failures++
            consecutive++
            seq++
            decide(h, now)
          }
        }
      }

      const unsafeAdmit = (operation: string): Permit | Rejection => {
        switch (state._tag) {
          case "CLOSED":
            return closedPermitFor(state.epoch)
          case "OPEN": {
            const now = clock.unsafeCurrentTimeMillis()
            if (now < state.until) return rejections.open(operation, state.until - now)
            const h: HalfOpen = { _tag: "HALF_OPEN", epoch: state.epoch + 1, admitted: 1, successes: 0, failures: 0, inFlight: new Set() }
            transition(h, now)
            const permit: Permit = { _tag: "Permit", epoch: h.epoch, probe: true, seq, start: now }
            h.inFlight.add(permit)
            return permit
          }
          case "HALF_OPEN": {
            const now = clock.unsafeCurrentTimeMillis()
            const h = state
            if (h.inFlight.size > 0) expireProbes(h, now)
            if (state !== h) return unsafeAdmit(operation)
            if (h.admitted >= probes) return rejections.probing(operation)
            h.admitted++
            const permit: Permit = { _tag: "Permit", epoch: h.epoch, probe: true, seq, start: now }
            h.inFlight.add(permit)
            return permit
          }
          case "ISOLATED":
            return rejections.isolated(operation)
        }
      }

      /** The probe's own half-open state, if the permit still belongs to it (its epoch, not timed out). */
      const probeState = (permit: Permit): HalfOpen | undefined =>
        state._tag === "HALF_OPEN" && state.epoch === permit.epoch && state.inFlight.delete(permit) ? state : undefined

      const unsafeSucceed = (permit: Permit, durationMillis: number): void => {
        if (!permit.probe) {
          if (state._tag !== "CLOSED" || state.epoch !== permit.epoch) return
          if (consecutive === 0 && !rule.countsSuccesses) return
          consecutive = 0
          if (counter.record(false, durationMillis, clock.unsafeCurrentTimeMillis())) {
            // A slow success (the `slowCalls` rule) can open the breaker.
            open(clock.unsafeCurrentTimeMillis())
          }
          return
        }
        const h = probeState(permit)
        if (h === undefined) return
        // A slow probe (`slowCalls`) is a failed probe: the server is not well yet.
        if (rule.slow !== undefined && rule.slow(durationMillis)) h.failures++
        else h.successes++
        decide(h, clock.unsafeCurrentTimeMillis())
      }

      /** Ends a permit without an outcome (an uncounted failure, a defect, an interruption): frees a probe slot. */
      const unsafeRelease = (permit: Permit): void => {
        if (!permit.probe) return
        const h = probeState(permit)
        if (h !== undefined) h.admitted--
      }

      /** A throwing `isFailure` counts the error: noisy, but it can never leave the breaker wedged. */
      const counts = (error: unknown): boolean => {
        try {
          return isFailure(error)
        } catch {
          return true
        }
      }

      const unsafeFail = (permit: Permit, error: unknown, durationMillis: number): void => {
        if (!counts(error)) return unsafeRelease(permit)
        if (!permit.probe) {
          if (state._tag !== "CLOSED" || state.epoch !== permit.epoch) return
          if (overlappingOnce && seq !== permit.seq) return
          seq++
          consecutive++
          const now = clock.unsafeCurrentTimeMillis()
          if (counter.record(true, durationMillis, now)) open(now)
          return
        }
        const h = probeState(permit)
        if (h === undefined) return
        h.failures++
        seq++
        consecutive++
        decide(h, clock.unsafeCurrentTimeMillis())
      }

      const settle = (permit: Permit, exit: Exit.Exit<unknown, unknown>, durationMillis: number): void => {
        if (Exit.isSuccess(exit)) return unsafeSucceed(permit, durationMillis)
        const failure = Cause.failureOption(exit.cause)
        if (Option.isSome(failure)) unsafeFail(permit, failure.value, durationMillis)
        else unsafeRelease(permit)
      }

      /**
       * A CLOSED call: one `matchCauseEffect` frame (a success has nothing to record unless the rule counts successes
       * or failures are held). Interruption runs no `onFailure`: a CLOSED call's interruption is not an outcome.
       */
      const runClosed = <A, E, R>(permit: Permit, self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
        if (!timed) {
          return Effect.matchCauseEffect(self, {
            onFailure: (cause) => {
              const failure = Cause.failureOption(cause)
              if (Option.isSome(failure)) unsafeFail(permit, failure.value, 0)
              return Effect.failCause(cause)
            },
            onSuccess: (a) => {
              if (consecutive !== 0 || rule.countsSuccesses) unsafeSucceed(permit, 0)
              return Effect.succeed(a)
            }
          })
        }
        const start = clock.unsafeCurrentTimeMillis()
        return Effect.matchCauseEffect(self, {
          onFailure: (cause) => {
            const failure = Cause.failureOption(cause)
            if (Option.isSome(failure)) unsafeFail(permit, failure.value, clock.unsafeCurrentTimeMillis() - start)
            return Effect.failCause(cause)
          },
          onSuccess: (a) => {
            unsafeSucceed(permit, clock.unsafeCurrentTimeMillis() - start)
            return Effect.succeed(a)
          }
        })
      }

      /**
       * CLOSED calls take the fast path. Anything else is admitted uninterruptibly together with the registration of
       * its exit handler, so an interruption can never land between "I am a probe" and "give the slot back when I am
       * done".
       */
      const execute = <A, E, R>(operation: string, self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpenError, R> =>
        Effect.suspend(() => {
          if (state._tag === "CLOSED") return runClosed(closedPermitFor(state.epoch), self)
          if (rejectsNow()) return unsafeAdmit(operation) as Rejection
          return Effect.uninterruptibleMask((restore) =>
            Effect.suspend((): Effect.Effect<A, E | CircuitOpenError, R> => {
              const permit = unsafeAdmit(operation)
              if (!isPermit(permit)) return permit
              if (!permit.probe) return restore(runClosed(permit, self))
              return Effect.onExit(
                restore(self),
                (exit) => Effect.sync(() => settle(permit, exit, clock.unsafeCurrentTimeMillis() - permit.start))
              )
            })
          )
        })

      const rejectsNow = (): boolean => {
        switch (state._tag) {
          case "CLOSED":
            return false
          case "OPEN":
            return clock.unsafeCurrentTimeMillis() < state.until
          case "HALF_OPEN": {
            if (state.admitted < probes) return false
            const now = clock.unsafeCurrentTimeMillis()
            for (const probe of state.inFlight) if (now - probe.start >= probeTimeoutMillis) return false
            return true
          }
          case "ISOLATED":
            return true
        }
      }

      const unsafeSnapshot = (): CB.Snapshot => {
        const now = clock.unsafeCurrentTimeMillis()
        const retryAfterMillis = state._tag === "OPEN"
          ? Math.max(0, state.until - now)
          : state._tag === "ISOLATED"
          ? Number.POSITIVE_INFINITY
          : undefined
        return {
          state: state._tag,
          consecutiveFailures: consecutive,
          opens,
          retryAfter: retryAfterMillis === undefined ? Option.none() : Option.some(Duration.millis(retryAfterMillis)),
          retryAfterMillis: retryAfterMillis === undefined || !Number.isFinite(retryAfterMillis) ? null : retryAfterMillis,
          rule: rule.name,
          window: counter.view(now),
          breakMillis: lastBreakMillis,
          probes: state._tag === "HALF_OPEN"
            ? { permitted: probes, admitted: state.admitted, succeeded: state.successes, failed: state.failures }
            : { permitted: probes, admitted: 0, succeeded: 0, failed: 0 }
        }
      }

      const reset: Effect.Effect<void> = Effect.sync(() => {
        if (state._tag === "CLOSED") {
          consecutive = 0
          counter.reset()
          return
        }
        close(clock.unsafeCurrentTimeMillis())
      })

      /**
       * New settings on the live breaker, in one synchronous step (so no call sees half of them). The state is kept:
       * an OPEN breaker stays open until its break ends (the next break takes the new duration), a HALF_OPEN round
       * is decided with the new probe count and ratio, in-flight calls settle as admitted. A new rule starts with
       * fresh counts; with the same rule object the counts are kept.
       */
      const reconfigure = (next: CB.Options): Effect.Effect<void, Cause.IllegalArgumentException> =>
        Effect.suspend(() => {
          let validated: Config
          try {
            validated = validate(next)
          } catch (error) {
            return error instanceof Cause.IllegalArgumentException ? Effect.fail(error) : Effect.die(error)
          }
          if (validated.rule !== rule) {
            counter = validated.rule.make()
            timed = validated.rule.timed
          }
          if (validated.probes !== probes) rejections = makeRejections(validated.probes)
          ;({ backoff, halfOpenMillis, probeTimeoutMillis, probes, rule, successesToClose } = validated)
          isFailure = next.isFailure ?? isTransientError
          overlappingOnce = next.countOverlappingOnce ?? false
          return Effect.void
        })

      const isolate: Effect.Effect<void> = Effect.sync(() => {
        if (state._tag !== "ISOLATED") transition({ _tag: "ISOLATED", epoch: state.epoch + 1 }, clock.unsafeCurrentTimeMillis())
      })

      const breaker: CB.CircuitBreaker = {
        execute,
        rejectsNow,
        unsafeState: () => state._tag,
        unsafeAdmit: unsafeAdmit as CB.CircuitBreaker["unsafeAdmit"],
        unsafeSucceed: unsafeSucceed as CB.CircuitBreaker["unsafeSucceed"],
        unsafeFail: unsafeFail as CB.CircuitBreaker["unsafeFail"],
        unsafeRelease: unsafeRelease as CB.CircuitBreaker["unsafeRelease"],
        get timed() {
          return timed
        },
        reconfigure,
        state: Effect.sync(() => state._tag),
        snapshot: Effect.sync(unsafeSnapshot),
        unsafeSnapshot,
        changes: Stream.fromPubSub(pubsub),
        subscribe: PubSub.subscribe(pubsub),
        reset,
        isolate
      }
      return breaker
    })
  })
