/**
 * The hybrid cache's L1: a bounded map (approximate LRU, the CLOCK way of `lru.ts`) with a TTL, whose fills from
 * Redis are refused when an invalidation of their key (or a flush) arrived while the read was in flight.
 *
 * Every invalidation takes the next number of a sequence. A read notes the sequence when it starts ({@link begin})
 * and hands it to {@link fill}: the value is kept only if no invalidation of that key, and no {@link clear}, came
 * after. Per-key numbers (tombstones) are only kept while reads are in flight, and at most `maxTombstones` of them:
 * past that, the store forgets them and refuses every fill in flight instead (as a clear does), so memory stays
 * bounded under any invalidation rate.
 *
 * Fail-safe (`graceMillis` > 0): an entry past its TTL is kept until `expiresAt + grace`, and a loss of trust
 * ({@link demote}) keeps every entry instead of dropping it. Such entries are never answered by {@link get} (a hit):
 * only {@link stale} hands them out, for the cache to serve when Redis fails. An invalidation or a clear still drops
 * them; a demoted entry never becomes a hit again (its epoch is gone), only a fresh fill does.
 *
 * Byte bound (`maxBytes`, optional): every entry counts {@link sizeOf} (2 bytes per UTF-16 code unit of its key and its
 * value: O(1) to compute, and an upper bound of what V8 stores for the characters, one byte each for Latin-1 strings;
 * the `Map` slot and the entry object, about 100 bytes more, are not counted). A fill evicts (the same CLOCK order)
 * until both bounds hold; a value that alone exceeds `maxBytes` is not kept (`oversized`), so its reads go to Redis.
 *
 * Writes through this process ({@link beginWrite} / {@link endWrite}): the key is dropped when the write starts and
 * again when it ends, and no fill of it is kept in between (a *fence*). A write that never ends (its caller was
 * interrupted while Redis had it) leaves its fence until the `until` it was given (the longest the write can take):
 * the key stays out of L1 until then, so no read can bring back a value the write may be replacing.
 *
 * Synchronous; time is passed in.
 *
 * @internal
 */
import { Fence } from "./fence.js"
import { ClockHand } from "./lru.js"

export interface Entry {
  value: string
  expiresAt: number
  referenced: boolean
  /** The trust epoch it was filled in: a hit only while that epoch is current. */
  epoch: number
  /** Fail-safe throttle: until then a stale read of this key does not go to Redis. */
  throttleUntil: number
}

/** An entry's approximate size: 2 bytes per UTF-16 code unit of key and value. */
export const sizeOf = (key: string, value: string): number => 2 * (key.length + value.length)

export class L1 {
  private readonly entries = new Map<string, Entry>()
  private readonly clock = new ClockHand(this.entries)
  private readonly tombstones = new Map<string, number>()
  /** Writes in flight (see `Fence`): fills of their keys are refused until they end, or until their `until`. */
  private readonly fence = new Fence(8192)
  private sequence = 0
  /** Reads that started before this number may not fill (a clear, or too many tombstones). */
  private floor = 0
  private inFlight = 0
  private epoch = 0
  invalidations = 0
  demotions = 0
  clears = 0
  refusedFills = 0
  evictions = 0
  /** Fills not kept because the entry alone is larger than `maxBytes`. */
  oversized = 0
  private used = 0

  constructor(
    readonly maxEntries: number,
    readonly maxTombstones: number = 4096,
    readonly graceMillis: number = 0,
    readonly maxBytes: number = Infinity
  ) {}

  get size(): number {
    return this.entries.size
  }

  /** The entries' approximate size ({@link sizeOf}), summed. */
  get bytes(): number {
    return this.used
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key)
    this.used -= sizeOf(key, entry.value)
  }

  /** A hit: a value filled in the current trust epoch, within its TTL. */
  get(key: string, now: number): string | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now || entry.epoch !== this.epoch) {
      if (entry.expiresAt + this.graceMillis <= now) this.remove(key, entry)
      return undefined
    }
    entry.referenced = true
    return entry.value
  }

  /**
   * A fail-safe candidate: the entry (hit or not) while `now < expiresAt + grace`. Nobody invalidated it and no write
   * of its key went through this process since it was filled (both drop the entry). Pass it back to {@link same}.
   */
  stale(key: string, now: number): Entry | undefined {
    if (this.graceMillis <= 0) return undefined
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt + this.graceMillis <= now) {
      this.remove(key, entry)
      return undefined
    }
    return entry
  }

  /** `entry` is still the key's entry, and still within its grace (no invalidation, write or refill since). */
  same(key: string, entry: Entry, now: number): boolean {
    return this.entries.get(key) === entry && entry.expiresAt + this.graceMillis > now
  }

  /** Redis answered for `key` but the answer may not fill L1: an older entry must not outlive it as a stale value. */
  discard(key: string, entry: Entry): void {
    if (this.entries.get(key) === entry) this.remove(key, entry)
  }

  /** The time left before the entry's TTL, as a fraction of `ttlMillis` (for eager refresh); a hit only. */
  age(key: string, now: number, ttlMillis: number): number {
    const entry = this.entries.get(key)
    if (entry === undefined) return 0
    return 1 - (entry.expiresAt - now) / ttlMillis
  }

  /** A read of the remote starts: its position, for {@link fill}. Pair with {@link end}. */
  begin(): number {
    this.inFlight++
    return this.sequence
  }

  end(): void {
    if (--this.inFlight <= 0) {
      this.inFlight = 0
      this.tombstones.clear()
    }
  }

  /** Keeps what a read that started at `since` found, unless its key was invalidated (or L1 cleared) since. */
  fill(key: string, value: string, since: number, ttlMillis: number, now: number): boolean {
    if (since < this.floor || (this.tombstones.get(key) ?? -1) > since || (this.fence.inFlight > 0 && this.fence.holds(key, now))) {
      this.refusedFills++
      return false
    }
    const entry = this.entries.get(key)
    const size = sizeOf(key, value)
    if (size > this.maxBytes) {
      // Alone over the byte bound: not kept (evicting everything else would not make room), nor an older value.
      this.oversized++
      if (entry !== undefined) this.remove(key, entry)
      return false
    }
    if (entry !== undefined) {
      this.used += size - sizeOf(key, entry.value)
      entry.value = value
      entry.expiresAt = now + ttlMillis
      entry.referenced = true
      entry.epoch = this.epoch
      entry.throttleUntil = 0
    } else {
      this.entries.set(key, { value, expiresAt: now + ttlMillis, referenced: false, epoch: this.epoch, throttleUntil: 0 })
      this.used += size
    }
    this.evictIfOver(key)
    return true
  }

  /** The key changed (an invalidation from Redis, or a write through this process): drop it, refuse fills in flight. */
  invalidate(key: string): void {
    const seq = ++this.sequence
    this.invalidations++
    const entry = this.entries.get(key)
    if (entry !== undefined) this.remove(key, entry)
    if (this.inFlight === 0) return
    if (this.tombstones.size >= this.maxTombstones && !this.tombstones.has(key)) {
      this.tombstones.clear()
      this.floor = seq
      return
    }
    this.tombstones.set(key, seq)
  }

  /**
   * A write of `key` through this process starts; it cannot take longer than `until` (a timestamp). Pass what it
   * returns to {@link endWrite}.
   */
  beginWrite(key: string, until: number, now: number): number {
    this.invalidate(key)
    return this.fence.begin(key, until, now)
  }

  /** The write of `key` ended (Redis answered, or the fallback did): drop the key again, lift its share of the fence. */
  endWrite(key: string, slot: number): void {
    this.invalidate(key)
    this.fence.end(slot)
  }

  /** Writes begun and not ended (an interrupted one stays counted until a write of its slot begins after it expired). */
  get writesInFlight(): number {
    return this.fence.inFlight
  }

  /**
   * Trust was lost (a connection dropped, a canary failed): no entry is a hit any more, and every fill in flight is
   * refused. With fail-safe the entries stay, as stale values only; without it they go (as {@link clear}).
   */
  demote(): void {
    if (this.graceMillis <= 0) return this.clear()
    this.floor = ++this.sequence
    this.epoch++
    this.demotions++
    this.tombstones.clear()
  }

  /** Forget everything, and refuse every fill in flight. */
  clear(): void {
    this.floor = ++this.sequence
    this.clears++
    this.entries.clear()
    this.clock.reset()
    this.used = 0
    this.tombstones.clear()
  }

  /** Evicts until both bounds hold, never `inserted` (the entry just filled: it fits alone). */
  private evictIfOver(inserted: string): void {
    while (this.entries.size > this.maxEntries || this.used > this.maxBytes) {
      if (!this.evictOne(inserted)) return
    }
  }

  /** One CLOCK eviction (the oldest entry not referenced since it was last passed over: {@link ClockHand}). */
  private evictOne(inserted: string): boolean {
    const victim = this.clock.victim(inserted)
    if (victim === undefined) return false
    this.remove(victim[0], victim[1])
    this.evictions++
    return true
  }
}
