// Experiment (issue 10): the cost of one client span as `Spans` makes it (start + end), under a tracer whose spans do
// nothing, measured in a tight loop on one fiber, beside the pieces it is made of. Run from the repository root after
// `npx tsc -b`: `node benchmarks/experiments/spancost.mjs`. Prints ns per operation (median of 9 rounds).
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Clock from "effect/Clock"
import * as Spans from "../../packages/redis/dist/Spans.js"
import { closureNoopTracer, noopTracer } from "../dist/steadfast.js"
// The benchmark's no-op tracer (a class, as tracers write spans), and the closure one it replaced.
const classy = noopTracer
const fresh = closureNoopTracer
const attributes = {
  "db.system.name": "redis", "server.address": "127.0.0.1", "server.port": 6379, "db.namespace": "0",
  "db.operation.name": "MGET"
}
const N = 200_000
const time = (body) => Effect.sync(() => {
  const t0 = process.hrtime.bigint()
  body(N)
  return Number(process.hrtime.bigint() - t0) / N
})
const clock = Effect.runSync(Effect.clock)
const cases = {
  "start+end": (n) => { for (let i = 0; i < n; i++) { const s = Spans.start("redis.get", "client", attributes); Spans.end(s, Exit.void) } },
  "start+ender": (n) => { for (let i = 0; i < n; i++) { const s = Spans.start("redis.get", "client", attributes); Spans.ender()(s, Exit.void) } },
  "enabled()": (n) => { for (let i = 0; i < n; i++) Spans.enabled() },
  "clock.unsafeCurrentTimeNanos": (n) => { for (let i = 0; i < n; i++) clock.unsafeCurrentTimeNanos() },
  "tracer.span + 5 attributes (for..in)": (n) => { for (let i = 0; i < n; i++) { const s = classy.span("redis.get", { _tag: "None" }, undefined, [], 0n, "client"); for (const k in attributes) s.attribute(k, attributes[k]) } }
}
for (const [tracerName, tracer] of [["closures", fresh], ["class", classy], ["closures", fresh], ["class", classy]]) {
  for (const [name, body] of Object.entries(cases)) {
    const xs = []
    for (let r = 0; r < 9; r++) xs.push(Effect.runSync(Effect.withTracer(time(body), tracer)))
    xs.sort((a, b) => a - b)
    console.log(`${tracerName.padEnd(9)} ${name.padEnd(40)} ${xs[4].toFixed(1)} ns`)
  }
}
