/**
 * The hybrid cache's `getOrSet` with factory control: single-flight per key, a soft timeout (answer the fail-safe
 * stale value, let the factory finish in the background), a hard timeout (a typed failure, or the stale value), eager
 * refresh of a hit past a fraction of its L1 TTL, and the stale value when the factory fails.
 *
 * A factory runs in a fiber of its own, forked into the cache's scope (with the first caller's context): callers only
 * wait for it, so a caller that times out or is interrupted leaves it running, and its result is still stored. Its
 * result is not stored when a write or delete of the key went through this process while it ran (`superseded`): the
 * write is newer than what the factory read.
 *
 * With `lock` (off by default), the flight runs under a distributed lock (`lock.ts`): one instance runs the factory
 * per key, the others' flights wait for its value (or take the lock over when it expires); the callers' soft and hard
 * timeouts apply to that wait as to a factory of their own.
 *
 * Time comes from Effect's `Clock` (`TestClock` drives it in tests).
 *
 * @internal
 */
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { SetOptions } from "../Cache.js"
import * as Lock from "./lock.js"

/**
 * A `getOrSet` factory did not finish within its `hardTimeout` and no stale value could be served. The factory keeps
 * running in the background: its result is stored when it finishes.
 *
 * @since 0.3.0
 * @category errors
 */
export class FactoryTimeoutError extends Data.TaggedError("FactoryTimeoutError")<{
  readonly key: string
  readonly timeoutMs: number
}> {
  override get message(): string {
    return `getOrSet factory for ${JSON.stringify(this.key)} did not finish within ${this.timeoutMs} ms`
  }
}

/**
 * @since 0.3.0
 * @category models
 */
export interface FactoryOptions extends SetOptions {
  /** With a stale value (fail-safe), answer it after this long and let the factory finish in the background. */
  readonly softTimeout?: Duration.DurationInput | undefined
  /** Fail with `FactoryTimeoutError` after this long (or answer the stale value, if there is one). */
  readonly hardTimeout?: Duration.DurationInput | undefined
  /** On a hit past this fraction of the L1 TTL (0 < f < 1), run the factory in the background. */
  readonly eagerRefresh?: number | undefined
  /**
   * Distributed stampede control: `true` (defaults) or {@link Lock.LockOptions}, so that one instance runs the factory
   * per key while the others wait for its value (off by default: single-flight per process only).
   */
  readonly lock?: boolean | Lock.LockOptions | undefined
}

/** What the factory control needs from the cache. */
export interface Backend {
  /** An L1 hit, with the fraction of its L1 TTL already past; `undefined` when L1 cannot answer. */
  readonly hit: (key: string) => { readonly value: string; readonly age: number } | undefined
  /** L2 (through L1's miss path): a value, a fail-safe stale value (Redis failed), or nothing. */
  readonly lookup: (key: string) => Effect.Effect<Lookup>
  /** Store the factory's value in L2; with `refill`, read it back so L1 holds it (tracked). */
  readonly store: (key: string, value: string, options: SetOptions | undefined, refill: boolean) => Effect.Effect<void, unknown>
  /** A stale value was answered (counted by reason). */
  readonly servedStale: (reason: string) => void
  /** A factory event; `detail` qualifies some (`lock_unavailable`: the reason). */
  readonly event: (name: string, detail?: string) => void
  /** The distributed lock's commands, and a read of the key's value in L2 (filling L1); without it, no lock. */
  readonly locks?: {
    readonly store: Lock.LockStore
    readonly peek: (key: string) => Effect.Effect<Option.Option<string>>
  } | undefined
}

export type Lookup =
  | { readonly _tag: "Value"; readonly value: string }
  | { readonly _tag: "Stale"; readonly value: string }
  | { readonly _tag: "Miss" }

interface Flight {
  readonly done: Deferred.Deferred<string, unknown>
  superseded: boolean
  /** Nobody waits for it (eager refresh), or a caller stopped waiting: its result is also read back into L1. */
  refill: boolean
}

export interface Resolved {
  readonly softMs: number | undefined
  readonly hardMs: number | undefined
  readonly eager: number | undefined
  readonly lock: Lock.ResolvedLock | undefined
}

const millis = (name: string, input: Duration.DurationInput | undefined): number | undefined => {
  if (input === undefined) return undefined
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded) || !Duration.isFinite(decoded.value) || Duration.toMillis(decoded.value) <= 0) {
    throw new Error(`${name} must be a positive, finite duration`)
  }
  return Duration.toMillis(decoded.value)
}

/** Validates the options (throws a message naming the bad one). */
export const resolve = (options: FactoryOptions | undefined): Resolved => {
  const eager = options?.eagerRefresh
  if (eager !== undefined && !(eager > 0 && eager < 1)) throw new Error(`eagerRefresh must be in (0, 1), got ${eager}`)
  return {
    softMs: millis("softTimeout", options?.softTimeout),
    hardMs: millis("hardTimeout", options?.hardTimeout),
    eager,
    lock: Lock.resolve(options?.lock)
  }
}

export const make = (backend: Backend, scope: Scope.Scope) => {
  const flights = new Map<string, Flight>()

  /** The key's flight, started (forked into the cache's scope) if there is none. */
  const flight = <E, R>(
    key: string,
    compute: Effect.Effect<string, E, R>,
    options: SetOptions | undefined,
    background: boolean,
    lock: Lock.ResolvedLock | undefined
  ) =>
    Effect.suspend(() => {
      const existing = flights.get(key)
      if (existing !== undefined) return Effect.succeed(existing)
      return Effect.gen(function*() {
        const done = yield* Deferred.make<string, unknown>()
        const self: Flight = { done, superseded: false, refill: background }
        flights.set(key, self)
        const produce = Effect.tap(compute, (value) => {
          if (self.superseded) {
            backend.event("superseded")
            return Effect.void
          }
          return backend.store(key, value, options, self.refill)
        })
        const locks = backend.locks
        // Under the distributed lock: the factory runs here, or another instance's value is answered.
        const body = lock === undefined || locks === undefined
          ? produce
          : Lock.run(locks.store, key, lock, { peek: locks.peek(key), produce, refresh: background, event: backend.event })
        yield* body.pipe(
          Effect.onExit((exit) =>
            Effect.suspend(() => {
              if (flights.get(key) === self) flights.delete(key)
              backend.event(Exit.isSuccess(exit) ? "completed" : "failed")
              return Deferred.done(done, exit)
            })
          ),
          Effect.forkIn(scope)
        )
        return self
      })
    })

  /** A write or delete of `key` went through this process: a factory running for it must not store its result. */
  const noteWrite = (key: string): void => {
    if (flights.size === 0) return
    const f = flights.get(key)
    if (f !== undefined) f.superseded = true
  }

  const getOrSet = <E, R>(
    key: string,
    compute: Effect.Effect<string, E, R>,
    options: FactoryOptions | undefined,
    resolved: Resolved
  ): Effect.Effect<string, E | FactoryTimeoutError, R> =>
    Effect.suspend(() => {
      const hit = backend.hit(key)
      if (hit !== undefined) {
        if (resolved.eager !== undefined && hit.age >= resolved.eager && !flights.has(key)) {
          backend.event("eager_refresh")
          return Effect.as(flight(key, compute, options, true, resolved.lock), hit.value)
        }
        return Effect.succeed(hit.value)
      }
      return Effect.flatMap(backend.lookup(key), (found): Effect.Effect<string, E | FactoryTimeoutError, R> => {
        if (found._tag === "Value") return Effect.succeed(found.value)
        const stale = found._tag === "Stale" ? found.value : undefined
        return Effect.flatMap(flight(key, compute, options, false, resolved.lock), (f) => wait(key, f, stale, resolved))
      })
    })

  const wait = <E>(key: string, f: Flight, stale: string | undefined, resolved: Resolved): Effect.Effect<string, E | FactoryTimeoutError> => {
    // An interrupted caller leaves the factory running: its result then goes back into L1 too.
    const result = Effect.onInterrupt(Deferred.await(f.done) as Effect.Effect<string, E>, () => Effect.sync(() => (f.refill = true)))
    const orStale = (reason: string, effect: Effect.Effect<string, E | FactoryTimeoutError>) =>
      stale === undefined ? effect : Effect.catchAll(effect, () => {
        backend.servedStale(reason)
        return Effect.succeed(stale)
      })
    const { hardMs, softMs } = resolved
    const soft = stale !== undefined && softMs !== undefined ? softMs : undefined
    const limit = soft !== undefined && (hardMs === undefined || soft < hardMs) ? soft : hardMs
    const timed: Effect.Effect<string, E | FactoryTimeoutError> = limit === undefined
      ? result
      : Effect.timeoutTo(result, {
        duration: Duration.millis(limit),
        onSuccess: Effect.succeed,
        onTimeout: () => {
          f.refill = true
          const kind = limit === soft ? "soft_timeout" : "hard_timeout"
          backend.event(kind)
          if (stale !== undefined) {
            backend.servedStale(kind)
            return Effect.succeed(stale)
          }
          return Effect.fail(new FactoryTimeoutError({ key, timeoutMs: limit }))
        }
      }).pipe(Effect.flatten)
    // The factory failed: the stale value, if there is one (the failure is the caller's otherwise).
    return stale === undefined ? timed : orStale("factory_failed", timed)
  }

  return { getOrSet, noteWrite, inFlight: () => flights.size }
}
