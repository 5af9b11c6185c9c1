/** Small helpers: percentiles, medians, timing, bounded waits. */
import { performance } from "node:perf_hooks"

export const now = (): number => performance.now()

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The q-quantile (0..1) of the first `n` values (sorted in place: pass a copy you own). */
export const quantile = (values: Float64Array, n: number, q: number): number => {
  if (n === 0) return Number.NaN
  const sorted = values.subarray(0, n).sort()
  const index = Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))
  return sorted[index]!
}

export const median = (values: ReadonlyArray<number>): number => {
  const finite = values.filter((v) => Number.isFinite(v))
  if (finite.length === 0) return Number.NaN
  const sorted = [...finite].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export const percentiles = (values: ReadonlyArray<number>): { p50: number; p99: number; max: number } => {
  if (values.length === 0) return { p50: Number.NaN, p99: Number.NaN, max: Number.NaN }
  const arr = Float64Array.from(values)
  arr.sort()
  const at = (q: number) => arr[Math.min(arr.length - 1, Math.max(0, Math.ceil(q * arr.length) - 1))]!
  return { p50: at(0.5), p99: at(0.99), max: arr[arr.length - 1]! }
}

/** Rounds for display: 3 significant digits, thousands separated. */
export const fmt = (value: number, digits = 3): string => {
  if (!Number.isFinite(value)) return "—"
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en-US")
  return Number(value.toPrecision(digits)).toString()
}

export const ratio = (a: number, b: number): number => (b > 0 && Number.isFinite(a) ? a / b : Number.NaN)

/** Runs `f` with a hard time bound; rejects with `label` on expiry. */
export const within = async <A>(label: string, ms: number, f: () => Promise<A>): Promise<A> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      f(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${label}: no result after ${ms} ms`)), ms)
      })
    ])
  } finally {
    if (timer !== undefined) clearTimeout(timer)
  }
}

export const gcHeap = (): number => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc) {
    gc()
    gc()
  }
  return process.memoryUsage().heapUsed
}

export const hasGc = (): boolean => typeof (globalThis as { gc?: () => void }).gc === "function"

export const log = (...args: ReadonlyArray<unknown>): void => {
  process.stderr.write(args.map(String).join(" ") + "\n")
}
