/**
 * `--only hybrid` (issue 8): hot-key reads (90 % of reads on 1,000 of 10,000 keys, 100 B values) at concurrency 1 and
 * 64 through Steadfast's hybrid cache (L1 + Redis, invalidated by CLIENT TRACKING), raw ioredis with auto-pipelining,
 * today's resilient cache and BentoCache 1.6.1 with an L1 memory layer, its Redis L2 and its Redis bus; plus the write
 * path (SET 100 B over 10,000 other keys) of the hybrid cache vs the resilient cache. Interleaved rounds (rounds.ts).
 */
import { Cache, HybridCache } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import { BentoCache, bentostore } from "bentocache"
import { memoryDriver } from "bentocache/drivers/memory"
import { redisBusDriver, redisDriver } from "bentocache/drivers/redis"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Runtime from "effect/Runtime"
import { Redis } from "ioredis"
import type { Target } from "./contenders.js"
import { effectLoop, promiseLoop, type Sample } from "./drive.js"
import { benchValue, fill, unlinkMatching } from "./keyspace.js"
import { type Entrant, interleave, p99, throughput } from "./rounds.js"
import { buildLayer, layerOf } from "./steadfast.js"
import { fmt, log } from "./util.js"

export interface Cell {
  readonly op: "get" | "set"
  readonly concurrency: 1 | 64
}
const cells: ReadonlyArray<Cell> = (["get", "set"] as const).flatMap((op) => ([1, 64] as const).map((concurrency) => ({ op, concurrency })))
const cellName = (c: Cell) => `${c.op === "get" ? "GET hot 90/10" : "SET"} 100 B c=${c.concurrency}`

export interface HybridRow {
  readonly contender: string
  readonly cell: string
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly throughputVsAutoPipeline: number
  readonly p99VsAutoPipeline: number
  /** Median of per-round throughput ratios to the resilient cache. */
  readonly throughputVsResilient: number
  readonly emptyReads: number
  readonly errors: number
  /** Hybrid only: L1 hits / reads over the measured rounds of this cell. */
  readonly l1HitRatio?: number
}

export interface HybridResult {
  readonly keyspace: number
  readonly hotKeys: number
  readonly rounds: number
  readonly msPerMeasurement: number
  readonly rows: ReadonlyArray<HybridRow>
  readonly bentocache: string
  readonly hybridStats: Record<string, unknown>
}

export interface HybridConfig {
  readonly target: Target
  readonly rounds: number
  readonly durationMs: number
  readonly warmupMs: number
  readonly gcBetween: boolean
  readonly verbose: boolean
  readonly runtime: Runtime.Runtime<never>
}

const KEYSPACE = 10_000
const HOT = 1_000

/** A fixed sequence of key indices: 90 % among the first 1,000 keys, 10 % among the other 9,000 (seeded LCG). */
const hotSequence = (() => {
  const n = 1 << 20
  const out = new Uint32Array(n)
  let x = 12345
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32
  for (let i = 0; i < n; i++) out[i] = next() < 0.9 ? Math.floor(next() * HOT) : HOT + Math.floor(next() * (KEYSPACE - HOT))
  return out
})()
const MASK = (1 << 20) - 1

interface Contender extends Entrant<Cell> {
  readonly close: () => Promise<void>
}

export const runHybrid = async (config: HybridConfig): Promise<HybridResult> => {
  const { target } = config
  const url = `redis://${target.host}:${target.port}`
  const keys = Array.from({ length: KEYSPACE }, (_, i) => `bench:hyb:${i}`)
  const value = benchValue(100, 1)
  const written = benchValue(100, 2)
  const admin = new Redis({ host: target.host, port: target.port })
  await fill(admin, keys, value)
  // SETs go to keys of their own: the read cells measure the steady hot-read state, not L1 refilling after writes.
  const writeKeys = Array.from({ length: KEYSPACE }, (_, i) => `bench:hyb:w:${i}`)
  const keyFor = (cell: Cell, i: number) => cell.op === "get" ? keys[hotSequence[i & MASK]!]! : writeKeys[i % KEYSPACE]!

  const contenders: Array<Contender> = []

  // Raw ioredis, auto-pipelined: the base of the ratios.
  const raw = new Redis({ host: target.host, port: target.port, enableAutoPipelining: true })
  contenders.push({
    name: "ioredis-autopipeline",
    measure: (cell, ms) =>
      promiseLoop(cell.op === "get" ? (i) => raw.get(keyFor(cell, i)) : (i) => raw.set(keyFor(cell, i), written), cell.concurrency, 4_000_000, ms),
    close: async () => void raw.disconnect()
  })

  // Steadfast: the hybrid cache and today's resilient cache, each built once.
  const hybridBuilt = await buildLayer(
    HybridCache.layer({}).pipe(Layer.provide(RedisConnection.layer({ url }))),
    config.runtime
  )
  const hybrid = Context.get(hybridBuilt.context, Cache.Cache)
  const hybridStats = () => hybridBuilt.run(hybrid.stats)
  await hybridBuilt.run(Effect.repeat(Effect.flatMap(Effect.sleep("20 millis"), () => hybrid.stats), {
    until: (s) => s.hybrid?.trusted === true,
    times: 250
  }))
  const l1Reads = new Map<string, { hits: number; reads: number }>()
  contenders.push({
    name: "steadfast hybrid",
    watch: async (cell) => {
      const before = (await hybridStats()).hybrid!.l1
      return async (sample) => {
        const after = await hybridStats()
        if (after.fallbacks > 0 || after.circuitState !== "CLOSED") log(`WARNING hybrid ${cellName(cell)}: fallback path taken`)
        if (cell.op === "get") {
          const acc = l1Reads.get(cellName(cell)) ?? { hits: 0, reads: 0 }
          acc.hits += after.hybrid!.l1.hits - before.hits
          acc.reads += sample.ops
          l1Reads.set(cellName(cell), acc)
        }
        if (config.verbose) log(`  steadfast hybrid ${cellName(cell)}: ${Math.round(sample.opsPerSec)} ops/s, L1 ${after.hybrid!.l1.entries} entries`)
      }
    },
    measure: (cell, ms) =>
      hybridBuilt.run(effectLoop(
        cell.op === "get" ? (i) => hybrid.get(keyFor(cell, i)) : (i) => hybrid.set(keyFor(cell, i), written),
        cell.concurrency,
        4_000_000,
        ms
      )),
    close: hybridBuilt.close
  })
  const resilientBuilt = await buildLayer(layerOf({ url }), config.runtime)
  const resilient = Context.get(resilientBuilt.context, Cache.Cache)
  contenders.push({
    name: "steadfast resilient",
    measure: (cell, ms) =>
      resilientBuilt.run(effectLoop(
        cell.op === "get" ? (i) => resilient.get(keyFor(cell, i)) : (i) => resilient.set(keyFor(cell, i), written),
        cell.concurrency,
        4_000_000,
        ms
      )),
    close: resilientBuilt.close
  })

  // BentoCache 1.6.1: L1 memory (10,000 items) + L2 Redis + Redis bus (its own pub/sub connections).
  const bentoRedis = new Redis({ host: target.host, port: target.port })
  bentoRedis.on("error", () => {})
  const bento = new BentoCache({
    default: "hybrid",
    ttl: "1h",
    stores: {
      hybrid: bentostore()
        .useL1Layer(memoryDriver({ maxItems: KEYSPACE }))
        .useL2Layer(redisDriver({ connection: bentoRedis, prefix: "bench:bentoh" }))
        .useBus(redisBusDriver({ connection: { host: target.host, port: target.port } }))
    }
  })
  {
    let i = 0
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (i < KEYSPACE) await bento.set({ key: keys[i++]!, value })
    }))
  }
  contenders.push({
    name: "bentocache L1+L2+bus",
    measure: (cell, ms) =>
      promiseLoop(
        cell.op === "get"
          ? (i) => bento.get<string>({ key: keyFor(cell, i) }).then((v) => v ?? null)
          : (i) => bento.set({ key: keyFor(cell, i), value: written }),
        cell.concurrency,
        4_000_000,
        ms
      ),
    close: async () => {
      await bento.disconnectAll().catch(() => undefined)
      bentoRedis.disconnect(false)
    }
  })

  const samples = await interleave({
    label: "hybrid",
    cells,
    cellName,
    rounds: config.rounds,
    durationMs: config.durationMs,
    warmupMs: config.warmupMs,
    gcBetween: config.gcBetween,
    verbose: config.verbose
  }, contenders)

  const rows: Array<HybridRow> = []
  for (const cell of cells) {
    for (const c of contenders) {
      const list: ReadonlyArray<Sample> = samples.of(c.name, cell)
      const l1 = c.name === "steadfast hybrid" ? l1Reads.get(cellName(cell)) : undefined
      rows.push({
        contender: c.name,
        cell: cellName(cell),
        ...samples.medians(c.name, cell),
        throughputVsAutoPipeline: samples.ratio(c.name, "ioredis-autopipeline", cell, throughput),
        p99VsAutoPipeline: samples.ratio(c.name, "ioredis-autopipeline", cell, p99),
        throughputVsResilient: samples.ratio(c.name, "steadfast resilient", cell, throughput),
        emptyReads: cell.op === "get" ? list.reduce((n, s) => n + s.empty, 0) : 0,
        errors: list.reduce((n, s) => n + s.errors, 0),
        ...(l1 === undefined ? {} : { l1HitRatio: l1.reads === 0 ? 0 : l1.hits / l1.reads })
      })
    }
  }
  const s = await hybridStats()
  const h = s.hybrid!
  const hybridStatsOut = {
    circuitState: s.circuitState,
    fallbacks: s.fallbacks,
    l1: h.l1,
    losses: h.losses,
    canaryRounds: h.canaryRounds,
    invalidationMessages: h.invalidationMessages
  }
  log(`hybrid: steadfast hybrid stats after all rounds: ${JSON.stringify(hybridStatsOut)}`)
  for (const c of contenders) await c.close()
  log(`hybrid: deleted ${await unlinkMatching(admin, "bench:hyb:*") + await unlinkMatching(admin, "bench:bentoh*")} keys`)
  await admin.quit()
  return {
    keyspace: KEYSPACE,
    hotKeys: HOT,
    rounds: config.rounds,
    msPerMeasurement: config.durationMs,
    rows,
    bentocache: "L1 memoryDriver({ maxItems: 10000 }) + L2 redisDriver + redisBusDriver (bus on its own connections)",
    hybridStats: hybridStatsOut
  }
}

export const hybridMarkdown = (r: HybridResult): string => {
  const head = `### Hybrid cache: hot reads and the write path (${r.keyspace.toLocaleString("en-US")} keys, 90 % of reads on ${r.hotKeys.toLocaleString("en-US")}, 100 B; median of ${r.rounds} rounds of ${r.msPerMeasurement} ms)\n\n` +
    "| cell | contender | ops/s | p50 ms | p99 ms | x ioredis-autopipeline | p99 x autopipeline | x resilient | L1 hit ratio | empty / errors |\n" +
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
  return head + r.rows.map((row) =>
    `| ${row.cell} | ${row.contender} | ${Math.round(row.opsPerSec).toLocaleString("en-US")} | ${fmt(row.p50Ms)} | ${fmt(row.p99Ms)} | ${
      row.throughputVsAutoPipeline.toFixed(2)
    } | ${row.p99VsAutoPipeline.toFixed(2)} | ${row.throughputVsResilient.toFixed(2)} | ${row.l1HitRatio === undefined ? "" : row.l1HitRatio.toFixed(3)} | ${row.emptyReads} / ${row.errors} |`
  ).join("\n") + "\n"
}
