/**
 * Scenario 5, connections: Steadfast's resilient GET and SET (100 B) at concurrency 64 with
 * `RedisConnection.layer({ url, maxConnections: n })` for n = 1, 2, 4, 8, interleaved with raw ioredis
 * (auto-pipelining) in every round, against the shared Redis.
 */
import { Redis } from "ioredis"
import type * as Runtime from "effect/Runtime"
import { makePeer } from "./contenders.js"
import { effectLoop, promiseLoop, type Sample } from "./drive.js"
import { buildSteadfast, type Steadfast, statsLine } from "./steadfast.js"
import { gcHeap, log, median, ratio } from "./util.js"

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
  options: { readonly rounds: number; readonly durationMs: number; readonly warmupMs: number; readonly runtime: Runtime.Runtime<never>; readonly verbose: boolean }
): Promise<ConnectionsResult> => {
  const keyspace = 10_000
  const keys = Array.from({ length: keyspace }, (_, i) => `bench:c:${i}`)
  const value = "c".repeat(100)
  const admin = new Redis({ host: target.host, port: target.port })
  for (let i = 0; i < keyspace; i += 500) {
    const pipeline = admin.pipeline()
    for (const key of keys.slice(i, i + 500)) pipeline.set(key, value)
    await pipeline.exec()
  }
  const url = `redis://${target.host}:${target.port}`
  const auto = await makePeer("ioredis-autopipeline", target, { timeoutMs: 2000, halfOpenAfterMs: 5000 })
  const sizes = [1, 2, 4, 8] as const
  const steadfasts: Array<readonly [number, Steadfast]> = []
  for (const n of sizes) steadfasts.push([n, await buildSteadfast(`steadfast n=${n}`, { url, maxConnections: n }, options.runtime)])
  type Runner = { name: string; n: number | null; run: (op: "get" | "set", ms: number) => Promise<Sample>; sf?: Steadfast }
  const runners: Array<Runner> = [
    {
      name: "ioredis-autopipeline",
      n: null,
      run: (op, ms) =>
        promiseLoop(op === "get" ? (i) => auto.get(keys[i % keyspace]!) : (i) => auto.set(keys[i % keyspace]!, value), 64, 2_000_000, ms)
    },
    ...steadfasts.map(([n, sf]): Runner => ({
      name: `steadfast`,
      n,
      sf,
      run: (op, ms) =>
        sf.run(effectLoop(op === "get" ? (i) => sf.cache.get(keys[i % keyspace]!) : (i) => sf.cache.set(keys[i % keyspace]!, value), 64, 2_000_000, ms))
    }))
  ]
  const ops = ["get", "set"] as const
  log(`connections: warm-up`)
  for (const runner of runners) for (const op of ops) await runner.run(op, options.warmupMs)
  const samples = new Map<string, Array<Sample>>()
  const id = (r: Runner, op: string) => `${r.name}|${r.n}|${op}`
  for (let round = 0; round < options.rounds; round++) {
    log(`connections: round ${round + 1}/${options.rounds}`)
    for (const op of ops) {
      const shift = round % runners.length
      for (const runner of [...runners.slice(shift), ...runners.slice(0, shift)]) {
        gcHeap()
        const sample = await runner.run(op, options.durationMs)
        const list = samples.get(id(runner, op)) ?? []
        list.push(sample)
        samples.set(id(runner, op), list)
        if (options.verbose) log(`  ${runner.name} n=${runner.n} ${op}: ${Math.round(sample.opsPerSec)} ops/s p99 ${sample.p99Ms.toFixed(3)} ms`)
      }
    }
  }
  const rows: Array<ConnectionsRow> = []
  for (const op of ops) {
    const base = samples.get(id(runners[0]!, op))!
    for (const runner of runners) {
      const list = samples.get(id(runner, op))!
      rows.push({
        contender: runner.name,
        maxConnections: runner.n,
        op,
        opsPerSec: median(list.map((s) => s.opsPerSec)),
        p50Ms: median(list.map((s) => s.p50Ms)),
        p99Ms: median(list.map((s) => s.p99Ms)),
        throughputVsAutoPipeline: median(list.map((s, r) => ratio(s.opsPerSec, base[r]!.opsPerSec))),
        p99VsAutoPipeline: median(list.map((s, r) => ratio(s.p99Ms, base[r]!.p99Ms)))
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
  let cursor = "0"
  let guard = 0
  do {
    const [next, found] = await admin.scan(cursor, "MATCH", "bench:c:*", "COUNT", 1000)
    cursor = next
    if (found.length > 0) await admin.unlink(...found)
  } while (cursor !== "0" && ++guard < 100_000)
  await admin.quit()
  return { rounds: options.rounds, msPerMeasurement: options.durationMs, rows }
}
