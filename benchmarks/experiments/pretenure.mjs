// Experiment (issue 12, session 14): how often a fresh process falls into V8's pretenuring mode, and what removes it.
// Spawns ROUNDS fresh processes per variant of `prof-c1.mjs` (RUNG, OP, C, MS as there; default resilient set c=64,
// 2,000 ms), in an order rotated each round, and prints each process' ops/s, p99 and minor page faults, then per
// variant the median ops/s and p99 and how many processes took more than 5,000 page faults in the window (the mode:
// its processes took 13,000-19,000 against ~1,000 in quiet runs, session 14). Variants (VARIANTS, comma-separated;
// the summary is headed by the base RUNG, which the variants below that name a RUNG replace):
//   default  node as it comes;
//   flag     node --no-allocation-site-pretenuring;
//   patched  effect's scheduler without its per-resume array literals (`scheduler-hook.mjs`);
//   raw      auto-pipelined ioredis alone, no Effect (RUNG=raw), the yardstick at c=64 (its page faults are many
//            in every process: the count above does not apply to it);
//   plain    default ioredis alone (RUNG=plain), the yardstick at c=1;
//   batched  RedisConnection.getBatched / setBatched (RUNG=batched), the rung below the cache;
//   floor    Effect.tryPromise around default ioredis (RUNG=floor), Effect's own cost;
//   <any>+flag  that variant with --no-allocation-site-pretenuring.
// Run from the repository root after `npx tsc -b`: `node benchmarks/experiments/pretenure.mjs`. Fills bench:prof:*
// (10,000 keys) first, and leaves them.
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { median } from "../dist/util.js"

const script = fileURLToPath(new URL("./prof-c1.mjs", import.meta.url))
const hook = fileURLToPath(new URL("./scheduler-hook.mjs", import.meta.url))
const ROUNDS = Number(process.env.ROUNDS ?? 8)
const base = { RUNG: process.env.RUNG ?? "resilient", OP: process.env.OP ?? "set", C: process.env.C ?? "64", MS: process.env.MS ?? "2000" }
const variants = {
  default: { flags: [], env: {} },
  flag: { flags: ["--no-allocation-site-pretenuring"], env: {} },
  patched: { flags: ["--import", hook], env: {} },
  raw: { flags: [], env: { RUNG: "raw" } },
  plain: { flags: [], env: { RUNG: "plain" } },
  batched: { flags: [], env: { RUNG: "batched" } },
  floor: { flags: [], env: { RUNG: "floor" } }
}
const names = (process.env.VARIANTS ?? "default,flag,patched,raw").split(",")
// `<variant>+flag`: that variant with --no-allocation-site-pretenuring added (e.g. raw+flag: what the flag costs ioredis).
const variantOf = (name) => {
  const base = variants[name.replace(/\+flag$/, "")]
  if (base === undefined) throw new Error(`unknown variant ${name}`)
  return name.endsWith("+flag") ? { flags: [...base.flags, "--no-allocation-site-pretenuring"], env: base.env } : base
}
for (const name of names) variantOf(name)
const run = (name, extra = {}) => {
  const { flags, env } = variantOf(name)
  const out = execFileSync(process.execPath, [...flags, script], { env: { ...process.env, ...base, ...env, ...extra }, encoding: "utf8" })
  const m = /(\d+) ops\/s p50 ([\d.]+) ms p99 ([\d.]+) ms, (\d+) page faults/.exec(out)
  if (m === null) throw new Error(`${name}: no result in ${out}`)
  return { opsPerSec: Number(m[1]), p99Ms: Number(m[3]), faults: Number(m[4]) }
}
run("raw", { MS: "200" }) // fills the keys
const results = Object.fromEntries(names.map((n) => [n, []]))
for (let round = 0; round < ROUNDS; round++) {
  for (let i = 0; i < names.length; i++) {
    const name = names[(round + i) % names.length]
    const r = run(name, { SKIPFILL: "1" })
    results[name].push(r)
    console.log(`round ${round + 1} ${name.padEnd(8)} ${String(r.opsPerSec).padStart(7)} ops/s p99 ${r.p99Ms.toFixed(3)} ms ${r.faults} page faults`)
  }
}
console.log(`\n${base.RUNG} ${base.OP} c=${base.C}, ${ROUNDS} processes each, ${base.MS} ms:`)
for (const name of names) {
  const list = results[name]
  console.log(`${name.padEnd(8)} median ${Math.round(median(list.map((r) => r.opsPerSec)))} ops/s, p99 ${median(list.map((r) => r.p99Ms)).toFixed(3)} ms; ` +
    `${list.filter((r) => r.faults > 5000).length} of ${list.length} over 5,000 page faults`)
}
