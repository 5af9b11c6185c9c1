// A separate Node process for test/src/hybrid.test.ts: writes `v<i>` to hot keys, through Steadfast's hybrid cache
// (`steadfast`) or a plain ioredis client (`ioredis`), and reports each acknowledgement's wall-clock time over IPC.
// Plain ESM run by `node`: it imports the compiled packages (run `npx tsc -b` first).
// argv: mode url prefix keys writes pauseMs
import { HybridCache, Cache } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Redis } from "ioredis"

const [mode, url, prefix, keysArg, writesArg, pauseArg] = process.argv.slice(2)
const keys = Number(keysArg)
const writes = Number(writesArg)
const pause = Number(pauseArg)
const wall = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

if (mode === "ioredis") {
  const client = new Redis(url, { protocol: 2 })
  for (let i = 0; i < writes; i++) {
    const key = `k${i % keys}`
    await client.set(prefix + key, `v${i}`)
    process.send({ key, i, ackAt: wall() })
    await sleep(pause)
  }
  client.disconnect()
} else {
  const program = Effect.gen(function*() {
    const cache = yield* Cache.Cache
    for (let i = 0; i < writes; i++) {
      const key = `k${i % keys}`
      yield* cache.set(key, `v${i}`)
      process.send({ key, i, ackAt: wall() })
      yield* Effect.sleep(pause)
    }
  })
  await Effect.runPromise(program.pipe(
    Effect.provide(HybridCache.layer({ keyPrefix: prefix }).pipe(Layer.provide(RedisConnection.layer({ url })))),
    Effect.scoped
  ))
}
process.send({ done: true }, () => process.exit(0))
