import type { Counter, Rule, View } from "../../BreakerRule.js"

/**
 * A window of `windowMillis` kept as `buckets` slices of `windowMillis / buckets`. Slice `i` of the ring holds the
 * counts of the time slot `slot` with `slot % buckets === i`; a slot that has fallen out of the window is cleared
 * when the ring comes round to it (lazily, on the next record or view), so an idle breaker costs nothing.
 *
 * @internal
 */
export const make = (windowMillis: number, failureRatio: number, minimumThroughput: number, buckets: number): Rule => ({
  name: `timeWindow(${windowMillis} ms, ratio ${failureRatio}, minimum ${minimumThroughput})`,
  timed: false,
  countsSuccesses: true,
  make: (): Counter => {
    const sliceMillis = windowMillis / buckets
    const slots = new Float64Array(buckets).fill(-1)
    const callsIn = new Uint32Array(buckets)
    const failuresIn = new Uint32Array(buckets)
    let calls = 0
    let failures = 0
    /** Drops the slices older than the window that ends with `now`'s slot. */
    const slide = (now: number): number => {
      const slot = Math.floor(now / sliceMillis)
      for (let i = 0; i < buckets; i++) {
        if (slots[i] !== -1 && slots[i]! <= slot - buckets) {
          calls -= callsIn[i]!
          failures -= failuresIn[i]!
          callsIn[i] = 0
          failuresIn[i] = 0
          slots[i] = -1
        }
      }
      return slot
    }
    return {
      record: (failed, _duration, now) => {
        const slot = slide(now)
        const i = slot % buckets
        if (slots[i] !== slot) {
          // A slot of the future (a Clock that went back) or an empty one: start it fresh.
          calls -= callsIn[i]!
          failures -= failuresIn[i]!
          callsIn[i] = 0
          failuresIn[i] = 0
          slots[i] = slot
        }
        callsIn[i]!++
        calls++
        if (failed) {
          failuresIn[i]!++
          failures++
        }
        // As a ratio, not `failures >= failureRatio * calls`: 0.07 * 100 is 7.000000000000001, so 7 of 100 would not trip.
        return failed && calls >= minimumThroughput && failures / calls >= failureRatio
      },
      reset: () => {
        slots.fill(-1)
        callsIn.fill(0)
        failuresIn.fill(0)
        calls = 0
        failures = 0
      },
      view: (now): View => {
        slide(now)
        return { calls, failures, slowCalls: 0, failureRatio: calls === 0 ? 0 : failures / calls }
      }
    }
  }
})
