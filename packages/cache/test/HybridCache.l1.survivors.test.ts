/**
 * The hybrid cache's L1 (`internal/l1.ts`): rules no other test pinned down (found by mutation testing). Units: the
 * store is synchronous and takes the time as an argument.
 */
import { describe, expect, it } from "@effect/vitest"
import { L1 } from "../src/internal/l1.js"

const fill = (l1: L1, key: string, value: string, now = 0, ttl = 100) => {
  const since = l1.begin()
  const kept = l1.fill(key, value, since, ttl, now)
  l1.end()
  return kept
}

describe("L1 fail-safe entries (survivors)", () => {
  it("a read at exactly TTL + grace drops the entry", () => {
    const l1 = new L1(10, 16, 1000)
    fill(l1, "k", "v") // expires at 100, kept as a stale value until 1100
    expect(l1.get("k", 1099)).toBeUndefined()
    expect(l1.size).toBe(1)
    expect(l1.get("k", 1100)).toBeUndefined()
    expect(l1.size).toBe(0)
  })

  it("without grace nothing is a stale value, not even a live entry", () => {
    const l1 = new L1(10)
    fill(l1, "k", "v")
    expect(l1.stale("k", 50)).toBeUndefined()
    expect(l1.get("k", 50)).toBe("v")
  })

  it("same: the key's entry still, and within its grace (the end excluded); not after an invalidation and refill", () => {
    const l1 = new L1(10, 16, 1000)
    fill(l1, "k", "v")
    const entry = l1.stale("k", 200)!
    expect(l1.same("k", entry, 200)).toBe(true)
    expect(l1.same("k", entry, 1099)).toBe(true)
    expect(l1.same("k", entry, 1100)).toBe(false)
    l1.invalidate("k")
    expect(l1.same("k", entry, 200)).toBe(false)
    fill(l1, "k", "v2", 200)
    expect(l1.same("k", entry, 200)).toBe(false)
  })

  it("discard drops only the entry it was given, not a newer one of the same key", () => {
    const l1 = new L1(10, 16, 1000)
    fill(l1, "k", "old")
    const entry = l1.stale("k", 200)!
    l1.invalidate("k")
    fill(l1, "k", "new", 200)
    l1.discard("k", entry)
    expect(l1.get("k", 210)).toBe("new")
    l1.discard("k", l1.stale("k", 210)!)
    expect(l1.get("k", 210)).toBeUndefined()
  })
})

describe("L1 ages, sizes, second chances and counts (survivors)", () => {
  it("age: the fraction of the TTL already past", () => {
    const l1 = new L1(10)
    fill(l1, "k", "v", 0, 100)
    expect(l1.age("k", 0, 100)).toBe(0)
    expect(l1.age("k", 50, 100)).toBe(0.5)
    expect(l1.age("k", 80, 100)).toBeCloseTo(0.8)
    expect(l1.age("absent", 50, 100)).toBe(0)
  })

  it("a value of exactly maxBytes is kept", () => {
    const l1 = new L1(10, 16, 0, 10)
    expect(fill(l1, "k", "vvvv")).toBe(true) // 2 x (1 + 4) = 10 bytes
    expect(l1.get("k", 1)).toBe("vvvv")
    expect(l1.oversized).toBe(0)
  })

  it("a refilled entry gets the second chance of a read one: the next eviction takes another", () => {
    const l1 = new L1(2)
    fill(l1, "a", "1")
    fill(l1, "b", "2")
    fill(l1, "a", "1'") // refilled: as recently used as a read
    fill(l1, "c", "3")
    expect(l1.get("a", 1)).toBe("1'")
    expect(l1.get("b", 1)).toBeUndefined()
  })

  it("counts clears", () => {
    const l1 = new L1(10)
    l1.clear()
    l1.clear()
    expect(l1.clears).toBe(2)
  })
})

describe("L1 in-flight reads and their tombstones (survivors)", () => {
  it("two reads in flight, one ends: the other's fill of a key invalidated meanwhile is still refused", () => {
    const l1 = new L1(10)
    const first = l1.begin()
    const second = l1.begin()
    l1.invalidate("k")
    l1.end()
    expect(l1.fill("k", "old", second, 100, 0)).toBe(false)
    l1.end()
    expect(first).toBe(second)
  })

  it("a read that began after an invalidation (while another read was in flight) fills", () => {
    const l1 = new L1(10)
    l1.begin()
    l1.invalidate("k")
    const later = l1.begin()
    expect(l1.fill("k", "new", later, 100, 0)).toBe(true)
  })

  it("tombstones are not kept for invalidations with no read in flight: a later read's fill is kept", () => {
    const l1 = new L1(10, 16)
    for (let i = 0; i < 16; i++) l1.invalidate(`w${i}`)
    const read = l1.begin()
    l1.invalidate("x")
    expect(l1.fill("k", "v", read, 100, 0)).toBe(true)
  })

  it("tombstones go when the reads in flight end: reads one after another never reach the bound", () => {
    const l1 = new L1(10, 16)
    for (let i = 0; i < 16; i++) {
      const read = l1.begin()
      l1.invalidate(`w${i}`)
      expect(l1.fill(`w${i}`, "old", read, 100, 0)).toBe(false)
      l1.end()
    }
    const read = l1.begin()
    l1.invalidate("x")
    expect(l1.fill("k", "v", read, 100, 0)).toBe(true)
    expect(l1.refusedFills).toBe(16)
  })
})

describe("L1 write fence (survivors)", () => {
  it("a write that began at the instant an abandoned write's fence expired replaces it: once it ends, fills are kept", () => {
    const l1 = new L1(10)
    l1.beginWrite("k", 2000, 0) // its caller was interrupted: never ends
    const slot = l1.beginWrite("k", 5000, 2000)
    expect(l1.writesInFlight).toBe(1)
    l1.endWrite("k", slot)
    expect(fill(l1, "k", "v", 2001)).toBe(true)
  })

  it("a write that ended lifts its fence even while another key's write is in flight", () => {
    const l1 = new L1(10)
    const k = l1.beginWrite("k", 5000, 0)
    l1.endWrite("k", k)
    const other = l1.beginWrite("other", 5000, 0)
    expect(fill(l1, "k", "v", 1)).toBe(true)
    expect(fill(l1, "other", "v", 1)).toBe(false)
    l1.endWrite("other", other)
  })

  it("the late end of a write forgotten when its fence expired does not lift a later write's fence", () => {
    const l1 = new L1(10)
    const abandoned = l1.beginWrite("k", 2000, 0)
    const next = l1.beginWrite("k", 5000, 2500) // forgets the expired one
    l1.endWrite("k", next)
    l1.endWrite("k", abandoned) // its answer after all (nothing left to lift)
    expect(l1.writesInFlight).toBe(0)
    l1.beginWrite("k", 9000, 3000)
    expect(fill(l1, "k", "v", 3001)).toBe(false)
    expect(l1.writesInFlight).toBe(1)
  })
})
