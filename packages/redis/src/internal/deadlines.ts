/**
 * Deadlines for many concurrent calls with one timer.
 *
 * `Effect.timeoutFail` races every call against a sleeping fiber: one fiber and one timer per command, which
 * measured at ~6x the cost of the Redis round trip itself (see benchmarks/README.md). Here one sweeper fiber ticks
 * on Effect's `Clock` (so `TestClock` drives it) and fails the calls whose deadline has passed; a call is linked in
 * at the tail of a list and unlinked when it settles. Every call shares one timeout, so insertion order is deadline
 * order and a sweep stops at the first call still in time. A call is expired at the first sweep after
 * `timeout - 2 ticks`, so within `[timeout - 2 ticks, timeout - tick]` (a tick is a twentieth of the timeout, 5–100
 * ms): early by at most a tenth of the timeout, and a tick of slack for a loaded event loop's late timers, so it is
 * not late.
 *
 * The timeout can change while calls are in flight (`setTimeout`, runtime tuning): calls keep the deadline they
 * started with. Each timeout's calls are a generation of their own (insertion order is deadline order within it), and
 * a sweep walks every generation that still holds calls; the tick follows the newest timeout.
 *
 * Why a list of its own and not a `Set` (measured, benchmarks/README.md, session 12): with the calls in a `Set`, runs
 * with two batches in flight (GET 100 B, 64 callers) fell, four in five, into a state where ~0.75 MB survived each
 * scavenge, 91 % of it promoted, and p99 went from 0.7 to 1.9 ms; with this list, none in five did. The likely cause:
 * a `Set` with a call added and removed per batch is rehashed every few calls into a new table, and V8 keeps a
 * replaced table linked to its successor (for iterators) with the entries it had, so once one table was promoted the
 * chain after it, and the callers its entries' `expire`s captured, lived until the next full GC. An entry out of this
 * list holds nothing: its neighbours and its `expire` are cleared.
 *
 * @internal
 */
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import * as RedisConfig from "../RedisConfig.js"
import * as Spans from "../Spans.js"

/** A client span to make around a call (see `Spans`): its name and attributes, built once per operation. */
export interface SpanSpec {
  readonly name: string
  readonly attributes: Readonly<Record<string, unknown>>
}

/**
 * The span specs of one server's calls: `of(operation)` (`redis.<operation>`, command `OPERATION`, built once per
 * operation) and `make(operation, command)` for a coalesced call (the span is the caller's operation, the command
 * the batch's: `MGET`, `MSET`).
 */
export const spanSpecs = (attributes: Readonly<Record<string, unknown>>) => {
  const make = (operation: string, command: string): SpanSpec => ({
    name: `redis.${operation}`,
    attributes: { ...attributes, "db.operation.name": command }
  })
  const specs = new Map<string, SpanSpec>()
  const of = (operation: string): SpanSpec => {
    let spec = specs.get(operation)
    if (spec === undefined) specs.set(operation, spec = make(operation, operation.toUpperCase()))
    return spec
  }
  return { of, make }
}

/**
 * A socket silent for this long is replaced (ioredis' `socketTimeout`): a little after the deadline, so the caller
 * sees its deadline first.
 */
export const socketTimeoutOf = (commandTimeout: Duration.Duration): number => {
  const deadline = Duration.toMillis(commandTimeout)
  return deadline + Math.max(50, Math.round(deadline / 4))
}

/**
 * A connection's `setCommandTimeout`: validated as `commandTimeout` is at start-up (a `ConfigError` changes nothing),
 * then the calls started from now get it and `setSocketTimeout` is given the sockets' new silence timeout (ioredis
 * reads it each time it arms a socket's timer).
 */
export const retune = (
  deadlines: Deadlines,
  input: Duration.DurationInput,
  setSocketTimeout: (millis: number) => void
): Effect.Effect<void, ConfigError.ConfigError> =>
  Either.match(RedisConfig.commandTimeoutFrom(input), {
    onLeft: Effect.fail,
    onRight: (timeout) =>
      Effect.sync(() => {
        deadlines.setTimeout(timeout)
        setSocketTimeout(socketTimeoutOf(timeout))
      })
  })

/** A tracked call: its `expire` runs if the deadline passes before the call is untracked. */
export interface Pending {
  readonly at: number
  /** Whether the call is still tracked: neither untracked nor expired. */
  readonly tracked: boolean
}

/** One timeout's calls, oldest (earliest deadline) first; empty when `head` is `undefined`. */
class Generation {
  head: Entry | undefined = undefined
  tail: Entry | undefined = undefined

  append(entry: Entry): void {
    entry.prev = this.tail
    if (this.tail === undefined) this.head = entry
    else this.tail.next = entry
    this.tail = entry
  }

  /** Takes `entry` out and clears its links and `expire` (an entry out of the list holds nothing); its `expire`. */
  unlink(entry: Entry): () => void {
    const { expire, next, prev } = entry
    if (prev === undefined) this.head = next
    else prev.next = next
    if (next === undefined) this.tail = prev
    else next.prev = prev
    entry.prev = entry.next = entry.home = entry.expire = undefined
    return expire!
  }
}

class Entry implements Pending {
  prev: Entry | undefined = undefined
  next: Entry | undefined = undefined
  constructor(readonly at: number, public expire: (() => void) | undefined, public home: Generation | undefined) {}
  get tracked(): boolean {
    return this.home !== undefined
  }
}

export interface Deadlines {
  /** Starts tracking: `expire` runs once the deadline passes, unless {@link untrack} came first. */
  readonly track: (expire: () => void) => Pending
  /** Stops tracking; `false` if the deadline already passed (the call was expired). */
  readonly untrack: (pending: Pending) => boolean
  /** The timeout calls started from now get. */
  readonly timeout: () => Duration.Duration
  /** Changes the timeout of the calls started from now on; calls in flight keep theirs. */
  readonly setTimeout: (timeout: Duration.Duration) => void
  /**
   * Starts `start()` and settles with its result, or fails with `onTimeout()` once the deadline passes, whichever
   * comes first. The promise's late result is dropped. With `span`, the call is a client span on the caller's tracer
   * (when it has one that reads spans), ended when the call settles or expires.
   */
  readonly run: <A, E>(
    start: () => Promise<A>,
    onError: (error: unknown) => E,
    onTimeout: () => E,
    span?: SpanSpec
  ) => Effect.Effect<A, E>
}

export const make = (initial: Duration.Duration): Effect.Effect<Deadlines, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    let timeout = initial
    let tickMillis = 0
    let expireAfter = 0
    const configure = (next: Duration.Duration) => {
      const timeoutMillis = Duration.toMillis(next)
      timeout = next
      tickMillis = Math.min(100, Math.max(5, Math.floor(timeoutMillis / 20)))
      expireAfter = Math.max(0, timeoutMillis - 2 * tickMillis)
    }
    configure(initial)
    let pending = new Generation()
    /** Earlier timeouts' calls still in flight, oldest first. */
    let older: Array<Generation> = []

    const sweepOne = (generation: Generation, now: number) => {
      // The head is read again after each call expired: its `expire` may settle (untrack) others.
      for (let entry = generation.head; entry !== undefined && entry.at <= now; entry = generation.head) {
        generation.unlink(entry)()
      }
    }
    const sweep = Effect.sync(() => {
      const now = clock.unsafeCurrentTimeMillis()
      if (older.length > 0) {
        for (const generation of older) sweepOne(generation, now)
        older = older.filter((generation) => generation.head !== undefined)
      }
      sweepOne(pending, now)
    })
    yield* Effect.suspend(() => Effect.sleep(Duration.millis(tickMillis))).pipe(
      Effect.zipRight(sweep),
      Effect.forever,
      Effect.interruptible,
      Effect.forkScoped
    )

    const track = (expire: () => void): Pending => {
      const entry = new Entry(clock.unsafeCurrentTimeMillis() + expireAfter, expire, pending)
      pending.append(entry)
      return entry
    }
    const untrack = (tracked: Pending) => {
      const entry = tracked as Entry
      if (entry.home === undefined) return false
      entry.home.unlink(entry)
      return true
    }
    const setTimeout = (next: Duration.Duration) => {
      if (Duration.equals(next, timeout)) return
      if (pending.head !== undefined) older.push(pending)
      pending = new Generation()
      configure(next)
    }

    // No canceler: an interrupted caller ignores the late result, and the entry leaves at settle or expiry.
    // (A canceler per call measured at ~10% of throughput.)
    const run = <A, E>(start: () => Promise<A>, onError: (error: unknown) => E, onTimeout: () => E, span?: SpanSpec) =>
      Effect.async<A, E>((register) => {
        const started = span === undefined ? undefined : Spans.start(span.name, "client", span.attributes)
        // An `Exit` is the effect that resumes the caller, and the span's outcome.
        const resume = started === undefined ? register : (exit: Exit.Exit<A, E>) => {
          Spans.end(started, exit)
          register(exit)
        }
        const fail = (error: E) => resume(Exit.fail(error))
        const entry = track(() => fail(onTimeout()))
        let promise: Promise<A>
        try {
          promise = start()
        } catch (error) {
          untrack(entry)
          return fail(onError(error))
        }
        promise.then(
          (value) => {
            if (untrack(entry)) resume(Exit.succeed(value))
          },
          (error) => {
            if (untrack(entry)) fail(onError(error))
          }
        )
      })

    return { track, untrack, run, timeout: () => timeout, setTimeout }
  })
