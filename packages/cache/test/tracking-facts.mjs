// The facts packages/cache/README.md ("Hybrid cache") relies on, checked on ioredis 6.0 + Redis 7.0 against the shared
// Redis at 127.0.0.1:6379 (touches only facts:* keys and database 15): `node packages/cache/test/tracking-facts.mjs`
import { Redis } from "ioredis"
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const log = (...a) => console.log(...a)
const opts = { host: "127.0.0.1", port: 6379 }
// 1. RESP3 (default) subscriber: push messages from tracking (client itself, no redirect)
const r3 = new Redis({ ...opts })
const got3 = []
r3.on("message", (...a) => got3.push(["message", ...a]))
r3.on("messageBuffer", (...a) => got3.push(["messageBuffer"]))
await r3.call("CLIENT", "TRACKING", "on")
await r3.get("facts:k1")
const w = new Redis({ ...opts, protocol: 2 })
await w.set("facts:k1", "x")
await sleep(100)
log("1. RESP3 self-tracking, events received by ioredis:", JSON.stringify(got3), "hello proto:", (await r3.call("HELLO"))[5])
// RESP3 subscriber to __redis__:invalidate with REDIRECT
const s3 = new Redis({ ...opts })
const id3 = await s3.client("ID")
const got3b = []
s3.on("message", (c, m) => got3b.push([c, m]))
await s3.subscribe("__redis__:invalidate")
const d = new Redis({ ...opts })
await d.call("CLIENT", "TRACKING", "on", "REDIRECT", String(id3))
await d.get("facts:k2"); await w.set("facts:k2", "y"); await sleep(100)
log("1b. RESP3 subscriber (redirect target), messages:", JSON.stringify(got3b))
// 2. protocol 2 subscriber
const s2 = new Redis({ ...opts, protocol: 2 })
const id2 = await s2.client("ID")
const got2 = []
s2.on("message", (c, m) => got2.push([c, m]))
s2.on("messageBuffer", (c, m) => got2.push(["buf", String(c), m === null ? null : Array.isArray(m) ? m.map(String) : String(m)]))
await s2.subscribe("__redis__:invalidate")
const d2 = new Redis({ ...opts, protocol: 2 })
await d2.call("CLIENT", "TRACKING", "on", "REDIRECT", String(id2))
await d2.get("facts:k3"); await w.set("facts:k3", "z"); await sleep(100)
log("2. RESP2 subscriber messages:", JSON.stringify(got2))
// 3. FLUSHDB on an unrelated db? flushall shape -- use db 15 to not wipe shared data: FLUSHDB in db 15
const w15 = new Redis({ ...opts, db: 15, protocol: 2 })
const d15 = new Redis({ ...opts, db: 15, protocol: 2 })
got2.length = 0
await d15.call("CLIENT", "TRACKING", "on", "REDIRECT", String(id2))
await d15.get("facts:k4")
await w15.flushdb(); await sleep(100)
log("3. FLUSHDB (db 15) invalidation:", JSON.stringify(got2))
// 4. tracking lost on reconnect
const d3 = new Redis({ ...opts, protocol: 2 })
const before = await d3.client("ID")
await d3.call("CLIENT", "TRACKING", "on", "REDIRECT", String(id2))
log("4a. trackinginfo before:", JSON.stringify(await d3.call("CLIENT", "TRACKINGINFO")))
await w.call("CLIENT", "KILL", "ID", String(before))
await new Promise((r) => d3.once("ready", r))
const after = await d3.client("ID")
log("4b. after reconnect: id", before, "->", after, "trackinginfo:", JSON.stringify(await d3.call("CLIENT", "TRACKINGINFO")))
// 5. broken redirect
await w.call("CLIENT", "KILL", "ID", String(id2))
await sleep(100)
log("5. d2 trackinginfo after its redirect target was killed:", JSON.stringify(await d2.call("CLIENT", "TRACKINGINFO")))
// 6. re-issue tracking with new redirect while on; bcast switch
const s4 = new Redis({ ...opts, protocol: 2 }); const id4 = await s4.client("ID")
log("6a. re-issue ON with new REDIRECT while on:", await d2.call("CLIENT", "TRACKING", "on", "REDIRECT", String(id4)).catch(String), JSON.stringify(await d2.call("CLIENT", "TRACKINGINFO")))
log("6b. switch to BCAST while on:", await d2.call("CLIENT", "TRACKING", "on", "REDIRECT", String(id4), "BCAST", "PREFIX", "a:").catch(String))
log("6c. redirect to missing id:", await d2.call("CLIENT", "TRACKING", "on", "REDIRECT", "999999999").catch(String))
const d5 = new Redis({ ...opts, protocol: 2 })
log("6d. BCAST same prefix twice:", await d5.call("CLIENT", "TRACKING", "on", "REDIRECT", String(id4), "BCAST", "PREFIX", "a:").catch(String), await d5.call("CLIENT", "TRACKING", "on", "REDIRECT", String(id4), "BCAST", "PREFIX", "a:").catch(String))
log("7. resp3 data socket ok with redirect to resp2 subscriber:", await d.call("CLIENT", "TRACKING", "on", "REDIRECT", String(id4)))
for (const c of [r3, w, s3, d, s2, d2, w15, d15, d3, s4, d5]) c.disconnect()
// 8. broken_redirect appears once an invalidation was due for a killed redirect target
{
  const s = new Redis({ ...opts, protocol: 2 }); const id = await s.client("ID")
  const d = new Redis({ ...opts, protocol: 2 }); const w = new Redis({ ...opts, protocol: 2 })
  await d.call("CLIENT", "TRACKING", "on", "REDIRECT", String(id)); await d.get("facts:b")
  await w.call("CLIENT", "KILL", "ID", String(id)); await sleep(50)
  log("8a. after the target's kill, before any invalidation:", JSON.stringify(await d.call("CLIENT", "TRACKINGINFO")))
  await w.set("facts:b", "1"); await sleep(50)
  log("8b. once an invalidation was due:", JSON.stringify(await d.call("CLIENT", "TRACKINGINFO")))
  await w.del("facts:b", "facts:k1", "facts:k2", "facts:k3")
  for (const c of [s, d, w]) c.disconnect()
}
