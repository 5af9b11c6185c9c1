/**
 * Scenario 1, the happy path: GET and SET of 100 B and 10 KB values at concurrency 1 and 64 against the shared Redis,
 * on distinct keys of a pre-filled keyspace. Contenders are interleaved in every round (rotating order) after a
 * warm-up; each figure is the median over rounds, each ratio the median of per-round ratios to raw ioredis with
 * auto-pipelining (and to raw ioredis defaults) measured in the same round.
 */
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import { makePeer, type PeerName, peerNames, type PromiseClient, type ResilienceSettings, type Target } from "./contenders.js"
import { effectLoop, promiseLoop, type Sample } from "./drive.js"
import { benchValue, fill, unlinkMatching } from "./keyspace.js"
import { type Entrant, interleave, p99, throughput } from "./rounds.js"
import { buildSteadfast, noopTracer, type Steadfast, statsLine } from "./steadfast.js"
import type * as Runtime from "effect/Runtime"
import { log, median } from "./util.js"

export interface Cell {
  readonly op: "get" | "set"
  readonly size: 100 | 10240
  readonly concurrency: 1 | 64
}

export const cells: ReadonlyArray<Cell> = (["get", "set"] as const).flatMap((op) =>
  ([100, 10240] as const).flatMap((size) => ([1, 64] as const).map((concurrency) => ({ op, size, concurrency })))
)

/** The happy path's Steadfast (defaults) with a no-op tracer installed around its loop. */
export const traced = "steadfast (no-op tracer)"

export const cellName = (c: Cell) => `${c.op.toUpperCase()} ${c.size === 100 ? "100 B" : "10 KB"} c=${c.concurrency}`

export interface HappyRow {
  readonly contender: string
  readonly cell: string
  readonly op: Cell["op"]
  readonly size: number
  readonly concurrency: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Median over rounds of (this / raw ioredis auto-pipelined) in the same round. */
  readonly throughputVsAutoPipeline: number
  readonly p99VsAutoPipeline: number
  readonly throughputVsIoredis: number
  /** The no-op-tracer row only: median of per-round ratios to Steadfast without a tracer (1 = tracing costs nothing). */
  readonly vsUntraced?: number
  readonly rounds: ReadonlyArray<Sample>
  /** Median over rounds of minor page faults per 1,000 operations (see `Sample.pageFaults`). */
  readonly pageFaultsPer1k: number
  readonly emptyReads: number
  readonly errors: number
}

export interface HappyResult {
  readonly keyspace: number
  readonly rounds: number
  readonly msPerMeasurement: number
  /** The unmeasured run between each `gc()` and its window (absent in results from before 2026-12-05). */
  readonly settleMs?: number
  readonly rows: ReadonlyArray<HappyRow>
  readonly steadfastStats: Record<string, unknown>
}

interface Contender extends Entrant<Cell> {
  readonly close: () => Promise<void>
  readonly steadfast?: Steadfast
}

export interface HappyConfig {
  readonly target: Target
  readonly keyspace: number
  readonly rounds: number
  readonly durationMs: number
  readonly warmupMs: number
  readonly verbose: boolean
  /** `global.gc()` before every measurement (full runs; too slow for --quick). */
  readonly gcBetween: boolean
  /** After each `gc()`, the entrant runs the cell this long, unmeasured (see `RoundsConfig.settleMs`). */
  readonly settleMs: number
  readonly runtime: Runtime.Runtime<never>
}

export const runHappy = async (config: HappyConfig): Promise<HappyResult> => {
  const { target, keyspace } = config
  // `HAPPY_CELLS="GET 10 KB c=64,SET 10 KB c=64"` measures only those cells (a diagnostic, as `HAPPY_CONTENDERS` below).
  const onlyCells = process.env["HAPPY_CELLS"]?.split(",").map((s) => s.trim())
  const unknownCells = onlyCells?.filter((name) => !cells.some((c) => cellName(c) === name)) ?? []
  if (unknownCells.length > 0) {
    throw new Error(`HAPPY_CELLS names no such cell: ${unknownCells.join(", ")} (cells: ${cells.map(cellName).join(", ")})`)
  }
  const measured = onlyCells === undefined ? cells : cells.filter((c) => onlyCells.includes(cellName(c)))
  const url = `redis://${target.host}:${target.port}`
  const keys = {
    100: Array.from({ length: keyspace }, (_, i) => `bench:v100:${i}`),
    10240: Array.from({ length: keyspace }, (_, i) => `bench:v10k:${i}`)
  }
  const values = { 100: benchValue(100, 1), 10240: benchValue(10240, 1) }
  const settings: ResilienceSettings = { timeoutMs: 2000, halfOpenAfterMs: 5000 }

  // Pre-fill the raw keyspace (shared by every contender that stores raw strings) in pipelined batches.
  const admin = new Redis({ host: target.host, port: target.port })
  for (const size of [100, 10240] as const) await fill(admin, keys[size], values[size])

  const fromClient = (client: PromiseClient): Contender => ({
    name: client.name,
    measure: (cell, durationMs) => {
      const ks = keys[cell.size]
      const v = values[cell.size]
      const op = cell.op === "get"
        ? (i: number) => client.get(ks[i % keyspace]!)
        : (i: number) => client.set(ks[i % keyspace]!, v)
      return promiseLoop(op, cell.concurrency, 2_000_000, durationMs)
    },
    close: client.close
  })

  // `HAPPY_CONTENDERS=ioredis,ioredis-autopipeline,steadfast` measures only those (a diagnostic: what the other
  // contenders' heaps and garbage, in the same process, cost the ones measured).
  const only = process.env["HAPPY_CONTENDERS"]?.split(",").map((s) => s.trim())
  const wanted = (name: string) => only === undefined || only.includes(name)
  const contenders: Array<Contender> = []
  for (const name of (peerNames as ReadonlyArray<PeerName>).filter(wanted)) {
    const client = await makePeer(name, target, settings)
    if (name === "bentocache" || name === "cache-manager") {
      // These store their own envelope: fill their keyspace through their own API.
      for (const size of [100, 10240] as const) {
        let i = 0
        await Promise.all(Array.from({ length: 64 }, async () => {
          while (i < keyspace) {
            const key = keys[size][i++]!
            await client.set(key, values[size])
          }
        }))
      }
    }
    contenders.push(fromClient(client))
  }
  const steadfastOp = (sf: Steadfast, cell: Cell) => {
    const ks = keys[cell.size]
    const v = values[cell.size]
    return cell.op === "get"
      ? (i: number) => sf.cache.get(ks[i % keyspace]!)
      : (i: number) => sf.cache.set(ks[i % keyspace]!, v)
  }
  for (const [name, coalesce] of ([["steadfast", undefined], ["steadfast coalesce:false", false]] as const).filter(([n]) => wanted(n))) {
    const sf = await buildSteadfast(name, { url, ...(coalesce === undefined ? {} : { coalesce }) }, config.runtime)
    contenders.push({
      name,
      steadfast: sf,
      watch: async (cell) => {
        const before = await sf.stats()
        return async (sample) => {
          const after = await sf.stats()
          if (after.fallbacks !== before.fallbacks || after.circuitState !== "CLOSED") {
            log(`WARNING ${name} ${cellName(cell)}: fallback path taken! ${statsLine(after)}`)
          }
          if (config.verbose) log(`  ${name} ${cellName(cell)}: ${Math.round(sample.opsPerSec)} ops/s; ${statsLine(after)}`)
        }
      },
      measure: (cell, durationMs) => sf.run(effectLoop(steadfastOp(sf, cell), cell.concurrency, 2_000_000, durationMs)),
      close: sf.close
    })
    if (name === "steadfast" && wanted(traced)) {
      // The same instance, its loop run under a tracer whose spans do nothing: a span is made for every Redis call.
      contenders.push({
        name: traced,
        measure: (cell, durationMs) =>
          sf.run(Effect.withTracer(effectLoop(steadfastOp(sf, cell), cell.concurrency, 2_000_000, durationMs), noopTracer)),
        close: async () => {}
      })
    }
  }

  const samples = await interleave(
    {
      label: "happy",
      cells: measured,
      cellName,
      rounds: config.rounds,
      durationMs: config.durationMs,
      warmupMs: config.warmupMs,
      gcBetween: config.gcBetween,
      settleMs: config.settleMs,
      verbose: config.verbose
    },
    contenders
  )

  const rows: Array<HappyRow> = []
  for (const cell of measured) {
    for (const contender of contenders) {
      const list = samples.of(contender.name, cell)
      rows.push({
        contender: contender.name,
        cell: cellName(cell),
        ...cell,
        ...samples.medians(contender.name, cell),
        throughputVsAutoPipeline: samples.ratio(contender.name, "ioredis-autopipeline", cell, throughput),
        p99VsAutoPipeline: samples.ratio(contender.name, "ioredis-autopipeline", cell, p99),
        throughputVsIoredis: samples.ratio(contender.name, "ioredis", cell, throughput),
        ...(contender.name === traced ? { vsUntraced: samples.ratio(traced, "steadfast", cell, throughput) } : {}),
        rounds: list,
        pageFaultsPer1k: median(list.map((s) => (1000 * (s.pageFaults ?? 0)) / Math.max(1, s.ops))),
        emptyReads: cell.op === "get" ? list.reduce((n, s) => n + s.empty, 0) : 0,
        errors: list.reduce((n, s) => n + s.errors, 0)
      })
    }
  }

  const steadfastStats: Record<string, unknown> = {}
  for (const contender of contenders) {
    if (contender.steadfast) {
      const s = await contender.steadfast.stats()
      steadfastStats[contender.name] = { circuitState: s.circuitState, circuitOpens: s.circuitOpens, hits: s.hits, misses: s.misses, fallbacks: s.fallbacks, errors: s.errors }
      log(`happy: ${contender.name} stats after all rounds: ${statsLine(s)}`)
    }
  }
  for (const contender of contenders) await contender.close()

  // Clean up every key this scenario wrote (raw keyspace and the envelopes of BentoCache / cache-manager).
  log(`happy: deleted ${await unlinkMatching(admin, "bench:*")} bench:* keys`)
  await admin.quit()

  return { keyspace, rounds: config.rounds, msPerMeasurement: config.durationMs, settleMs: config.gcBetween ? config.settleMs : 0, rows, steadfastStats }
}

