/**
 * The interleaved measurement every closed-loop scenario shares (happy path, ladder, remote): a discarded warm-up of
 * every (entrant, cell), then `rounds` rounds in which every entrant measures every cell, in an order rotated each
 * round and cell (so no entrant always runs first, or right after the same neighbour), with a `gc()` before each
 * measurement on full runs (then, where a scenario asks, a discarded settling run of the same entrant and cell). Figures are medians over rounds; ratios are medians of per-round ratios (slow phases of
 * the machine hit both sides of a ratio and cancel out).
 */
import type { Sample } from "./drive.js"
import { gcHeap, log, median, ratio } from "./util.js"

export interface Entrant<C> {
  readonly name: string
  readonly measure: (cell: C, durationMs: number) => Promise<Sample>
  /**
   * Called before each measured (not warm-up) sample; the function it returns is called with the sample (and does
   * the `--verbose` logging for this entrant).
   */
  readonly watch?: (cell: C) => Promise<(sample: Sample) => Promise<void>>
  /**
   * Collects the garbage of the process the entrant measures in, where that is not this one (a child of its own);
   * without it, `gcBetween` collects this process'.
   */
  readonly collect?: () => Promise<void>
}

export interface RoundsConfig<C> {
  /** Prefix of the progress lines. */
  readonly label: string
  readonly cells: ReadonlyArray<C>
  readonly cellName: (cell: C) => string
  readonly rounds: number
  readonly durationMs: number
  readonly warmupMs: number
  /** `global.gc()` before every measurement (full runs; too slow for --quick). */
  readonly gcBetween: boolean
  /**
   * With `gcBetween`: the entrant runs the cell this long, unmeasured, between the `gc()` and its window. A forced
   * full GC gives memory back to the OS, and the first hundreds of ms after it are spent taking it back (page faults;
   * with large values and coalescing, a young generation whose survivors are promoted): a state no process under
   * steady load is in (benchmarks/README.md, "large values"). The `gc()` still clears the previous entrant's garbage.
   */
  readonly settleMs?: number
  readonly verbose: boolean
}

export interface Samples<C> {
  /** Every round's sample of one entrant in one cell, in round order. */
  readonly of: (entrant: string, cell: C) => ReadonlyArray<Sample>
  /** Median over rounds of `f(entrant) / f(base)`, both from the same round. */
  readonly ratio: (entrant: string, base: string, cell: C, f: (s: Sample) => number) => number
  /** Medians over rounds of throughput and latency. */
  readonly medians: (entrant: string, cell: C) => { readonly opsPerSec: number; readonly p50Ms: number; readonly p99Ms: number }
}

export const interleave = async <C>(config: RoundsConfig<C>, entrants: ReadonlyArray<Entrant<C>>): Promise<Samples<C>> => {
  const { cellName, cells } = config
  log(`${config.label}: warm-up (${entrants.length} x ${cells.length} cells x ${config.warmupMs} ms)`)
  for (const entrant of entrants) {
    for (const cell of cells) await entrant.measure(cell, config.warmupMs)
  }
  // The live heap of this process (every entrant's, unless they measure in processes of their own).
  log(`${config.label}: live heap after warm-up ${(gcHeap() / 2 ** 20).toFixed(0)} MiB`)
  const samples = new Map<string, Array<Sample>>()
  const id = (entrant: string, cell: C) => `${entrant}|${cellName(cell)}`
  for (let round = 0; round < config.rounds; round++) {
    log(`${config.label}: round ${round + 1}/${config.rounds}`)
    for (const [c, cell] of cells.entries()) {
      const shift = (round + c) % entrants.length
      for (const entrant of [...entrants.slice(shift), ...entrants.slice(0, shift)]) {
        const check = entrant.watch ? await entrant.watch(cell) : undefined
        if (config.gcBetween) {
          // Collect the previous entrant's garbage, so its GC pauses do not land in this window.
          if (entrant.collect) await entrant.collect()
          else gcHeap()
          if (config.settleMs !== undefined && config.settleMs > 0) await entrant.measure(cell, config.settleMs)
        }
        const sample = await entrant.measure(cell, config.durationMs)
        const list = samples.get(id(entrant.name, cell)) ?? []
        list.push(sample)
        samples.set(id(entrant.name, cell), list)
        if (check) await check(sample)
        if (config.verbose && !entrant.watch) {
          log(`  ${entrant.name} ${cellName(cell)}: ${Math.round(sample.opsPerSec)} ops/s p99 ${sample.p99Ms.toFixed(3)} ms`)
        }
      }
    }
  }
  const of = (entrant: string, cell: C): ReadonlyArray<Sample> => {
    const list = samples.get(id(entrant, cell))
    if (list === undefined) throw new Error(`${config.label}: no samples for ${entrant} in ${cellName(cell)}`)
    return list
  }
  return {
    of,
    ratio: (entrant, base, cell, f) => {
      const b = of(base, cell)
      return median(of(entrant, cell).map((s, r) => ratio(f(s), f(b[r]!))))
    },
    medians: (entrant, cell) => {
      const list = of(entrant, cell)
      return {
        opsPerSec: median(list.map((s) => s.opsPerSec)),
        p50Ms: median(list.map((s) => s.p50Ms)),
        p99Ms: median(list.map((s) => s.p99Ms))
      }
    }
  }
}

/** The figures compared in ratios. */
export const throughput = (s: Sample): number => s.opsPerSec
export const p99 = (s: Sample): number => s.p99Ms
