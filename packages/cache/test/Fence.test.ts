/**
 * Writes in flight (`internal/fence.ts`), shared by the resilient cache (a write that overlapped another of its key
 * leaves no fallback copy) and the hybrid cache's L1 (no fill while a write of the key is under way): what counts as
 * overlapping, and how an abandoned write's share expires. Checked against a per-key model over random sequences too.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "effect/FastCheck"
import { Fence } from "../src/internal/fence.js"

describe("Fence", () => {
  it("a write alone did not overlap; two under way at once both did; the next one alone again did not", () => {
    const fence = new Fence()
    const a = fence.begin("k", 1000, 0)
    expect(fence.inFlight).toBe(1)
    expect(fence.end(a)).toBe(false)
    expect(fence.inFlight).toBe(0)
    const b = fence.begin("k", 1000, 0)
    const c = fence.begin("k", 1000, 0)
    expect(b).toBe(c)
    expect(fence.inFlight).toBe(2)
    expect(fence.end(b)).toBe(true)
    expect(fence.end(c)).toBe(true)
    expect(fence.end(fence.begin("k", 1000, 0))).toBe(false)
    expect(fence.inFlight).toBe(0)
  })

  it("three at once: each overlapped, whichever order they end in", () => {
    for (const order of [[0, 1, 2], [2, 1, 0], [1, 2, 0]]) {
      for (const lazy of [false, true]) {
        const fence = new Fence()
        const slots = [0, 1, 2].map(() => lazy ? fence.enter("k", () => 0, () => 100) : fence.begin("k", 100, 0))
        expect(fence.inFlight).toBe(3)
        expect(order.map((i) => fence.end(slots[i]!))).toEqual([true, true, true])
        expect(fence.inFlight).toBe(0)
      }
    }
  })

  it("a chain of overlaps keeps the slot crowded until none is left", () => {
    const fence = new Fence()
    const a = fence.begin("k", 1000, 0)
    const b = fence.begin("k", 1000, 0)
    expect(fence.end(a)).toBe(true)
    // b is still under way: c overlaps it.
    const c = fence.begin("k", 1000, 0)
    expect(fence.end(b)).toBe(true)
    expect(fence.end(c)).toBe(true)
    expect(fence.end(fence.begin("k", 1000, 0))).toBe(false)
  })

  it("one write ended before the next began: neither overlapped", () => {
    const fence = new Fence()
    expect(fence.end(fence.begin("k", 1000, 0))).toBe(false)
    expect(fence.end(fence.begin("k", 1000, 0))).toBe(false)
  })

  it("holds a key while a write of it is under way and before its until; not after it ended", () => {
    const fence = new Fence()
    expect(fence.holds("k", 0)).toBe(false)
    const a = fence.begin("k", 100, 0)
    expect(fence.holds("k", 99)).toBe(true)
    expect(fence.holds("k", 100)).toBe(false)
    expect(fence.holds("other", 50)).toBe(false)
    fence.end(a)
    expect(fence.holds("k", 50)).toBe(false)
  })

  it("an abandoned write (never ended) counts until its until: a write after it starts afresh, one before overlaps", () => {
    const fence = new Fence()
    fence.begin("k", 100, 0)
    const early = fence.begin("k", 50, 99)
    expect(fence.inFlight).toBe(2)
    expect(fence.end(early)).toBe(true)
    // The slot's until is the later of the two (100): at 100 the abandoned write is forgotten.
    const late = fence.begin("k", 300, 100)
    expect(fence.inFlight).toBe(1)
    expect(fence.end(late)).toBe(false)
    expect(fence.inFlight).toBe(0)
  })

  it("begin: a later write with an earlier until never shortens the slot's; a slot emptied keeps no until", () => {
    const fence = new Fence()
    const a = fence.begin("k", 100, 0)
    const b = fence.begin("k", 50, 10)
    expect(fence.holds("k", 60)).toBe(true)
    fence.end(a)
    fence.end(b)
    fence.end(fence.begin("j", 1000, 0))
    // Abandoned, with a short until: the slot's earlier 1,000 is gone with its write.
    fence.begin("j", 100, 10)
    expect(fence.holds("j", 99)).toBe(true)
    expect(fence.holds("j", 500)).toBe(false)
  })

  it("an end with nothing under way in its slot changes nothing", () => {
    const fence = new Fence()
    const a = fence.begin("k", 100, 0)
    expect(fence.end(a)).toBe(false)
    expect(fence.end(a)).toBe(false)
    expect(fence.inFlight).toBe(0)
    const b = fence.begin("k", 100, 0)
    expect(fence.inFlight).toBe(1)
    expect(fence.end(b)).toBe(false)
  })

  it("a key that is not a string gets a slot (its write is refused later, by the input check)", () => {
    const fence = new Fence()
    const slot = fence.begin(42 as unknown as string, 100, 0)
    expect(slot).toBe(0)
    expect(fence.end(slot)).toBe(false)
  })

  it("keys spread over slots: 64 writes under way at once (c=64) rarely share one; 1,000 use most of the 4,096", () => {
    const fence = new Fence()
    const few = new Set(Array.from({ length: 64 }, (_, i) => fence.begin(`bench:happy:100:${i}`, 100, 0)))
    expect(few.size).toBeGreaterThanOrEqual(62)
    const many = new Set(Array.from({ length: 1000 }, (_, i) => fence.begin(`key:${i}`, 100, 0)))
    // A uniform hash: 4,096 x (1 - e^(-1000/4096)) = 885 expected.
    expect(many.size).toBeGreaterThan(820)
    for (const slot of many) expect(slot).toBeGreaterThanOrEqual(0)
    for (const slot of many) expect(slot).toBeLessThan(4096)
  })

  describe("enter (the time read only when the slot is taken)", () => {
    const clock = (times: Array<number>) => {
      const reads: Array<number> = []
      return { reads, now: () => (reads.push(times[reads.length] ?? 0), times[reads.length - 1] ?? 0) }
    }

    it("a write alone reads no time; one joining it reads it once; both overlapped", () => {
      const fence = new Fence()
      const { now, reads } = clock([10])
      const a = fence.enter("k", now, () => 100)
      expect(reads).toEqual([])
      expect(fence.end(a)).toBe(false)
      const b = fence.enter("k", now, () => 100)
      const c = fence.enter("k", now, () => 100)
      expect(reads).toEqual([10])
      expect(fence.inFlight).toBe(2)
      expect(fence.end(b)).toBe(true)
      expect(fence.end(c)).toBe(true)
      expect(fence.end(fence.enter("k", now, () => 100))).toBe(false)
      expect(reads).toHaveLength(1)
    })

    it("an abandoned write is forgotten a fence after the first write that joined it, pushed by each further one", () => {
      const fence = new Fence()
      const { now } = clock([0, 50, 149, 248, 348])
      fence.enter("k", now, () => 100) // abandoned: never ends
      const b = fence.enter("k", now, () => 100) // at 0: until 100
      expect(fence.end(b)).toBe(true)
      const c = fence.enter("k", now, () => 100) // at 50: until 150
      expect(fence.end(c)).toBe(true)
      const d = fence.enter("k", now, () => 100) // at 149: still before 150; until 249
      expect(fence.inFlight).toBe(2)
      expect(fence.end(d)).toBe(true)
      const e = fence.enter("k", now, () => 100) // at 248: still before 249; until 348
      expect(fence.inFlight).toBe(2)
      expect(fence.end(e)).toBe(true)
      const f = fence.enter("k", now, () => 100) // at 348: the until itself, the abandoned write is forgotten
      expect(fence.inFlight).toBe(1)
      expect(fence.end(f)).toBe(false)
      expect(fence.inFlight).toBe(0)
    })

    it("a shorter fence (a deadline retuned down) never shortens the slot's until", () => {
      const fence = new Fence()
      const { now } = clock([0, 10, 500, 1000])
      const fences = [1000, 100, 100, 100]
      let i = 0
      const window = () => fences[i++]!
      fence.enter("k", now, window) // abandoned
      fence.end(fence.enter("k", now, window)) // at 0: until 1000
      fence.end(fence.enter("k", now, window)) // at 10: 110, the until stays 1000
      const d = fence.enter("k", now, window) // at 500: before 1000, still crowded
      expect(fence.inFlight).toBe(2)
      expect(fence.end(d)).toBe(true)
      // At 1000: forgotten.
      expect(fence.end(fence.enter("k", now, window))).toBe(false)
    })

    it("the slot's until goes with its last write: a later pair starts a new one", () => {
      const fence = new Fence()
      const { now } = clock([0, 1000])
      const a = fence.enter("k", now, () => 100)
      const b = fence.enter("k", now, () => 100) // at 0: until 100
      fence.end(a)
      fence.end(b)
      const c = fence.enter("k", now, () => 100)
      const d = fence.enter("k", now, () => 100) // at 1000: no until left from the last pair, so no reset
      expect(fence.inFlight).toBe(2)
      expect(fence.end(c)).toBe(true)
      expect(fence.end(d)).toBe(true)
    })
  })

  it("never misses an overlap a per-key model sees (it may add some, for keys sharing a slot)", () => {
    const op = fc.oneof(
      fc.record({ begin: fc.constantFrom("a", "b", "c") }),
      fc.record({ end: fc.nat(20) })
    )
    fc.assert(fc.property(fc.array(op, { maxLength: 60, size: "max" }), fc.boolean(), (ops, lazy) => {
      const fence = new Fence()
      // The model: each write under way, and whether it overlapped another of its key.
      const open: Array<{ key: string; slot: number; overlapped: boolean }> = []
      for (const o of ops) {
        if ("begin" in o) {
          const same = open.filter((w) => w.key === o.begin)
          same.forEach((w) => (w.overlapped = true))
          const slot = lazy ? fence.enter(o.begin, () => 0, () => Infinity) : fence.begin(o.begin, Infinity, 0)
          open.push({ key: o.begin, slot, overlapped: same.length > 0 })
        } else if (open.length > 0) {
          const [w] = open.splice(o.end % open.length, 1)
          const crowded = fence.end(w!.slot)
          if (w!.overlapped) expect(crowded).toBe(true)
        }
        expect(fence.inFlight).toBe(open.length)
      }
    }))
  })
})
