/**
 * Scenario `policies` (issue 11): the cost per call of resilience policies inside an Effect program, no Redis.
 *
 * One process, interleaved rounds (`rounds.ts`: a discarded warm-up of every entrant, then every entrant once per
 * round in a rotating order, `gc()` before each measurement on full runs). Each entrant is a sequential loop (one
 * fiber, or one `await` loop) that reads the clock every 1,024 calls only, so the loop does not time itself per call.
 * Each policy is measured right next to its own floor (before it in even rounds, after it in odd ones), so a burst
 * of load from other processes hits both; figures are medians over rounds, `overhead` the median of the per-round
 * differences `ns/call − floor ns/call`, `× floor` the median of the per-round ratios. Both wall time and CPU time
 * (`process.cpuUsage()`, user + system, every thread) per call are reported: on a shared 2-core machine the CPU time
 * is the figure that does not depend on what else runs.
 *
 * - **Closed path** (a call that succeeds at once). Floors: `Effect.succeed(i)` in `Effect.whileLoop` (Steadfast's
 *   rows); `Effect.tryPromise(() => Promise.resolve(i))` (the Promise-based peers measured inside the same Effect
 *   program, and Steadfast around the same inner effect, for an apples-to-apples row); `await Promise.resolve(i)`
 *   (the peers in a plain `await` loop, for reference).
 * - **Open path**: rejections per second once open. Steadfast `isolate` (ISOLATED) and a breaker tripped by failures
 *   (OPEN, break 10 minutes), in `Effect.either(breaker.execute("op", Effect.succeed(i)))`; cockatiel `isolate()`;
 *   opossum `open()`. Floors: `Effect.either(Effect.fail(e))`, `Effect.either(Effect.tryPromise(() =>
 *   Promise.reject(e)))`, `try { await Promise.reject(e) } catch {}`.
 * - **Bulkhead**, capacity never reached (one caller, 10 slots): Steadfast `Bulkhead.execute` vs cockatiel
 *   `bulkhead(10, 0)`, over the same floors as the closed path.
 */
import * as Os from "node:os"
import {
  BreakerRule,
  Bulkhead as SfBulkhead,
  CircuitBreaker as SfBreaker,
  TransientError
} from "@steadfast/resilience"
import {
  bulkhead as cockatielBulkhead,
  circuitBreaker as cockatielBreaker,
  CircuitState,
  ConsecutiveBreaker,
  handleAll,
  SamplingBreaker
} from "cockatiel"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Runtime from "effect/Runtime"
import Opossum from "opossum"
import type { Sample } from "./drive.js"
import { type Entrant, interleave } from "./rounds.js"
import { fmt, log, median, now } from "./util.js"

type Group = "closed" | "open" | "bulkhead"
type Driver = "Effect" | "Effect + Promise" | "await"

export interface PolicyRow {
  readonly group: Group
  readonly name: string
  readonly driver: Driver
  /** How a call is made. */
  readonly how: string
  /** The entrant this row's overhead is measured against (null for a floor). */
  readonly floor: string | null
  /** From elapsed time. */
  readonly wall: Figures
  /** From `process.cpuUsage()` (user + system, every thread of the process). */
  readonly cpu: Figures
  /** Calls that succeeded / were rejected over the whole run (warm-up included), and the policy's state at the end. */
  readonly proof: string
}

export interface PoliciesResult {
  readonly rounds: number
  readonly durationMs: number
  readonly warmupMs: number
  /** `os.loadavg()[0]` at the start, before each round (sampled by each group's first floor), and at the end. */
  readonly loadAverage: { readonly start: number; readonly rounds: ReadonlyArray<number>; readonly end: number }
  readonly rows: ReadonlyArray<PolicyRow>
  readonly targets: ReadonlyArray<{ readonly target: string; readonly measured: string; readonly pass: boolean }>
}

export interface Figures {
  /** Median over rounds. */
  readonly nsPerCall: number
  readonly callsPerSec: number
  /** The floor measured next to this row, median over rounds (NaN for a floor). */
  readonly floorNs: number
  /** Median of per-round (ns/call − floor ns/call), both from the same pair. */
  readonly overheadNs: number
  /** Median of per-round ns/call ÷ floor ns/call. */
  readonly timesFloor: number
  /** ns/call of every measured round, in round order, and the floor's next to it. */
  readonly rounds: ReadonlyArray<number>
  readonly floorRounds: ReadonlyArray<number>
}

interface Timing {
  readonly calls: number
  readonly wallNs: number
  readonly cpuNs: number
}

interface Pair {
  readonly self: Timing
  /** The floor, measured right before or after (absent for a floor). */
  readonly base: Timing | undefined
  readonly load: number
}

interface Counts {
  ok: number
  rejected: number
}

interface Spec {
  readonly group: Group
  readonly name: string
  readonly driver: Driver
  readonly how: string
  readonly floor: string | null
  /** Runs the loop for `durationMs`; answers the number of calls made. */
  readonly run: (durationMs: number, counts: Counts) => Promise<number>
  /** The policy's state after the run, for the proof column. */
  readonly state?: () => string
}

const loadAvg = (): number => Math.round(Os.loadavg()[0]! * 100) / 100

/** One fiber: `Effect.whileLoop` over `op(i)`, the clock read every 1,024 calls; `Left`s count as rejections. */
const effectLoop = (runtime: Runtime.Runtime<never>, op: (i: number) => Effect.Effect<unknown, unknown>) =>
(durationMs: number, counts: Counts): Promise<number> =>
  Runtime.runPromise(runtime)(Effect.suspend(() => {
    let i = 0
    const end = now() + durationMs
    return Effect.whileLoop({
      while: () => (i & 1023) !== 0 || now() < end,
      body: () => op(i++),
      step: (a: unknown) => {
        if (Either.isEither(a) && Either.isLeft(a)) counts.rejected++
        else counts.ok++
      }
    }).pipe(Effect.map(() => i))
  }))

/** A plain `await` loop, the clock read every 1,024 calls; a rejection is caught and counted. */
const awaitLoop = (op: (i: number) => Promise<unknown>) => async (durationMs: number, counts: Counts): Promise<number> => {
  let i = 0
  const end = now() + durationMs
  while ((i & 1023) !== 0 || now() < end) {
    try {
      await op(i++)
      counts.ok++
    } catch {
      counts.rejected++
    }
  }
  return i
}

const sfState = (b: SfBreaker.CircuitBreaker) => () => {
  const s = b.unsafeSnapshot()
  return `${s.state} (${s.rule}, window ${s.window.calls} calls / ${s.window.failures} failures)`
}

const bhState = (b: SfBulkhead.Bulkhead) => () => {
  const s = b.unsafeSnapshot()
  return `running ${s.running}, queued ${s.queued}, rejected ${s.rejected}`
}

const F = {
  effect: "Effect.succeed",
  promise: "Effect.tryPromise(Promise.resolve)",
  await: "await Promise.resolve",
  effectFail: "Effect.either(Effect.fail)",
  promiseReject: "Effect.either(Effect.tryPromise(Promise.reject))",
  awaitReject: "await Promise.reject"
} as const

export const runPolicies = async (options: {
  readonly rounds: number
  readonly durationMs: number
  readonly warmupMs: number
  readonly gcBetween: boolean
  readonly verbose: boolean
  readonly runtime: Runtime.Runtime<never>
}): Promise<PoliciesResult> => {
  const { runtime } = options
  const run = <A>(effect: Effect.Effect<A>): Promise<A> => Runtime.runPromise(runtime)(effect)
  const loadStart = loadAvg()
  const loadRounds: Array<number> = []
  const halfOpenAfter = "10 seconds"

  // --- Steadfast
  const sf = {
    consecutive: await run(SfBreaker.make({ rule: BreakerRule.consecutive(5), halfOpenAfter })),
    countWindow: await run(SfBreaker.make({ rule: BreakerRule.countWindow({ size: 100, failureRatio: 0.5 }), halfOpenAfter })),
    timeWindow: await run(SfBreaker.make({
      rule: BreakerRule.timeWindow({ window: "10 seconds", failureRatio: 0.5, minimumThroughput: 20 }),
      halfOpenAfter
    })),
    slowCalls: await run(SfBreaker.make({ rule: BreakerRule.slowCalls({ threshold: "1 second" }), halfOpenAfter })),
    protect: await run(SfBreaker.make({ rule: BreakerRule.consecutive(5), halfOpenAfter })),
    onPromise: await run(SfBreaker.make({ rule: BreakerRule.consecutive(5), halfOpenAfter })),
    timeWindowOnPromise: await run(SfBreaker.make({
      rule: BreakerRule.timeWindow({ window: "10 seconds", failureRatio: 0.5, minimumThroughput: 20 }),
      halfOpenAfter
    })),
    isolated: await run(SfBreaker.make({ rule: BreakerRule.consecutive(5), halfOpenAfter })),
    tripped: await run(SfBreaker.make({ rule: BreakerRule.consecutive(5), halfOpenAfter: "10 minutes" }))
  }
  await run(sf.isolated.isolate)
  const failing = Effect.fail(new TransientError({ operation: "op", reason: "connection_closed", message: "bench: tripping the breaker" }))
  for (let i = 0; i < 5; i++) await run(Effect.either(sf.tripped.execute("op", failing)))
  if (sf.tripped.unsafeState() !== "OPEN") throw new Error(`policies: the tripped breaker is ${sf.tripped.unsafeState()}, not OPEN`)
  if (sf.isolated.unsafeState() !== "ISOLATED") throw new Error("policies: isolate did not isolate")
  const sfBulkhead = await run(SfBulkhead.make({ maxConcurrent: 10 }))
  const sfBulkheadOnPromise = await run(SfBulkhead.make({ maxConcurrent: 10 }))

  // --- cockatiel 3.2.1: one policy per row (a policy's counters are its own)
  const ck = () => ({
    consecutive: cockatielBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) }),
    // minimumRps 2 over 10 s = 20 calls, Steadfast's timeWindow minimumThroughput
    sampling: cockatielBreaker(handleAll, {
      halfOpenAfter: 10_000,
      breaker: new SamplingBreaker({ threshold: 0.5, duration: 10_000, minimumRps: 2 })
    }),
    bulkhead: cockatielBulkhead(10, 0)
  })
  const ckEffect = ck()
  const ckAwait = ck()
  const ckIsolatedEffect = cockatielBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) })
  const ckIsolatedAwait = cockatielBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) })
  ckIsolatedEffect.isolate()
  ckIsolatedAwait.isolate()
  const ckState = (p: { readonly state: CircuitState }) => () => CircuitState[p.state]

  // --- opossum 9.0.0: defaults (timeout 10 s: a timer per call), and timeout off (where its time goes)
  const value = <A>(a: A): Promise<A> => Promise.resolve(a)
  const op = () => ({
    defaults: new Opossum(value),
    noTimeout: new Opossum(value, { timeout: false })
  })
  const opEffect = op()
  const opAwait = op()
  // resetTimeout 10 minutes: `open()` must not half-open during the run
  const opOpenEffect = new Opossum(value, { resetTimeout: 600_000 })
  const opOpenAwait = new Opossum(value, { resetTimeout: 600_000 })
  opOpenEffect.open()
  opOpenAwait.open()
  const opState = (b: Opossum) => () => (b.opened ? "open" : b.halfOpen ? "halfOpen" : "closed")
  const allOpossum = [opEffect.defaults, opEffect.noTimeout, opAwait.defaults, opAwait.noTimeout, opOpenEffect, opOpenAwait]

  const rejection = new Error("bench: rejected")
  const E = (f: (i: number) => Effect.Effect<unknown, unknown>) => effectLoop(runtime, f)
  const P = <A>(f: (i: number) => PromiseLike<A>) => (i: number) => Effect.tryPromise(() => f(i))

  const closed: Array<Spec> = [
    { group: "closed", name: F.effect, driver: "Effect", how: "Effect.whileLoop over Effect.succeed(i)", floor: null, run: E((i) => Effect.succeed(i)) },
    ...(
      [
        ["consecutive(5)", sf.consecutive],
        ["countWindow(100, 0.5)", sf.countWindow],
        ["timeWindow(10 s, 0.5, min 20)", sf.timeWindow],
        ["slowCalls(1 s)", sf.slowCalls]
      ] as const
    ).map(([rule, b]): Spec => ({
      group: "closed",
      name: `steadfast ${rule}`,
      driver: "Effect",
      how: `breaker.execute("op", Effect.succeed(i))`,
      floor: F.effect,
      run: E((i) => b.execute("op", Effect.succeed(i))),
      state: sfState(b)
    })),
    {
      group: "closed",
      name: "steadfast protect, consecutive(5)",
      driver: "Effect",
      how: "Effect.succeed(i).pipe(CircuitBreaker.protect(breaker))",
      floor: F.effect,
      run: E((i) => Effect.succeed(i).pipe(SfBreaker.protect(sf.protect))),
      state: sfState(sf.protect)
    },
    { group: "closed", name: F.promise, driver: "Effect + Promise", how: "Effect.tryPromise(() => Promise.resolve(i))", floor: null, run: E(P((i) => Promise.resolve(i))) },
    {
      group: "closed",
      name: "steadfast consecutive(5) around tryPromise",
      driver: "Effect + Promise",
      how: `breaker.execute("op", Effect.tryPromise(() => Promise.resolve(i)))`,
      floor: F.promise,
      run: E((i) => sf.onPromise.execute("op", Effect.tryPromise(() => Promise.resolve(i)))),
      state: sfState(sf.onPromise)
    },
    {
      group: "closed",
      name: "steadfast timeWindow(10 s, 0.5, min 20) around tryPromise",
      driver: "Effect + Promise",
      how: `breaker.execute("op", Effect.tryPromise(() => Promise.resolve(i)))`,
      floor: F.promise,
      run: E((i) => sf.timeWindowOnPromise.execute("op", Effect.tryPromise(() => Promise.resolve(i)))),
      state: sfState(sf.timeWindowOnPromise)
    },
    {
      group: "closed",
      name: "cockatiel ConsecutiveBreaker(5)",
      driver: "Effect + Promise",
      how: "Effect.tryPromise(() => policy.execute(() => i))",
      floor: F.promise,
      run: E(P((i) => ckEffect.consecutive.execute(() => i))),
      state: ckState(ckEffect.consecutive)
    },
    {
      group: "closed",
      name: "cockatiel SamplingBreaker(0.5, 10 s, 2 rps)",
      driver: "Effect + Promise",
      how: "Effect.tryPromise(() => policy.execute(() => i))",
      floor: F.promise,
      run: E(P((i) => ckEffect.sampling.execute(() => i))),
      state: ckState(ckEffect.sampling)
    },
    {
      group: "closed",
      name: "opossum defaults",
      driver: "Effect + Promise",
      how: "Effect.tryPromise(() => breaker.fire(i))",
      floor: F.promise,
      run: E(P((i) => opEffect.defaults.fire(i))),
      state: opState(opEffect.defaults)
    },
    {
      group: "closed",
      name: "opossum timeout: false",
      driver: "Effect + Promise",
      how: "Effect.tryPromise(() => breaker.fire(i))",
      floor: F.promise,
      run: E(P((i) => opEffect.noTimeout.fire(i))),
      state: opState(opEffect.noTimeout)
    },
    { group: "closed", name: F.await, driver: "await", how: "await Promise.resolve(i)", floor: null, run: awaitLoop((i) => Promise.resolve(i)) },
    {
      group: "closed",
      name: "cockatiel ConsecutiveBreaker(5)",
      driver: "await",
      how: "await policy.execute(() => i)",
      floor: F.await,
      run: awaitLoop((i) => ckAwait.consecutive.execute(() => i)),
      state: ckState(ckAwait.consecutive)
    },
    {
      group: "closed",
      name: "cockatiel SamplingBreaker(0.5, 10 s, 2 rps)",
      driver: "await",
      how: "await policy.execute(() => i)",
      floor: F.await,
      run: awaitLoop((i) => ckAwait.sampling.execute(() => i)),
      state: ckState(ckAwait.sampling)
    },
    {
      group: "closed",
      name: "opossum defaults",
      driver: "await",
      how: "await breaker.fire(i)",
      floor: F.await,
      run: awaitLoop((i) => opAwait.defaults.fire(i)),
      state: opState(opAwait.defaults)
    },
    {
      group: "closed",
      name: "opossum timeout: false",
      driver: "await",
      how: "await breaker.fire(i)",
      floor: F.await,
      run: awaitLoop((i) => opAwait.noTimeout.fire(i)),
      state: opState(opAwait.noTimeout)
    },
    // Bulkheads: measured in the same rounds as the closed path, against the same floors.
    {
      group: "bulkhead",
      name: "steadfast Bulkhead(10)",
      driver: "Effect",
      how: "bulkhead.execute(Effect.succeed(i))",
      floor: F.effect,
      run: E((i) => sfBulkhead.execute(Effect.succeed(i))),
      state: bhState(sfBulkhead)
    },
    {
      group: "bulkhead",
      name: "steadfast Bulkhead(10) around tryPromise",
      driver: "Effect + Promise",
      how: "bulkhead.execute(Effect.tryPromise(() => Promise.resolve(i)))",
      floor: F.promise,
      run: E((i) => sfBulkheadOnPromise.execute(Effect.tryPromise(() => Promise.resolve(i)))),
      state: bhState(sfBulkheadOnPromise)
    },
    {
      group: "bulkhead",
      name: "cockatiel bulkhead(10, 0)",
      driver: "Effect + Promise",
      how: "Effect.tryPromise(() => bulkhead.execute(() => i))",
      floor: F.promise,
      run: E(P((i) => ckEffect.bulkhead.execute(() => i))),
      state: () => `executionSlots ${ckEffect.bulkhead.executionSlots}, queueSlots ${ckEffect.bulkhead.queueSlots}`
    },
    {
      group: "bulkhead",
      name: "cockatiel bulkhead(10, 0)",
      driver: "await",
      how: "await bulkhead.execute(() => i)",
      floor: F.await,
      run: awaitLoop((i) => ckAwait.bulkhead.execute(() => i)),
      state: () => `executionSlots ${ckAwait.bulkhead.executionSlots}, queueSlots ${ckAwait.bulkhead.queueSlots}`
    }
  ]

  const open: Array<Spec> = [
    {
      group: "open",
      name: F.effectFail,
      driver: "Effect",
      how: "Effect.either(Effect.fail(e))",
      floor: null,
      run: E(() => Effect.either(Effect.fail(rejection)))
    },
    {
      group: "open",
      name: "steadfast isolate",
      driver: "Effect",
      how: `Effect.either(breaker.execute("op", Effect.succeed(i))), ISOLATED`,
      floor: F.effectFail,
      run: E((i) => Effect.either(sf.isolated.execute("op", Effect.succeed(i)))),
      state: sfState(sf.isolated)
    },
    {
      group: "open",
      name: "steadfast OPEN (tripped)",
      driver: "Effect",
      how: `Effect.either(breaker.execute("op", Effect.succeed(i))), OPEN after 5 failures, break 10 min`,
      floor: F.effectFail,
      run: E((i) => Effect.either(sf.tripped.execute("op", Effect.succeed(i)))),
      state: sfState(sf.tripped)
    },
    {
      group: "open",
      name: F.promiseReject,
      driver: "Effect + Promise",
      how: "Effect.either(Effect.tryPromise(() => Promise.reject(e)))",
      floor: null,
      run: E(() => Effect.either(Effect.tryPromise(() => Promise.reject(rejection))))
    },
    {
      group: "open",
      name: "cockatiel isolate()",
      driver: "Effect + Promise",
      how: "Effect.either(Effect.tryPromise(() => policy.execute(() => i)))",
      floor: F.promiseReject,
      run: E((i) => Effect.either(Effect.tryPromise(() => ckIsolatedEffect.execute(() => i)))),
      state: ckState(ckIsolatedEffect)
    },
    {
      group: "open",
      name: "opossum open()",
      driver: "Effect + Promise",
      how: "Effect.either(Effect.tryPromise(() => breaker.fire(i)))",
      floor: F.promiseReject,
      run: E((i) => Effect.either(Effect.tryPromise(() => opOpenEffect.fire(i)))),
      state: opState(opOpenEffect)
    },
    {
      group: "open",
      name: F.awaitReject,
      driver: "await",
      how: "try { await Promise.reject(e) } catch {}",
      floor: null,
      run: awaitLoop(() => Promise.reject(rejection))
    },
    {
      group: "open",
      name: "cockatiel isolate()",
      driver: "await",
      how: "try { await policy.execute(() => i) } catch {}",
      floor: F.awaitReject,
      run: awaitLoop((i) => ckIsolatedAwait.execute(() => i)),
      state: ckState(ckIsolatedAwait)
    },
    {
      group: "open",
      name: "opossum open()",
      driver: "await",
      how: "try { await breaker.fire(i) } catch {}",
      floor: F.awaitReject,
      run: awaitLoop((i) => opOpenAwait.fire(i)),
      state: opState(opOpenAwait)
    }
  ]

  const id = (s: Spec) => `${s.name} [${s.driver}]`
  const counts = new Map<string, Counts>()
  /** Every measurement of an entrant, warm-up first (interleave measures every entrant once to warm up). */
  const measured = new Map<string, Array<Pair>>()
  const floors = new Map<string, Spec>([...closed, ...open].filter((s) => s.floor === null).map((s) => [s.name, s]))
  const once = async (s: Spec, durationMs: number): Promise<Timing> => {
    const c = counts.get(id(s)) ?? { ok: 0, rejected: 0 }
    counts.set(id(s), c)
    const cpu0 = process.cpuUsage()
    const t0 = now()
    const calls = await s.run(durationMs, c)
    const wallMs = now() - t0
    const cpu = process.cpuUsage(cpu0)
    return { calls, wallNs: (wallMs * 1e6) / calls, cpuNs: ((cpu.user + cpu.system) * 1e3) / calls }
  }
  const entrant = (s: Spec, samplesLoad: boolean): Entrant<"call"> => ({
    name: id(s),
    measure: async (_cell, durationMs) => {
      const list = measured.get(id(s)) ?? []
      measured.set(id(s), list)
      const floor = s.floor === null ? undefined : floors.get(s.floor)
      if (s.floor !== null && floor === undefined) throw new Error(`policies: no floor ${s.floor}`)
      // The floor runs right next to the policy, first or second in turn, so a burst of load hits both.
      let self: Timing
      let base: Timing | undefined
      if (floor === undefined) self = await once(s, durationMs)
      else if (list.length % 2 === 0) {
        base = await once(floor, durationMs)
        self = await once(s, durationMs)
      } else {
        self = await once(s, durationMs)
        base = await once(floor, durationMs)
      }
      list.push({ self, base, load: loadAvg() })
      if (options.verbose) {
        log(`  ${id(s)}: ${fmt(self.wallNs)} ns/call wall, ${fmt(self.cpuNs)} CPU${base ? `; floor ${fmt(base.wallNs)} / ${fmt(base.cpuNs)}` : ""}; load ${loadAvg()}`)
      }
      const seconds = (self.wallNs * self.calls) / 1e9
      return { ops: self.calls, seconds, opsPerSec: 1e9 / self.wallNs, p50Ms: Number.NaN, p99Ms: Number.NaN, empty: 0, errors: 0 } satisfies Sample
    },
    ...(samplesLoad
      ? {
        watch: async () => {
          loadRounds.push(loadAvg())
          return async () => {}
        }
      }
      : {})
  })

  const config = {
    cells: ["call"] as const,
    cellName: () => "call",
    rounds: options.rounds,
    durationMs: options.durationMs,
    warmupMs: options.warmupMs,
    gcBetween: options.gcBetween,
    verbose: false
  }
  const rows: Array<PolicyRow> = []
  for (const [label, specs] of [["policies closed path + bulkhead", closed], ["policies open path", open]] as const) {
    await interleave({ ...config, label }, specs.map((s, i) => entrant(s, i === 0)))
    for (const s of specs) {
      const pairs = measured.get(id(s))!.slice(1) // [0] is the warm-up
      const c = counts.get(id(s))!
      const figures = (pick: (t: Timing) => number): Figures => ({
        nsPerCall: median(pairs.map((p) => pick(p.self))),
        callsPerSec: median(pairs.map((p) => 1e9 / pick(p.self))),
        floorNs: s.floor === null ? Number.NaN : median(pairs.map((p) => pick(p.base!))),
        overheadNs: s.floor === null ? Number.NaN : median(pairs.map((p) => pick(p.self) - pick(p.base!))),
        timesFloor: s.floor === null ? Number.NaN : median(pairs.map((p) => pick(p.self) / pick(p.base!))),
        rounds: pairs.map((p) => Math.round(pick(p.self) * 10) / 10),
        floorRounds: s.floor === null ? [] : pairs.map((p) => Math.round(pick(p.base!) * 10) / 10)
      })
      rows.push({
        group: s.group,
        name: s.name,
        driver: s.driver,
        how: s.how,
        floor: s.floor,
        wall: figures((t) => t.wallNs),
        cpu: figures((t) => t.cpuNs),
        proof: `${fmt(c.ok)} ok, ${fmt(c.rejected)} rejected${s.state ? `; ${s.state()}` : ""}`
      })
    }
  }
  for (const b of allOpossum) b.shutdown()

  // Sanity: every closed / bulkhead call succeeded, every open-path call was rejected.
  for (const s of [...closed, ...open]) {
    const c = counts.get(id(s))!
    const wrong = s.group === "open" ? c.ok : c.rejected
    if (wrong !== 0) throw new Error(`policies: ${id(s)}: ${wrong} calls took the wrong path (${JSON.stringify(c)})`)
  }

  const targets: Array<{ target: string; measured: string; pass: boolean }> = []
  for (const row of rows.filter((r) => r.group === "closed" && r.driver === "Effect" && r.name.startsWith("steadfast"))) {
    targets.push({
      target: `closed path adds < 1 µs per call over a bare Effect (CPU time): ${row.name}`,
      measured: `CPU +${fmt(row.cpu.overheadNs)} ns (${fmt(row.cpu.nsPerCall)} vs ${fmt(row.cpu.floorNs)} ns); wall +${fmt(row.wall.overheadNs)} ns (${
        row.wall.overheadNs < 1000 ? "under" : "over"
      } 1 µs on wall time too)`,
      pass: row.cpu.overheadNs < 1000
    })
  }
  for (const row of rows.filter((r) => r.group === "open" && r.name.startsWith("steadfast"))) {
    targets.push({
      target: `open path > 1,000,000 rejections/s (per CPU-second): ${row.name}`,
      measured: `${fmt(row.cpu.callsPerSec)} per CPU-second; ${fmt(row.wall.callsPerSec)} per wall-clock second (${
        row.wall.callsPerSec > 1_000_000 ? "above" : "below"
      } 1 M on wall time)`,
      pass: row.cpu.callsPerSec > 1_000_000
    })
  }
  return {
    rounds: options.rounds,
    durationMs: options.durationMs,
    warmupMs: options.warmupMs,
    loadAverage: { start: loadStart, rounds: loadRounds, end: loadAvg() },
    rows,
    targets
  }
}

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string =>
  [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n")

const signed = (v: number) => (Number.isFinite(v) ? `${v >= 0 ? "+" : ""}${fmt(v)}` : "—")
const times = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : "—")

export const policiesMarkdown = (r: PoliciesResult): string => {
  const la = r.loadAverage
  const header = (open: boolean) => [
    "policy",
    "driver",
    open ? "CPU ns/rejection" : "CPU ns/call",
    "overhead (CPU ns)",
    "× floor (CPU)",
    open ? "wall ns/rejection" : "wall ns/call",
    open ? "rejections/s (wall)" : "calls/s (wall)",
    "overhead (wall ns)",
    "× floor (wall)",
    "floor",
    "proof (whole run)"
  ]
  const line = (row: PolicyRow) => [
    row.floor === null ? `**${row.name}** (floor)` : row.name,
    row.driver,
    fmt(row.cpu.nsPerCall),
    signed(row.cpu.overheadNs),
    times(row.cpu.timesFloor),
    fmt(row.wall.nsPerCall),
    fmt(row.wall.callsPerSec),
    signed(row.wall.overheadNs),
    times(row.wall.timesFloor),
    row.floor ?? "—",
    row.proof
  ]
  const group = (g: Group) => r.rows.filter((row) => row.group === g || (g === "bulkhead" && row.group === "closed" && row.floor === null))
  const hows = r.rows.filter((row, i) => r.rows.findIndex((o) => o.name === row.name && o.driver === row.driver) === i)
  return [
    `### Policies (issue 11): cost per call, ${r.rounds} interleaved rounds of ${r.durationMs} ms, medians`,
    "",
    `One caller (one fiber in \`Effect.whileLoop\`, or one \`await\` loop), the clock read every 1,024 calls. Every policy is measured right next to its floor (alternately before and after it) in each round; overhead and × floor are medians over rounds of the per-pair difference and ratio. CPU ns = \`process.cpuUsage()\` (user + system, all threads) per call, the cost that does not depend on what else the machine runs; wall ns = elapsed time per call. Load average (1 min): ${la.start} at the start, ${la.rounds.join(" / ")} at the rounds, ${la.end} at the end (2 cores: near or above 2, the benchmark shared the CPU and wall figures are inflated).`,
    "",
    "#### Closed path (a call that succeeds at once)",
    "",
    table(header(false), group("closed").map(line)),
    "",
    "#### Open path (rejections once open)",
    "",
    table(header(true), group("open").map(line)),
    "",
    "#### Bulkhead (capacity never reached: 1 caller, 10 slots)",
    "",
    table(header(false), group("bulkhead").map(line)),
    "",
    "How each row calls: " + hows.map((row) => `${row.name} [${row.driver}]: \`${row.how}\``).join("; ") + ".",
    "",
    "#### Targets (issue 11)",
    "",
    ...r.targets.map((t) => `- ${t.pass ? "met" : "NOT MET"}: ${t.target} — ${t.measured}`),
    ""
  ].join("\n")
}
