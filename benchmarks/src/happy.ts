/**
 * Scenario 1, the happy path: GET and SET of 100 B and 10 KB values at concurrency 1 and 64 against the shared Redis,
 * on distinct keys of a pre-filled keyspace. Contenders are interleaved in every round (rotating order) after a
 * warm-up; each figure is the median over rounds, each ratio the median of per-round ratios to raw ioredis with
 * auto-pipelining (and to raw ioredis defaults) measured in the same round.
 */
import { Redis } from "ioredis"
import { makePeer, type PeerName, peerNames, type PromiseClient, type ResilienceSettings, type Target } from "./contenders.js"
import { effectLoop, promiseLoop, type Sample } from "./drive.js"
import { buildSteadfast, type Steadfast, statsLine } from "./steadfast.js"
import type * as Runtime from "effect/Runtime"
import { gcHeap, log, median, ratio } from "./util.js"

export interface Cell {
  readonly op: "get" | "set"
  readonly size: 100 | 10240
  readonly concurrency: 1 | 64
}

export const cells: ReadonlyArray<Cell> = (["get", "set"] as const).flatMap((op) =>
  ([100, 10240] as const).flatMap((size) => ([1, 64] as const).map((concurrency) => ({ op, size, concurrency })))
)

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
  readonly rounds: ReadonlyArray<Sample>
  readonly emptyReads: number
  readonly errors: number
}

export interface HappyResult {
  readonly keyspace: number
  readonly rounds: number
  readonly msPerMeasurement: number
  readonly rows: ReadonlyArray<HappyRow>
  readonly steadfastStats: Record<string, unknown>
}

interface Contender {
  readonly name: string
  readonly measure: (cell: Cell, durationMs: number) => Promise<Sample>
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
  readonly runtime: Runtime.Runtime<never>
}

const value = (size: number, seed: number) => {
  const base = `v${seed}:`
  return (base + "x".repeat(size)).slice(0, size)
}

export const runHappy = async (config: HappyConfig): Promise<HappyResult> => {
  const { target, keyspace } = config
  const url = `redis://${target.host}:${target.port}`
  const keys = {
    100: Array.from({ length: keyspace }, (_, i) => `bench:v100:${i}`),
    10240: Array.from({ length: keyspace }, (_, i) => `bench:v10k:${i}`)
  }
  const values = { 100: value(100, 1), 10240: value(10240, 1) }
  const settings: ResilienceSettings = { timeoutMs: 2000, halfOpenAfterMs: 5000 }

  // Pre-fill the raw keyspace (shared by every contender that stores raw strings) in pipelined batches.
  const admin = new Redis({ host: target.host, port: target.port })
  for (const size of [100, 10240] as const) {
    for (let i = 0; i < keyspace; i += 500) {
      const pipeline = admin.pipeline()
      for (const key of keys[size].slice(i, i + 500)) pipeline.set(key, values[size])
      await pipeline.exec()
    }
  }

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

  const contenders: Array<Contender> = []
  for (const name of peerNames as ReadonlyArray<PeerName>) {
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
  for (const [name, coalesce] of [["steadfast", undefined], ["steadfast coalesce:false", false]] as const) {
    const sf = await buildSteadfast(name, { url, ...(coalesce === undefined ? {} : { coalesce }) }, config.runtime)
    contenders.push({
      name,
      steadfast: sf,
      measure: (cell, durationMs) => {
        const ks = keys[cell.size]
        const v = values[cell.size]
        const op = cell.op === "get"
          ? (i: number) => sf.cache.get(ks[i % keyspace]!)
          : (i: number) => sf.cache.set(ks[i % keyspace]!, v)
        return sf.run(effectLoop(op, cell.concurrency, 2_000_000, durationMs))
      },
      close: sf.close
    })
  }

  // Warm-up: every contender, every cell, discarded.
  log(`happy: warm-up (${contenders.length} contenders x ${cells.length} cells x ${config.warmupMs} ms)`)
  for (const contender of contenders) {
    for (const cell of cells) await contender.measure(cell, config.warmupMs)
  }

  const samples = new Map<string, Array<Sample>>()
  const keyOf = (contender: string, cell: Cell) => `${contender}|${cellName(cell)}`
  for (let round = 0; round < config.rounds; round++) {
    log(`happy: round ${round + 1}/${config.rounds}`)
    for (const [c, cell] of cells.entries()) {
      // Rotate the order so no contender always runs first (or right after the same neighbour).
      const shift = (round + c) % contenders.length
      const order = [...contenders.slice(shift), ...contenders.slice(0, shift)]
      for (const contender of order) {
        const before = contender.steadfast ? await contender.steadfast.stats() : undefined
        if (config.gcBetween) gcHeap() // collect the previous contender's garbage, so its GC pauses do not land in this window
        const sample = await contender.measure(cell, config.durationMs)
        const list = samples.get(keyOf(contender.name, cell)) ?? []
        list.push(sample)
        samples.set(keyOf(contender.name, cell), list)
        if (contender.steadfast && before) {
          const after = await contender.steadfast.stats()
          if (after.fallbacks !== before.fallbacks || after.circuitState !== "CLOSED") {
            log(`WARNING ${contender.name} ${cellName(cell)}: fallback path taken! ${statsLine(after)}`)
          }
          if (config.verbose) log(`  ${contender.name} ${cellName(cell)}: ${Math.round(sample.opsPerSec)} ops/s; ${statsLine(after)}`)
        } else if (config.verbose) {
          log(`  ${contender.name} ${cellName(cell)}: ${Math.round(sample.opsPerSec)} ops/s p99 ${sample.p99Ms.toFixed(3)} ms`)
        }
      }
    }
  }

  const rows: Array<HappyRow> = []
  for (const cell of cells) {
    const auto = samples.get(keyOf("ioredis-autopipeline", cell))!
    const plain = samples.get(keyOf("ioredis", cell))!
    for (const contender of contenders) {
      const list = samples.get(keyOf(contender.name, cell))!
      rows.push({
        contender: contender.name,
        cell: cellName(cell),
        ...cell,
        opsPerSec: median(list.map((s) => s.opsPerSec)),
        p50Ms: median(list.map((s) => s.p50Ms)),
        p99Ms: median(list.map((s) => s.p99Ms)),
        throughputVsAutoPipeline: median(list.map((s, r) => ratio(s.opsPerSec, auto[r]!.opsPerSec))),
        p99VsAutoPipeline: median(list.map((s, r) => ratio(s.p99Ms, auto[r]!.p99Ms))),
        throughputVsIoredis: median(list.map((s, r) => ratio(s.opsPerSec, plain[r]!.opsPerSec))),
        rounds: list,
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
  let cursor = "0"
  let deleted = 0
  let guard = 0
  do {
    const [next, found] = await admin.scan(cursor, "MATCH", "bench:*", "COUNT", 1000)
    cursor = next
    if (found.length > 0) deleted += await admin.unlink(...found)
  } while (cursor !== "0" && ++guard < 100_000)
  log(`happy: deleted ${deleted} bench:* keys`)
  await admin.quit()

  return { keyspace, rounds: config.rounds, msPerMeasurement: config.durationMs, rows, steadfastStats }
}

