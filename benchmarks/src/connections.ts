/**
 * Scenario 5, connections: Steadfast's resilient GET and SET (100 B) at concurrency 64 with
 * `RedisConnection.layer({ url, maxConnections: n })` for n = 1, 2, 4, 8, interleaved with raw ioredis
 * (auto-pipelining) in every round, against the shared Redis.
 */
import { Redis } from "ioredis"
import type * as Runtime from "effect/Runtime"
import { makePeer } from "./contenders.js"
import { effectLoop, promiseLoop } from "./drive.js"
import { benchKeys, fill, unlinkMatching } from "./keyspace.js"
import { type Entrant, interleave, p99, throughput } from "./rounds.js"
import { buildSteadfast, type Steadfast, statsLine } from "./steadfast.js"
import { log } from "./util.js"

export interface ConnectionsRow {
  readonly contender: string
  readonly maxConnections: number | null
  readonly op: "get" | "set"
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly throughputVsAutoPipeline: number
  readonly p99VsAutoPipeline: number
}

export interface ConnectionsResult {
  readonly rounds: number
  readonly msPerMeasurement: number
  readonly rows: ReadonlyArray<ConnectionsRow>
}

export const runConnections = async (
  target: { host: string; port: number },
  options: { readonly rounds: number; readonly durationMs: number; readonly warmupMs: number; readonly settleMs: number; readonly runtime: Runtime.Runtime<never>; readonly verbose: boolean }
): Promise<ConnectionsResult> => {
  const keyspace = 10_000
  const keys = benchKeys("bench:c:", keyspace)
  const value = "c".repeat(100)
  const admin = new Redis({ host: target.host, port: target.port })
  await fill(admin, keys, value)
  const url = `redis://${target.host}:${target.port}`
  const auto = await makePeer("ioredis-autopipeline", target, { timeoutMs: 2000, halfOpenAfterMs: 5000 })
  const sizes = [1, 2, 4, 8] as const
  const steadfasts: Array<readonly [number, Steadfast]> = []
  for (const n of sizes) steadfasts.push([n, await buildSteadfast(`steadfast n=${n}`, { url, maxConnections: n }, options.runtime)])
  type Op = "get" | "set"
  type Runner = Entrant<Op> & { n: number | null; sf?: Steadfast }
  const runners: Array<Runner> = [
    {
      name: "ioredis-autopipeline",
      n: null,
      measure: (op, ms) =>
        promiseLoop(op === "get" ? (i) => auto.get(keys[i % keyspace]!) : (i) => auto.set(keys[i % keyspace]!, value), 64, 2_000_000, ms)
    },
    ...steadfasts.map(([n, sf]): Runner => ({
      name: `steadfast n=${n}`,
      n,
      sf,
      measure: (op, ms) =>
        sf.run(effectLoop(op === "get" ? (i) => sf.cache.get(keys[i % keyspace]!) : (i) => sf.cache.set(keys[i % keyspace]!, value), 64, 2_000_000, ms))
    }))
  ]
  const ops: ReadonlyArray<Op> = ["get", "set"]
  const samples = await interleave(
    {
      label: "connections",
      cells: ops,
      cellName: (op) => op,
      rounds: options.rounds,
      durationMs: options.durationMs,
      warmupMs: options.warmupMs,
      gcBetween: true,
      settleMs: options.settleMs,
      verbose: options.verbose
    },
    runners
  )
  const rows: Array<ConnectionsRow> = []
  for (const op of ops) {
    for (const runner of runners) {
      rows.push({
        contender: runner.sf ? "steadfast" : runner.name,
        maxConnections: runner.n,
        op,
        ...samples.medians(runner.name, op),
        throughputVsAutoPipeline: samples.ratio(runner.name, "ioredis-autopipeline", op, throughput),
        p99VsAutoPipeline: samples.ratio(runner.name, "ioredis-autopipeline", op, p99)
      })
    }
  }
  for (const runner of runners) {
    if (runner.sf) {
      const s = await runner.sf.stats()
      log(`connections: steadfast n=${runner.n}: ${statsLine(s)}`)
      if (s.fallbacks > 0 || s.circuitState !== "CLOSED") log(`WARNING: steadfast n=${runner.n} took the fallback path`)
      await runner.sf.close()
    }
  }
  await auto.close()
  await unlinkMatching(admin, "bench:c:*")
  await admin.quit()
  return { rounds: options.rounds, msPerMeasurement: options.durationMs, rows }
}
