/**
 * Counts what a cache instance does, into its own counters (for `stats`) and the process-wide metrics, with
 * synchronous updates so the hot path pays no extra effect per call.
 *
 * @internal
 */
import * as MetricLabel from "effect/MetricLabel"
import * as CacheMetrics from "../CacheMetrics.js"

const noTags: ReadonlyArray<MetricLabel.MetricLabel> = []

export class Recorder {
  hits = 0
  misses = 0
  fallbacks = 0
  readonly errors = new Map<string, number>()
  /** operation -> (reason or "" ) -> labels: built once, and the same array each time (metric hooks cache by it). */
  private readonly tagged = new Map<string, Map<string, ReadonlyArray<MetricLabel.MetricLabel>>>()

  constructor(readonly backend: string) {}

  private tags(operation: string, reason = ""): ReadonlyArray<MetricLabel.MetricLabel> {
    let byReason = this.tagged.get(operation)
    if (byReason === undefined) this.tagged.set(operation, byReason = new Map())
    let tags = byReason.get(reason)
    if (tags === undefined) {
      tags = [MetricLabel.make("operation", operation), MetricLabel.make("backend", this.backend)]
      if (reason !== "") tags = [...tags, MetricLabel.make("reason", reason)]
      byReason.set(reason, tags)
    }
    return tags
  }

  hit(count = 1): void {
    if (count === 0) return
    this.hits += count
    CacheMetrics.hits.unsafeUpdate(count, noTags)
  }

  miss(count = 1): void {
    if (count === 0) return
    this.misses += count
    CacheMetrics.misses.unsafeUpdate(count, noTags)
  }

  fallback(operation: string): void {
    this.fallbacks++
    CacheMetrics.fallbacks.unsafeUpdate(1, this.tags(operation))
  }

  error(operation: string, reason: string): void {
    this.errors.set(reason, (this.errors.get(reason) ?? 0) + 1)
    CacheMetrics.errors.unsafeUpdate(1, this.tags(operation, reason))
    if (operation === "get" || operation === "getMany") {
      CacheMetrics.getErrors.unsafeUpdate(1, this.tags(operation, reason))
    }
    if (reason === "timeout" || reason === "socket_timeout") CacheMetrics.timeouts.unsafeUpdate(1, noTags)
  }

  latency(operation: string, seconds: number): void {
    CacheMetrics.latency.unsafeUpdate(seconds, this.tags(operation))
  }

  errorsByReason(): Record<string, number> {
    return Object.fromEntries(this.errors)
  }
}
