/** A custom breaker rule for tests: it never trips and records every outcome it is given, with its duration. */
import type { BreakerRule } from "@steadfast/resilience"

export const recordingRule = (name: string, timed: boolean) => {
  const seen: Array<readonly [boolean, number]> = []
  const rule: BreakerRule.Rule = {
    name,
    timed,
    countsSuccesses: true,
    make: () => ({
      record: (failed, durationMillis) => {
        seen.push([failed, durationMillis])
        return false
      },
      reset: () => {},
      view: () => ({ calls: seen.length, failures: 0, slowCalls: 0, failureRatio: 0 })
    })
  }
  return { rule, seen }
}
