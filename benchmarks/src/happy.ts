/**
 * Scenario 1, the happy path: GET and SET of 100 B and 10 KB values at concurrency 1 and 64 against the shared Redis,
 * on distinct keys of a pre-filled keyspace. Contenders are interleaved in every round (rotating order) after a
 * warm-up; each figure is the median over rounds, each ratio the median of per-round ratios to raw ioredis with
 * auto-pipelining (and to raw ioredis defaults) measured in the same round. Each library measures in a process of its
 * own (`--shared-process`: all in this one, as runs before session 13 did); this process drives the rounds.
 */
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import { makePeer, type PeerName, peerNames, type ResilienceSettings, type Target } from "./contenders.js"
import { effectLoop, promiseLoop, type Sample } from "./drive.js"
import { forkChild } from "./ipc.js"
import { benchValue, fill, unlinkMatching } from "./keyspace.js"
import { type Entrant, interleave, p99, throughput } from "./rounds.js"
import { buildSteadfast, lite, noopTracer, type Steadfast, statsLine, type StatsLite } from "./steadfast.js"
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
  /**
   * Each library measured in a process of its own (absent in results from before 2026-12-05 session 13, which ran
   * every contender in one process).
   */
  readonly isolated?: boolean
  readonly rows: ReadonlyArray<HappyRow>
  readonly steadfastStats: Record<string, unknown>
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
  /**
   * Each library in a process of its own (`--shared-process` turns it off): this process interleaves the rounds as
   * before and each child measures its contenders on request. In one process a figure depends on which other
   * contenders run there: Steadfast's GET 100 B c=64 measured 1.47-1.56x of auto-pipelined ioredis with every
   * contender beside it against 1.78-1.79x with only the raw clients (four-cell runs; the full runs measured the same
   * in either layout, within the noise: benchmarks/README.md, session 13).
   */
  readonly isolate: boolean
  readonly runtime: Runtime.Runtime<never>
}

/** A contender as the parent drives it: in this process, or in a child of its own (see {@link HappyConfig.isolate}). */
interface Contender extends Entrant<Cell> {
  readonly close: () => Promise<void>
  /** Steadfast's stats (Steadfast entrants only; the no-op tracer variant shares its instance's). */
  readonly stats?: () => Promise<StatsLite>
}

/** Every contender's name, in the table's order. */
export const contenderNames: ReadonlyArray<string> = [...peerNames, "steadfast", traced, "steadfast coalesce:false"]

/**
 * The processes of an isolated run: each library alone; Steadfast with its no-op tracer variant (the same instance,
 * by design); `coalesce: false` (another instance) alone.
 */
const groupsOf = (names: ReadonlyArray<string>): ReadonlyArray<ReadonlyArray<string>> => {
  const groups: Array<Array<string>> = []
  for (const name of names) {
    if (name === traced && names.includes("steadfast")) groups.find((g) => g.includes("steadfast"))!.push(name)
    else groups.push([name])
  }
  return groups
}

/** The keys and values every process of a run uses (the same strings in each: built from the keyspace's size). */
const keyspaceOf = (keyspace: number) => ({
  keys: {
    100: Array.from({ length: keyspace }, (_, i) => `bench:v100:${i}`),
    10240: Array.from({ length: keyspace }, (_, i) => `bench:v10k:${i}`)
  },
  values: { 100: benchValue(100, 1), 10240: benchValue(10240, 1) }
})

const settings: ResilienceSettings = { timeoutMs: 2000, halfOpenAfterMs: 5000 }

/**
 * Builds the named contenders in this process (the parent of a shared-process run, or a child of an isolated one).
 * BentoCache and cache-manager store their own envelope: their keyspace is filled through their own API here.
 */
export const buildContenders = async (
  names: ReadonlyArray<string>,
  target: Target,
  keyspace: number,
  runtime: Runtime.Runtime<never>
): Promise<Array<Contender>> => {
  const { keys, values } = keyspaceOf(keyspace)
  const url = `redis://${target.host}:${target.port}`
  const contenders: Array<Contender> = []
  for (const name of (peerNames as ReadonlyArray<string>).filter((n) => names.includes(n)) as Array<PeerName>) {
    const client = await makePeer(name, target, settings)
    if (name === "bentocache" || name === "cache-manager") {
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
    contenders.push({
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
  }
  const steadfastOp = (sf: Steadfast, cell: Cell) => {
    const ks = keys[cell.size]
    const v = values[cell.size]
    return cell.op === "get"
      ? (i: number) => sf.cache.get(ks[i % keyspace]!)
      : (i: number) => sf.cache.set(ks[i % keyspace]!, v)
  }
  for (const [name, coalesce] of ([["steadfast", undefined], ["steadfast coalesce:false", false]] as const).filter(([n]) => names.includes(n))) {
    const sf = await buildSteadfast(name, { url, ...(coalesce === undefined ? {} : { coalesce }) }, runtime)
    const stats = async () => lite(await sf.stats())
    contenders.push({
      name,
      stats,
      measure: (cell, durationMs) => sf.run(effectLoop(steadfastOp(sf, cell), cell.concurrency, 2_000_000, durationMs)),
      close: sf.close
    })
    if (name === "steadfast" && names.includes(traced)) {
      // The same instance, its loop run under a tracer whose spans do nothing: a span is made for every Redis call.
      contenders.push({
        name: traced,
        measure: (cell, durationMs) =>
          sf.run(Effect.withTracer(effectLoop(steadfastOp(sf, cell), cell.concurrency, 2_000_000, durationMs), noopTracer)),
        close: async () => {}
      })
    }
  }
  return contenders
}

/**
 * Requests from the parent to an isolated contender's process (`happy-child.ts`), answered in order; `init` answers
 * the names of the contenders that have stats.
 */
export type ChildRequest =
  | { readonly op: "init"; readonly names: ReadonlyArray<string>; readonly target: Target; readonly keyspace: number; readonly verbose: boolean }
  | { readonly op: "measure"; readonly name: string; readonly cell: Cell; readonly durationMs: number }
  | { readonly op: "gc" }
  | { readonly op: "stats"; readonly name: string }
  | { readonly op: "close" }

/** One child process holding `names`; its contenders measure there, on request. */
const spawnGroup = async (names: ReadonlyArray<string>, config: HappyConfig): Promise<Array<Contender>> => {
  // The child runs with this process' flags (`--expose-gc`, and whatever V8 flags the run was given).
  const { call, child } = forkChild<ChildRequest>("happy-child.js", `happy (${names.join(", ")})`, process.execArgv)
  const withStats = await call<ReadonlyArray<string>>({ op: "init", names, target: config.target, keyspace: config.keyspace, verbose: config.verbose })
  let open = names.length
  const close = async () => {
    // The group's process goes with its last contender.
    if (--open === 0) {
      await call({ op: "close" })
      child.disconnect()
    }
  }
  return names.map((name): Contender => ({
    name,
    measure: (cell, durationMs) => call<Sample>({ op: "measure", name, cell, durationMs }),
    collect: () => call<void>({ op: "gc" }),
    ...(withStats.includes(name) ? { stats: () => call<StatsLite>({ op: "stats", name }) } : {}),
    close
  }))
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
  const { keys, values } = keyspaceOf(keyspace)
  // `HAPPY_CONTENDERS=ioredis,ioredis-autopipeline,steadfast` measures only those (a diagnostic).
  const only = process.env["HAPPY_CONTENDERS"]?.split(",").map((s) => s.trim())
  const unknown = only?.filter((name) => !contenderNames.includes(name)) ?? []
  if (unknown.length > 0) throw new Error(`HAPPY_CONTENDERS names no such contender: ${unknown.join(", ")} (contenders: ${contenderNames.join(", ")})`)
  const names = contenderNames.filter((name) => only === undefined || only.includes(name))
  if (names.includes(traced) && !names.includes("steadfast")) throw new Error(`HAPPY_CONTENDERS: "${traced}" runs on "steadfast"'s instance; name both`)

  // Pre-fill the raw keyspace (shared by every contender that stores raw strings) in pipelined batches.
  const admin = new Redis({ host: target.host, port: target.port })
  for (const size of [100, 10240] as const) await fill(admin, keys[size], values[size])

  log(`happy: ${config.isolate ? "each library in a process of its own" : "every contender in this one process"}`)
  const built = config.isolate
    ? (await Promise.all(groupsOf(names).map((group) => spawnGroup(group, config)))).flat()
    : await buildContenders(names, target, keyspace, config.runtime)
  // The table's order, whichever process built what.
  const contenders = names.map((name) => built.find((c) => c.name === name)!).map((contender): Contender => {
    const stats = contender.stats
    if (stats === undefined) return contender
    return {
      ...contender,
      watch: async (cell) => {
        const before = await stats()
        return async (sample) => {
          const after = await stats()
          if (after.fallbacks !== before.fallbacks || after.circuitState !== "CLOSED") {
            log(`WARNING ${contender.name} ${cellName(cell)}: fallback path taken! ${statsLine(after)}`)
          }
          if (config.verbose) log(`  ${contender.name} ${cellName(cell)}: ${Math.round(sample.opsPerSec)} ops/s; ${statsLine(after)}`)
        }
      }
    }
  })

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
    if (contender.stats) {
      const s = await contender.stats()
      steadfastStats[contender.name] = s
      log(`happy: ${contender.name} stats after all rounds: ${statsLine(s)}`)
    }
  }
  for (const contender of contenders) await contender.close()

  // Clean up every key this scenario wrote (raw keyspace and the envelopes of BentoCache / cache-manager).
  log(`happy: deleted ${await unlinkMatching(admin, "bench:*")} bench:* keys`)
  await admin.quit()

  return { keyspace, isolated: config.isolate, rounds: config.rounds, msPerMeasurement: config.durationMs, settleMs: config.gcBetween ? config.settleMs : 0, rows, steadfastStats }
}

