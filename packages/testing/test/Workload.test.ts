import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Workload from "../src/Workload.js"

/** A correct in-process store: the baseline the invariants must accept. */
const mapTarget = (map = new Map<string, string>()): Workload.Target => ({
  get: (k) => Effect.sync(() => map.get(k)),
  set: (k, v) => Effect.sync(() => void map.set(k, v)),
  delete: (k) => Effect.sync(() => map.delete(k))
})

const runFor = (target: Workload.Target, ms: number, options: Workload.Options = {}) =>
  Effect.scoped(Effect.gen(function*() {
    const workload = yield* Workload.run(target, { keys: 10, concurrency: 4, pause: "1 millis", ...options })
    yield* Effect.sleep(ms)
    return yield* workload.stats
  }))

const randomMs = (max: number) => Effect.suspend(() => Effect.sleep(Math.floor(Math.random() * (max + 1))))

/** Keeps the value each key had before its last write, and serves it: a replica one write behind. */
const laggingTarget = (): Workload.Target => {
  const previous = new Map<string, string>()
  const current = new Map<string, string>()
  return {
    get: (k) => Effect.sync(() => previous.get(k) ?? current.get(k)),
    set: (k, v) =>
      Effect.sync(() => {
        const old = current.get(k)
        if (old !== undefined) previous.set(k, old)
        current.set(k, v)
      })
  }
}

describe("Workload model", () => {
  it("an acknowledged write makes older values stale; the newest value and a miss are fine", () => {
    const model = Workload.makeModel()
    const first = model.write("k")
    expect(first.value).toBe(`k#${first.seq}`)
    first.done(true)
    expect(model.check("k", first.value)).toBe("ok")
    const second = model.write("k")
    second.done(true)
    expect(model.check("k", first.value)).toBe("stale")
    expect(model.check("k", second.value)).toBe("ok")
    expect(model.check("k", undefined)).toBe("miss")
  })

  it("a failed write does not raise the floor: 5 acknowledged, 7 failed, then 5 and 7 are valid, 3 is stale", () => {
    const model = Workload.makeModel()
    const at = (seq: number, acknowledged: boolean) => {
      while (model.write("other").seq < seq - 1) continue // other keys' operations take the numbers between
      const pending = model.write("k")
      expect(pending.seq).toBe(seq)
      pending.done(acknowledged)
    }
    at(3, true)
    at(5, true)
    at(7, false)
    expect(model.check("k", "k#5")).toBe("ok")
    expect(model.check("k", "k#7")).toBe("ok")
    expect(model.check("k", "k#3")).toBe("stale")
    expect(model.check("k", undefined)).toBe("miss")
  })

  it("a write that failed before a later write was acknowledged is stale if it shows up after it", () => {
    const model = Workload.makeModel()
    const lost = model.write("k")
    lost.done(false)
    const next = model.write("k")
    next.done(true)
    expect(model.check("k", lost.value)).toBe("stale")
  })

  it("a read is compared with what was acknowledged when it started, not when it ended", () => {
    const model = Workload.makeModel()
    const old = model.write("k")
    old.done(true)
    const read = model.read("k")
    const overlapping = model.write("k")
    overlapping.done(true)
    expect(read.done(old.value)).toBe("ok")
    expect(model.read("k").done(old.value)).toBe("stale")
  })

  it("an acknowledged delete makes every value written before it stale; a failed delete does not", () => {
    const model = Workload.makeModel()
    const old = model.write("k")
    old.done(true)
    const failed = model.delete("k")
    failed.done(false)
    expect(model.check("k", old.value)).toBe("ok")
    const readDuringDelete = model.read("k")
    const deleted = model.delete("k")
    deleted.done(true)
    expect(readDuringDelete.done(old.value)).toBe("ok")
    expect(model.check("k", old.value)).toBe("stale")
    expect(model.check("k", undefined)).toBe("miss")
    const after = model.write("k")
    after.done(true)
    expect(model.check("k", after.value)).toBe("ok")
  })

  it("overlapping writes may land in either order, a write that finished before another started may not", () => {
    const model = Workload.makeModel()
    const a = model.write("k")
    const b = model.write("k")
    b.done(true)
    a.done(true)
    // a was in flight when b started: the store may have applied b first, so a read may return either...
    expect(model.check("k", a.value)).toBe("ok")
    // ...but once one has, the other (acknowledged before that read started) never comes back.
    expect(model.check("k", b.value)).toBe("stale")
    expect(model.check("k", a.value)).toBe("ok")
    const c = model.write("k")
    c.done(true)
    expect(model.check("k", a.value)).toBe("stale")
    expect(model.check("k", b.value)).toBe("stale")
    expect(model.check("k", c.value)).toBe("ok")
  })

  it("two overlapping writes read in one order: the other never comes back; a read that overlapped the first is not bound by it", () => {
    for (const [first, second] of [[0, 1], [1, 0]] as const) {
      const model = Workload.makeModel()
      const writes = [model.write("k"), model.write("k")]
      writes[1]!.done(true)
      writes[0]!.done(true)
      const early = model.read("k") // starts before the pinning read ends
      expect(model.check("k", writes[first]!.value)).toBe("ok")
      expect(early.done(writes[second]!.value)).toBe("ok")
      // The pin is the latest-started read's: `check` started after `early`.
      expect(model.check("k", writes[second]!.value)).toBe("stale")
      expect(model.check("k", undefined)).toBe("miss")
    }
  })

  it("a read pins only writes acknowledged when it started: one in flight then, or failed, may still be read after it", () => {
    const model = Workload.makeModel()
    const acked = model.write("k")
    acked.done(true)
    const inFlight = model.write("k")
    expect(model.check("k", acked.value)).toBe("ok")
    inFlight.done(true)
    // It was in flight when the pinning read started: it may have landed after.
    expect(model.check("k", inFlight.value)).toBe("ok")
    const failed = model.write("k")
    failed.done(false)
    expect(model.check("k", inFlight.value)).toBe("ok")
    // A write that failed to its caller may still land (its effect is unknown): never pinned out...
    expect(model.check("k", failed.value)).toBe("ok")
    // ...and once it has been read, the acknowledged write before it does not come back.
    expect(model.check("k", inFlight.value)).toBe("stale")
  })

  it("the pin rule remembers the latest 1,024 failed writes of a key, not more", () => {
    const model = Workload.makeModel()
    const acked = model.write("k")
    acked.done(true)
    const failed = Array.from({ length: 1025 }, () => {
      const write = model.write("k")
      write.done(false)
      return write
    })
    // Any of them may have landed after the acknowledged one...
    expect(model.check("k", acked.value)).toBe("ok")
    expect(model.check("k", failed[1]!.value)).toBe("ok")
    // ...but the oldest was forgotten: once the acknowledged write has been read, it is judged as an acknowledged one.
    expect(model.check("k", failed[0]!.value)).toBe("stale")
  })

  it("a write in flight when a delete started may land after it; one that had finished may not", () => {
    const model = Workload.makeModel()
    const before = model.write("k")
    before.done(true)
    const slow = model.write("k")
    const deleted = model.delete("k")
    deleted.done(true)
    slow.done(false)
    expect(model.check("k", slow.value)).toBe("ok")
    expect(model.check("k", before.value)).toBe("stale")
  })

  it("wrong values: another key's value, a malformed sequence, a sequence not attempted yet; wrong before stale", () => {
    const model = Workload.makeModel()
    const a = model.write("a")
    a.done(true)
    const k = model.write("k")
    k.done(true)
    expect(model.check("k", a.value)).toBe("wrong")
    expect(model.check("k", "k#")).toBe("wrong")
    expect(model.check("k", "k#1.5")).toBe("wrong")
    expect(model.check("k", "k#-1")).toBe("wrong")
    expect(model.check("k", `k#${k.seq + 1}`)).toBe("wrong")
    // In flight: attempted, so a value the store may already hold.
    const pending = model.write("k")
    expect(model.check("k", pending.value)).toBe("ok")
    expect(model.check("never-written", "never-written#0")).toBe("wrong")
  })

  it("keys are independent, and ending an operation twice counts once", () => {
    const model = Workload.makeModel()
    const a = model.write("a")
    a.done(true)
    const b1 = model.write("b")
    b1.done(false)
    b1.done(true) // ignored: already ended as failed
    const b2 = model.write("b")
    b2.done(true)
    expect(model.check("a", a.value)).toBe("ok")
    expect(model.check("b", b1.value)).toBe("stale")
  })
})

describe("Workload", () => {
  it.live("a correct store: reads, writes, hits, no errors, no wrong values, no stale reads", () =>
    Effect.gen(function*() {
      const stats = yield* runFor(mapTarget(), 300)
      expect(stats.ops).toBeGreaterThan(50)
      expect(stats.reads + stats.writes).toBe(stats.ops)
      expect(stats.deletes).toBe(0)
      expect(stats.hits).toBeGreaterThan(0)
      expect(stats.wrongValues).toBe(0)
      expect(stats.staleReads).toBe(0)
      expect(stats.readErrors + stats.writeErrors + stats.deleteErrors).toBe(0)
      expect(stats.p99Ms).toBeGreaterThanOrEqual(stats.p50Ms)
    }))

  it.live("a correct store with deletes: misses, no stale reads, and the store agrees with the model at the end", () =>
    Effect.gen(function*() {
      const map = new Map<string, string>()
      const first = new Map<string, string>()
      const target: Workload.Target = {
        ...mapTarget(map),
        set: (k, v) => Effect.sync(() => (first.has(k) || first.set(k, v), void map.set(k, v)))
      }
      const { stats, workload } = yield* Effect.scoped(Effect.gen(function*() {
        const workload = yield* Workload.run(target, { keys: 4, concurrency: 4, deleteRatio: 0.1, keyPrefix: "d:" })
        yield* Effect.sleep(250)
        return { stats: yield* workload.stats, workload }
      }))
      expect(stats.deletes).toBeGreaterThan(0)
      expect(stats.reads + stats.writes + stats.deletes).toBe(stats.ops)
      expect(stats.misses).toBeGreaterThan(0)
      expect(stats.staleReads).toBe(0)
      expect(stats.wrongValues).toBe(0)
      // The workers have stopped: what the store holds now is what a later reader would see.
      for (let i = 0; i < 4; i++) {
        expect(workload.check(`d:${i}`, map.get(`d:${i}`))).toMatch(/^(ok|miss)$/)
        // Each key's first value was replaced long ago.
        expect(workload.check(`d:${i}`, first.get(`d:${i}`))).toBe("stale")
      }
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
      expect(stats.staleReads).toBe(0)
    }))

  it.live("detects stale reads: a store that serves the value before the last acknowledged write", () =>
    Effect.gen(function*() {
      const stats = yield* runFor(laggingTarget(), 250, { keys: 4 })
      expect(stats.staleReads).toBeGreaterThan(0)
      expect(stats.wrongValues).toBe(0)
      expect(stats.staleReads).toBeLessThanOrEqual(stats.hits)
    }))

  it.live("detects stale reads after an acknowledged delete the store did not apply", () =>
    Effect.gen(function*() {
      const map = new Map<string, string>()
      const forgetful: Workload.Target = { ...mapTarget(map), delete: () => Effect.succeed(true) }
      const stats = yield* runFor(forgetful, 250, { keys: 4, deleteRatio: 0.1 })
      expect(stats.deletes).toBeGreaterThan(0)
      expect(stats.staleReads).toBeGreaterThan(0)
      expect(stats.wrongValues).toBe(0)
      // The same store with deletes applied has none.
      const correct = yield* runFor(mapTarget(), 250, { keys: 4, deleteRatio: 0.1 })
      expect(correct.staleReads).toBe(0)
    }))

  it.live("failed writes and deletes, applied or not, make no read stale", () =>
    Effect.gen(function*() {
      for (const applied of [false, true]) {
        const map = new Map<string, string>()
        let calls = 0
        const failEveryOther = <A>(apply: () => A) =>
          Effect.suspend(() => {
            const fails = calls++ % 2 === 0
            if (!fails || applied) apply()
            return fails ? Effect.fail({ _tag: "TransientError", reason: "outcome_unknown" }) : Effect.void
          })
        const flaky: Workload.Target = {
          get: (k) => Effect.sync(() => map.get(k)),
          set: (k, v) => failEveryOther(() => map.set(k, v)),
          delete: (k) => failEveryOther(() => map.delete(k))
        }
        const stats = yield* runFor(flaky, 200, { keys: 4, readRatio: 0.6, deleteRatio: 0.1 })
        expect(stats.writeErrors, `applied: ${applied}`).toBeGreaterThan(0)
        expect(stats.deleteErrors, `applied: ${applied}`).toBeGreaterThan(0)
        expect(stats.errorsByKind["TransientError/outcome_unknown"]).toBe(stats.writeErrors + stats.deleteErrors)
        expect(stats.staleReads, `applied: ${applied}`).toBe(0)
        expect(stats.wrongValues, `applied: ${applied}`).toBe(0)
      }
    }))

  it.live("slow reads overlapping writes and deletes may return the value from before them", () =>
    Effect.gen(function*() {
      const map = new Map<string, string>()
      let overtaken = 0
      const slowReads: Workload.Target = {
        ...mapTarget(map),
        // Reads the store at once, answers a few ms later: writes and deletes acknowledged meanwhile.
        get: (k) =>
          Effect.sync(() => map.get(k)).pipe(
            Effect.tap(() => randomMs(4)),
            Effect.tap((v) => Effect.sync(() => (map.get(k) !== v ? overtaken++ : undefined)))
          )
      }
      const stats = yield* runFor(slowReads, 250, { keys: 2, concurrency: 8, readRatio: 0.6, deleteRatio: 0.1 })
      expect(overtaken).toBeGreaterThan(0)
      expect(stats.staleReads).toBe(0)
      expect(stats.wrongValues).toBe(0)
    }))

  it.live("overlapping writes and deletes applied out of order make no read stale", () =>
    Effect.gen(function*() {
      const map = new Map<string, string>()
      let outOfOrder = 0
      const seqOf = (v: string | undefined) => (v === undefined ? -1 : Number(v.slice(v.indexOf("#") + 1)))
      // Each write or delete lands at a random moment of its call: concurrent ones land in any order.
      const land = <A>(apply: () => A) => Effect.zipRight(randomMs(3), Effect.zipRight(Effect.sync(apply), randomMs(3)))
      const reordering: Workload.Target = {
        get: (k) => Effect.sync(() => map.get(k)),
        set: (k, v) =>
          land(() => {
            if (seqOf(map.get(k)) > seqOf(v)) outOfOrder++
            map.set(k, v)
          }),
        delete: (k) => land(() => map.delete(k))
      }
      const stats = yield* runFor(reordering, 300, { keys: 2, concurrency: 8, readRatio: 0.5, deleteRatio: 0.1 })
      expect(outOfOrder).toBeGreaterThan(0)
      expect(stats.staleReads).toBe(0)
      expect(stats.wrongValues).toBe(0)
    }))

  it.live("counts caller-visible errors by kind", () =>
    Effect.gen(function*() {
      const failing: Workload.Target = {
        get: () => Effect.fail({ _tag: "TransientError", reason: "timeout" }),
        set: () => Effect.fail(Object.assign(new Error("boom"), { code: "ECONNRESET" })),
        delete: () => Effect.fail({ _tag: "RedisError" })
      }
      const stats = yield* runFor(failing, 200, { deleteRatio: 0.1 })
      expect(stats.readErrors).toBe(stats.reads)
      expect(stats.writeErrors).toBe(stats.writes)
      expect(stats.deleteErrors).toBe(stats.deletes)
      expect(Object.keys(stats.errorsByKind).sort()).toEqual(["ECONNRESET", "RedisError", "TransientError/timeout"])
    }))

  it.live("windows split the run, stale reads included", () =>
    Effect.scoped(Effect.gen(function*() {
      const workload = yield* Workload.run(laggingTarget(), { keys: 5, concurrency: 2 })
      yield* Effect.sleep(150)
      const first = yield* workload.window
      yield* Effect.sleep(150)
      const second = yield* workload.window
      const total = yield* workload.stats
      expect(first.ops).toBeGreaterThan(0)
      expect(second.ops).toBeGreaterThan(0)
      expect(first.ops + second.ops).toBeLessThanOrEqual(total.ops)
      expect(second.staleReads).toBeGreaterThan(0)
      expect(first.staleReads + second.staleReads).toBeLessThanOrEqual(total.staleReads)
      expect(second.seconds).toBeGreaterThan(0.1)
      expect(second.seconds).toBeLessThan(0.5)
    })))

  it.live("deleteRatio needs a target with delete, and a share that fits", () =>
    Effect.gen(function*() {
      const { delete: _, ...noDelete } = mapTarget()
      const without = yield* Effect.exit(Effect.scoped(Workload.run(noDelete, { deleteRatio: 0.1 })))
      expect(Exit.isFailure(without) && Cause.isDie(without.cause)).toBe(true)
      const tooMuch = yield* Effect.exit(Effect.scoped(Workload.run(mapTarget(), { readRatio: 0.9, deleteRatio: 0.2 })))
      expect(Exit.isFailure(tooMuch) && Cause.isDie(tooMuch.cause)).toBe(true)
    }))

  it.effect("fromCache and fromPromises wire delete when there is one", () =>
    Effect.gen(function*() {
      const deleted: Array<string> = []
      const cache = {
        get: (k: string) => Effect.succeed(Option.some(`${k}#0`)),
        set: (_k: string, _v: string) => Effect.void,
        delete: (k: string) => Effect.sync(() => (deleted.push(k), true))
      }
      const target = Workload.fromCache(cache)
      expect(yield* target.get("a")).toBe("a#0")
      yield* target.delete!("a")
      expect(deleted).toEqual(["a"])
      expect(Workload.fromCache({ get: cache.get, set: cache.set }).delete).toBeUndefined()

      const client = {
        get: async (_k: string) => null,
        set: async (_k: string, _v: string) => "OK",
        del: async (k: string) => (deleted.push(k), 1)
      }
      const promises = Workload.fromPromises(client)
      expect(yield* promises.get("b")).toBeUndefined()
      yield* promises.delete!("b")
      expect(deleted).toEqual(["a", "b"])
      expect(Workload.fromPromises({ get: client.get, set: client.set }).delete).toBeUndefined()
    }))
})
