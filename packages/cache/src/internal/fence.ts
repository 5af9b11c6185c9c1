/**
 * Writes in flight through this process, counted per slot (an FNV-1a hash of the key; 4,096 slots by default): whether a key may
 * have a write under way, and whether a write overlapped another of its slot. Arrays rather than a map: no insertion
 * and deletion per write (a map of the keys in flight measured 0.93x on SET 100 B c=64, against 0.93-0.95x for this).
 * Keys sharing a slot share it: a false alarm costs a copy (an L1 fill refused, a fallback entry dropped), never a
 * wrong answer.
 *
 * A write that never ends (its caller was interrupted while Redis had it) holds its slot until the `until` it was
 * given (the longest the write can take); the next write of the slot after that starts afresh.
 *
 * Synchronous; time is passed in.
 *
 * @internal
 */
import * as Duration from "effect/Duration"

/**
 * The longest a write can be under way, given the command deadline of a call started now: twice the deadline plus a
 * second (a write's deadline, and a socket's silence limit after it, with slack for a loaded event loop). A fence
 * outlives a write whose caller was interrupted this long at most.
 */
export const longestWriteMillis = (deadline: Duration.Duration): number => 2 * Duration.toMillis(deadline) + 1000

/** FNV-1a over the key's UTF-16 code units, to one of `mask + 1` slots. */
const slotOf = (key: string, mask: number): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return (h >>> 0) & mask
}

export class Fence {
  /**
   * Per slot, the writes under way: 0, none; 1, one alone; `-n`, `n` that overlapped (a write that begins while
   * another is under way makes the count negative; it stays so until none is left). One 16 KiB array, one cache line
   * read and written per write: an 8,192-slot layout over three arrays, with the clock read on every write, measured
   * 0.88-0.96x on SET 100 B c=64 against no fence, this one 0.93-0.95x (`benchmarks/README.md`, session 10).
   */
  private readonly slots: Int32Array
  /** Until when (at the latest) the slot's writes can be under way; 0: not known yet (see {@link enter}). */
  private readonly until: Float64Array
  private readonly mask: number
  private active = 0

  /** `size`: the number of slots, a power of two (4,096 for the resilient cache; the hybrid L1 keeps its 8,192). */
  constructor(size = 4096) {
    this.slots = new Int32Array(size)
    this.until = new Float64Array(size)
    this.mask = size - 1
  }

  /**
   * A write of `key` starts; it cannot take longer than `until` (a timestamp). Pass what it returns to {@link end}.
   */
  begin(key: string, until: number, now: number): number {
    // A key that is not a string (bad input, refused later by the write itself) still gets a slot.
    const slot = typeof key === "string" ? slotOf(key, this.mask) : 0
    const slots = this.slots
    // Every write counted in an expired slot ended or was abandoned (none can be under way past its `until`).
    if (slots[slot] !== 0 && this.until[slot]! <= now) this.forget(slot)
    if (until > this.until[slot]!) this.until[slot] = until
    return this.join(slot, slots[slot]!)
  }

  /**
   * {@link begin} for a caller that never asks {@link holds} (it only wants {@link end}'s answer): the time is read
   * only when the slot already has a write under way, the rare case, instead of for every write. `fenceMillis` is the
   * longest a write can take. A write alone in its slot has no `until` yet; the first that joins it sets one far
   * enough for both (the first began earlier), and each further one pushes it to cover itself.
   */
  enter(key: string, now: () => number, fenceMillis: () => number): number {
    const slot = slotOf(key, this.mask)
    const slots = this.slots
    let n = slots[slot]!
    if (n !== 0) {
      const at = now()
      if (this.until[slot] !== 0 && this.until[slot]! <= at) {
        this.forget(slot)
        n = 0
      } else {
        const until = at + fenceMillis()
        if (until > this.until[slot]!) this.until[slot] = until
      }
    }
    return this.join(slot, n)
  }

  /**
   * The write in `slot` ended (answered, or failed): whether another write of its slot was under way at some point
   * while it was (their order on the server and their order here may differ).
   */
  end(slot: number): boolean {
    const n = this.slots[slot]!
    if (n === 0) return false
    this.active--
    // 1: it was alone (a second write makes the count negative at once).
    if (n > 0) {
      this.slots[slot] = 0
      this.until[slot] = 0
      return false
    }
    this.slots[slot] = n + 1
    if (n === -1) this.until[slot] = 0
    return true
  }

  /** Whether a write of `key` (or of a key sharing its slot) may be under way. */
  holds(key: string, now: number): boolean {
    const slot = slotOf(key, this.mask)
    return this.slots[slot] !== 0 && this.until[slot]! > now
  }

  /** Writes begun and not ended (an interrupted one stays counted until a write of its slot begins after it expired). */
  get inFlight(): number {
    return this.active
  }

  /** One more write in `slot`, which held `n` (see {@link slots}): alone in an empty slot, overlapped otherwise. */
  private join(slot: number, n: number): number {
    this.slots[slot] = n === 0 ? 1 : n > 0 ? -2 : n - 1
    this.active++
    return slot
  }

  /** The slot's writes all ended or were abandoned. */
  private forget(slot: number): void {
    const n = this.slots[slot]!
    this.active -= n > 0 ? n : -n
    this.slots[slot] = 0
    this.until[slot] = 0
  }
}
