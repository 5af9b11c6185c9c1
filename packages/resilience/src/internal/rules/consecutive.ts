import type { Counter, Rule, View } from "../../BreakerRule.js"

/**
 * N counted failures in a row. Successes only matter while failures are held, so the breaker may skip them on
 * the hot path (`countsSuccesses: false`).
 *
 * @internal
 */
export const make = (threshold: number): Rule => ({
  name: `consecutive(${threshold})`,
  timed: false,
  countsSuccesses: false,
  make: (): Counter => {
    let failures = 0
    return {
      record: (failed) => {
        if (!failed) {
          failures = 0
          return false
        }
        return ++failures >= threshold
      },
      reset: () => {
        failures = 0
      },
      view: (): View => ({ calls: failures, failures, slowCalls: 0, failureRatio: failures === 0 ? 0 : 1 })
    }
  }
})
