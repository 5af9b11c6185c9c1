// A separate Node process for test/src/hybrid.test.ts: writes `v<i>` to hot keys, through Steadfast's hybrid cache
// (`steadfast`), a plain ioredis client (`ioredis`) or a spawned `redis-cli` fed one `SET` per line on its stdin
// (`redis-cli`: the acknowledgement is the moment its reply line is read back here), and reports each
// acknowledgement's wall-clock time (`wall()` of hybridClock.mjs, comparable across the processes of one machine) over
// IPC. One phase per writer kind, each on its own keys (`<kind>k0` .. `<kind>k<keys-1>`, under `prefix`).
// Plain ESM run by `node`: it imports the compiled packages (run `npx tsc -b` first).
// argv: url prefix keys writes pauseMs
// IPC: sends { ready } once all three writers are connected; on { go: kind } writes, sending { key, i, ackAt } per
// acknowledgement and { done } at the end; on { stop } exits.
import { Cache, HybridCache } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Exit from "effect/Exit"
import * as Context from "effect/Context"
import { Redis } from "ioredis"
import { spawn } from "node:child_process"
import * as Readline from "node:readline"
import { offsetMs, wall } from "./hybridClock.mjs"

const [url, prefix, keysArg, writesArg, pauseArg] = process.argv.slice(2)
const keys = Number(keysArg)
const writes = Number(writesArg)
const pause = Number(pauseArg)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const inbox = []
let waiting
process.on("message", (m) => {
  if (waiting === undefined) return void inbox.push(m)
  const w = waiting
  waiting = undefined
  w(m)
})
const next = () => (inbox.length > 0 ? Promise.resolve(inbox.shift()) : new Promise((r) => (waiting = r)))

// ---- The three writers, each `(key, value) => Promise` resolving at the acknowledgement.
const client = new Redis(url, { protocol: 2 })
await client.ping()

const u = new URL(url)
const cliArgs = ["-h", u.hostname || "127.0.0.1", "-p", u.port || "6379"]
if (u.password !== "") cliArgs.push("--no-auth-warning", "-a", decodeURIComponent(u.password))
const db = u.pathname.replace(/^\//, "")
if (db !== "") cliArgs.push("-n", db)
const cli = spawn("redis-cli", cliArgs, { stdio: ["pipe", "pipe", "inherit"] })
const replies = []
let replied
Readline.createInterface({ input: cli.stdout }).on("line", (line) => {
  if (replied === undefined) return void replies.push(line)
  const r = replied
  replied = undefined
  r(line)
})
const reply = () => (replies.length > 0 ? Promise.resolve(replies.shift()) : new Promise((r) => (replied = r)))
cli.stdin.write("PING\n")
if ((await reply()) !== "PONG") throw new Error("redis-cli did not answer PING")

const scope = Effect.runSync(Scope.make())
const context = await Effect.runPromise(Layer.buildWithScope(
  HybridCache.layer({ keyPrefix: prefix }).pipe(Layer.provide(RedisConnection.layer({ url }))),
  scope
))
const cache = Context.get(context, Cache.Cache)
await Effect.runPromise(cache.health)

const writers = {
  ioredis: (key, value) => client.set(prefix + key, value),
  "redis-cli": async (key, value) => {
    cli.stdin.write(`SET ${prefix}${key} ${value}\n`)
    const line = await reply()
    if (line !== "OK") throw new Error(`redis-cli answered ${JSON.stringify(line)}`)
  },
  steadfast: (key, value) => Effect.runPromise(cache.set(key, value))
}

process.send({ ready: true })
for (;;) {
  const m = await next()
  if (m.stop) break
  const write = writers[m.go]
  for (let i = 0; i < writes; i++) {
    const key = `${m.go}k${i % keys}`
    await write(key, `v${i}`)
    process.send({ key, i, ackAt: wall() })
    await sleep(pause)
  }
  process.send({ done: true, clockOffsetMs: offsetMs })
}
cli.stdin.end()
client.disconnect()
await Effect.runPromise(Scope.close(scope, Exit.void))
process.exit(0)
