/**
 * Coalescing: calls made in the same tick are sent as one request (an `MGET`, an `MSET`, a pipeline) under one
 * deadline. Each call still gets its own result: `send` answers one value or `Error` per item, in order.
 *
 * @internal
 */
import type { Errors } from "@steadfast/resilience"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Spans from "../Spans.js"
import type { Deadlines, SpanSpec } from "./deadlines.js"

export interface Batcher<I, O> {
  /** Queues `item` for the next request; with `span`, the call is a client span (see `Spans`). */
  readonly submit: (item: I, span?: SpanSpec) => Effect.Effect<O, Errors.RedisFailure>
}

export const make = <I, O>(options: {
  readonly deadlines: Deadlines
  readonly maxBatch: number
  /** Sends the batch; answers, per item, its value or the `Error` that item failed with. */
  readonly send: (items: ReadonlyArray<I>) => { readonly index: number; readonly reply: Promise<ReadonlyArray<O | Error>> }
  /** Classifies a failure of the request (or of one item) for the socket it went to. */
  readonly classify: (index: number, error: unknown) => Errors.RedisFailure
  readonly onTimeout: () => Errors.RedisFailure
}): Batcher<I, O> => {
  const { classify, deadlines, maxBatch, onTimeout, send } = options
  let items: Array<I> = []
  // Each waiter is resumed with an `Exit` (it is the effect that resumes the caller, and a span's outcome).
  let waiters: Array<(exit: Exit.Exit<O, Errors.RedisFailure>) => void> = []

  const flush = () => {
    const batch = items
    const resumes = waiters
    items = []
    waiters = []
    if (batch.length === 0) return
    const failAll = (error: Errors.RedisFailure) => {
      const failed = Exit.fail(error)
      for (const resume of resumes) resume(failed)
    }
    const entry = deadlines.track(() => failAll(onTimeout()))
    let sent: ReturnType<typeof send>
    try {
      sent = send(batch)
    } catch (error) {
      deadlines.untrack(entry)
      return failAll(classify(-1, error))
    }
    sent.reply.then(
      (results) => {
        if (!deadlines.untrack(entry)) return
        for (let i = 0; i < resumes.length; i++) {
          const result = results[i] as O | Error
          resumes[i]!(result instanceof Error ? Exit.fail(classify(sent.index, result)) : Exit.succeed(result))
        }
      },
      (error) => {
        if (deadlines.untrack(entry)) failAll(classify(sent.index, error))
      }
    )
  }

  return {
    submit: (item, span) =>
      Effect.async<O, Errors.RedisFailure>((register) => {
        const started = span === undefined ? undefined : Spans.start(span.name, "client", span.attributes)
        const resume = started === undefined ? register : (exit: Exit.Exit<O, Errors.RedisFailure>) => {
          Spans.end(started, exit)
          register(exit)
        }
        items.push(item)
        if (waiters.push(resume) === 1) queueMicrotask(flush)
        else if (waiters.length >= maxBatch) flush()
      })
  }
}
