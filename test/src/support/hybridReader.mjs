// A separate Node process for test/src/hybrid.test.ts: reads hot keys through its own Steadfast hybrid cache with
// `concurrency` fibers in a loop (each read followed by a turn of the event loop, as a request handler would give).
// A run has phases, one per writer kind, each on its own keys (`<phase>k0` .. `<phase>k<keys-1>`). Per phase it
// reports, per key and per value read, the wall-clock start of the last read that returned it, plus a trace of its
// invalidation subscriber (when each message arrived, when L1 had dropped the key, and the newest value of that key
// read so far: the message is about the next write of the key) and its event loop's health.
// Plain ESM run by `node`: it imports the compiled packages (run `npx tsc -b` first).
// argv: url prefix keys concurrency
// IPC in: { phase } (switch to that phase's keys, warm them: answers { ready }), { report } (answers { report } for
// the current phase), { stop } (exit).
//
// Clock: `wall()` of hybridClock.mjs (the wall clock at sub-millisecond resolution, comparable across the processes of
// one machine).
import { RedisConnection } from "@steadfast/redis"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Redis } from "ioredis"
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks"
import { offsetMs, wall } from "./hybridClock.mjs"

const [url, prefix, keysArg, concurrencyArg] = process.argv.slice(2)
// HYBRID_CACHE_MODULE: another build of @steadfast/cache for the readers (to compare a change under the same load).
const { Cache, HybridCache } = await import(process.env["HYBRID_CACHE_MODULE"] || "@steadfast/cache")
const KEYS = Number(keysArg)
const CONCURRENCY = Number(concurrencyArg)

/** The current phase: its keys and what was measured on them. */
let phase = { name: "", keys: [], lastSeen: [], returned: [], messages: [], reads: 0 }
const newPhase = (name) => ({
  name,
  keys: name === "" ? [] : Array.from({ length: KEYS }, (_, k) => `${name}k${k}`),
  /** lastSeen[k].get(i): the start (wall ms) of the last read of key k that returned `v<i>`. */
  lastSeen: Array.from({ length: KEYS }, () => new Map()),
  /** The newest value (its write's number) each key's reads returned so far: tells which write a message is about. */
  returned: new Array(KEYS).fill(-1),
  /** [k, received, dropped, newest value read before] */
  messages: [],
  reads: 0
})

// ---- Trace of the invalidation subscriber: ioredis emits `messageBuffer` synchronously from the socket's data
// callback, and the cache's listener drops the key from L1 synchronously.
const emit = Redis.prototype.emit
Redis.prototype.emit = function(event, ...args) {
  if (event !== "messageBuffer") return emit.call(this, event, ...args)
  const received = wall()
  const result = emit.call(this, event, ...args)
  const dropped = wall()
  const keys = args[1]
  const mine = `${prefix}${phase.name}k`
  if (Array.isArray(keys)) {
    for (const raw of keys) {
      const key = String(raw)
      if (!key.startsWith(mine)) continue
      const k = Number(key.slice(mine.length))
      phase.messages.push([k, received, dropped, phase.returned[k] ?? -1])
    }
  }
  return result
}

// ---- The event loop's health: timer lag (1 ms resolution), GC pauses, and gaps between consecutive reads.
const loopDelay = monitorEventLoopDelay({ resolution: 1 })
let gc = { count: 0, totalMs: 0, maxMs: 0 }
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gc.count++
    gc.totalMs += entry.duration
    if (entry.duration > gc.maxMs) gc.maxMs = entry.duration
  }
}).observe({ entryTypes: ["gc"] })
let lastReadAt = 0
let gaps = { over1: 0, over2: 0, over5: 0, over10: 0, max: 0 }

const inbox = []
let waiting
process.on("message", (m) => {
  if (waiting === undefined) return void inbox.push(m)
  const w = waiting
  waiting = undefined
  w(m)
})
const next = () => (inbox.length > 0 ? Promise.resolve(inbox.shift()) : new Promise((r) => (waiting = r)))

const program = Effect.gen(function*() {
  const cache = yield* Cache.Cache
  for (let n = 0; n < 200 && !(yield* cache.stats).hybrid.trusted; n++) yield* Effect.sleep("25 millis")
  let stopping = false
  const turn = () => new Promise((r) => setImmediate(r))
  const reader = Effect.gen(function*() {
    while (!stopping) {
      const current = phase
      if (current.keys.length === 0) {
        yield* Effect.promise(turn)
        continue
      }
      // 90/10: nine reads in ten go to the two hottest keys.
      const k = Math.random() < 0.9 ? (Math.random() < 0.5 ? 0 : 1) : Math.floor(Math.random() * KEYS)
      const startedAt = wall()
      if (lastReadAt > 0) {
        const gap = startedAt - lastReadAt
        if (gap > 1) gaps.over1++
        if (gap > 2) gaps.over2++
        if (gap > 5) gaps.over5++
        if (gap > 10) gaps.over10++
        if (gap > gaps.max) gaps.max = gap
      }
      lastReadAt = startedAt
      const found = yield* cache.get(current.keys[k])
      current.reads++
      if (Option.isSome(found)) {
        const i = Number(found.value.slice(1))
        const seen = current.lastSeen[k]
        if ((seen.get(i) ?? 0) < startedAt) seen.set(i, startedAt)
        if (i > current.returned[k]) current.returned[k] = i
      }
      // Other work of a request: lets the event loop (and the invalidation subscriber's socket) run.
      yield* Effect.promise(turn)
    }
  })
  const fiber = yield* Effect.fork(Effect.all(Array.from({ length: CONCURRENCY }, () => reader), {
    concurrency: "unbounded",
    discard: true
  }))

  let l1Before = (yield* cache.stats).hybrid.l1
  for (;;) {
    const m = yield* Effect.promise(next)
    if (m.phase !== undefined) {
      const fresh = newPhase(m.phase)
      // Warm L1 with every key of the phase (twice: the second read must be a hit), then let the readers at them.
      for (const key of fresh.keys) {
        yield* cache.get(key)
        yield* cache.get(key)
      }
      phase = fresh
      gc = { count: 0, totalMs: 0, maxMs: 0 }
      gaps = { over1: 0, over2: 0, over5: 0, over10: 0, max: 0 }
      loopDelay.reset()
      loopDelay.enable()
      l1Before = (yield* cache.stats).hybrid.l1
      process.send({ ready: true, trusted: (yield* cache.stats).hybrid.trusted })
    } else if (m.report) {
      loopDelay.disable()
      const stats = (yield* cache.stats).hybrid
      const hits = stats.l1.hits - l1Before.hits
      const misses = stats.l1.misses - l1Before.misses
      process.send({
        report: {
          pid: process.pid,
          clockOffsetMs: offsetMs,
          reads: phase.reads,
          l1HitRatio: hits / Math.max(1, hits + misses),
          lastSeen: phase.lastSeen.map((seen) => [...seen]),
          messages: phase.messages,
          loopDelayMs: {
            p50: loopDelay.percentile(50) / 1e6,
            p99: loopDelay.percentile(99) / 1e6,
            max: loopDelay.max / 1e6
          },
          gc,
          readGapsMs: gaps,
          losses: stats.losses,
          canaryFailures: stats.canaryFailures,
          invalidationMessages: stats.invalidationMessages
        }
      })
      phase = newPhase("")
    } else if (m.stop) {
      stopping = true
      yield* fiber.await
      return
    }
  }
})

await Effect.runPromise(program.pipe(
  Effect.provide(HybridCache.layer({ keyPrefix: prefix }).pipe(Layer.provide(RedisConnection.layer({ url })))),
  Effect.scoped
))
process.disconnect?.()
