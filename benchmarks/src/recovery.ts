/**
 * Scenario 4, recovery: the time from Redis serving again (the proxy switched from `Stall()` back to PassThrough)
 * to the first read that returns a value only Redis can have: while the proxy stalls, a fresh value is written
 * directly into the server (`RedisServer.command("SET", ...)`, bypassing the proxy and the client). Reads run
 * open-loop at `ratePerSec` before and after (so breakers have opened: the stall lasts `stallMs`).
 */
import { ChaosProxy, type Lab } from "./chaos.js"
import { makePeer, type PeerName, type PromiseClient, type ResilienceSettings } from "./contenders.js"
import { openLoop } from "./openloop.js"
import { buildSteadfast, statsLine } from "./steadfast.js"
import type * as Runtime from "effect/Runtime"
import { log, now, sleep } from "./util.js"

export interface RecoveryRow {
  readonly contender: string
  readonly halfOpenAfterMs: number
  readonly breakerAtHeal: string
  /** ms from the heal to the end of the first call that returned the fresh value; null if none within the bound. */
  readonly recoveryMs: number | null
  readonly stats?: string
}

export interface RecoveryResult {
  readonly stallMs: number
  readonly ratePerSec: number
  readonly deadlineMs: number
  readonly rows: ReadonlyArray<RecoveryRow>
}

export const runRecovery = async (
  lab: Lab,
  contenders: ReadonlyArray<PeerName | "steadfast">,
  options: {
    readonly halfOpenAfterMs: number
    readonly stallMs: number
    readonly ratePerSec: number
    readonly deadlineMs: number
    readonly boundMs: number
    readonly runtime: Runtime.Runtime<never>
  }
): Promise<RecoveryResult> => {
  const settings: ResilienceSettings = { timeoutMs: options.deadlineMs, halfOpenAfterMs: options.halfOpenAfterMs }
  const rows: Array<RecoveryRow> = []
  for (const name of contenders) {
    const proxy = await lab.proxy()
    let client: PromiseClient
    let stats: (() => Promise<string>) | undefined
    if (name === "steadfast") {
      const sf = await buildSteadfast(
        "steadfast",
        { url: proxy.url(), commandTimeoutMs: options.deadlineMs, halfOpenAfterMs: options.halfOpenAfterMs },
        options.runtime
      )
      client = sf.client
      stats = async () => statsLine(await sf.stats())
    } else {
      client = await makePeer(name, { host: proxy.host, port: proxy.port }, settings)
    }
    const key = `bench:r:${name}`
    const old = `old-${"z".repeat(60)}`
    await client.set(key, old)
    const check = await client.get(key)
    if (check !== old) log(`  WARNING ${name}: read back ${String(check)} instead of the written value`)
    const stored = await lab.command("GET", client.rawKey(key))
    if (typeof stored !== "string" || !stored.includes(old)) throw new Error(`${name}: cannot find the stored value of ${client.rawKey(key)}`)
    const freshValue = `new-${"z".repeat(60)}`
    const fresh = stored.replace(old, freshValue) // the contender's own envelope, same length, new payload

    await lab.fault(proxy, ChaosProxy.Stall())
    let healAt = Number.POSITIVE_INFINITY
    let foundAt: number | undefined
    const loop = openLoop(client, () => key, options.ratePerSec, {
      maxCalls: Math.ceil(((options.stallMs + options.boundMs) * options.ratePerSec) / 1000),
      onTick: () => void client.breaker(), // starts Steadfast's state polling
      onSettle: (call) => {
        if (foundAt === undefined && call.value === freshValue && call.end >= healAt) foundAt = call.end
      }
    })
    await sleep(options.stallMs)
    const reply = await lab.command("SET", client.rawKey(key), fresh)
    if (reply !== "OK") throw new Error(`${name}: direct SET failed: ${JSON.stringify(reply)}`)
    const breakerAtHeal = client.breaker()
    healAt = now()
    await lab.fault(proxy, ChaosProxy.PassThrough())
    while (foundAt === undefined && now() - healAt < options.boundMs) await sleep(1)
    loop.stop()
    const row: RecoveryRow = {
      contender: name,
      halfOpenAfterMs: options.halfOpenAfterMs,
      breakerAtHeal,
      recoveryMs: foundAt === undefined ? null : foundAt - healAt,
      ...(stats ? { stats: await stats() } : {})
    }
    rows.push(row)
    log(`recovery: ${name}: ${row.recoveryMs === null ? `none within ${options.boundMs} ms` : `${row.recoveryMs.toFixed(0)} ms`} (breaker at heal: ${breakerAtHeal})${row.stats ? `; ${row.stats}` : ""}`)
    await loop.drain(1000)
    await client.close()
    await lab.command("DEL", client.rawKey(key))
    await lab.fault(proxy, ChaosProxy.Reset())
  }
  return { stallMs: options.stallMs, ratePerSec: options.ratePerSec, deadlineMs: options.deadlineMs, rows }
}
