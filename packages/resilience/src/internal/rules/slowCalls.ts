import type { Counter, Rule, View } from "../../BreakerRule.js"

/**
 * A call slower than `thresholdMillis` is a failure for the inner rule. Counts how many it turned, for the view
 * (the count is of the slow calls recorded since the breaker last closed).
 *
 * @internal
 */
export const make = (thresholdMillis: number, inner: Rule): Rule => ({
  name: `slowCalls(${thresholdMillis} ms, ${inner.name})`,
  timed: true,
  countsSuccesses: true,
  slow: (durationMillis) => durationMillis >= thresholdMillis,
  make: (): Counter => {
    const counter = inner.make()
    let slow = 0
    return {
      record: (failed, durationMillis, now) => {
        if (!failed && durationMillis >= thresholdMillis) {
          slow++
          return counter.record(true, durationMillis, now)
        }
        return counter.record(failed, durationMillis, now)
      },
      reset: () => {
        slow = 0
        counter.reset()
      },
      view: (now): View => ({ ...counter.view(now), slowCalls: slow })
    }
  }
})
