/**
 * Raw ioredis on its defaults and Steadfast's resilient cache side by side, under the same failovers (issue 9).
 *
 *   npx tsc -b && node benchmarks/dist/failover.js [cluster-kill,cluster-failover,sentinel-failover,sentinel-kill] [--json out.json]
 *
 * Each scenario spawns its topology (`RedisCluster.make({ requireFullCoverage: false })`, `RedisSentinel.make()`:
 * @steadfast/testing), then runs two Workloads at once, the same options as the chaos tests (64 keys, 16 workers,
 * 80% reads, 5% deletes, 2 ms pause), on distinct keys: one through a raw ioredis `Cluster(seeds)` /
 * `new Redis({ sentinels, name })` with no option changed, one through `ResilientCache.layer()` over
 * `RedisConnection.layer({ url })` (`redis+cluster://` / `redis+sentinel://`) with no option changed either (2 s
 * deadline). After 1 s of load the fault runs (cluster: shard 0); the load goes on for `tail` seconds after the helper
 * returned (3 s; `sentinel-failover-demotion`: 13 s, past the old primary's demotion ~11 s after the failover, when a
 * client that kept writing to it finds its writes gone, as stale reads: the readback then finds them overwritten). Then the workers stop, Steadfast reconciles, and every key is read back
 * from the new topology with a fresh client and judged by each Workload's model: a value older than what the caller
 * was told succeeded is an acknowledged write lost.
 *
 * Figures per client, from the fault on: the longest stretch without a successful call (the caller's view: Steadfast
 * answers from its fallback), the longest without a read answered by Redis, the slowest call, caller-visible errors
 * by kind, stale reads during the run, acknowledged writes lost. Takes ~2 minutes for all five.
 */
import { Cache, ResilientCache } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import { RedisCluster, RedisSentinel, Workload } from "@steadfast/testing"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { Cluster, Redis } from "ioredis"
import * as Fs from "node:fs"

type Name = "cluster-kill" | "cluster-failover" | "sentinel-failover" | "sentinel-failover-demotion" | "sentinel-kill"
const allNames: ReadonlyArray<Name> = ["cluster-failover", "cluster-kill", "sentinel-failover", "sentinel-failover-demotion", "sentinel-kill"]

const workloadOptions = { keys: 64, concurrency: 16, readRatio: 0.8, deleteRatio: 0.05, pause: "2 millis" } as const

/** Progress from `since` on: the longest stretch without a success, and without a Redis-answered read. */
class Progress {
  since = Infinity
  lastOk = 0
  maxGapMs = 0
  mark(now: number) {
    if (now < this.since) return
    this.maxGapMs = Math.max(this.maxGapMs, now - Math.max(this.lastOk, this.since))
    this.lastOk = now
  }
  finish(now: number) {
    this.mark(now)
  }
}

const tracked = (target: Workload.Target, progress: Progress): Workload.Target => {
  const ok = Effect.sync(() => progress.mark(performance.now()))
  return {
    get: (key) => Effect.tap(target.get(key), () => ok),
    set: (key, value) => Effect.tap(target.set(key, value), () => ok),
    ...(target.delete === undefined ? {} : { delete: (key: string) => Effect.tap(target.delete!(key), () => ok) })
  }
}

/** The connection, marking each read Redis answered. */
const redisReads = (progress: Progress) =>
  Layer.effect(
    RedisConnection.RedisConnection,
    Effect.map(RedisConnection.RedisConnection, (c): RedisConnection.RedisConnection => ({
      ...c,
      getBatched: (key) =>
        Effect.onExit(c.getBatched(key), (exit) => Exit.isSuccess(exit) ? Effect.sync(() => progress.mark(performance.now())) : Effect.void)
    }))
  )

interface Topology {
  readonly url: string
  readonly raw: () => Redis | Cluster
  readonly fault: Effect.Effect<{ readonly detail: string }, unknown>
  readonly tailMs: number
}

const cluster = (kind: "kill" | "failover") =>
  Effect.map(RedisCluster.make({ requireFullCoverage: false }), (c): Topology => ({
    url: `redis+cluster://${c.seeds.map((s) => `${s.host}:${s.port}`).join(",")}`,
    raw: () => new Cluster(c.seeds.map((s) => ({ host: s.host, port: s.port }))),
    fault: Effect.map(kind === "kill" ? c.killPrimary(0) : c.failover(0), (f) => ({
      detail: `shard 0: ${f.from.port} -> ${f.to.port}, settled after ${Duration.toMillis(f.duration)} ms`
    })),
    tailMs: 3000
  }))

const sentinel = (kind: "kill" | "failover", tailMs: number) =>
  Effect.map(RedisSentinel.make(), (s): Topology => ({
    url: `redis+sentinel://${s.sentinels.map((a) => `${a.host}:${a.port}`).join(",")}/${s.masterName}`,
    raw: () => new Redis({ sentinels: s.sentinels.map((a) => ({ host: a.host, port: a.port })), name: s.masterName }),
    fault: Effect.map(kind === "kill" ? s.killPrimary : s.failover, (f) => ({
      detail: `${f.from.port} -> ${f.to.port}, every sentinel agreed after ${Duration.toMillis(f.duration)} ms`
    })),
    tailMs
  }))

const topologies: Record<Name, Effect.Effect<Topology, unknown, import("effect/Scope").Scope>> = {
  "cluster-kill": cluster("kill"),
  "cluster-failover": cluster("failover"),
  "sentinel-failover": sentinel("failover", 3000),
  "sentinel-failover-demotion": sentinel("failover", 13_000),
  "sentinel-kill": sentinel("kill", 3000)
}

const round = (n: number) => Math.round(n)

const scenario = (name: Name) =>
  Effect.scoped(Effect.gen(function*() {
    const topology = yield* topologies[name]
    const raw = topology.raw()
    let rawErrorEvents = 0
    raw.on("error", () => rawErrorEvents++) // counted; ioredis only logs "Unhandled error event" without a listener
    yield* Effect.addFinalizer(() => Effect.sync(() => raw.disconnect()))
    const progress = { raw: new Progress(), steadfast: new Progress(), rawRedis: new Progress(), steadfastRedis: new Progress() }
    const context = yield* Layer.build(
      ResilientCache.layer({ keyPrefix: "sf:" }).pipe(
        Layer.provideMerge(Layer.provide(redisReads(progress.steadfastRedis), RedisConnection.layer({ url: topology.url })))
      )
    )
    const cache = Context.get(context, Cache.Cache)
    const promises = Workload.fromPromises(raw)
    // Errors counted by the first words of their message ("Too many Cluster redirections", "Connection is closed").
    const kind = (e: unknown) => ({ _tag: String((e as Error)?.message ?? e).split(/[.:]/)[0]!.slice(0, 40) })
    const rawTarget: Workload.Target = {
      get: (key) => Effect.mapError(promises.get(key), kind),
      set: (key, value) => Effect.mapError(promises.set(key, value), kind),
      delete: (key) => Effect.mapError(promises.delete!(key), kind)
    }
    const rawMarked: Workload.Target = {
      ...rawTarget,
      get: (key) => Effect.tap(rawTarget.get(key), () => Effect.sync(() => progress.rawRedis.mark(performance.now())))
    }
    const run = yield* Effect.scoped(Effect.gen(function*() {
      const rawLoad = yield* Workload.run(tracked(rawMarked, progress.raw), { ...workloadOptions, keyPrefix: "raw:" })
      const sfLoad = yield* Workload.run(tracked(Workload.fromCache(cache), progress.steadfast), workloadOptions)
      yield* Effect.sleep("1 second")
      const at = performance.now()
      for (const p of Object.values(progress)) p.since = at
      const fault = yield* topology.fault
      const faultMs = performance.now() - at
      yield* Effect.sleep(Duration.millis(topology.tailMs))
      const end = performance.now()
      for (const p of Object.values(progress)) p.finish(end)
      return { rawLoad, sfLoad, fault, faultMs, rawStats: yield* rawLoad.stats, sfStats: yield* sfLoad.stats }
    }))
    // Steadfast repairs what failed (pending keys), then both are read back from the new topology.
    const reconcileStart = performance.now()
    for (;;) {
      const s = yield* cache.stats
      if (s.reconciliation === undefined || (s.reconciliation.pendingKeys === 0 && !s.reconciliation.flushing)) break
      if (performance.now() - reconcileStart > 15_000) break
      yield* Effect.sleep("20 millis")
    }
    const reader = topology.raw()
    reader.on("error", () => {})
    yield* Effect.addFinalizer(() => Effect.sync(() => reader.disconnect()))
    // The Workload's keys are `<keyPrefix><i>`; Steadfast stores them under its own `sf:` prefix.
    const judge = (load: Workload.Workload, keyPrefix: string, storedAs: string) =>
      Effect.gen(function*() {
        const verdicts: Record<Workload.Verdict, number> = { miss: 0, ok: 0, wrong: 0, stale: 0 }
        for (let i = 0; i < workloadOptions.keys; i++) {
          const key = `${keyPrefix}${i}`
          const value = yield* Effect.tryPromise(() => reader.get(storedAs + key))
          verdicts[load.check(key, value ?? undefined)]++
        }
        return verdicts
      })
    const rawLost = yield* judge(run.rawLoad, "raw:", "")
    const sfLost = yield* judge(run.sfLoad, "workload:", "sf:")
    const sfStats = yield* cache.stats
    const figures = (
      s: Workload.Stats,
      p: Progress,
      r: Progress,
      lost: Record<Workload.Verdict, number>,
      extra: Record<string, unknown>
    ) => ({
      ops: s.ops,
      noProgressMs: round(p.maxGapMs),
      noRedisReadMs: round(r.maxGapMs),
      slowestMs: round(s.maxMs),
      p99Ms: s.p99Ms,
      callerErrors: s.readErrors + s.writeErrors + s.deleteErrors,
      errorsByKind: s.errorsByKind,
      wrongValues: s.wrongValues,
      staleReads: s.staleReads,
      ackedWritesLost: lost.stale + lost.wrong,
      readBack: lost,
      ...extra
    })
    return {
      scenario: name,
      fault: run.fault.detail,
      faultMs: round(run.faultMs),
      tailMs: topology.tailMs,
      raw: figures(run.rawStats, progress.raw, progress.rawRedis, rawLost, { errorEvents: rawErrorEvents }),
      steadfast: figures(run.sfStats, progress.steadfast, progress.steadfastRedis, sfLost, {
        fallbacks: sfStats.fallbacks,
        circuitOpens: sfStats.circuitOpens,
        reconciledKeys: sfStats.reconciliation?.reconciledKeys ?? 0
      })
    }
  }))

const main = async () => {
  const argv = process.argv.slice(2).filter((a) => a !== "--")
  const jsonAt = argv.indexOf("--json")
  const json = jsonAt >= 0 ? argv[jsonAt + 1] : undefined
  const rest = argv.filter((_, i) => i !== jsonAt && i !== jsonAt + 1)
  const names = rest.length === 0 ? allNames : rest.flatMap((a) => a.split(",")).map((n) => {
    if (!allNames.includes(n as Name)) throw new Error(`unknown scenario ${n}; one of ${allNames.join(", ")}`)
    return n as Name
  })
  const results = []
  for (const name of names) {
    process.stderr.write(`${name} ...\n`)
    const result = await Effect.runPromise(scenario(name).pipe(Logger.withMinimumLogLevel(LogLevel.None)))
    process.stderr.write(`${JSON.stringify(result)}\n`)
    results.push(result)
  }
  const date = new Date().toISOString().slice(0, 10)
  const lines = [
    `Failover side by side (${date}; \`node benchmarks/dist/failover.js ${names.join(",")}\`)`,
    "",
    "| scenario | client | no successful call | no read answered by Redis | slowest call | caller errors | stale reads | acked writes lost |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |"
  ]
  for (const r of results) {
    for (const [client, f] of [["raw ioredis", r.raw], ["Steadfast", r.steadfast]] as const) {
      const kinds = Object.entries(f.errorsByKind).map(([k, n]) => `${n} ${k}`).join(", ")
      lines.push(
        `| ${r.scenario} (${r.fault}) | ${client} | ${(f.noProgressMs / 1000).toFixed(2)} s | ${(f.noRedisReadMs / 1000).toFixed(2)} s | ${f.slowestMs} ms | ${f.callerErrors}${kinds === "" ? "" : ` (${kinds})`} | ${f.staleReads} | ${f.ackedWritesLost} |`
      )
    }
  }
  process.stdout.write(lines.join("\n") + "\n")
  if (json !== undefined) Fs.writeFileSync(json, JSON.stringify({ date, results }, null, 2) + "\n")
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
