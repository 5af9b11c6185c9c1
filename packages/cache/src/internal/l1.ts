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
 * Synchronous; time is passed in.
 *
 * @internal
 */
interface Entry {
  value: string
  expiresAt: number
  referenced: boolean
}

const SECOND_CHANCES = 8

export class L1 {
  private readonly entries = new Map<string, Entry>()
  private readonly tombstones = new Map<string, number>()
  private sequence = 0
  /** Reads that started before this number may not fill (a clear, or too many tombstones). */
  private floor = 0
  private inFlight = 0
  invalidations = 0
  clears = 0
  refusedFills = 0
  evictions = 0

  constructor(readonly maxEntries: number, readonly maxTombstones: number = 4096) {}

  get size(): number {
    return this.entries.size
  }

  get(key: string, now: number): string | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      this.entries.delete(key)
      return undefined
    }
    entry.referenced = true
    return entry.value
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
      return true
    }
    this.entries.set(key, { value, expiresAt: now + ttlMillis, referenced: false })
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
