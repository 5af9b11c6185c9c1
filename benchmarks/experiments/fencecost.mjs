// Experiment (session 10): the resilient cache's write fence, SET 100 B c=64 (C), in one process: the real `Fence` methods,
// none (enter answers 0, end false), or the key's hash only, swapped on the prototype between interleaved rounds;
// medians over 12 rounds and the ratio to "none". KEYS=built (a key made per call, default) or pre (from an array).
// Run from the repository root after `npx tsc -b`: `node --expose-gc benchmarks/experiments/fencecost.mjs`.
import { Fence } from "../../packages/cache/dist/internal/fence.js"
import { buildSteadfast, makeRuntime } from "../dist/steadfast.js"
import { effectLoop } from "../dist/drive.js"
const realEnter = Fence.prototype.enter, realEnd = Fence.prototype.end
const hashOnly = function (key) { let h = 0x811c9dc5; for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193); return (h >>> 0) & 4095 }
const variants = {
  real: [realEnter, realEnd],
  none: [function () { return 0 }, function () { return false }],
  hash: [hashOnly, function () { return false }],
}
const C = Number(process.env.C ?? 64)
const v = "x".repeat(100)
const runtime = makeRuntime(false)
const sf = await buildSteadfast("sf", { url: "redis://127.0.0.1:6379" }, runtime)
const KEYS = process.env.KEYS ?? "built"
const pre = Array.from({ length: 10000 }, (_, i) => `bench:ab:v100:${i}`)
const op = KEYS === "built" ? (i) => sf.cache.set(`bench:ab:v100:${i % 10000}`, v) : (i) => sf.cache.set(pre[i % 10000], v)
const res = Object.fromEntries(Object.keys(variants).map((k) => [k, []]))
for (let round = 0; round < 12; round++) {
  for (const name of Object.keys(variants)) {
    Fence.prototype.enter = variants[name][0]; Fence.prototype.end = variants[name][1]
    await sf.run(effectLoop(op, C, 2e6, 200))
    global.gc()
    const r = await sf.run(effectLoop(op, C, 2e6, 400))
    res[name].push(r.opsPerSec)
  }
}
const med = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1]
for (const n of Object.keys(res)) console.log(KEYS, n, med(res[n]).toFixed(0), (med(res[n].map((x, i) => x / res.none[i]))).toFixed(3))
await sf.close()
