// Experiment (issue 12): Steadfast GET 100 B c=64 vs auto-pipelined ioredis, (A) alone, (B) with a 10 KB read phase
// before each measurement (the happy path's interleaving: 20,000 keys through the 10,000-entry fallback memory).
// Variants: defaults, and `mirror: false` (no copy of reads in memory: the ceiling). Medians of per-round ratios.
// Run from the repository root after `npx tsc -b`: `node --expose-gc benchmarks/experiments/churn.mjs` (C=1 for c=1).
import { buildSteadfast, makeRuntime } from "../dist/steadfast.js"
import { effectLoop, promiseLoop } from "../dist/drive.js"
import { Redis } from "ioredis"
const url = "redis://127.0.0.1:6379"
const admin = new Redis(url)
const small = Array.from({ length: 10000 }, (_, i) => `bench:churn:s:${i}`)
const big = Array.from({ length: 10000 }, (_, i) => `bench:churn:b:${i}`)
for (const [keys, size] of [[small, 100], [big, 10240]]) { const p = admin.pipeline(); for (const k of keys) p.set(k, "x".repeat(size)); await p.exec() }
const auto = new Redis(url, { enableAutoPipelining: true })
const runtime = makeRuntime(false)
const c = Number(process.env.C ?? 64)
const variants = [["default", {}], ["mirror:false", { mirror: false }]]
const built = []
for (const [name, o] of variants) built.push([name, await buildSteadfast(name, { url, ...o }, runtime)])
const sfGet = (sf, keys, ms) => sf.run(effectLoop((i) => sf.cache.get(keys[i % 10000]), c, 2e6, ms))
const a = async () => { global.gc(); return (await promiseLoop((i) => auto.get(small[i % 10000]), c, 2e6, 400)).opsPerSec }
const med = (xs) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length / 2)]
for (const [, sf] of built) { await sfGet(sf, small, 300); await sfGet(sf, big, 300) }
await a()
for (const phase of ["A: 100 B keys only", "B: a 10 KB read phase before each measurement"]) {
  const r = Object.fromEntries(built.map(([n]) => [n, []]))
  for (let round = 0; round < 7; round++) {
    for (const [name, sf] of built) {
      if (phase.startsWith("B")) await sfGet(sf, big, 200)
      const ref = await a()
      global.gc()
      const s = await sfGet(sf, small, 400)
      r[name].push(s.opsPerSec / ref)
    }
  }
  console.log(phase, Object.entries(r).map(([n, xs]) => `${n} ${med(xs).toFixed(2)}x [${xs.map((x) => x.toFixed(2)).join(" ")}]`).join(" | "))
}
for (const [, sf] of built) await sf.close()
auto.disconnect()
let cursor = "0"
do { const [next, keys] = await admin.scan(cursor, "MATCH", "bench:churn:*", "COUNT", 1000); cursor = next; if (keys.length > 0) await admin.unlink(...keys) } while (cursor !== "0")
await admin.quit()
