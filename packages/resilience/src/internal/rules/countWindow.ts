import type { Counter, Rule, View } from "../../BreakerRule.js"

/**
 * The last `size` outcomes in a ring. `calls` grows to `size` and stays there; `failures` is the number of `1`s in
 * the ring, kept up to date as outcomes enter and leave it.
 *
 * @internal
 */
export const make = (size: number, failureRatio: number, minimumCalls: number): Rule => ({
  name: `countWindow(size ${size}, ratio ${failureRatio}, minimum ${minimumCalls})`,
  timed: false,
  countsSuccesses: true,
  make: (): Counter => {
    const ring = new Uint8Array(size)
    let next = 0
    let calls = 0
    let failures = 0
    return {
      record: (failed) => {
        const outcome = failed ? 1 : 0
        if (calls === size) failures -= ring[next]!
        else calls++
        ring[next] = outcome
        failures += outcome
        next = next + 1 === size ? 0 : next + 1
        // As a ratio, not `failures >= failureRatio * calls`: 0.55 * 100 is 55.00000000000001, so 55 of 100 would not trip.
        return failed && calls >= minimumCalls && failures / calls >= failureRatio
      },
      reset: () => {
        ring.fill(0)
        next = 0
        calls = 0
        failures = 0
      },
      view: (): View => ({ calls, failures, slowCalls: 0, failureRatio: calls === 0 ? 0 : failures / calls })
    }
  }
})
