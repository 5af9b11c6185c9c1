import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Workload from "../src/Workload.js"

/** A correct in-process store: the baseline the invariants must accept. */
const mapTarget = (): Workload.Target => {
  const map = new Map<string, string>()
  return { get: (k) => Effect.sync(() => map.get(k)), set: (k, v) => Effect.sync(() => void map.set(k, v)) }
}

const runFor = (target: Workload.Target, ms: number, options: Workload.Options = {}) =>
  Effect.scoped(Effect.gen(function*() {
    const workload = yield* Workload.run(target, { keys: 10, concurrency: 4, pause: "1 millis", ...options })
    yield* Effect.sleep(ms)
    return yield* workload.stats
  }))

describe("Workload", () => {
  it.live("a correct store: reads, writes, hits, no errors, no wrong values", () =>
    Effect.gen(function*() {
      const stats = yield* runFor(mapTarget(), 300)
      expect(stats.ops).toBeGreaterThan(50)
      expect(stats.reads + stats.writes).toBe(stats.ops)
      expect(stats.hits).toBeGreaterThan(0)
      expect(stats.wrongValues).toBe(0)
      expect(stats.readErrors + stats.writeErrors).toBe(0)
      expect(stats.p99Ms).toBeGreaterThanOrEqual(stats.p50Ms)
    }))

  it.live("detects a value read under the wrong key", () =>
    Effect.gen(function*() {
      const inner = mapTarget()
      const swapped: Workload.Target = { ...inner, get: (k) => inner.get(k.endsWith("1") ? k.slice(0, -1) + "2" : k) }
      const stats = yield* runFor(swapped, 300)
      expect(stats.wrongValues).toBeGreaterThan(0)
    }))

  it.live("detects a value no write has produced yet", () =>
    Effect.gen(function*() {
      const inner = mapTarget()
      const future: Workload.Target = { ...inner, get: (k) => Effect.succeed(`${k}#999999999`) }
      const stats = yield* runFor(future, 200)
      expect(stats.wrongValues).toBe(stats.reads)
    }))

  it.live("counts caller-visible errors by kind", () =>
    Effect.gen(function*() {
      const failing: Workload.Target = {
        get: () => Effect.fail({ _tag: "TransientError", reason: "timeout" }),
        set: () => Effect.fail(Object.assign(new Error("boom"), { code: "ECONNRESET" }))
      }
      const stats = yield* runFor(failing, 200)
      expect(stats.readErrors).toBe(stats.reads)
      expect(stats.writeErrors).toBe(stats.writes)
      expect(Object.keys(stats.errorsByKind).sort()).toEqual(["ECONNRESET", "TransientError/timeout"])
    }))

  it.live("windows split the run", () =>
    Effect.scoped(Effect.gen(function*() {
      const workload = yield* Workload.run(mapTarget(), { keys: 5, concurrency: 2 })
      yield* Effect.sleep(150)
      const first = yield* workload.window
      yield* Effect.sleep(150)
      const second = yield* workload.window
      const total = yield* workload.stats
      expect(first.ops).toBeGreaterThan(0)
      expect(second.ops).toBeGreaterThan(0)
      expect(first.ops + second.ops).toBeLessThanOrEqual(total.ops)
      expect(second.seconds).toBeGreaterThan(0.1)
      expect(second.seconds).toBeLessThan(0.5)
    })))
})
