/**
 * Scenario 8, reconciliation (`--only reconcile`): what it costs to repair the keys Redis missed during an outage.
 *
 * Per case: a spawned `redis-server` behind a `ChaosProxy`; a resilient cache (defaults, `commandTimeout` 500 ms,
 * `breaker.halfOpenAfter` 1 s as in the recovery scenario) with its own `keyPrefix`; a namespace of `namespace` keys
 * written through the cache (`old-<i>`); an outage (`Refuse()` + `resetConnections`: new connections refused, current
 * ones reset); `keys` distinct keys written (`new-<i>`, every 10th deleted instead) through the cache during the
 * outage, 16 at a time: every call is acknowledged (answered from the fallback), the key becomes pending; the outage
 * is held until it has lasted `holdMs`; then the proxy passes traffic again (the heal). From the heal, `stats` is
 * polled every 2 ms: the time to the breaker CLOSED, to the first repaired key, and to
 * `reconciliation.pendingKeys === 0 && !flushing` (reconciled). Reads run open-loop at 200 req/s over the written
 * keys from the end of the outage writes until reconciled (so, as in production, a reader may be the breaker's probe);
 * a read that returns a key's pre-outage value is counted as stale. At the end every written or deleted key is read
 * straight from the server (MGET, bypassing the proxy and the cache): a key still holding its pre-outage value is a
 * violation (must be 0). Then the namespace is deleted.
 */
import * as Effect from "effect/Effect"
import type * as Runtime from "effect/Runtime"
import { Redis } from "ioredis"
import { ChaosProxy, type Lab } from "./chaos.js"
import { unlinkMatching } from "./keyspace.js"
import { openLoop } from "./openloop.js"
import { buildSteadfast, statsLine } from "./steadfast.js"
import { log, median, now, sleep } from "./util.js"

export interface ReconcileCase {
  readonly label: string
  readonly policy: "invalidate" | "write-back"
  /** Keys written (or deleted) during the outage. */
  readonly keys: number
  /** Keys holding a value before the outage (>= keys). */
  readonly namespace: number
  /** `reconcile.maxPending`; the library default (10,000) when absent. */
  readonly maxPending?: number
}

export const defaultCases: ReadonlyArray<ReconcileCase> = [
  { label: "invalidate, 1,000 keys", policy: "invalidate", keys: 1_000, namespace: 1_000 },
  { label: "invalidate, 10,000 keys", policy: "invalidate", keys: 10_000, namespace: 10_000 },
  { label: "write-back, 1,000 keys", policy: "write-back", keys: 1_000, namespace: 1_000 },
  { label: "overflow: maxPending 1,000, 5,000 keys, namespace flush of 20,000", policy: "invalidate", keys: 5_000, namespace: 20_000, maxPending: 1_000 }
]

export interface ReconcileRun {
  /** ms the outage writes took (all acknowledged), and how long the outage lasted in all. */
  readonly outageWritesMs: number
  readonly outageMs: number
  readonly pendingAtHeal: number
  readonly overflowsAtHeal: number
  readonly flushingAtHeal: boolean
  readonly breakerAtHeal: string
  /** ms from the heal; null if not seen within the bound. */
  readonly closedMs: number | null
  readonly firstRepairMs: number | null
  readonly reconciledMs: number | null
  /** Keys repaired per second: pending keys from the first repair to reconciled; a flush: namespace keys from CLOSED. */
  readonly keysPerSec: number | null
  readonly reconciledKeys: number
  readonly readsDuringRecovery: number
  readonly staleReads: number
  /** Written/deleted keys as read from the server at the end. */
  readonly server: { readonly absent: number; readonly newValue: number; readonly oldValue: number; readonly other: number }
  /** Keys of the namespace left in the server at the end (a flush leaves none). */
  readonly namespaceLeft: number
  readonly violations: number
  readonly stats: string
}

export interface ReconcileRow {
  readonly label: string
  readonly policy: string
  readonly keys: number
  readonly namespace: number
  readonly maxPending: number
  readonly runs: ReadonlyArray<ReconcileRun>
  readonly medians: {
    readonly closedMs: number
    readonly reconciledMs: number
    readonly reconcileAfterClosedMs: number
    readonly keysPerSec: number
  }
  readonly violations: number
  readonly staleReads: number
}

export interface ReconcileResult {
  readonly deadlineMs: number
  readonly halfOpenAfterMs: number
  readonly holdMs: number
  readonly repeats: number
  readonly rows: ReadonlyArray<ReconcileRow>
}

const chunk = 500

const runOne = async (
  lab: Lab,
  c: ReconcileCase,
  repeat: number,
  options: {
    readonly deadlineMs: number
    readonly halfOpenAfterMs: number
    readonly holdMs: number
    readonly boundMs: number
    readonly runtime: Runtime.Runtime<never>
    readonly verbose: boolean
  }
): Promise<ReconcileRun> => {
  const prefix = `bench:rc:${c.policy}:${c.keys}:${c.maxPending ?? "d"}:${repeat}:`
  const proxy = await lab.proxy()
  const admin = new Redis({ host: lab.server.host, port: lab.server.port })
  const sf = await buildSteadfast(`reconcile ${c.label}`, {
    url: proxy.url(),
    commandTimeoutMs: options.deadlineMs,
    halfOpenAfterMs: options.halfOpenAfterMs,
    keyPrefix: prefix,
    reconcile: { policy: c.policy, ...(c.maxPending === undefined ? {} : { maxPending: c.maxPending }) }
  }, options.runtime)
  try {
    const key = (i: number) => `k${i}`
    const oldValue = (i: number) => `old-${i}-${"o".repeat(40)}`
    const newValue = (i: number) => `new-${i}-${"n".repeat(40)}`
    const deletedDuringOutage = (i: number) => i % 10 === 9
    // The namespace, through the cache (so its fallback mirrors it, as in production).
    for (let i = 0; i < c.namespace; i += chunk) {
      const entries = Array.from({ length: Math.min(chunk, c.namespace - i) }, (_, j) => [key(i + j), oldValue(i + j)] as const)
      await sf.run(sf.cache.setMany(entries))
    }
    const before = await sf.stats()
    if (before.fallbacks !== 0 || before.circuitState !== "CLOSED") throw new Error(`${c.label}: the fill took the fallback: ${statsLine(before)}`)
    if ((await admin.dbsize()) < c.namespace) throw new Error(`${c.label}: the namespace is not in the server`)

    // The outage, and the writes Redis misses.
    await lab.fault(proxy, ChaosProxy.Refuse())
    await Effect.runPromise(proxy.resetConnections)
    const outageAt = now()
    await sf.run(Effect.forEach(
      Array.from({ length: c.keys }, (_, i) => i),
      (i) => deletedDuringOutage(i) ? sf.cache.delete(key(i)) : sf.cache.set(key(i), newValue(i)),
      { concurrency: 16, discard: true }
    ))
    const outageWritesMs = now() - outageAt
    // Readers from now on: a read of a written key that answers its pre-outage value is stale.
    let staleReads = 0
    const reads = openLoop(sf.client, (n) => key((n * 7919) % c.keys), 200, {
      maxCalls: Math.ceil(((options.holdMs + options.boundMs + outageWritesMs) * 200) / 1000),
      onSettle: (call) => {
        if (typeof call.value === "string" && call.value.startsWith("old-")) staleReads++
      }
    })
    const remaining = options.holdMs - (now() - outageAt)
    if (remaining > 0) await sleep(remaining)
    const atHeal = await sf.stats()
    const healAt = now()
    await lab.fault(proxy, ChaosProxy.PassThrough())
    const outageMs = healAt - outageAt
    const readsAtHeal = reads.calls.length

    let closedAt: number | undefined
    let firstRepairAt: number | undefined
    let repairedAtFirst = 0
    let reconciledAt: number | undefined
    const reconciledBefore = atHeal.reconciliation?.reconciledKeys ?? 0
    let last = atHeal
    let tracedAt = Number.NEGATIVE_INFINITY
    while (reconciledAt === undefined && now() - healAt < options.boundMs) {
      const s = await sf.stats()
      const t = now()
      last = s
      const r = s.reconciliation!
      if (options.verbose && t - tracedAt >= 50) {
        tracedAt = t
        log(`  +${(t - healAt).toFixed(0)} ms: ${s.circuitState} pending ${r.pendingKeys} reconciled ${r.reconciledKeys} flushing ${r.flushing} errors ${JSON.stringify(s.errors)}`)
      }
      if (closedAt === undefined && s.circuitState === "CLOSED") closedAt = t
      if (firstRepairAt === undefined && r.reconciledKeys > reconciledBefore) {
        firstRepairAt = t
        repairedAtFirst = r.reconciledKeys
      }
      if (r.pendingKeys === 0 && !r.flushing) reconciledAt = t
      else await sleep(2)
    }
    reads.stop()
    await reads.drain(1000)
    const readsDuringRecovery = reads.calls.length - readsAtHeal
    const after = await sf.stats()
    const rec = after.reconciliation!

    // The server's view of every key written or deleted during the outage.
    const server = { absent: 0, newValue: 0, oldValue: 0, other: 0 }
    for (let i = 0; i < c.keys; i += chunk) {
      const indices = Array.from({ length: Math.min(chunk, c.keys - i) }, (_, j) => i + j)
      const values = await admin.mget(...indices.map((j) => prefix + key(j)))
      values.forEach((v, j) => {
        const index = indices[j]!
        if (v === null) server.absent++
        else if (v.includes(oldValue(index))) server.oldValue++
        else if (!deletedDuringOutage(index) && v.includes(newValue(index))) server.newValue++
        else server.other++
      })
    }
    let namespaceLeft = 0
    let cursor = "0"
    do {
      const [next, found] = await admin.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
      cursor = next
      namespaceLeft += found.length
    } while (cursor !== "0")

    const ms = (t: number | undefined) => (t === undefined ? null : t - healAt)
    const flushed = (atHeal.reconciliation?.overflows ?? 0) > 0
    const keysPerSec = reconciledAt === undefined
      ? null
      : flushed
      ? closedAt === undefined ? null : c.namespace / ((reconciledAt - closedAt) / 1000)
      : firstRepairAt === undefined || reconciledAt === firstRepairAt
      ? null
      : (rec.reconciledKeys - repairedAtFirst) / ((reconciledAt - firstRepairAt) / 1000)
    return {
      outageWritesMs,
      outageMs,
      pendingAtHeal: atHeal.reconciliation?.pendingKeys ?? -1,
      overflowsAtHeal: atHeal.reconciliation?.overflows ?? -1,
      flushingAtHeal: atHeal.reconciliation?.flushing ?? false,
      breakerAtHeal: atHeal.circuitState,
      closedMs: ms(closedAt),
      firstRepairMs: ms(firstRepairAt),
      reconciledMs: ms(reconciledAt),
      keysPerSec,
      reconciledKeys: rec.reconciledKeys,
      readsDuringRecovery,
      staleReads,
      server,
      namespaceLeft,
      violations: server.oldValue,
      stats: `${statsLine(last)} reconciliation=${JSON.stringify(rec)}`
    }
  } finally {
    await sf.close()
    await unlinkMatching(admin, `${prefix}*`)
    await admin.quit()
    await lab.fault(proxy, ChaosProxy.Reset())
  }
}

export const runReconcile = async (
  lab: Lab,
  options: {
    readonly cases?: ReadonlyArray<ReconcileCase>
    readonly repeats: number
    readonly deadlineMs: number
    readonly halfOpenAfterMs: number
    readonly holdMs: number
    readonly boundMs: number
    readonly runtime: Runtime.Runtime<never>
    /** Traces `stats` every 50 ms from the heal to reconciled. */
    readonly verbose: boolean
    /** Only the cases whose label contains this. */
    readonly filter?: string | undefined
  }
): Promise<ReconcileResult> => {
  const rows: Array<ReconcileRow> = []
  for (const c of (options.cases ?? defaultCases).filter((c) => options.filter === undefined || c.label.includes(options.filter!))) {
    const runs: Array<ReconcileRun> = []
    for (let r = 0; r < options.repeats; r++) {
      const run = await runOne(lab, c, r, options)
      runs.push(run)
      const f = (v: number | null) => (v === null ? "none" : `${v.toFixed(0)} ms`)
      log(
        `reconcile: ${c.label} #${r + 1}: pending at heal ${run.pendingAtHeal} (overflows ${run.overflowsAtHeal}, flushing ${run.flushingAtHeal}, breaker ${run.breakerAtHeal}); ` +
          `closed ${f(run.closedMs)}, first repair ${f(run.firstRepairMs)}, reconciled ${f(run.reconciledMs)} after the heal; ` +
          `${run.keysPerSec === null ? "—" : Math.round(run.keysPerSec)} keys/s; server: ${JSON.stringify(run.server)}, namespace left ${run.namespaceLeft}; ` +
          `violations ${run.violations}, stale reads ${run.staleReads}/${run.readsDuringRecovery}`
      )
    }
    const pick = (f: (r: ReconcileRun) => number | null) => median(runs.map((r) => f(r) ?? Number.NaN))
    rows.push({
      label: c.label,
      policy: c.policy,
      keys: c.keys,
      namespace: c.namespace,
      maxPending: c.maxPending ?? 10_000,
      runs,
      medians: {
        closedMs: pick((r) => r.closedMs),
        reconciledMs: pick((r) => r.reconciledMs),
        reconcileAfterClosedMs: pick((r) => (r.reconciledMs === null || r.closedMs === null ? null : r.reconciledMs - r.closedMs)),
        keysPerSec: pick((r) => r.keysPerSec)
      },
      violations: runs.reduce((n, r) => n + r.violations, 0),
      staleReads: runs.reduce((n, r) => n + r.staleReads, 0)
    })
  }
  return { deadlineMs: options.deadlineMs, halfOpenAfterMs: options.halfOpenAfterMs, holdMs: options.holdMs, repeats: options.repeats, rows }
}
