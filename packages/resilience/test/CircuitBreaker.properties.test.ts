/**
 * Property-based tests of the breaker's invariants (fast-check, through `@effect/vitest`'s `it.effect.prop`: every
 * run gets its own `TestClock`, starting at 0).
 *
 * - Admission, with many calls held at once: generated interleavings of admissions (several callers at a time),
 *   outcomes in any order and clock advances, through the permit API `execute` is built on. It never admits a call
 *   while OPEN before its break ends, and always admits one once it has ended; a HALF_OPEN round never has more than
 *   N probes; an outcome settled in a later round changes nothing.
 * - Sequential calls through `execute`: the state after every call (and whether the call ran, and the time left
 *   while OPEN) is what a small reference model of the documented contract predicts, for the consecutive and the
 *   count-window rules, with N probes, a success ratio and optional exponential breaks.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import { BreakerRule, CircuitBreaker, CircuitOpenError, PermanentError, TransientError } from "@steadfast/resilience"

const transient = new TransientError({ operation: "get", reason: "connection_refused", message: "refused" })
const permanent = new PermanentError({ operation: "get", reason: "wrong_type", message: "WRONGTYPE" })

const HALF_OPEN_AFTER = 1_000
const BACKOFF_MAX = 4_000

// ---------------------------------------------------------------------------------------------------------------
// Admission invariants under interleavings
// ---------------------------------------------------------------------------------------------------------------

type Op =
  | { readonly _tag: "advance"; readonly millis: number }
  /** `callers` callers ask for admission, one after the other, before anything settles. */
  | { readonly _tag: "admit"; readonly callers: number }
  /** The held permit at `index` (modulo how many are held) ends with `outcome`. */
  | { readonly _tag: "settle"; readonly index: number; readonly outcome: "S" | "F" | "P" | "R" }

const opArb: FastCheck.Arbitrary<Op> = FastCheck.oneof(
  FastCheck.record({ _tag: FastCheck.constant("advance" as const), millis: FastCheck.integer({ min: 0, max: 2_500 }) }),
  FastCheck.record({ _tag: FastCheck.constant("admit" as const), callers: FastCheck.integer({ min: 1, max: 6 }) }),
  FastCheck.record({
    _tag: FastCheck.constant("settle" as const),
    index: FastCheck.nat(),
    outcome: FastCheck.constantFrom("S" as const, "F" as const, "P" as const, "R" as const)
  }),
  FastCheck.record({
    _tag: FastCheck.constant("settle" as const),
    index: FastCheck.nat(),
    outcome: FastCheck.constant("F" as const)
  })
)

const configArb = FastCheck.record({
  threshold: FastCheck.integer({ min: 1, max: 3 }),
  probes: FastCheck.integer({ min: 1, max: 4 }),
  successTenths: FastCheck.integer({ min: 1, max: 10 }),
  backoff: FastCheck.boolean(),
  /** The probe timeout, or none (the 30 s default is never reached by these runs). */
  probeTimeout: FastCheck.option(FastCheck.integer({ min: 500, max: 3_000 }), { nil: undefined })
})

interface Held {
  readonly permit: CircuitBreaker.Permit
  /** How many transitions had been seen when it was admitted. */
  readonly round: number
  /** The state right after its admission (HALF_OPEN: it is a probe). */
  readonly state: CircuitBreaker.State
}

describe("CircuitBreaker properties: admission", () => {
  it.scoped.prop(
    "never admits while OPEN before its break ends (and always once it has); a HALF_OPEN round never holds more than N probes; late outcomes change nothing",
    { config: configArb, ops: FastCheck.array(opArb, { minLength: 1, maxLength: 60 }) },
    ({ config, ops }) =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          failureThreshold: config.threshold,
          halfOpenAfter: Duration.millis(HALF_OPEN_AFTER),
          halfOpen: {
            probes: config.probes,
            successRatio: config.successTenths / 10,
            timeout: config.probeTimeout === undefined ? undefined : Duration.millis(config.probeTimeout)
          },
          backoff: config.backoff ? { max: Duration.millis(BACKOFF_MAX) } : undefined
        })
        const changes = yield* breaker.subscribe
        let round = 0
        let openedAt = Number.NaN
        let breakMillis = Number.NaN
        let held: Array<Held> = []
        /** Reads the transitions published so far; remembers when the breaker last opened and for how long. */
        const observe = Effect.gen(function*() {
          for (const change of Chunk.toReadonlyArray(yield* Queue.takeAll(changes))) {
            round++
            if (change.to === "OPEN") {
              openedAt = change.at
              breakMillis = breaker.unsafeSnapshot().breakMillis
              expect(breakMillis).toBeGreaterThanOrEqual(HALF_OPEN_AFTER)
              expect(breakMillis).toBeLessThanOrEqual(config.backoff ? BACKOFF_MAX : HALF_OPEN_AFTER)
            }
          }
        })
        const probesInFlight = () => held.filter((h) => h.round === round && h.state === "HALF_OPEN").length

        for (const op of ops) {
          if (op._tag === "advance") {
            yield* TestClock.adjust(Duration.millis(op.millis))
            continue
          }
          if (op._tag === "admit") {
            for (let i = 0; i < op.callers; i++) {
              const now = yield* Clock.currentTimeMillis
              const before = breaker.unsafeState()
              const answer = breaker.unsafeAdmit("get")
              yield* observe
              if (before === "OPEN") {
                const due = now >= openedAt + breakMillis
                expect(CircuitBreaker.isPermit(answer)).toBe(due)
                if (!CircuitBreaker.isPermit(answer)) {
                  const error = yield* Effect.flip(answer)
                  expect(error).toBeInstanceOf(CircuitOpenError)
                  expect(Duration.toMillis(error.retryAfter)).toBe(openedAt + breakMillis - now)
                }
              }
              if (CircuitBreaker.isPermit(answer)) {
                const after = breaker.unsafeState()
                expect(after === "CLOSED" || after === "HALF_OPEN").toBe(true)
                held.push({ permit: answer, round, state: after })
              }
              expect(probesInFlight()).toBeLessThanOrEqual(config.probes)
              const probes = breaker.unsafeSnapshot().probes
              expect(probes.admitted).toBeLessThanOrEqual(config.probes)
              expect(probes.succeeded + probes.failed).toBeLessThanOrEqual(probes.admitted)
            }
            continue
          }
          if (held.length === 0) continue
          const index = op.index % held.length
          const settled = held[index]!
          held = held.filter((_, i) => i !== index)
          const stale = settled.round !== round
          const before = JSON.stringify(breaker.unsafeSnapshot())
          if (op.outcome === "S") breaker.unsafeSucceed(settled.permit, 0)
          else if (op.outcome === "F") breaker.unsafeFail(settled.permit, transient, 0)
          else if (op.outcome === "P") breaker.unsafeFail(settled.permit, permanent, 0)
          else breaker.unsafeRelease(settled.permit)
          yield* observe
          // An outcome from an earlier round (a state the breaker has left since) is ignored entirely.
          if (stale) expect(JSON.stringify(breaker.unsafeSnapshot())).toBe(before)
          expect(probesInFlight()).toBeLessThanOrEqual(config.probes)
        }
      }),
    { fastCheck: { numRuns: 150 } }
  )

  it.effect.prop(
    "many fibers through execute: however the fibers interleave, a HALF_OPEN round runs at most N probes at once",
    {
      probes: FastCheck.integer({ min: 1, max: 5 }),
      fibers: FastCheck.array(
        FastCheck.record({ delay: FastCheck.integer({ min: 0, max: 4 }), steps: FastCheck.integer({ min: 0, max: 4 }), outcome: FastCheck.constantFrom("S", "F", "D") }),
        { minLength: 1, maxLength: 40 }
      )
    },
    ({ fibers, probes }) =>
      Effect.gen(function*() {
        // successRatio 1 / probes: the first success closes it; every probe has to fail to re-open it.
        const breaker = yield* CircuitBreaker.make({
          failureThreshold: 1,
          halfOpenAfter: "1 second",
          halfOpen: { probes, successRatio: 1 / probes }
        })
        yield* Effect.either(breaker.execute("get", Effect.fail(transient)))
        yield* TestClock.adjust("1 second")
        const running = yield* Ref.make(0)
        const maxRunning = yield* Ref.make(0)
        const ran = yield* Ref.make(0)
        yield* Effect.forEach(
          fibers,
          ({ delay, outcome, steps }) =>
            Effect.zipRight(
              Effect.repeatN(Effect.yieldNow(), delay),
              Effect.exit(breaker.execute(
                "get",
                Effect.gen(function*() {
                  const isProbe = breaker.unsafeState() === "HALF_OPEN"
                  yield* Ref.update(ran, (n) => n + 1)
                  if (isProbe) {
                    const n = yield* Ref.updateAndGet(running, (k) => k + 1)
                    yield* Ref.update(maxRunning, (m) => Math.max(m, n))
                  }
                  yield* Effect.repeatN(Effect.yieldNow(), steps)
                  if (isProbe) yield* Ref.update(running, (k) => k - 1)
                  return yield* outcome === "S" ? Effect.succeed("ok") : outcome === "F" ? Effect.fail(transient) : Effect.die("bug")
                })
              ))
            ),
          { concurrency: "unbounded", discard: true }
        )
        expect(yield* Ref.get(maxRunning)).toBeLessThanOrEqual(probes)
        expect(yield* Ref.get(ran)).toBeGreaterThanOrEqual(1)
      }),
    { fastCheck: { numRuns: 150 } }
  )
})

// ---------------------------------------------------------------------------------------------------------------
// The state predicted by a reference model, for sequential calls
// ---------------------------------------------------------------------------------------------------------------

type Step =
  | { readonly _tag: "advance"; readonly millis: number }
  /** S success, F counted failure, P uncounted failure, D defect. */
  | { readonly _tag: "call"; readonly outcome: "S" | "F" | "P" | "D" }

const stepArb: FastCheck.Arbitrary<Step> = FastCheck.oneof(
  { weight: 1, arbitrary: FastCheck.record({ _tag: FastCheck.constant("advance" as const), millis: FastCheck.integer({ min: 0, max: 2_500 }) }) },
  {
    weight: 3,
    arbitrary: FastCheck.record({
      _tag: FastCheck.constant("call" as const),
      outcome: FastCheck.constantFrom("S" as const, "F" as const, "F" as const, "P" as const, "D" as const)
    })
  }
)

type RuleSpec =
  | { readonly _tag: "consecutive"; readonly threshold: number }
  | { readonly _tag: "countWindow"; readonly size: number; readonly ratioTenths: number; readonly minimumCalls: number }

const ruleArb: FastCheck.Arbitrary<RuleSpec> = FastCheck.oneof(
  FastCheck.record({ _tag: FastCheck.constant("consecutive" as const), threshold: FastCheck.integer({ min: 1, max: 5 }) }),
  FastCheck.integer({ min: 1, max: 8 }).chain((size) =>
    FastCheck.record({
      _tag: FastCheck.constant("countWindow" as const),
      size: FastCheck.constant(size),
      ratioTenths: FastCheck.integer({ min: 1, max: 10 }),
      minimumCalls: FastCheck.integer({ min: 1, max: size })
    })
  )
)

interface ModelConfig {
  readonly rule: RuleSpec
  readonly probes: number
  readonly successTenths: number
  readonly backoffResetAfter: number | undefined
}

/** The documented contract, written as plainly as possible. Calls take no time. */
const makeModel = (config: ModelConfig) => {
  const successesToClose = Math.max(1, Math.ceil((config.successTenths * config.probes) / 10))
  let state: "CLOSED" | "OPEN" | "HALF_OPEN" = "CLOSED"
  let until = 0
  let successes = 0
  let failures = 0
  /** consecutive: failures in a row; countWindow: the counted outcomes since the last close (true = failed). */
  let inARow = 0
  let outcomes: Array<boolean> = []
  let streak = 0
  let closedAt = Number.NEGATIVE_INFINITY

  const trips = (failed: boolean): boolean => {
    const rule = config.rule
    if (rule._tag === "consecutive") {
      inARow = failed ? inARow + 1 : 0
      return inARow >= rule.threshold
    }
    outcomes = [...outcomes, failed].slice(-rule.size)
    const failedCount = outcomes.filter((o) => o).length
    // failures / calls >= ratioTenths / 10, in integers
    return failed && outcomes.length >= rule.minimumCalls && failedCount * 10 >= rule.ratioTenths * outcomes.length
  }
  const open = (now: number, fromClosed: boolean) => {
    let breakMillis = HALF_OPEN_AFTER
    if (config.backoffResetAfter !== undefined) {
      if (fromClosed && now - closedAt >= config.backoffResetAfter) streak = 0
      breakMillis = Math.min(BACKOFF_MAX, HALF_OPEN_AFTER * 2 ** streak)
      streak++
    }
    state = "OPEN"
    until = now + breakMillis
  }
  const close = (now: number) => {
    state = "CLOSED"
    inARow = 0
    outcomes = []
    closedAt = now
  }
  /** Answers whether the call runs. */
  const call = (outcome: "S" | "F" | "P" | "D", now: number): boolean => {
    if (state === "OPEN") {
      if (now < until) return false
      state = "HALF_OPEN"
      successes = 0
      failures = 0
    }
    if (state === "CLOSED") {
      if (outcome === "S" || outcome === "F") {
        if (trips(outcome === "F")) open(now, true)
      }
      return true
    }
    // HALF_OPEN, calls one at a time: each is a probe; P and D give the slot back.
    if (outcome === "S") successes++
    if (outcome === "F") failures++
    if (successes >= successesToClose) close(now)
    else if (failures > config.probes - successesToClose) open(now, false)
    return true
  }
  return { call, state: () => state, retryAfter: (now: number) => until - now }
}

const toRule = (spec: RuleSpec): BreakerRule.Rule =>
  spec._tag === "consecutive"
    ? BreakerRule.consecutive(spec.threshold)
    : BreakerRule.countWindow({ size: spec.size, failureRatio: spec.ratioTenths / 10, minimumCalls: spec.minimumCalls })

describe("CircuitBreaker properties: the state a sequence of outcomes lands in", () => {
  it.effect.prop(
    "consecutive and countWindow rules, N probes, success ratio, optional backoff: every call as the reference model predicts",
    {
      config: FastCheck.record({
        rule: ruleArb,
        probes: FastCheck.integer({ min: 1, max: 4 }),
        successTenths: FastCheck.integer({ min: 1, max: 10 }),
        backoffResetAfter: FastCheck.option(FastCheck.integer({ min: 1, max: 6_000 }), { nil: undefined })
      }),
      steps: FastCheck.array(stepArb, { minLength: 1, maxLength: 60 })
    },
    ({ config, steps }) =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.make({
          rule: toRule(config.rule),
          halfOpenAfter: Duration.millis(HALF_OPEN_AFTER),
          halfOpen: { probes: config.probes, successRatio: config.successTenths / 10 },
          backoff: config.backoffResetAfter === undefined
            ? undefined
            : { max: Duration.millis(BACKOFF_MAX), resetAfter: Duration.millis(config.backoffResetAfter) }
        })
        const model = makeModel(config)
        const ran = yield* Ref.make(false)
        for (const [i, step] of steps.entries()) {
          if (step._tag === "advance") {
            yield* TestClock.adjust(Duration.millis(step.millis))
            continue
          }
          const now = yield* Clock.currentTimeMillis
          yield* Ref.set(ran, false)
          const outcome: Effect.Effect<string, TransientError | PermanentError> = step.outcome === "S"
            ? Effect.succeed("ok")
            : step.outcome === "F"
            ? Effect.fail(transient)
            : step.outcome === "P"
            ? Effect.fail(permanent)
            : Effect.die("bug")
          yield* Effect.exit(breaker.execute("get", Effect.zipRight(Ref.set(ran, true), outcome)))
          const expectedRan = model.call(step.outcome, now)
          const snapshot = yield* breaker.snapshot
          const where = `step ${i} (${step.outcome} at ${now} ms)`
          expect({ where, ran: yield* Ref.get(ran), state: snapshot.state }).toStrictEqual({
            where,
            ran: expectedRan,
            state: model.state()
          })
          if (snapshot.state === "OPEN") expect({ where, retryAfter: snapshot.retryAfterMillis }).toStrictEqual({ where, retryAfter: model.retryAfter(now) })
        }
      }),
    { fastCheck: { numRuns: 200 } }
  )
})
