/**
 * Scenario 3, the breaker-open path: the cost of a call while the breaker is open. The proxy refuses new
 * connections and resets the current ones (`Refuse()` + `resetConnections`), calls are made until the breaker is
 * open (half-open only after 10 minutes, so it stays open), then a tight loop measures ops/s:
 * Steadfast inside one Effect program (`Effect.whileLoop` of `cache.get(key)`: rejected, answered from memory);
 * cockatiel / opossum / BentoCache in an `await` loop (their open-circuit fast fail; rejections caught).
 */
import * as Effect from "effect/Effect"
import type * as Runtime from "effect/Runtime"
import { ChaosProxy, type Lab } from "./chaos.js"
import { makePeer, type PeerName, type PromiseClient } from "./contenders.js"
import { buildSteadfast, statsLine } from "./steadfast.js"
import { log, median, now, sleep } from "./util.js"

export interface BreakerRow {
  readonly contender: string
  readonly how: string
  readonly opsPerSec: number
  readonly rounds: ReadonlyArray<number>
  readonly proof: string
}

export interface BreakerResult {
  readonly rows: ReadonlyArray<BreakerRow>
}

const openBreaker = async (lab: Lab, proxy: ChaosProxy.ChaosProxy, client: PromiseClient, isOpen: () => Promise<boolean>) => {
  await lab.fault(proxy, ChaosProxy.Refuse())
  await Effect.runPromise(proxy.resetConnections)
  const end = now() + 15_000
  while (!(await isOpen()) && now() < end) {
    await Promise.all(Array.from({ length: 5 }, () => client.get("bench:b:key").catch(() => undefined)))
    await sleep(5)
  }
  if (!(await isOpen())) throw new Error(`${client.name}: the breaker did not open within 15 s`)
}

export const runBreaker = async (
  lab: Lab,
  peers: ReadonlyArray<PeerName>,
  options: { readonly rounds: number; readonly steadfastOps: number; readonly peerOps: number; readonly maxMs: number; readonly runtime: Runtime.Runtime<never> }
): Promise<BreakerResult> => {
  const rows: Array<BreakerRow> = []
  const halfOpenAfterMs = 600_000
  {
    const proxy = await lab.proxy()
    const sf = await buildSteadfast("steadfast", { url: proxy.url(), commandTimeoutMs: 500, halfOpenAfterMs }, options.runtime)
    await sf.client.set("bench:b:key", "x".repeat(100))
    await openBreaker(lab, proxy, sf.client, async () => (await sf.stats()).circuitState === "OPEN")
    const before = await sf.stats()
    const rounds: Array<number> = []
    for (let r = 0; r < options.rounds + 1; r++) {
      const n = options.steadfastOps
      const opsPerSec = await sf.run(Effect.suspend(() => {
        let i = 0
        const start = now()
        const end = start + options.maxMs
        // The clock is read every 1,024 calls only: a bounded loop that does not time itself per call.
        return Effect.whileLoop({
          while: () => i < n && ((i & 1023) !== 0 || now() < end),
          body: () => {
            i++
            return sf.cache.get("bench:b:key")
          },
          step: () => {}
        }).pipe(Effect.map(() => i / ((now() - start) / 1000)))
      }))
      if (r > 0) rounds.push(opsPerSec) // round 0 warms the JIT
    }
    const after = await sf.stats()
    const proof = `fallbacks +${after.fallbacks - before.fallbacks}, hits +${after.hits - before.hits}, circuit_open errors +${(after.errors["circuit_open"] ?? 0) - (before.errors["circuit_open"] ?? 0)}; ${statsLine(after)}`
    rows.push({ contender: "steadfast", how: "Effect.whileLoop of cache.get (rejected by the breaker, served from memory)", opsPerSec: median(rounds), rounds, proof })
    log(`breaker-open: steadfast ${Math.round(median(rounds))} ops/s; ${proof}`)
    await sf.close()
    await lab.fault(proxy, ChaosProxy.Reset())
  }
  for (const name of peers) {
    const proxy = await lab.proxy()
    const client = await makePeer(name, { host: proxy.host, port: proxy.port }, { timeoutMs: 500, halfOpenAfterMs })
    await client.set("bench:b:key", "x".repeat(100))
    // BentoCache: no public state; its breaker opens on the first failure. Probe with a timed call.
    const isOpen = name === "bentocache"
      ? async () => {
        const t0 = now()
        await client.get("bench:b:key").catch(() => undefined)
        return now() - t0 < 1
      }
      : async () => client.breaker() === "open"
    await openBreaker(lab, proxy, client, isOpen)
    const rounds: Array<number> = []
    let failures = 0
    let values = 0
    for (let r = 0; r < options.rounds + 1; r++) {
      if (r === 1) failures = values = 0
      const start = now()
      const end = start + options.maxMs
      let i = 0
      for (; i < options.peerOps && ((i & 1023) !== 0 || now() < end); i++) {
        try {
          const v = await client.get("bench:b:key")
          if (v !== null && v !== undefined) values++
        } catch {
          failures++
        }
      }
      if (r > 0) rounds.push(i / ((now() - start) / 1000))
    }
    const proof = `breaker=${client.breaker()}; of the measured calls: ${failures} rejected, ${values} returned a value, the rest returned empty`
    rows.push({ contender: name, how: "await loop of get (open-circuit fast fail)", opsPerSec: median(rounds), rounds, proof })
    log(`breaker-open: ${name} ${Math.round(median(rounds))} ops/s; ${proof}`)
    await client.close()
    await lab.fault(proxy, ChaosProxy.Reset())
  }
  return { rows }
}
