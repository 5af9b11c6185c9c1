/**
 * Closed-loop drivers: `concurrency` workers each start the next operation when their previous one settles, until
 * `maxOps` operations were started or `durationMs` passed. Per-call durations go into a shared buffer.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { now, quantile } from "./util.js"

export interface Sample {
  readonly ops: number
  readonly seconds: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Reads that found nothing (should be 0 on a pre-filled keyspace: proves the value came back). */
  readonly empty: number
  readonly errors: number
  /**
   * Minor page faults the process took during the sample (memory touched for the first time, or again after it was
   * given back to the OS): many here mean the window ran while the heap was growing back, e.g. after a forced `gc()`.
   */
  readonly pageFaults?: number
}

const capacity = 4_000_000
const latencies = new Float64Array(capacity)

const faults = () => process.resourceUsage().minorPageFault

const summarize = (n: number, seconds: number, empty: number, errors: number, faultsAtStart: number): Sample => ({
  ops: n,
  seconds,
  opsPerSec: n / seconds,
  p50Ms: quantile(latencies, n, 0.5),
  p99Ms: quantile(latencies, n, 0.99),
  empty,
  errors,
  pageFaults: faults() - faultsAtStart
})

export const promiseLoop = async (
  op: (index: number) => Promise<unknown>,
  concurrency: number,
  maxOps: number,
  durationMs: number
): Promise<Sample> => {
  const limit = Math.min(maxOps, capacity)
  let started = 0
  let n = 0
  let empty = 0
  let errors = 0
  const faultsAtStart = faults()
  const start = now()
  const end = start + durationMs
  const worker = async () => {
    while (started < limit && now() < end) {
      const index = started++
      const t0 = now()
      try {
        const result = await op(index)
        if (result === null || result === undefined) empty++
      } catch {
        errors++
      }
      latencies[n++] = now() - t0
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return summarize(n, (now() - start) / 1000, empty, errors, faultsAtStart)
}

/** The driver that measured well for Effect: `concurrency` fibers in `Effect.whileLoop`, one shared counter. */
export const effectLoop = <A, E>(
  op: (index: number) => Effect.Effect<A, E>,
  concurrency: number,
  maxOps: number,
  durationMs: number
): Effect.Effect<Sample> =>
  Effect.suspend(() => {
    const limit = Math.min(maxOps, capacity)
    let started = 0
    let n = 0
    let empty = 0
    let errors = 0
    const faultsAtStart = faults()
    const start = now()
    const end = start + durationMs
    const body = () => {
      const index = started++
      const t0 = now()
      return Effect.matchCause(op(index), {
        onFailure: () => {
          errors++
          latencies[n++] = now() - t0
        },
        onSuccess: (a) => {
          if (a === undefined || a === null || (Option.isOption(a) && Option.isNone(a))) empty++
          latencies[n++] = now() - t0
        }
      })
    }
    return Effect.all(
      Array.from({ length: concurrency }, () =>
        Effect.whileLoop({ while: () => started < limit && now() < end, body, step: () => {} })),
      { concurrency: "unbounded", discard: true }
    ).pipe(Effect.map(() => summarize(n, (now() - start) / 1000, empty, errors, faultsAtStart)))
  })
