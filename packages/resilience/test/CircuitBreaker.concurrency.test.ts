/**
 * Regression test for a bug the chaos matrix's OOM scenario found: the breaker did not reset its count when a success
 * completed for a call admitted while the count was zero (the CLOSED fast path only watched for failures when
 * `failures === 0` at admission). Under concurrency, "consecutive" then means "since the last success of a call
 * admitted with a non-zero count": failures interleaved with successes add up and open the breaker. In the OOM
 * scenario, failing writes open it twice in 2 s although 80 % of the calls (reads) succeed in between, so every read
 * is served, stale, from memory.
 *
 * packages/resilience/README.md: "CLOSED -> OPEN after failureThreshold *consecutive* counted failures. [...] a
 * success resets the count".
 */
import { describe, expect, it } from "@effect/vitest"
import { CircuitBreaker, TransientError } from "@steadfast/resilience"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"

const failing = Effect.fail(new TransientError({ operation: "set", reason: "out_of_memory", message: "OOM" }))

describe("CircuitBreaker counts consecutive failures under concurrency", () => {
  it.effect("a success completing after failures resets the count, whatever the count was when it started", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 5, halfOpenAfter: "1 minute" })
      const release = yield* Deferred.make<void>()
      // A read admitted while the count is 0 (it is in flight, e.g. an MGET)...
      const read = yield* Effect.fork(breaker.execute("get", Deferred.await(release)))
      yield* Effect.yieldNow()
      // ... 4 writes fail meanwhile ...
      for (let i = 0; i < 4; i++) yield* Effect.either(breaker.execute("set", failing))
      expect((yield* breaker.snapshot).consecutiveFailures).toBe(4)
      // ... then the read succeeds: the run of consecutive failures is broken.
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(read)
      const afterSuccess = yield* breaker.snapshot
      // One more failure: 1 consecutive failure, not 5 (the bug: the count stayed at 4 and the breaker opened).
      yield* Effect.either(breaker.execute("set", failing))
      const final = yield* breaker.snapshot
      expect({ afterSuccess: afterSuccess.consecutiveFailures, state: final.state, failures: final.consecutiveFailures })
        .toEqual({ afterSuccess: 0, state: "CLOSED", failures: 1 })
    }))

  it.effect("control: the same sequence when the read is admitted with a non-zero count resets it", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.make({ failureThreshold: 5, halfOpenAfter: "1 minute" })
      yield* Effect.either(breaker.execute("set", failing))
      const release = yield* Deferred.make<void>()
      const read = yield* Effect.fork(breaker.execute("get", Deferred.await(release)))
      yield* Effect.yieldNow()
      for (let i = 0; i < 3; i++) yield* Effect.either(breaker.execute("set", failing))
      expect((yield* breaker.snapshot).consecutiveFailures).toBe(4)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(read)
      expect((yield* breaker.snapshot).consecutiveFailures).toBe(0)
      yield* Effect.either(breaker.execute("set", failing))
      expect(yield* breaker.snapshot).toMatchObject({ state: "CLOSED", consecutiveFailures: 1 })
    }))
})
