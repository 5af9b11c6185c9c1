/**
 * "Remote Redis": the happy path (GET and SET of 100 B at concurrency 1 and 64) through a `ChaosProxy` adding
 * latency each way (0.5 ms by default), since a managed Redis is never on the same host. The proxy runs in a child
 * process (`proxy-child.ts`) in front of the shared Redis. Contenders: raw ioredis (defaults and auto-pipelined),
 * Steadfast's resilient cache with `maxConnections` 1 (the default), 2 and 4, and with `coalesce: false`;
 * interleaved in every round like the happy path, ratios are medians of per-round ratios.
 */
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import type * as Runtime from "effect/Runtime"
import { Redis } from "ioredis"
import { makePeer, type Target } from "./contenders.js"
import { effectLoop, promiseLoop, type Sample } from "./drive.js"
import { cellName as happyCellName } from "./happy.js"
import { benchKeys, benchValue, fill, unlinkMatching } from "./keyspace.js"
import { type Entrant, interleave, p99, throughput } from "./rounds.js"
import { buildSteadfast, type Steadfast, statsLine } from "./steadfast.js"
import { log, within } from "./util.js"

export interface RemoteCell {
  readonly op: "get" | "set"
  readonly size: 100
  readonly concurrency: 1 | 64
}

export interface RemoteRow {
  readonly contender: string
  readonly maxConnections: number | null
  readonly coalesce: boolean | null
  readonly cell: string
  readonly op: "get" | "set"
  readonly concurrency: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly vsAutoPipeline: number
  readonly vsIoredis: number
  readonly p99VsAutoPipeline: number
  readonly rounds: ReadonlyArray<Sample>
  readonly emptyReads: number
  readonly errors: number
}

export interface RemoteResult {
  /** Latency the proxy adds each way (ms), as configured. */
  readonly latencyMs: number
  /** Raw ioredis (defaults) GET at c=1, p50: the round trip a call actually saw through the proxy. */
  readonly measuredRoundTripMs: number
  readonly rounds: number
  readonly msPerMeasurement: number
  readonly rows: ReadonlyArray<RemoteRow>
}

export interface RemoteConfig {
  readonly target: Target
  readonly latencyMs: number
  readonly rounds: number
  readonly durationMs: number
  readonly warmupMs: number
  readonly gcBetween: boolean
  /** After each `gc()`, the rung runs the cell this long, unmeasured (see `RoundsConfig.settleMs`). */
  readonly settleMs: number
  readonly verbose: boolean
  readonly runtime: Runtime.Runtime<never>
}

/** Forks the proxy; answers its port and a function that stops it. */
const startProxy = async (target: Target, latencyMs: number) => {
  const script = fileURLToPath(new URL("./proxy-child.js", import.meta.url))
  const child = fork(script, [target.host, String(target.port), String(latencyMs), String(latencyMs)], { stdio: ["ignore", "ignore", "inherit", "ipc"] })
  const port = await within("remote: proxy start", 10_000, () =>
    new Promise<number>((resolve, reject) => {
      child.once("message", (m) => resolve((m as { port: number }).port))
      child.once("exit", (code) => reject(new Error(`proxy exited with ${code}`)))
    }))
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve()
      child.once("exit", () => resolve())
      child.kill()
    })
  return { port, stop }
}

export const runRemote = async (config: RemoteConfig): Promise<RemoteResult> => {
  const { runtime, target } = config
  const keyspace = 10_000
  const keys = benchKeys("bench:remote:", keyspace)
  const value = benchValue(100, 1)
  const admin = new Redis({ host: target.host, port: target.port })
  await fill(admin, keys, value)
  const proxy = await startProxy(target, config.latencyMs)
  const via: Target = { host: "127.0.0.1", port: proxy.port }
  const url = `redis://${via.host}:${via.port}`
  const settings = { timeoutMs: 2000, halfOpenAfterMs: 5000 }
  const key = (i: number) => keys[i % keyspace]!

  const peers = [await makePeer("ioredis", via, settings), await makePeer("ioredis-autopipeline", via, settings)]
  const steadfasts: Array<{ readonly sf: Steadfast; readonly n: number; readonly coalesce: boolean }> = []
  for (const [n, coalesce] of [[1, true], [2, true], [4, true], [1, false]] as const) {
    const name = `steadfast n=${n}${coalesce ? "" : " coalesce:false"}`
    steadfasts.push({ sf: await buildSteadfast(name, { url, maxConnections: n, ...(coalesce ? {} : { coalesce }) }, runtime), n, coalesce })
  }
  const entrants: Array<Entrant<RemoteCell>> = [
    ...peers.map((client): Entrant<RemoteCell> => ({
      name: client.name,
      measure: (cell, ms) =>
        promiseLoop(cell.op === "get" ? (i) => client.get(key(i)) : (i) => client.set(key(i), value), cell.concurrency, 2_000_000, ms)
    })),
    ...steadfasts.map(({ sf }): Entrant<RemoteCell> => ({
      name: sf.name,
      measure: (cell, ms) =>
        sf.run(
          effectLoop(cell.op === "get" ? (i) => sf.cache.get(key(i)) : (i) => sf.cache.set(key(i), value), cell.concurrency, 2_000_000, ms)
        ),
      watch: async (cell) => {
        const before = await sf.stats()
        return async (sample) => {
          const after = await sf.stats()
          if (after.fallbacks !== before.fallbacks || after.circuitState !== "CLOSED") {
            log(`WARNING remote ${sf.name} ${happyCellName(cell)}: fallback path taken! ${statsLine(after)}`)
          }
          if (config.verbose) log(`  ${sf.name} ${happyCellName(cell)}: ${Math.round(sample.opsPerSec)} ops/s; ${statsLine(after)}`)
        }
      }
    }))
  ]
  const cells: ReadonlyArray<RemoteCell> = (["get", "set"] as const).flatMap((op) =>
    ([1, 64] as const).map((concurrency) => ({ op, size: 100 as const, concurrency }))
  )
  try {
    const samples = await interleave(
      {
        label: `remote (+${config.latencyMs} ms each way)`,
        cells,
        cellName: happyCellName,
        rounds: config.rounds,
        durationMs: config.durationMs,
        warmupMs: config.warmupMs,
        gcBetween: config.gcBetween,
        settleMs: config.settleMs,
        verbose: config.verbose
      },
      entrants
    )
    const rows: Array<RemoteRow> = []
    for (const cell of cells) {
      for (const entrant of entrants) {
        const list = samples.of(entrant.name, cell)
        const sf = steadfasts.find((s) => s.sf.name === entrant.name)
        rows.push({
          contender: sf ? "steadfast" : entrant.name,
          maxConnections: sf ? sf.n : null,
          coalesce: sf ? sf.coalesce : null,
          cell: happyCellName(cell),
          op: cell.op,
          concurrency: cell.concurrency,
          ...samples.medians(entrant.name, cell),
          vsAutoPipeline: samples.ratio(entrant.name, "ioredis-autopipeline", cell, throughput),
          vsIoredis: samples.ratio(entrant.name, "ioredis", cell, throughput),
          p99VsAutoPipeline: samples.ratio(entrant.name, "ioredis-autopipeline", cell, p99),
          rounds: list,
          emptyReads: cell.op === "get" ? list.reduce((n, s) => n + s.empty, 0) : 0,
          errors: list.reduce((n, s) => n + s.errors, 0)
        })
      }
    }
    const roundTrip = samples.medians("ioredis", cells[0]!).p50Ms
    for (const { sf } of steadfasts) log(`remote: ${sf.name} stats after all rounds: ${statsLine(await sf.stats())}`)
    return { latencyMs: config.latencyMs, measuredRoundTripMs: roundTrip, rounds: config.rounds, msPerMeasurement: config.durationMs, rows }
  } finally {
    for (const { sf } of steadfasts) await sf.close()
    for (const peer of peers) await peer.close()
    await proxy.stop()
    log(`remote: deleted ${await unlinkMatching(admin, "bench:remote:*")} bench:remote:* keys`)
    await admin.quit()
  }
}
