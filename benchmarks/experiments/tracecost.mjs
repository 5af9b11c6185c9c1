// Experiment (issue 10): what a span per call costs `ResilientCache.get` (GET 100 B) when a tracer is installed whose
// spans do nothing, split into the tracer's own cost and Steadfast's. Rungs, interleaved in rotating order, medians of
// per-round ratios to "no tracer" (Effect's built-in one, for which no span is made):
// - "no-op tracer": `Tracer.make` returning a new do-nothing span per call, an instance of a class (as the benchmark's
//   `noopTracer` since 2026-12-05);
// - "no-op tracer (closures)": the same as an object literal with four new closures and a new `Map` per span (the
//   benchmark's no-op tracer until then);
// - "shared-span tracer": the tracer returns one shared do-nothing span, so what is left is Steadfast's own work.
// Run from the repository root after `npx tsc -b`: `node --expose-gc benchmarks/experiments/tracecost.mjs`
// (C=1 for one caller, OP=set for SET, ROUNDS=n, SETTLE_MS=n). Leaves its bench:trace:* keys (10,000 x 100 B) in the shared Redis.
import { buildSteadfast, closureNoopTracer, makeRuntime, noopTracer } from "../dist/steadfast.js"
import { effectLoop } from "../dist/drive.js"
import * as Effect from "effect/Effect"
import * as Tracer from "effect/Tracer"
import { Redis } from "ioredis"
const url = "redis://127.0.0.1:6379"
const keys = Array.from({ length: 10000 }, (_, i) => `bench:trace:${i}`)
const admin = new Redis(url)
const v = "x".repeat(100)
for (let i = 0; i < keys.length; i += 500) await admin.mset(...keys.slice(i, i + 500).flatMap((k) => [k, v]))
const runtime = makeRuntime(false)
const sf = await buildSteadfast("sf", { url }, runtime)
const C = Number(process.env.C ?? 64)
const ROUNDS = Number(process.env.ROUNDS ?? 15)
// The benchmark's no-op tracer (a class, as tracers write spans), and the closure one it replaced.
const classy = noopTracer
const fresh = closureNoopTracer
const one = fresh.span("shared", { _tag: "None" }, undefined, [], 0n, "client")
const shared = Tracer.make({ span: () => one, context: (f) => f() })
const OP = process.env.OP ?? "get"
// SETTLE_MS (300, as `pnpm bench` since session 9; 0 measures right after the gc() as before): the rung runs this long,
// unmeasured, between each gc() and its window (benchmarks/README.md, "How it measures").
const SETTLE_MS = Number(process.env.SETTLE_MS ?? 300)
const loop = (ms = 400) => effectLoop(OP === "set" ? (i) => sf.cache.set(keys[i % 10000], v) : (i) => sf.cache.get(keys[i % 10000]), C, 2e6, ms)
const entrants = {
  "no tracer": (ms) => sf.run(loop(ms)),
  "no-op tracer": (ms) => sf.run(Effect.withTracer(loop(ms), classy)),
  "no-op tracer (closures)": (ms) => sf.run(Effect.withTracer(loop(ms), fresh)),
  "shared-span tracer": (ms) => sf.run(Effect.withTracer(loop(ms), shared))
}
const names = Object.keys(entrants)
for (const n of names) await entrants[n]()
const ratios = Object.fromEntries(names.map((n) => [n, []]))
// CPU time of this process per call (user + system), per rung: less sensitive than throughput to other processes
// taking the cores (a preempted process accrues no CPU time), so it shows a small per-call cost on a busy machine.
const cpu = Object.fromEntries(names.map((n) => [n, []]))
for (let r = 0; r < ROUNDS; r++) {
  const order = names.map((_, i) => names[(i + r) % names.length])
  const got = {}
  const used = {}
  for (const n of order) {
    globalThis.gc?.()
    if (SETTLE_MS > 0) await entrants[n](SETTLE_MS)
    const before = process.cpuUsage()
    const sample = await entrants[n]()
    const after = process.cpuUsage(before)
    got[n] = sample.opsPerSec
    used[n] = (after.user + after.system) / (sample.opsPerSec * 0.4)
  }
  for (const n of names) ratios[n].push(got[n] / got["no tracer"])
  for (const n of names) cpu[n].push(used[n] / used["no tracer"])
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
console.log(`${OP.toUpperCase()} 100 B c=${C}, ${ROUNDS} rounds of 400 ms, median per-round ratio to "no tracer":`)
for (const n of names) console.log(`  ${n}: ${median(ratios[n]).toFixed(3)}x  (rounds ${ratios[n].map((x) => x.toFixed(2)).join(" ")})`)
console.log(`CPU time per call, median per-round ratio to "no tracer" (> 1 costs more):`)
for (const n of names) console.log(`  ${n}: ${median(cpu[n]).toFixed(3)}x  (rounds ${cpu[n].map((x) => x.toFixed(2)).join(" ")})`)
await sf.close(); admin.disconnect()
