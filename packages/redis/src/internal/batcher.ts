/**
 * Coalescing: calls made in the same tick are sent as one request (an `MGET`, an `MSET`, a pipeline) under one
 * deadline. Each call still gets its own result: `send` answers one value or `Error` per item, in order.
 *
 * A batch is sent at the end of the tick, or as soon as it holds `maxBatch` items or (with `weigh`) items weighing
 * `maxWeight`: the rest of the tick's calls start another batch, written right behind it, so the server works on one
 * while the next is still being written or read.
 *
 * A single caller is not made to wait for the end of its tick: when the last tick held one call and no batch is in
 * flight, a call is sent at once (a batch of one, as a plain client would send it), and the tick's further calls, if
 * any, are coalesced behind it. At one caller that measured 1.01-1.06x the throughput of waiting for the tick (GET
 * 100 B c=1; SET 0.98-1.17x; `benchmarks/dist/ab.js`, six runs in both orders, benchmarks/README.md, session 11).
 *
 * Nor is the server left idle while a tick is gathered: when no batch is in flight, the tick's first calls, a quarter
 * of what the last tick held (at least 2), are sent as soon as they are there, and the rest of the tick follows at its
 * end, so the server works on the first part while the callers of the rest are still running. Without it, many
 * callers resumed by one reply went in lockstep: one request, then nothing for the server to do until every caller
 * had run (the process was idle 33 % of the time at 64 callers). Measured at 4 to 128 callers, 1.15-1.49x the
 * throughput, p99 no worse beyond the noise; at 2 and 256 callers unchanged (benchmarks/README.md, session 12). Once
 * a batch is in flight the tick's calls wait for its end, so this splits a tick in two at most.
 *
 * @internal
 */
import type { Errors } from "@steadfast/resilience"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Spans from "../Spans.js"
import type { Deadlines, Pending, SpanSpec } from "./deadlines.js"

export interface Batcher<I, O> {
  /** Queues `item` for the next request; with `span`, the call is a client span (see `Spans`). */
  readonly submit: (item: I, span?: SpanSpec) => Effect.Effect<O, Errors.RedisFailure>
  /**
   * `submit` without an effect of its own: queues `item` and calls `onExit` once with its outcome (from the reply's
   * callback, on no fiber). Must be called synchronously from a step a fiber is running (the span's parent is that
   * fiber's). `onExit` must not throw: it runs in the loop that settles the whole batch.
   */
  readonly unsafeSubmit: (item: I, span: SpanSpec | undefined, onExit: (exit: Exit.Exit<O, Errors.RedisFailure>) => void) => void
}

/**
 * A coalesced write's weight (`key`, `value`, TTL) against a write batch's bound (`RedisConnection.maxBatchBytes`):
 * its key's and value's lengths in UTF-16 code units (bytes, for ASCII). Shared by the standalone and Cluster batchers.
 */
export const weighWrite = (entry: readonly [string, string, unknown]): number => entry[0].length + entry[1].length

export const make = <I, O, R = O>(options: {
  readonly deadlines: Deadlines
  readonly maxBatch: number
  /** An item's weight (e.g. its bytes); with it, a batch is sent once its items weigh `maxWeight` or more. */
  readonly weigh?: (item: I) => number
  readonly maxWeight?: number
  /**
   * Sends the batch; answers, per item, its value or the `Error` that item failed with (an item past the end of a
   * shorter answer gets `undefined`: a `void` batch that succeeded as a whole may answer `[]`). `tracked` is the
   * batch's deadline entry: it is no longer tracked (`tracked.tracked` is false) once the deadline passed or
   * the reply settled, that is once every caller of the batch has its answer.
   */
  readonly send: (
    items: ReadonlyArray<I>,
    tracked: Pending
  ) => { readonly index: number; readonly reply: Promise<ReadonlyArray<R | Error>> }
  /**
   * Turns an item's raw answer into its caller's, as each caller is settled; without it the raw answer is the
   * caller's. The reply's array then never holds what callers get (see `RedisConnection`'s reads: the array is held
   * until the last item arrives, and values it holds live that long).
   */
  readonly decode?: (raw: R) => O
  /** Classifies a failure of the request (or of one item) for the socket it went to. */
  readonly classify: (index: number, error: unknown) => Errors.RedisFailure
  readonly onTimeout: () => Errors.RedisFailure
}): Batcher<I, O> => {
  const { classify, decode, deadlines, maxBatch, onTimeout, send, weigh } = options
  const maxWeight = options.maxWeight ?? Infinity
  let items: Array<I> = []
  /** The weight of `items` (0 without `weigh`). */
  let weight = 0
  // Each waiter is resumed with an `Exit` (it is the effect that resumes the caller, and a span's outcome).
  let waiters: Array<(exit: Exit.Exit<O, Errors.RedisFailure>) => void> = []
  // Each waiter's span, if it has one; `undefined` while no waiter of the batch has one (the untraced common case).
  let spans: Array<Spans.Started | undefined> | undefined
  /** Batches sent and not settled yet (a reply that never comes leaves one counted: only the eager send stops). */
  let inFlight = 0
  /** Calls submitted in this tick, and in the last tick that ended (counted at its end). */
  let tickCalls = 0
  let lastTick = 0
  /** Whether the end of this tick is scheduled (once per tick: it sends what the tick left). */
  let scheduled = false
  /** With no batch in flight, a tick's calls are sent once this many are there (a quarter of the last tick's, >= 2). */
  let earlyAt = 2

  const flush = () => {
    const batch = items
    const resumes = waiters
    const started = spans
    items = []
    waiters = []
    spans = undefined
    weight = 0
    if (batch.length === 0) return
    // The waiters of one reply finish at the same instant: their spans end with one reading of the clock.
    const settle = (i: number, exit: Exit.Exit<O, Errors.RedisFailure>, end: Spans.Ender | undefined) => {
      const span = started?.[i]
      if (span !== undefined) end!(span, exit)
      resumes[i]!(exit)
    }
    const failAll = (error: Errors.RedisFailure) => {
      const failed = Exit.fail(error)
      const end = started === undefined ? undefined : Spans.ender()
      for (let i = 0; i < resumes.length; i++) settle(i, failed, end)
    }
    const entry = deadlines.track(() => failAll(onTimeout()))
    let sent: ReturnType<typeof send>
    try {
      sent = send(batch, entry)
    } catch (error) {
      deadlines.untrack(entry)
      return failAll(classify(-1, error))
    }
    inFlight++
    sent.reply.then(
      (results) => {
        inFlight--
        if (!deadlines.untrack(entry)) return
        const end = started === undefined ? undefined : Spans.ender()
        for (let i = 0; i < resumes.length; i++) {
          const result = results[i] as R | Error
          settle(
            i,
            result instanceof Error
              ? Exit.fail(classify(sent.index, result))
              : Exit.succeed(decode === undefined ? result as unknown as O : decode(result)),
            end
          )
        }
      },
      (error) => {
        inFlight--
        if (deadlines.untrack(entry)) failAll(classify(sent.index, error))
      }
    )
  }

  const endTick = () => {
    scheduled = false
    lastTick = tickCalls
    earlyAt = Math.max(2, Math.ceil(lastTick / 4))
    tickCalls = 0
    flush()
  }

  const unsafeSubmit = (item: I, span: SpanSpec | undefined, onExit: (exit: Exit.Exit<O, Errors.RedisFailure>) => void) => {
    const traced = span === undefined ? undefined : Spans.start(span.name, "client", span.attributes)
    if (traced !== undefined) (spans ??= new Array(waiters.length))[waiters.length] = traced
    else if (spans !== undefined) spans[waiters.length] = undefined
    items.push(item)
    const size = waiters.push(onExit)
    if (weigh !== undefined) weight += weigh(item)
    if (size === 1 && lastTick === 1 && inFlight === 0) {
      // A single caller (the last tick held one call, and nothing is in flight) is sent at once, as a plain client
      // would, rather than at the end of the tick; the tick's further calls, if any, are coalesced behind it, and
      // count with it (a tick of several: the next tick waits for its end).
      tickCalls = 1
      flush()
      return
    }
    tickCalls++
    // The bounds; or nothing in flight (the server idle) and the tick's first part gathered: it goes now.
    if (size >= maxBatch || weight >= maxWeight || (inFlight === 0 && size >= earlyAt)) flush()
    else if (!scheduled) {
      scheduled = true
      queueMicrotask(endTick)
    }
  }
  return {
    submit: (item, span) => Effect.async<O, Errors.RedisFailure>((register) => unsafeSubmit(item, span, register)),
    unsafeSubmit
  }
}
