/**
 * Writes in flight through this process, counted per slot (an FNV-1a hash of the key, 8,192 slots): whether a key may
 * have a write under way, and whether a write overlapped another of its slot. Arrays rather than a map: no insertion
 * and deletion per write (a map's set + delete measured 70-90 ns a write, the hash ~40 ns). Keys sharing a slot share
 * it: a false alarm costs a copy (an L1 fill refused, a fallback entry dropped), never a wrong answer.
 *
 * A write that never ends (its caller was interrupted while Redis had it) holds its slot until the `until` it was
 * given (the longest the write can take); the next write of the slot after that starts afresh.
 *
 * Synchronous; time is passed in.
 *
 * @internal
 */

const SLOTS = 8192

/** FNV-1a over the key's UTF-16 code units, to a slot. */
const slotOf = (key: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return (h >>> 0) & (SLOTS - 1)
}

export class Fence {
  private readonly counts = new Int32Array(SLOTS)
  private readonly until = new Float64Array(SLOTS)
  /** 1 while the slot's writes overlapped: set when one begins with another under way, cleared when none is left. */
  private readonly crowded = new Uint8Array(SLOTS)
  private active = 0

  /**
   * A write of `key` starts; it cannot take longer than `until` (a timestamp). Pass what it returns to {@link end}.
   */
  begin(key: string, until: number, now: number): number {
    // A key that is not a string (bad input, refused later by the write itself) still gets a slot.
    const slot = typeof key === "string" ? slotOf(key) : 0
    const counts = this.counts
    // Every write counted in an expired slot ended or was abandoned (none can be under way past its `until`).
    if (this.until[slot]! <= now && counts[slot]! > 0) {
      this.active -= counts[slot]!
      counts[slot] = 0
      this.crowded[slot] = 0
    }
    if (counts[slot]! > 0) this.crowded[slot] = 1
    counts[slot]!++
    if (until > this.until[slot]!) this.until[slot] = until
    this.active++
    return slot
  }

  /**
   * The write in `slot` ended (answered, or failed): whether another write of its slot was under way at some point
   * while it was (their order on the server and their order here may differ).
   */
  end(slot: number): boolean {
    const crowded = this.crowded[slot] === 1
    if (this.counts[slot]! > 0) {
      this.counts[slot]!--
      this.active--
      if (this.counts[slot] === 0) this.crowded[slot] = 0
    }
    return crowded
  }

  /** Whether a write of `key` (or of a key sharing its slot) may be under way. */
  holds(key: string, now: number): boolean {
    const slot = slotOf(key)
    return this.counts[slot]! > 0 && this.until[slot]! > now
  }

  /** Writes begun and not ended (an interrupted one stays counted until a write of its slot begins after it expired). */
  get inFlight(): number {
    return this.active
  }
}
