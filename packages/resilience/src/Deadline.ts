/**
 * Deadlines: bound how long one attempt may take.
 *
 * A timed-out attempt is **interrupted** and replaced by a `TransientError` with reason `"timeout"`, so a retry
 * policy retries it and a circuit breaker counts it.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { TransientError } from "./Errors.js"
import { decodeDuration, illegal } from "./internal/validate.js"

/**
 * Fails `self` with `TransientError({ operation, reason: "timeout", message: "<operation> exceeded its <n> ms
 * deadline" })` if it has not completed after `duration` (measured on Effect's `Clock`); `self` is interrupted.
 *
 * `duration` must be a duration > 0 (infinite means no deadline): otherwise `within` **throws** a
 * `Cause.IllegalArgumentException` when called.
 *
 * @example
 * ```ts
 * import { Deadline } from "@steadfast/resilience"
 *
 * const get = redisGet.pipe(Deadline.within("get", "250 millis"))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const within = (
  operation: string,
  duration: Duration.DurationInput
): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TransientError, R> => {
  const decoded = decodeDuration("Deadline duration", duration)
  const millis = Duration.toMillis(decoded)
  if (!(millis > 0)) {
    throw illegal(`Deadline duration must be > 0, got ${Duration.format(decoded)}`)
  }
  const message = `${operation} exceeded its ${millis} ms deadline`
  const options = {
    duration: decoded,
    onTimeout: () => new TransientError({ operation, reason: "timeout", message })
  }
  return (self) => Effect.timeoutFail(self, options)
}
