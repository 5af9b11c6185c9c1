/**
 * `pnpm bench [--quick] [--json out.json] [--only ...] [--verbose]`: runs every scenario against the contenders,
 * prints markdown tables to stdout (progress goes to stderr) and writes the same results as JSON.
 */
import { readFileSync, writeFileSync } from "node:fs"
import * as Os from "node:os"
import { Redis } from "ioredis"
import { parseArgs } from "./args.js"
import { runBreaker } from "./breaker.js"
import { openLab } from "./chaos.js"
import { runConnections } from "./connections.js"
import { peerNames } from "./contenders.js"
import { runHappy } from "./happy.js"
import { hybridMarkdown, type HybridResult, runHybrid } from "./hybrid.js"
import { runLadder } from "./ladder.js"
import { runOutage } from "./outage.js"
import { policiesMarkdown, type PoliciesResult, runPolicies } from "./policies.js"
import { runReconcile } from "./reconcile.js"
import { runRecovery } from "./recovery.js"
import { runRemote } from "./remote.js"
import { markdown, type Results, targets } from "./report.js"
import { makeRuntime } from "./steadfast.js"
import { hasGc, log, now } from "./util.js"

const args = parseArgs(process.argv.slice(2))
const quick = args.quick
const redisUrl = new URL(process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379")
const shared = { host: redisUrl.hostname, port: Number(redisUrl.port || 6379) }
if (shared.host !== "127.0.0.1" && shared.host !== "localhost") throw new Error("benchmarks only talk to 127.0.0.1")

const settings = quick
  ? {
    happy: { rounds: 3, durationMs: 30, warmupMs: 20, keyspace: 10_000, settleMs: 0 },
    ladder: { rounds: 3, durationMs: 30, warmupMs: 20, settleMs: 0 },
    remote: { rounds: 3, durationMs: 50, warmupMs: 20, latencyMs: 0.5, settleMs: 0 },
    connections: { rounds: 3, durationMs: 50, warmupMs: 20, settleMs: 0 },
    breaker: { rounds: 3, steadfastOps: 300_000, peerOps: 50_000, maxMs: 200 },
    recovery: { stallMs: 1000, boundMs: 4000 },
    outage: { seconds: 3, warmupMs: 200, drainMs: 300 },
    reconcile: { repeats: 1, holdMs: 1500, boundMs: 30_000 },
    policies: { rounds: 3, durationMs: 30, warmupMs: 50 },
    hybrid: { rounds: 3, durationMs: 50, warmupMs: 30 }
  }
  : {
    // Eleven rounds: on these VMs one round's ratio strays 20-30 % (and more) from the median; with five, four runs of
    // six missed at least one of issue 12's targets, which the rounds of three of them, pooled, meet
    // (benchmarks/README.md, session 14).
    happy: { rounds: 11, durationMs: 400, warmupMs: 200, keyspace: 10_000, settleMs: 300 },
    ladder: { rounds: 7, durationMs: 400, warmupMs: 300, settleMs: 300 },
    remote: { rounds: 5, durationMs: 500, warmupMs: 200, latencyMs: 0.5, settleMs: 300 },
    connections: { rounds: 5, durationMs: 400, warmupMs: 300, settleMs: 300 },
    breaker: { rounds: 5, steadfastOps: 2_000_000, peerOps: 300_000, maxMs: 800 },
    recovery: { stallMs: 3000, boundMs: 8000 },
    outage: { seconds: 30, warmupMs: 2000, drainMs: 3000 },
    reconcile: { repeats: 3, holdMs: 1500, boundMs: 30_000 },
    policies: { rounds: 11, durationMs: 50, warmupMs: 150 },
    hybrid: { rounds: 5, durationMs: 400, warmupMs: 200 }
  }
const rounds = args.rounds ?? undefined
const happySettleMs = (): number => {
  const raw = process.env["HAPPY_SETTLE_MS"]
  if (raw === undefined) return settings.happy.settleMs
  const ms = Number(raw)
  if (!Number.isInteger(ms) || ms < 0) throw new Error(`HAPPY_SETTLE_MS must be a whole number of ms >= 0, got ${raw}`)
  return ms
}
const deadlineMs = 500
const ratePerSec = 200
const halfOpenAfterMs = 1000

const needsRedis = args.only.some((s) => s !== "policies")

const machine = async () => {
  const cpuinfo = (() => {
    try {
      return readFileSync("/proc/cpuinfo", "utf8")
    } catch {
      return ""
    }
  })()
  // `--only policies` needs no Redis: do not ask it for its version then.
  const info = needsRedis
    ? await (async () => {
      const admin = new Redis({ ...shared, lazyConnect: true })
      await admin.connect()
      const text = await admin.info("server")
      await admin.quit()
      return text
    })()
    : undefined
  return {
    nproc: Os.availableParallelism(),
    cpuModel: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? Os.cpus()[0]?.model ?? "unknown",
    memoryGB: Math.round((Os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    redis: info === undefined ? "not used" : /redis_version:(\S+)/.exec(info)?.[1] ?? "unknown",
    platform: `${Os.type()} ${Os.release()} ${Os.arch()}`,
    exposeGc: hasGc(),
    loadAverage: Os.loadavg().map((v) => Math.round(v * 100) / 100)
  }
}

const main = async () => {
  const started = now()
  const runtime = makeRuntime(args.verbose)
  if (!hasGc()) log("WARNING: run with node --expose-gc for heap figures (pnpm bench does)")
  const results: Results = {}
  const meta = { date: new Date().toISOString(), mode: quick ? "quick" : "full", args: process.argv.slice(2), machine: await machine() }
  log(`steadfast benchmarks (${meta.mode}) on ${meta.machine.nproc} x ${meta.machine.cpuModel}, Node ${meta.machine.node}, Redis ${meta.machine.redis}`)

  if (args.only.includes("happy")) {
    results.happy = await runHappy({
      target: shared,
      keyspace: settings.happy.keyspace,
      rounds: rounds ?? settings.happy.rounds,
      durationMs: settings.happy.durationMs,
      warmupMs: settings.happy.warmupMs,
      verbose: args.verbose,
      gcBetween: !quick,
      // `HAPPY_SETTLE_MS=0` measures right after the gc(), as runs before 2026-12-05 (session 9) did.
      settleMs: happySettleMs(),
      isolate: !args.sharedProcess,
      runtime
    })
  }
  // Hybrid cache (issue 8): not part of `Results` (report.ts); its table and JSON are appended as policies' are.
  let hybrid: HybridResult | undefined
  if (args.only.includes("hybrid")) {
    hybrid = await runHybrid({
      target: shared,
      rounds: rounds ?? settings.hybrid.rounds,
      durationMs: settings.hybrid.durationMs,
      warmupMs: settings.hybrid.warmupMs,
      gcBetween: !quick,
      verbose: args.verbose,
      runtime
    })
  }
  if (args.only.includes("ladder")) {
    results.ladder = await runLadder({
      target: shared,
      rounds: rounds ?? settings.ladder.rounds,
      durationMs: settings.ladder.durationMs,
      warmupMs: settings.ladder.warmupMs,
      gcBetween: !quick,
      settleMs: settings.ladder.settleMs,
      verbose: args.verbose,
      runtime
    })
  }
  if (args.only.includes("remote")) {
    results.remote = await runRemote({
      target: shared,
      latencyMs: args.latencyMs ?? settings.remote.latencyMs,
      rounds: rounds ?? settings.remote.rounds,
      durationMs: settings.remote.durationMs,
      warmupMs: settings.remote.warmupMs,
      gcBetween: !quick,
      settleMs: settings.remote.settleMs,
      verbose: args.verbose,
      runtime
    })
  }
  if (args.only.includes("connections")) {
    results.connections = await runConnections(shared, {
      rounds: rounds ?? settings.connections.rounds,
      durationMs: settings.connections.durationMs,
      warmupMs: settings.connections.warmupMs,
      settleMs: settings.connections.settleMs,
      runtime,
      verbose: args.verbose
    })
  }
  const needsLab = args.only.some((s) => s === "breaker" || s === "recovery" || s === "reconcile" || s === "outage")
  if (needsLab) {
    const lab = await openLab()
    try {
      if (args.only.includes("breaker")) {
        results.breaker = await runBreaker(lab, ["cockatiel", "opossum", "bentocache"], {
          rounds: rounds ?? settings.breaker.rounds,
          steadfastOps: settings.breaker.steadfastOps,
          peerOps: settings.breaker.peerOps,
          maxMs: settings.breaker.maxMs,
          runtime
        })
      }
      if (args.only.includes("recovery")) {
        results.recovery = await runRecovery(lab, ["steadfast", "cockatiel", "opossum", "bentocache", "cache-manager", "ioredis"], {
          halfOpenAfterMs,
          stallMs: settings.recovery.stallMs,
          ratePerSec,
          deadlineMs,
          boundMs: settings.recovery.boundMs,
          runtime
        })
      }
      if (args.only.includes("reconcile")) {
        results.reconcile = await runReconcile(lab, {
          repeats: rounds ?? settings.reconcile.repeats,
          deadlineMs,
          halfOpenAfterMs,
          holdMs: Number(process.env["RECONCILE_HOLD_MS"] ?? settings.reconcile.holdMs),
          boundMs: settings.reconcile.boundMs,
          runtime,
          verbose: args.verbose,
          filter: process.env["RECONCILE_CASE"]
        })
      }
      if (args.only.includes("outage")) {
        results.outage = await runOutage(lab, ["steadfast", ...peerNames.filter((p) => p !== "ioredis-autopipeline")], {
          seconds: args.outageSeconds ?? settings.outage.seconds,
          warmupMs: settings.outage.warmupMs,
          drainMs: settings.outage.drainMs,
          ratePerSec,
          deadlineMs,
          runtime,
          verbose: args.verbose
        })
      }
    } finally {
      await lab.close()
    }
  }

  // Policies (issue 11): CPU only, no Redis; last, so it does not change what the other scenarios measure.
  let policies: PoliciesResult | undefined
  if (args.only.includes("policies")) {
    policies = await runPolicies({
      rounds: rounds ?? settings.policies.rounds,
      durationMs: settings.policies.durationMs,
      warmupMs: settings.policies.warmupMs,
      // No gc() between measurements here: a forced full GC leaves the next async (Promise) loops several times slower
      // for a while (measured: 20-30 µs instead of ~1 µs per Effect.tryPromise call in the first 50 ms after gc()).
      gcBetween: false,
      verbose: args.verbose,
      runtime
    })
  }

  const seconds = (now() - started) / 1000
  const text = `## Results (${meta.mode}, ${meta.date})\n\n` +
    `Machine: ${meta.machine.nproc} cores, ${meta.machine.cpuModel}, ${meta.machine.memoryGB} GB, ${meta.machine.platform}, Node ${meta.machine.node}, Redis ${meta.machine.redis}. Load average (1/5/15 min) at the start ${meta.machine.loadAverage.join(" / ")}. Wall time ${seconds.toFixed(0)} s.\n\n` +
    markdown(results) +
    (policies === undefined ? "" : `\n${policiesMarkdown(policies)}`) +
    (hybrid === undefined ? "" : `\n${hybridMarkdown(hybrid)}`)
  process.stdout.write(text)
  if (args.json !== undefined) {
    writeFileSync(args.json, JSON.stringify(
        {
          ...meta,
          wallSeconds: seconds,
          settings,
          results: { ...results, ...(policies === undefined ? {} : { policies }), ...(hybrid === undefined ? {} : { hybrid }) },
          targets: policies === undefined ? targets(results) : [...targets(results), ...policies.targets]
        },
        null,
        2
      ) + "\n")
    log(`wrote ${args.json}`)
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    log(error instanceof Error ? error.stack ?? error.message : String(error))
    process.exit(1)
  }
)
