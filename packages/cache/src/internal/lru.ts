/**
 * A bounded map with per-entry expiry and approximate-LRU eviction. Synchronous; time is passed in (from Effect's
 * `Clock`), so `TestClock` drives expiry in tests.
 *
 * Recency is tracked the CLOCK ("second chance") way: a read or a refresh sets the entry's `referenced` bit in place
 * instead of re-inserting it (a `Map` delete + set and a new object per read were 5.8% of the resilient cache's CPU).
 * When the map is over its bound, the oldest entry is evicted unless it was referenced since it last reached the old
 * end; a referenced one loses its bit and moves to the young end (at most {@link SECOND_CHANCES} of them per eviction,
 * then the oldest goes whatever its bit; {@link ClockHand} finds it without rescanning the map). An entry read since it
 * was last passed over therefore survives the next eviction, as with LRU; between two entries both read, eviction order
 * is by insertion (the documented difference).
 *
 * Every local write takes the next number of a sequence, so a value read from elsewhere (Redis) before a local write
 * can never overwrite it: see {@link LruStore.mirror}.
 *
 * @internal
 */
interface Entry {
  value: string
  /** Epoch millis, or `Infinity`. */
  expiresAt: number
  /** The sequence number of the last local write of this key, or the read's start for a mirrored value. */
  seq: number
  referenced: boolean
}

/** Referenced entries passed over per eviction before the oldest is evicted regardless. */
export const SECOND_CHANCES = 8

/**
 * The CLOCK hand over a `Map` kept in insertion order, shared by the fallback memory and the hybrid cache's L1: it
 * chooses the entry to evict, the oldest not referenced since it was last passed over. A referenced entry loses its
 * bit and moves to the young end (re-inserted), at most {@link SECOND_CHANCES} per eviction, then the oldest goes
 * whatever its bit.
 *
 * The hand is an iterator kept from one eviction to the next. It passes an entry by the caller removing it, by moving
 * it to the young end, or (once, in a small map) by skipping the entry just inserted; entries are only ever added at
 * the young end. So, unless it skipped the inserted entry (then the next eviction starts from the beginning again),
 * everything before the hand is a deleted slot and the hand is at the oldest entry. Starting each eviction from the map's beginning
 * instead walks over those slots, which a `Map` keeps until it next rehashes: measured at ~6.6 µs per eviction with
 * 10,000 entries, against ~0.2 µs with the hand (benchmarks/README.md, "The eviction scan").
 *
 * @internal
 */
export class ClockHand<E extends { referenced: boolean }> {
  private hand: Iterator<[string, E]> | undefined
  /**
   * The hand passed a live entry (the one just inserted, which it never evicts): it is no longer at the oldest, so the
   * next eviction starts from the beginning. Only a small map gets there (the hand reaches the youngest entry after
   * passing every other one, at most {@link SECOND_CHANCES} of them moved), so the rescan is short.
   */
  private passedLive = false

  constructor(private readonly entries: Map<string, E>) {}

  /**
   * The entry to evict, never `inserted` (the entry just added); the caller removes it. `undefined` only when no
   * other entry is held.
   */
  victim(inserted: string): readonly [string, E] | undefined {
    let chances = SECOND_CHANCES
    if (this.passedLive) {
      this.hand = undefined
      this.passedLive = false
    }
    // Re-inserted entries come round again, unreferenced: it ends within size + chances steps. Reaching the end
    // starts again from the (new) oldest entry; a second time means nothing but `inserted` is held.
    for (let restarts = 0; restarts < 2;) {
      const next = this.hand?.next()
      if (next === undefined || next.done === true) {
        this.hand = this.entries.entries()
        restarts++
        continue
      }
      const [key, entry] = next.value
      if (key === inserted) {
        this.passedLive = true
        continue
      }
      if (entry.referenced && chances-- > 0) {
        entry.referenced = false
        this.entries.delete(key)
        this.entries.set(key, entry)
        continue
      }
      return next.value
    }
    return undefined
  }

  /**
   * After the map was cleared: the next eviction starts from the beginning. (An iterator left over would give the same
   * answers, the way `Map` iterators follow a clear, but it may keep the cleared table reachable until it next moves.)
   */
  reset(): void {
    this.hand = undefined
    this.passedLive = false
  }
}

/**
 * When the map is full, one remote read in this many of a key it does not hold is kept (see {@link LruStore.mirror}).
 */
export const ADMIT_EVERY = 8

export class LruStore {
  private readonly entries = new Map<string, Entry>()
  private readonly clock = new ClockHand(this.entries)
  private sequence = 0
  /**
   * The highest sequence number of an entry that left the map (evicted, expired, deleted): a read that started
   * before it must not mirror a key it finds no entry for, since that entry may have been a newer local write.
   */
  private goneSeq = 0
  /** Remote reads of keys not held, seen while the map was full (see {@link mirror}'s admission). */
  private knocks = 0

  constructor(readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size
  }

  /** The sequence now: note it before a remote read starts, and pass it to {@link mirror}. */
  version(): number {
    return this.sequence
  }

  get(key: string, now: number): string | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      this.drop(key, entry)
      return undefined
    }
    entry.referenced = true
    return entry.value
  }

  /** A local write. */
  set(key: string, value: string, ttlMillis: number | undefined, now: number): void {
    const expiresAt = ttlMillis === undefined ? Infinity : now + ttlMillis
    const seq = ++this.sequence
    const entry = this.entries.get(key)
    if (entry !== undefined) {
      entry.value = value
      entry.expiresAt = expiresAt
      entry.seq = seq
      entry.referenced = true
      return
    }
    this.entries.set(key, { value, expiresAt, seq, referenced: false })
    this.evictIfOver(key)
  }

  /** A local delete: whether a live value was there. */
  delete(key: string, now: number): boolean {
    const entry = this.entries.get(key)
    // A delete is a local write too: a read in flight must not bring the old value back.
    this.goneSeq = ++this.sequence
    if (entry === undefined) return false
    this.entries.delete(key)
    return entry.expiresAt > now
  }

  /**
   * Keeps a copy of what a remote read answered (`undefined`: the remote has no value, so drop ours), unless a local
   * write or delete of the key happened since the read started (`since`, from {@link version}): a read answered
   * before a local write must not overwrite it with the value it replaced.
   *
   * Admission: while the map is full, a key it does not hold is kept only at one read in {@link ADMIT_EVERY} (the
   * others are not copied; local writes are always kept). A working set larger than the map would otherwise evict an
   * entry and allocate one on every read, keeping each value alive long enough to be promoted by the GC, for copies
   * that are evicted again before an outage could use them (measured: benchmarks/README.md, "the mirror's churn").
   * Not keeping a copy only costs a miss during an outage; it never makes an answer older.
   */
  mirror(key: string, value: string | undefined, since: number, ttlMillis: number, now: number): void {
    const entry = this.entries.get(key)
    if (entry === undefined) {
      if (value === undefined || this.goneSeq > since) return
      if (this.entries.size >= this.maxEntries && ++this.knocks % ADMIT_EVERY !== 0) return
      this.entries.set(key, { value, expiresAt: now + ttlMillis, seq: since, referenced: false })
      this.evictIfOver(key)
      return
    }
    if (entry.seq > since) return
    if (value === undefined) {
      this.drop(key, entry)
      return
    }
    // The same value read again (the common case) keeps the string already held: the one just read dies young,
    // rather than being referenced from an old entry, surviving scavenges and being copied into the old generation on
    // every read (measured: see benchmarks/README.md, "the mirror's write").
    if (entry.value !== value) entry.value = value
    entry.expiresAt = now + ttlMillis
    entry.seq = since
    entry.referenced = true
  }

  clear(): void {
    for (const entry of this.entries.values()) this.goneSeq = Math.max(this.goneSeq, entry.seq)
    this.entries.clear()
    this.clock.reset()
  }

  private drop(key: string, entry: Entry): void {
    this.entries.delete(key)
    if (entry.seq > this.goneSeq) this.goneSeq = entry.seq
  }

  /** Evicts one entry if over the bound (it is only ever one over), never `inserted`, the entry just added. */
  private evictIfOver(inserted: string): void {
    if (this.entries.size <= this.maxEntries) return
    const victim = this.clock.victim(inserted)
    if (victim !== undefined) this.drop(victim[0], victim[1])
  }
}
