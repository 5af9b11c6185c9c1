// Experiment (issue 12): what ioredis' `socketTimeout` option costs a single caller. With it, ioredis arms a timer and
// a one-off `data` listener whenever it writes a command and none is armed (`Redis.setSocketTimeout`): at one caller,
// on every command. Two raw clients, one with `socketTimeout: 1250` (what a 1 s deadline gave), one without, GET 100 B
// in turns: ops/s and this process' CPU per call (user + system), medians of ROUNDS rounds of 400 ms.
// `node benchmarks/experiments/socketwatch.mjs` (ROUNDS=9). Uses the key bench:socketwatch.
import { Redis } from "ioredis"

const ROUNDS = Number(process.env.ROUNDS ?? 9)
const plain = new Redis({ host: "127.0.0.1", port: 6379 })
const timed = new Redis({ host: "127.0.0.1", port: 6379, socketTimeout: 1250 })
const key = "bench:socketwatch"
await plain.set(key, "x".repeat(100))

const round = async (client, ms) => {
  const t0 = performance.now()
  const u0 = process.cpuUsage()
  let n = 0
  while (performance.now() - t0 < ms) {
    await client.get(key)
    n++
  }
  const u = process.cpuUsage(u0)
  return { ops: n / (ms / 1000), cpu: (u.user + u.system) / n }
}
await round(plain, 300)
await round(timed, 300)
const a = []
const b = []
for (let r = 0; r < ROUNDS; r++) {
  a.push(await round(plain, 400))
  b.push(await round(timed, 400))
}
const median = (xs, f) => xs.map(f).sort((x, y) => x - y)[Math.floor(xs.length / 2)]
const ratio = median(a.map((x, i) => b[i].ops / x.ops), (r) => r)
const cpuRatio = median(a.map((x, i) => b[i].cpu / x.cpu), (r) => r)
if (process.env.VERBOSE) for (let i = 0; i < a.length; i++) console.log(Math.round(a[i].ops), Math.round(b[i].ops), a[i].cpu.toFixed(2), b[i].cpu.toFixed(2))
console.log(`no socketTimeout   ${Math.round(median(a, (x) => x.ops))} ops/s  ${median(a, (x) => x.cpu).toFixed(2)} µs CPU/call`)
console.log(`socketTimeout 1250 ${Math.round(median(b, (x) => x.ops))} ops/s  ${median(b, (x) => x.cpu).toFixed(2)} µs CPU/call  (per round: ${ratio.toFixed(3)}x the throughput, ${cpuRatio.toFixed(3)}x the CPU per call)`)
await plain.del(key)
plain.disconnect()
timed.disconnect()
