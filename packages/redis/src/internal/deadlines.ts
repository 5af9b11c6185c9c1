/**
 * Deadlines for many concurrent calls with one timer.
 *
 * `Effect.timeoutFail` races every call against a sleeping fiber: one fiber and one timer per command, which
 * measured at ~6x the cost of the Redis round trip itself (see benchmarks/README.md). Here one sweeper fiber ticks
 * on Effect's `Clock` (so `TestClock` drives it) and fails the calls whose deadline has passed; a call costs a `Set`
 * insert and delete. Every call shares one timeout, so insertion order is deadline order and a sweep stops at the
 * first call still in time. A call is expired at the first sweep after `timeout - 2 ticks`, so within
 * `[timeout - 2 ticks, timeout - tick]` (a tick is a twentieth of the timeout, 5–100 ms): early by at most a tenth of
 * the timeout, and a tick of slack for a loaded event loop's late timers, so it is not late.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** A tracked call: `expire` runs if the deadline passes before the call is untracked. */
export interface Pending {
  readonly at: number
  readonly expire: () => void
}

export interface Deadlines {
  /** Starts tracking: `expire` runs once the deadline passes, unless {@link untrack} came first. */
  readonly track: (expire: () => void) => Pending
  /** Stops tracking; `false` if the deadline already passed (the call was expired). */
  readonly untrack: (pending: Pending) => boolean
  /**
   * Starts `start()` and settles with its result, or fails with `onTimeout()` once the deadline passes, whichever
   * comes first. The promise's late result is dropped.
   */
  readonly run: <A, E>(start: () => Promise<A>, onError: (error: unknown) => E, onTimeout: () => E) => Effect.Effect<A, E>
}

export const make = (timeout: Duration.Duration): Effect.Effect<Deadlines, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const timeoutMillis = Duration.toMillis(timeout)
    const tickMillis = Math.min(100, Math.max(5, Math.floor(timeoutMillis / 20)))
    const tick = Duration.millis(tickMillis)
    const expireAfter = Math.max(0, timeoutMillis - 2 * tickMillis)
    const pending = new Set<Pending>()

    const sweep = Effect.sync(() => {
      if (pending.size === 0) return
      const now = clock.unsafeCurrentTimeMillis()
      for (const entry of pending) {
        if (entry.at > now) break
        pending.delete(entry)
        entry.expire()
      }
    })
    yield* Effect.sleep(tick).pipe(Effect.zipRight(sweep), Effect.forever, Effect.interruptible, Effect.forkScoped)

    const track = (expire: () => void): Pending => {
      const entry = { at: clock.unsafeCurrentTimeMillis() + expireAfter, expire }
      pending.add(entry)
      return entry
    }
    const untrack = (entry: Pending) => pending.delete(entry)

    // No canceler: an interrupted caller ignores the late result, and the entry leaves at settle or expiry.
    // (A canceler per call measured at ~10% of throughput.)
    const run = <A, E>(start: () => Promise<A>, onError: (error: unknown) => E, onTimeout: () => E) =>
      Effect.async<A, E>((resume) => {
        const entry = track(() => resume(Effect.fail(onTimeout())))
        let promise: Promise<A>
        try {
          promise = start()
        } catch (error) {
          untrack(entry)
          return resume(Effect.fail(onError(error)))
        }
        promise.then(
          (value) => {
            if (untrack(entry)) resume(Effect.succeed(value))
          },
          (error) => {
            if (untrack(entry)) resume(Effect.fail(onError(error)))
          }
        )
      })

    return { track, untrack, run }
  })
