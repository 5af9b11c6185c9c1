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
 * Synchronous; time is passed in.
 *
 * @internal
 */
export interface Entry {
  value: string
  expiresAt: number
  referenced: boolean
  /** The trust epoch it was filled in: a hit only while that epoch is current. */
  epoch: number
  /** Fail-safe throttle: until then a stale read of this key does not go to Redis. */
  throttleUntil: number
}

const SECOND_CHANCES = 8

export class L1 {
  private readonly entries = new Map<string, Entry>()
  private readonly tombstones = new Map<string, number>()
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

  constructor(readonly maxEntries: number, readonly maxTombstones: number = 4096, readonly graceMillis: number = 0) {}

  get size(): number {
    return this.entries.size
  }

  /** A hit: a value filled in the current trust epoch, within its TTL. */
  get(key: string, now: number): string | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now || entry.epoch !== this.epoch) {
      if (entry.expiresAt + this.graceMillis <= now) this.entries.delete(key)
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
      this.entries.delete(key)
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
    if (this.entries.get(key) === entry) this.entries.delete(key)
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
    if (since < this.floor || (this.tombstones.get(key) ?? -1) > since) {
      this.refusedFills++
      return false
    }
    const entry = this.entries.get(key)
    if (entry !== undefined) {
      entry.value = value
      entry.expiresAt = now + ttlMillis
      entry.referenced = true
      entry.epoch = this.epoch
      entry.throttleUntil = 0
      return true
    }
    this.entries.set(key, { value, expiresAt: now + ttlMillis, referenced: false, epoch: this.epoch, throttleUntil: 0 })
    this.evictIfOver(key)
    return true
  }

  /** The key changed (an invalidation from Redis, or a write through this process): drop it, refuse fills in flight. */
  invalidate(key: string): void {
    const seq = ++this.sequence
    this.invalidations++
    this.entries.delete(key)
    if (this.inFlight === 0) return
    if (this.tombstones.size >= this.maxTombstones && !this.tombstones.has(key)) {
      this.tombstones.clear()
      this.floor = seq
      return
    }
    this.tombstones.set(key, seq)
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
    this.tombstones.clear()
  }

  private evictIfOver(inserted: string): void {
    if (this.entries.size <= this.maxEntries) return
    let chances = SECOND_CHANCES
    for (const [key, entry] of this.entries) {
      if (key === inserted) continue
      if (entry.referenced && chances-- > 0) {
        entry.referenced = false
        this.entries.delete(key)
        this.entries.set(key, entry)
        continue
      }
      this.entries.delete(key)
      this.evictions++
      return
    }
  }
}
