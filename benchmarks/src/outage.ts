/**
 * Scenario 2, the outage: Redis blackholed (ChaosProxy `Stall()`) for `seconds` under an open-loop read rate.
 * Per contender: a fresh proxy in front of a spawned redis-server, 1,000 keys written through the contender, a
 * 2-second open-loop warm-up, then `global.gc()` + heapUsed, the stall, and heapUsed again (after gc) at the end
 * of the stall, before the proxy lets traffic through again (so queued work is still held). Calls still pending
 * then are given 3 s after the proxy is healed, and are counted.
 */
import { ChaosProxy, type Lab } from "./chaos.js"
import { makePeer, type PeerName, type PromiseClient, type ResilienceSettings } from "./contenders.js"
import { type Call, openLoop } from "./openloop.js"
import { buildSteadfast, statsLine } from "./steadfast.js"
import type * as Runtime from "effect/Runtime"
import { gcHeap, log, now, percentiles, sleep } from "./util.js"

export interface OutageRow {
  readonly contender: string
  readonly calls: number
  readonly values: number
  readonly empty: number
  readonly errors: number
  /** Calls that had not settled when the stall ended. */
  readonly pendingAtEnd: number
  /** Calls that had not settled 3 s after the stall ended. */
  readonly hung: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** The longest wait; for calls still pending at the end, the time they had waited so far. */
  readonly maxMs: number
  readonly overDeadline: number
  /** ms from the stall to the breaker opening (observed), if the contender has a breaker. */
  readonly breakerOpenAfterMs: number | null
  readonly afterOpen: { readonly calls: number; readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number } | null
  readonly heapGrowthMB: number
  readonly stats?: string
}

export interface OutageResult {
  readonly seconds: number
  readonly ratePerSec: number
  readonly deadlineMs: number
  readonly halfOpenAfterMs: number
  readonly rows: ReadonlyArray<OutageRow>
}

export type OutageContender = PeerName | "steadfast"

export const runOutage = async (
  lab: Lab,
  contenders: ReadonlyArray<OutageContender>,
  options: { readonly seconds: number; readonly warmupMs: number; readonly drainMs: number; readonly ratePerSec: number; readonly deadlineMs: number; readonly runtime: Runtime.Runtime<never>; readonly verbose: boolean }
): Promise<OutageResult> => {
  const halfOpenAfterMs = 5000 // Steadfast's default; the same for the peers' breakers.
  const settings: ResilienceSettings = { timeoutMs: options.deadlineMs, halfOpenAfterMs }
  const rows: Array<OutageRow> = []
  for (const name of contenders) {
    log(`outage: ${name} (${options.seconds} s stall at ${options.ratePerSec} req/s)`)
    const proxy = await lab.proxy()
    const target = { host: proxy.host, port: proxy.port }
    let client: PromiseClient
    let stats: (() => Promise<string>) | undefined
    if (name === "steadfast") {
      const sf = await buildSteadfast("steadfast", { url: proxy.url(), commandTimeoutMs: options.deadlineMs }, options.runtime)
      client = sf.client
      stats = async () => statsLine(await sf.stats())
    } else {
      client = await makePeer(name, target, settings)
    }
    const keyspace = 1000
    const key = (i: number) => `bench:o:${i % keyspace}`
    const payload = "y".repeat(100)
    for (let i = 0; i < keyspace; i++) await client.set(key(i), payload)
    const warm = openLoop(client, key, options.ratePerSec, { maxCalls: Math.ceil((options.ratePerSec * options.warmupMs) / 1000) })
    await sleep(options.warmupMs)
    warm.stop()
    await warm.drain(2000)
    const warmBad = warm.calls.filter((c) => c.outcome !== "value").length
    if (warmBad > 0) log(`  WARNING: ${warmBad} warm-up calls did not return a value`)

    const heapBefore = gcHeap()
    await lab.fault(proxy, ChaosProxy.Stall())
    const stallAt = now()
    let openAt: number | undefined
    const maxCalls = Math.ceil(options.seconds * options.ratePerSec)
    const loop = openLoop(client, key, options.ratePerSec, {
      maxCalls,
      onTick: () => {
        if (openAt === undefined && client.breaker() === "open") openAt = now()
      },
      onSettle: (call) => {
        // BentoCache has no public breaker state; its breaker opens on the first L2 failure, which its `get`
        // reports as a miss (suppressL2Errors). Take that moment.
        if (openAt === undefined && name === "bentocache" && call.outcome !== "value") openAt = call.end
      }
    })
    await sleep(options.seconds * 1000)
    loop.stop()
    const stallEnd = now()
    const pendingAtEnd = loop.pending()
    const heapAfter = gcHeap()
    await lab.fault(proxy, ChaosProxy.PassThrough())
    await loop.drain(options.drainMs)
    const hung = loop.pending()
    const at = now()
    const waited = (c: Call) => (c.outcome === "pending" ? at - c.start : c.end - c.start)
    const calls = loop.calls
    const all = calls.map(waited)
    const { p50, p99, max } = percentiles(all)
    const afterOpenCalls = openAt === undefined ? [] : calls.filter((c) => c.start >= openAt!).map(waited)
    const afterOpen = openAt === undefined ? null : { calls: afterOpenCalls.length, ...(({ p50, p99, max }) => ({ p50Ms: p50, p99Ms: p99, maxMs: max }))(percentiles(afterOpenCalls)) }
    const row: OutageRow = {
      contender: name,
      calls: calls.length,
      values: calls.filter((c) => c.outcome === "value").length,
      empty: calls.filter((c) => c.outcome === "empty").length,
      errors: calls.filter((c) => c.outcome === "error").length,
      pendingAtEnd,
      hung,
      p50Ms: p50,
      p99Ms: p99,
      maxMs: max,
      overDeadline: all.filter((ms) => ms > options.deadlineMs).length,
      breakerOpenAfterMs: openAt === undefined ? null : openAt - stallAt,
      afterOpen,
      heapGrowthMB: (heapAfter - heapBefore) / (1024 * 1024),
      ...(stats ? { stats: await stats() } : {})
    }
    rows.push(row)
    log(
      `  calls=${row.calls} values=${row.values} empty=${row.empty} errors=${row.errors} pendingAtEnd=${pendingAtEnd} hung=${hung} ` +
        `p99=${p99.toFixed(1)}ms max=${max.toFixed(0)}ms >deadline=${row.overDeadline} open@${row.breakerOpenAfterMs?.toFixed(0) ?? "-"}ms ` +
        `afterOpen p99=${afterOpen?.p99Ms.toFixed(3) ?? "-"}ms heap +${row.heapGrowthMB.toFixed(2)} MB (stall ${((stallEnd - stallAt) / 1000).toFixed(1)} s)`
    )
    if (row.stats) log(`  steadfast stats: ${row.stats}`)
    await client.close()
    await lab.fault(proxy, ChaosProxy.Reset())
  }
  return { seconds: options.seconds, ratePerSec: options.ratePerSec, deadlineMs: options.deadlineMs, halfOpenAfterMs, rows }
}
