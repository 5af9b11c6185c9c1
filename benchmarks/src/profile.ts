/**
 * Steadfast alone, for `node --cpu-prof benchmarks/dist/profile.js <breaker|get|set> [seconds]`: the loops of the
 * benchmark without the other contenders in the profile.
 * - breaker: the breaker-open loop (Refuse + reset through a ChaosProxy in front of a spawned redis-server);
 * - get / set: 100 B at concurrency 64 (`CONCURRENCY=n` to change it) against the shared Redis (keys bench:p:*,
 *   deleted afterwards).
 */
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import { ChaosProxy, openLab } from "./chaos.js"
import { effectLoop } from "./drive.js"
import { buildSteadfast, makeRuntime, statsLine } from "./steadfast.js"
import { log, now, sleep } from "./util.js"

const what = process.argv[2] ?? "breaker"
const seconds = Number(process.argv[3] ?? 5)
const runtime = makeRuntime(false)

const main = async () => {
  if (what === "breaker") {
    const lab = await openLab()
    const proxy = await lab.proxy()
    const sf = await buildSteadfast("steadfast", { url: proxy.url(), commandTimeoutMs: 500, halfOpenAfterMs: 600_000 }, runtime)
    await sf.client.set("bench:b:key", "x".repeat(100))
    await lab.fault(proxy, ChaosProxy.Refuse())
    await Effect.runPromise(proxy.resetConnections)
    const end = now() + 10_000
    while ((await sf.stats()).circuitState !== "OPEN" && now() < end) {
      await sf.client.get("bench:b:key")
      await sleep(5)
    }
    const start = now()
    const stop = start + seconds * 1000
    let i = 0
    await sf.run(Effect.whileLoop({
      while: () => (i & 1023) !== 0 || now() < stop,
      body: () => {
        i++
        return sf.cache.get("bench:b:key")
      },
      step: () => {}
    }))
    log(`breaker-open: ${Math.round(i / ((now() - start) / 1000))} calls/s; ${statsLine(await sf.stats())}`)
    await sf.close()
    await lab.close()
  } else {
    const url = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
    const admin = new Redis(url)
    const keys = Array.from({ length: 10_000 }, (_, i) => `bench:p:${i}`)
    const value = "p".repeat(100)
    for (let i = 0; i < keys.length; i += 500) {
      const pipeline = admin.pipeline()
      for (const key of keys.slice(i, i + 500)) pipeline.set(key, value)
      await pipeline.exec()
    }
    // MIRROR=0: the same without the memory mirror (a diagnostic: where does the garbage come from?).
    const sf = await buildSteadfast("steadfast", { url, ...(process.env["MIRROR"] === "0" ? { mirror: false } : {}) }, runtime)
    const op = what === "get" ? (i: number) => sf.cache.get(keys[i % keys.length]!) : (i: number) => sf.cache.set(keys[i % keys.length]!, value)
    // CONCURRENCY=1: the single-caller path.
    const concurrency = Number(process.env["CONCURRENCY"] ?? 64)
    const sample = await sf.run(effectLoop(op, concurrency, 100_000_000, seconds * 1000))
    log(`${what} c=${concurrency}: ${Math.round(sample.opsPerSec)} ops/s p99 ${sample.p99Ms.toFixed(3)} ms; ${statsLine(await sf.stats())}`)
    await sf.close()
    await admin.unlink(...keys)
    await admin.quit()
  }
}

main().then(() => process.exit(0), (error) => {
  log(String(error))
  process.exit(1)
})
