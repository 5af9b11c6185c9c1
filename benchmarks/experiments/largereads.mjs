// Experiment (issue 12): 64 callers reading 10 KB values with plain ioredis, three ways, interleaved (rounds of 400 ms,
// medians of per-round throughput and p99 ratios to the first): default ioredis `get` per caller (a write per call);
// the tick's calls as one `mgetBuffer` (what Steadfast's coalescing sends once values are large); the tick's calls as
// one write of N `GET`s (the socket corked for the tick), each caller settled by its own reply.
// `node --expose-gc benchmarks/experiments/largereads.mjs` (C=64, BYTES=10240, ROUNDS=9). Uses bench:lr:* keys.
import { Command, Redis } from "ioredis"
const url = "redis://127.0.0.1:6379"
const C = Number(process.env.C ?? 64), BYTES = Number(process.env.BYTES ?? 10240), ROUNDS = Number(process.env.ROUNDS ?? 9)
const keys = Array.from({ length: 10000 }, (_, i) => `bench:lr:${i}`)
const admin = new Redis(url)
const v = "x".repeat(BYTES)
for (let i = 0; i < keys.length; i += 200) await admin.mset(...keys.slice(i, i + 200).flatMap((k) => [k, v]))
const plain = new Redis(url)
const opts = { autoPipeliningIgnoredCommands: ["mget", "mset"], enableAutoPipelining: true, noDelay: true }
const a = new Redis(url, opts), b = new Redis(url, opts)
await Promise.all([plain.ping(), a.ping(), b.ping()])
// Coalescing per microtask, as Steadfast's batcher does.
const coalescer = (sendBatch) => {
  let items = [], waiters = []
  const flush = () => {
    const ks = items, ws = waiters
    items = []; waiters = []
    sendBatch(ks, ws)
  }
  return (key) => new Promise((resolve, reject) => {
    items.push(key); waiters.push([resolve, reject])
    if (items.length === 1) queueMicrotask(flush)
  })
}
const viaMget = coalescer((ks, ws) => a.mgetBuffer(ks).then((vs) => { for (let i = 0; i < ws.length; i++) ws[i][0](vs[i] === null ? null : vs[i].toString()) }, (e) => ws.forEach((w) => w[1](e))))
const viaGets = coalescer((ks, ws) => {
  const stream = b.stream
  stream.cork()
  for (let i = 0; i < ks.length; i++) {
    const command = new Command("get", [ks[i]], { replyEncoding: null })
    b.sendCommand(command)
    command.promise.then((value) => ws[i][0](value === null ? null : value.toString()), ws[i][1])
  }
  stream.uncork()
})
const loop = async (get, ms) => {
  const lat = []; let n = 0, i = 0
  const end = performance.now() + ms
  await Promise.all(Array.from({ length: C }, async () => {
    while (performance.now() < end) {
      const t0 = performance.now()
      await get(keys[i++ % 10000])
      lat.push(performance.now() - t0); n++
    }
  }))
  lat.sort((x, y) => x - y)
  return { ops: n / (ms / 1000), p99: lat[Math.floor(lat.length * 0.99)] }
}
const entrants = {
  "default get": (k) => plain.get(k),
  "coalesced mgetBuffer": viaMget,
  "coalesced, corked GETs": viaGets
}
const names = Object.keys(entrants)
for (const n of names) await loop(entrants[n], 300)
const r = Object.fromEntries(names.map((n) => [n, []])), q = Object.fromEntries(names.map((n) => [n, []])), abs = Object.fromEntries(names.map((n) => [n, []]))
for (let round = 0; round < ROUNDS; round++) {
  const res = {}
  for (const n of [...names.slice(round % 3), ...names.slice(0, round % 3)]) { global.gc?.(); await loop(entrants[n], 200); res[n] = await loop(entrants[n], 400) }
  for (const n of names) { r[n].push(res[n].ops / res[names[0]].ops); q[n].push(res[n].p99 / res[names[0]].p99); abs[n].push(res[n].ops) }
}
const med = (xs) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length / 2)]
console.log(`c=${C}, ${BYTES} B, ${ROUNDS} rounds`)
for (const n of names) console.log(`  ${n.padEnd(26)} ${Math.round(med(abs[n]))} ops/s  ${med(r[n]).toFixed(2)}x  p99 ${med(q[n]).toFixed(2)}x`)
plain.disconnect(); a.disconnect(); b.disconnect(); admin.disconnect()
