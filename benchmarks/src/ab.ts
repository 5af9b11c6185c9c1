/**
 * A/B of two builds of Steadfast, side by side in time (a maintainer tool, not part of `pnpm bench`).
 *
 * `node --expose-gc benchmarks/dist/ab.js --a <dir> --b <dir> [--rounds n] [--ms n] [--breaker-rounds n] [--only happy,breaker] [--no-gc] [--json file]`
 *
 * `<dir>` is the root of a built checkout of this repository (e.g. a `git worktree` at another commit, after
 * `npx -y pnpm@10.34.9 install --frozen-lockfile && npx tsc -b packages/cache packages/redis packages/resilience`).
 * Each build runs in its own long-lived child process (`ab-worker.ts`), which imports it by path —
 * `<dir>/packages/{cache,redis}/dist/index.js` and the `effect` those packages resolve
 * (`<dir>/packages/cache/node_modules/effect`, its ESM files) — and drives it with that graph's `Effect.whileLoop` (the
 * same driver as the happy path's Steadfast rows in `drive.ts`). This parent process owns the lab, the reference
 * client and the schedule: only one side measures at a time, the other waits for its next turn, JIT-warm.
 * One process per build, so each holds one Effect module graph, as under `pnpm bench`. Run each comparison in both
 * orders (`--a X --b Y`, then `--a Y --b X`): on a loaded machine the first child measured faster than the second for
 * identical builds (see benchmarks/README.md, "A/B").
 *
 * Measured, interleaved in every round (rotating order, `gc()` in the measuring process before each happy-path
 * measurement as `pnpm bench` does, unless `--no-gc`; shared `rounds.ts`):
 * - the happy path: `ResilientCache.layer()` (defaults) over `RedisConnection.layer({ url })` against the shared Redis,
 *   GET and SET of 100 B at c=1 and c=64 over 10,000 pre-filled `bench:ab:*` keys, plus raw ioredis auto-pipelined (in
 *   this process) as the reference of `pnpm bench`'s ratios. Figures: each build's ratio to auto-pipelined ioredis, and
 *   B / A, both medians of per-round ratios;
 * - the open-breaker path (the breaker scenario's Steadfast figure): a cache with `commandTimeout` 500 ms and
 *   `halfOpenAfter` 10 minutes behind a `ChaosProxy` that refuses and resets, `Effect.whileLoop` of `cache.get(key)`
 *   (2,000,000 calls or 800 ms per round, no `gc()` between rounds, as in `breaker.ts`), A and B alternating (one discarded
 *   warm-up round each).
 */
import type { ChildProcess } from "node:child_process"
import { writeFileSync } from "node:fs"
import * as Os from "node:os"
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import { benchKey, capacity, type Cell, cellName, cells, keyspace, latencies, type Request, value } from "./ab-worker.js"
import { ChaosProxy, openLab } from "./chaos.js"
import type { Sample } from "./drive.js"
import { forkChild } from "./ipc.js"
import { fill, unlinkMatching } from "./keyspace.js"
import { type Entrant, interleave, p99, throughput } from "./rounds.js"
import { hasGc, log, median, now, quantile, ratio } from "./util.js"

const promiseLoop = async (op: (index: number) => Promise<unknown>, concurrency: number, durationMs: number): Promise<Sample> => {
  let started = 0
  let n = 0
  let empty = 0
  let errors = 0
  const start = now()
  const end = start + durationMs
  const worker = async () => {
    while (started < capacity && now() < end) {
      const index = started++
      const t0 = now()
      try {
        const r = await op(index)
        if (r === null || r === undefined) empty++
      } catch {
        errors++
      }
      latencies[n++] = now() - t0
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const seconds = (now() - start) / 1000
  return { ops: n, seconds, opsPerSec: n / seconds, p50Ms: quantile(latencies, n, 0.5), p99Ms: quantile(latencies, n, 0.99), empty, errors }
}


// ---- Parent ----------------------------------------------------------------------------------------------------------
interface Side {
  readonly label: "A" | "B"
  readonly commit: string
  readonly dir: string
  readonly call: <A>(req: Request) => Promise<A>
  readonly child: ChildProcess
}

const spawnSide = async (label: "A" | "B", dir: string): Promise<Side> => {
  const { call, child } = forkChild<Request>("ab-worker.js", label, ["--expose-gc"])
  const loaded = await call<{ commit: string; dir: string }>({ op: "load", dir })
  return { label, commit: loaded.commit, dir: loaded.dir, call, child }
}

const parse = (argv: ReadonlyArray<string>) => {
  const out = { a: "/tmp/ab-old", b: "/tmp/ab-new", rounds: 9, ms: 400, warmupMs: 300, breakerRounds: 9, json: undefined as string | undefined, only: "happy,breaker", gc: true }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const v = () => {
      const x = argv[++i]
      if (x === undefined) throw new Error(`${arg} needs a value`)
      return x
    }
    if (arg === "--a") out.a = v()
    else if (arg === "--b") out.b = v()
    else if (arg === "--rounds") out.rounds = Number(v())
    else if (arg === "--ms") out.ms = Number(v())
    else if (arg === "--warmup-ms") out.warmupMs = Number(v())
    else if (arg === "--breaker-rounds") out.breakerRounds = Number(v())
    else if (arg === "--json") out.json = v()
    else if (arg === "--only") out.only = v()
    else if (arg === "--no-gc") out.gc = false
    else if (arg === "--") continue
    else throw new Error(`unknown argument ${arg}`)
  }
  return out
}
type Args = ReturnType<typeof parse>

const happyAB = async (A: Side, B: Side, args: Args) => {
  const redisUrl = new URL(process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379")
  if (redisUrl.hostname !== "127.0.0.1" && redisUrl.hostname !== "localhost") throw new Error("benchmarks only talk to 127.0.0.1")
  const target = { host: redisUrl.hostname, port: Number(redisUrl.port || 6379) }
  const url = `redis://${target.host}:${target.port}`
  const admin = new Redis(target)
  await fill(admin, Array.from({ length: keyspace }, (_, i) => benchKey(i)), value)
  const raw = new Redis({ ...target, enableAutoPipelining: true })
  await A.call({ op: "happy-open", url })
  await B.call({ op: "happy-open", url })
  const side = (s: Side): Entrant<Cell> => ({ name: s.label, measure: (cell, ms) => s.call<Sample>({ op: "measure", cell, ms, gc: args.gc }) })
  const entrants: ReadonlyArray<Entrant<Cell>> = [
    {
      name: "ioredis-autopipeline",
      measure: (cell, ms) => promiseLoop(cell.op === "get" ? (i) => raw.get(benchKey(i)) : (i) => raw.set(benchKey(i), value), cell.concurrency, ms)
    },
    side(A),
    side(B)
  ]
  const samples = await interleave({ label: "A/B happy", cells, cellName, rounds: args.rounds, durationMs: args.ms, warmupMs: args.warmupMs, gcBetween: args.gc, verbose: false }, entrants)
  const stats = {
    A: await A.call<{ fallbacks: number; circuitState: string }>({ op: "happy-close" }),
    B: await B.call<{ fallbacks: number; circuitState: string }>({ op: "happy-close" })
  }
  for (const [name, s] of Object.entries(stats)) {
    if (s.fallbacks !== 0 || s.circuitState !== "CLOSED") log(`WARNING ${name}: fallbacks ${s.fallbacks}, circuit ${s.circuitState}: not the happy path`)
  }
  await raw.quit()
  await unlinkMatching(admin, "bench:ab:*")
  await admin.quit()
  const rows = cells.map((cell) => {
    // A SET answers nothing (void / "OK"): only reads can come back empty.
    const bad = ["A", "B", "ioredis-autopipeline"].flatMap((e) => samples.of(e, cell)).reduce((n, s) => n + (cell.op === "get" ? s.empty : 0) + s.errors, 0)
    return {
      cell: cellName(cell),
      opsPerSec: { A: samples.medians("A", cell).opsPerSec, B: samples.medians("B", cell).opsPerSec, autoPipelined: samples.medians("ioredis-autopipeline", cell).opsPerSec },
      p99Ms: { A: samples.medians("A", cell).p99Ms, B: samples.medians("B", cell).p99Ms },
      vsAutoPipelined: { A: samples.ratio("A", "ioredis-autopipeline", cell, throughput), B: samples.ratio("B", "ioredis-autopipeline", cell, throughput) },
      bOverA: samples.ratio("B", "A", cell, throughput),
      p99BOverA: samples.ratio("B", "A", cell, p99),
      perRoundBOverA: samples.of("B", cell).map((s, r) => ratio(s.opsPerSec, samples.of("A", cell)[r]!.opsPerSec)),
      emptyReadsOrErrors: bad,
      samples: { A: samples.of("A", cell), B: samples.of("B", cell), autoPipelined: samples.of("ioredis-autopipeline", cell) }
    }
  })
  return { rows, stats }
}

const breakerAB = async (A: Side, B: Side, args: Args) => {
  const lab = await openLab()
  const rounds: Record<"A" | "B", Array<number>> = { A: [], B: [] }
  const proofs: Record<string, string> = {}
  try {
    const proxies = new Map<string, ChaosProxy.ChaosProxy>()
    for (const s of [A, B]) {
      const proxy = await lab.proxy()
      proxies.set(s.label, proxy)
      await s.call({ op: "breaker-open", url: proxy.url() })
      await lab.fault(proxy, ChaosProxy.Refuse())
      await Effect.runPromise(proxy.resetConnections)
      await s.call({ op: "breaker-wait" })
    }
    for (let r = 0; r < args.breakerRounds + 1; r++) {
      for (const s of r % 2 === 0 ? [A, B] : [B, A]) {
        const opsPerSec = await s.call<number>({ op: "breaker-round" })
        if (r > 0) rounds[s.label].push(opsPerSec) // round 0 warms the JIT
      }
    }
    for (const s of [A, B]) {
      proofs[s.label] = await s.call<string>({ op: "breaker-close" })
      await lab.fault(proxies.get(s.label)!, ChaosProxy.Reset())
    }
  } finally {
    await lab.close()
  }
  return {
    opsPerSec: { A: median(rounds.A), B: median(rounds.B) },
    bOverA: median(rounds.B.map((v, r) => ratio(v, rounds.A[r]!))),
    rounds,
    proofs
  }
}

const main = async () => {
  const args = parse(process.argv.slice(2))
  if (!hasGc()) log("WARNING: run with node --expose-gc (gc() between measurements)")
  const started = now()
  const date = new Date().toISOString()
  const load1 = Os.loadavg()
  const A = await spawnSide("A", args.a)
  const B = await spawnSide("B", args.b)
  log(`A/B: A = ${A.dir} (${A.commit}), B = ${B.dir} (${B.commit}); load average ${load1.map((l) => l.toFixed(2)).join(" ")}`)
  try {
    const only = args.only.split(",")
    const happyResult = only.includes("happy") ? await happyAB(A, B, args) : undefined
    const happy = happyResult?.rows ?? []
    const breakerResult = only.includes("breaker") ? await breakerAB(A, B, args) : undefined

    const x = (v: number) => `${v.toFixed(2)}x`
    const n = (v: number) => Math.round(v).toLocaleString("en-US")
    const seconds = (now() - started) / 1000
    const loadEnd = Os.loadavg()
    const text = [
      `## A/B (${date}): A = ${A.commit} (${A.dir}), B = ${B.commit} (${B.dir}); one process per build, interleaved; wall time ${seconds.toFixed(0)} s; load average at start ${
        load1.map((l) => l.toFixed(2)).join(" ")
      }, at end ${loadEnd.map((l) => l.toFixed(2)).join(" ")}`,
      ...(happy.length === 0 ? [] : [
        "",
        `Happy path (shared Redis, 10,000 keys, ${args.rounds} rounds of ${args.ms} ms${args.gc ? "" : ", no gc() between measurements"}; medians of per-round ratios):`,
        "",
        "| cell | A ops/s | B ops/s | A vs auto-pipelined | B vs auto-pipelined | B / A | p99 B / A | empty reads + errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ...happy.map((h) =>
          `| ${h.cell} | ${n(h.opsPerSec.A)} | ${n(h.opsPerSec.B)} | ${x(h.vsAutoPipelined.A)} | ${x(h.vsAutoPipelined.B)} | ${x(h.bOverA)} | ${x(h.p99BOverA)} | ${h.emptyReadsOrErrors} |`
        )
      ]),
      ...(breakerResult === undefined ? [] : [
        "",
        `Open breaker (median of ${args.breakerRounds} rounds after a discarded one): A ${n(breakerResult.opsPerSec.A)} calls/s, B ${n(breakerResult.opsPerSec.B)} calls/s, B / A ${
          x(breakerResult.bOverA)
        }; A: ${breakerResult.proofs["A"]}; B: ${breakerResult.proofs["B"]}`
      ]),
      ""
    ].join("\n")
    process.stdout.write(text + "\n")
    if (args.json !== undefined) {
      writeFileSync(
        args.json,
        JSON.stringify({ date, args, a: { dir: A.dir, commit: A.commit }, b: { dir: B.dir, commit: B.commit }, loadAverage: { start: load1, end: loadEnd }, wallSeconds: seconds, happy, happyStats: happyResult?.stats, breaker: breakerResult }, null, 2) + "\n"
      )
      log(`wrote ${args.json}`)
    }
  } finally {
    A.child.disconnect()
    B.child.disconnect()
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    log(error instanceof Error ? error.stack ?? error.message : String(error))
    process.exit(1)
  }
)
