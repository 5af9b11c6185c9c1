// Measures ioredis 6.0 behaviour under Cluster and Sentinel failovers on real processes (see ../TOPOLOGIES.md).
// Run: npx tsc -b && node packages/testing/scripts/topology-facts.mjs [cluster|sentinel|all]
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { Cluster, Redis } from "ioredis"
import { RedisCluster, RedisSentinel } from "../dist/index.js"

const which = process.argv[2] ?? "all"
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const ms = (d) => Math.round(Duration.toMillis(d))
const log = (...args) => console.log(...args)

/** Runs `workers` loops of SET/GET until `stop()`, worker w over `keyGroups[w % groups]`, recording every call. */
const load = (client, keyGroups, workers) => {
  const calls = [] // { key, start, end, ok, error, port }
  let running = true
  const loop = async (w) => {
    const keys = keyGroups[w % keyGroups.length]
    let i = w
    while (running) {
      const key = keys[i++ % keys.length]
      const start = Date.now()
      try {
        if (i % 2) await client.set(key, String(start))
        else await client.get(key)
        calls.push({ key, start, end: Date.now(), ok: true })
      } catch (e) {
        calls.push({ key, start, end: Date.now(), ok: false, error: String(e.message).slice(0, 120) })
      }
      await sleep(5)
    }
  }
  const done = Promise.all(Array.from({ length: workers }, (_, w) => loop(w)))
  return { calls, stop: async () => { running = false; await done } }
}

/** Longest stretch, within [from, to], with no successful call completing (for the calls `filter` keeps). */
const longestGap = (calls, from, to, filter = () => true) => {
  const ends = calls.filter((c) => c.ok && filter(c) && c.end >= from && c.end <= to).map((c) => c.end).sort((a, b) => a - b)
  let gap = 0
  let last = from
  for (const t of ends) { gap = Math.max(gap, t - last); last = t }
  return Math.max(gap, to - last)
}

const summarize = (label, calls, from, to, filter) => {
  const window = calls.filter((c) => c.start >= from - 2000 && c.start <= to)
  const errors = window.filter((c) => !c.ok)
  const kinds = {}
  for (const e of errors) kinds[e.error] = (kinds[e.error] ?? 0) + 1
  const slowest = Math.max(0, ...window.map((c) => c.end - c.start))
  log(`${label}: ${window.length} calls, ${errors.length} errors, slowest ${slowest} ms, ` +
    `longest stretch without a successful call: ${longestGap(calls, from, to, filter)} ms (the faulty shard's keys), ` +
    `${longestGap(calls, from, to, (c) => !filter(c))} ms (the other shards' keys)`)
  for (const [k, n] of Object.entries(kinds)) log(`   ${n} x ${k}`)
}

const cluster = (options) => Effect.scoped(Effect.gen(function*() {
  log(`\n=== RedisCluster.make(${JSON.stringify(options)})`)
  const c = yield* RedisCluster.make(options)
  const client = new Cluster(c.seeds.map((s) => ({ host: s.host, port: s.port })))
  yield* Effect.addFinalizer(() => Effect.sync(() => client.disconnect()))
  yield* Effect.promise(() => client.set("warm", "1"))
  log("ioredis Cluster options: slotsRefreshInterval =", client.options.slotsRefreshInterval,
    ", maxRedirections =", client.options.maxRedirections, ", retryDelayOnFailover =", client.options.retryDelayOnFailover,
    ", retryDelayOnClusterDown =", client.options.retryDelayOnClusterDown, ", retryDelayOnTryAgain =", client.options.retryDelayOnTryAgain)

  // MGET across slots
  const crossTagged = yield* Effect.promise(() => client.mget("{t}a", "{t}b").then((v) => ["ok", v], (e) => ["error", e.message]))
  const cross = yield* Effect.promise(() => client.mget("a", "b", "c").then((v) => ["ok", v], (e) => ["error", e.message]))
  log("MGET {t}a {t}b (one slot) through Cluster:", JSON.stringify(crossTagged))
  log(`MGET a b c (slots ${RedisCluster.slot("a")}, ${RedisCluster.slot("b")}, ${RedisCluster.slot("c")}) through Cluster:`, JSON.stringify(cross))
  const direct = yield* c.servers[0].command("MGET", "a", "b", "c")
  log("MGET a b c sent directly to one node:", JSON.stringify(direct))
  const pipe = yield* Effect.promise(() => client.pipeline().get("a").get("b").exec().then((v) => ["ok", JSON.stringify(v)], (e) => ["error", e.message]))
  log("pipeline GET a, GET b through Cluster:", JSON.stringify(pipe))

  const keys = Array.from({ length: 300 }, (_, i) => `k:${i}`)
  const shardOf = new Map()
  const slotsPrimaries = yield* c.primaries
  for (const k of keys) shardOf.set(k, slotsPrimaries.findIndex((p) => p.slots.some(([a, b]) => RedisCluster.slot(k) >= a && RedisCluster.slot(k) <= b)))
  const keyGroups = [0, 1, 2].map((shard) => keys.filter((k) => shardOf.get(k) === shard))

  for (const scenario of ["killPrimary", "failover", "stall"]) {
    const shard = scenario === "killPrimary" ? 1 : scenario === "failover" ? 0 : 2
    const w = load(client, keyGroups, 15)
    // one more writer, of fresh keys in the faulty shard only: which acknowledged writes survive?
    const tag = keyGroups[shard][0]
    const acked = []
    let writing = true
    const writer = (async () => {
      for (let n = 0; writing; n++) {
        try {
          await client.set(`{${tag}}:${n}`, "1")
          acked.push(n)
        } catch {
          // not acknowledged
        }
        await sleep(10)
      }
    })()
    yield* Effect.promise(() => sleep(1000))
    const start = Date.now()
    let detail = ""
    if (scenario === "killPrimary") detail = `promoted after ${ms((yield* c.killPrimary(shard)).duration)} ms`
    else if (scenario === "failover") detail = `done after ${ms((yield* c.failover(shard)).duration)} ms`
    else {
      yield* c.stallNode(shard)
      yield* c.awaitHealthy
      detail = `promoted after ${Date.now() - start} ms`
      yield* c.resume()
    }
    const settled = Date.now()
    yield* Effect.promise(() => sleep(3000))
    yield* Effect.promise(() => w.stop())
    writing = false
    yield* Effect.promise(() => writer)
    const primaryNow = (yield* c.primaries)[shard]
    const server = c.servers.find((x) => x.port === primaryNow.port)
    let lost = 0
    for (const n of acked) if ((yield* server.command("EXISTS", `{${tag}}:${n}`)) !== 1) lost++
    log(`\ncluster ${scenario} of shard ${shard} (${detail}), raw ioredis Cluster on defaults, 15 workers (5 per shard):`)
    summarize(`  from the fault to 3 s after the cluster settled (${settled - start} ms)`, w.calls, start, settled + 3000,
      (call) => shardOf.get(call.key) === shard)
    log(`  ${acked.length} fresh-key writes acknowledged in that shard, ${lost} of them absent from its primary afterwards (lost)`)
    const lastError = Math.max(0, ...w.calls.filter((x) => !x.ok).map((x) => x.end))
    if (lastError) log(`  last error ${lastError - start} ms after the fault`)
    if (scenario === "killPrimary") {
      yield* c.restart(slotsPrimaries[shard].port)
    }
  }
}))

const sentinel = Effect.scoped(Effect.gen(function*() {
  for (const failoverDetector of [false, true]) {
    const s = yield* RedisSentinel.make()
    const client = new Redis({ sentinels: s.sentinels, name: s.masterName, failoverDetector })
    yield* Effect.promise(() => client.set("warm", "1"))
    log(`\nsentinel failover, ioredis failoverDetector = ${client.options.failoverDetector}` +
      (failoverDetector ? "" : " (the default)"))
    const old = yield* s.primary
    // one writer, stamping each acknowledged write with the server port it went to
    const acks = []
    let running = true
    let seq = 0
    const writer = (async () => {
      while (running) {
        const n = ++seq
        const port = client.stream?.remotePort
        try {
          await client.set(`w:${n}`, String(n))
          acks.push({ n, port, at: Date.now() })
        } catch {
          // counted as not acknowledged
        }
        await sleep(20)
      }
    })()
    yield* Effect.promise(() => sleep(500))
    const start = Date.now()
    const sw = yield* s.failover
    // when does the old primary stop being a primary?
    const oldServer = s.servers.find((x) => x.port === old.port)
    let demotedAt
    while (Date.now() - start < 30000) {
      const role = yield* oldServer.command("ROLE")
      if (Array.isArray(role) && role[0] === "slave") { demotedAt = Date.now(); break }
      yield* Effect.promise(() => sleep(100))
    }
    yield* Effect.promise(() => sleep(1500))
    running = false
    yield* Effect.promise(() => writer)
    const toOld = acks.filter((a) => a.at > start + ms(sw.duration) && a.port === old.port)
    const lastOld = Math.max(0, ...acks.filter((a) => a.port === old.port).map((a) => a.at))
    const firstNew = Math.min(...acks.filter((a) => a.port === sw.to.port).map((a) => a.at))
    // writes acknowledged by the old primary after the switch: are they on the new primary?
    const newServer = s.servers.find((x) => x.port === sw.to.port)
    let lost = 0
    for (const a of toOld) if ((yield* newServer.command("GET", `w:${a.n}`)) === null) lost++
    log(`  sentinels named the new primary after ${ms(sw.duration)} ms; the old primary answered ROLE master until ` +
      `${demotedAt ? demotedAt - start : "more than 30000"} ms`)
    log(`  client: last write acknowledged by the old primary at ${lastOld ? lastOld - start : "-"} ms, first by the new one at ` +
      `${Number.isFinite(firstNew) ? firstNew - start : "-"} ms; ${toOld.length} writes acknowledged by the old primary ` +
      `after the sentinels switched, ${lost} of them absent from the new primary (lost)`)
    client.disconnect()
  }
}))

const program = Effect.gen(function*() {
  if (which === "cluster" || which === "all") {
    yield* cluster({})
    yield* cluster({ requireFullCoverage: false })
  }
  if (which === "sentinel" || which === "all") yield* Effect.scoped(sentinel)
})
Effect.runPromise(program).then(() => process.exit(0), (e) => { console.error(e); process.exit(1) })
