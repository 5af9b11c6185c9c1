/**
 * The ladder: GET 100 B (`LADDER_BYTES` for another size) at concurrency 1 and 64 against the shared Redis, from a bare ioredis call up to
 * `ResilientCache.get`, one rung at a time, so a regression shows which layer moved:
 *
 * 1. raw ioredis, defaults (`await redis.get(k)` loops);
 * 2. raw ioredis, auto-pipelined (the baseline of every ratio);
 * 3. the Effect floor: fibers looping `Effect.tryPromise(() => redis.get(k))` over the auto-pipelined client, and
 *    (3b) the same over the default client, whose step to rung 1 is what Effect's fiber-per-call costs a single
 *    caller whatever a library does on top (the bound of the c=1 target against default ioredis);
 * 4. `RedisConnection.getBatched` (the coalescing MGET batcher, with its deadline);
 * 5. `RedisConnection.get` (one GET per call through `execute`, auto-pipelined by ioredis);
 * 6. strict `RedisCache.get` (`RedisCache.layer()` over `RedisConnection.layer`: breaker, retry, metrics);
 * 7. `ResilientCache.get` with its defaults (the memory mirror and fallback on top);
 * 8. the same with a tracer installed whose spans do nothing (`Tracer.make`, a no-op span): its step is what making
 *    a `redis.get` span per call costs (issue 10's "tracing enabled but no-op"). Every other rung runs under Effect's
 *    built-in tracer, for which no span is made (see `@steadfast/redis` `Spans`).
 *
 * Rungs 3-7 are driven like the happy path's Steadfast: `c` fibers in `Effect.whileLoop`, on layers built once.
 * Every rung is measured in every round, in a rotating order; ratios are medians of per-round ratios to rung 2, and
 * "step" is the median per-round ratio to the rung it is built on (what that layer costs).
 */
import { RedisCache } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Runtime from "effect/Runtime"
import { Redis } from "ioredis"
import { makePeer, type Target } from "./contenders.js"
import { effectLoop, promiseLoop, type Sample } from "./drive.js"
import { benchKeys, benchValue, fill, unlinkMatching } from "./keyspace.js"
import { type Entrant, interleave, p99, throughput } from "./rounds.js"
import { buildLayer, buildSteadfast, noopTracer, statsLine } from "./steadfast.js"
import { log } from "./util.js"

export type LadderCell = 1 | 64

export interface LadderRow {
  readonly rung: string
  /** The rung this one is built on (its "step" is measured against it), if any. */
  readonly on: string | null
  readonly concurrency: LadderCell
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Median of per-round ratios to raw auto-pipelined ioredis (> 1 is faster). */
  readonly vsAutoPipeline: number
  /** Median of per-round ratios to raw ioredis with its defaults. */
  readonly vsIoredis: number
  /** Median of per-round ratios to the rung it is built on. */
  readonly step: number | null
  readonly p99VsAutoPipeline: number
  readonly p99VsIoredis: number
  readonly rounds: ReadonlyArray<Sample>
  readonly emptyReads: number
  readonly errors: number
}

export interface LadderResult {
  /** The value size read (100 unless `LADDER_BYTES` says otherwise). */
  readonly bytes: number
  readonly keyspace: number
  readonly rounds: number
  readonly msPerMeasurement: number
  readonly rows: ReadonlyArray<LadderRow>
}

export interface LadderConfig {
  readonly target: Target
  readonly rounds: number
  readonly durationMs: number
  readonly warmupMs: number
  readonly gcBetween: boolean
  /** After each `gc()`, the rung runs the cell this long, unmeasured (see `RoundsConfig.settleMs`). */
  readonly settleMs: number
  readonly verbose: boolean
  readonly runtime: Runtime.Runtime<never>
}

export const rungs = {
  ioredis: "ioredis (defaults)",
  auto: "ioredis auto-pipelined",
  floor: "Effect floor: Effect.tryPromise(auto-pipelined get)",
  floorPlain: "Effect floor: Effect.tryPromise(default get)",
  batched: "RedisConnection.getBatched",
  get: "RedisConnection.get",
  strict: "RedisCache.get (strict)",
  resilient: "ResilientCache.get (defaults)",
  traced: "ResilientCache.get, no-op tracer installed"
} as const

const parents: Record<string, string | null> = {
  [rungs.ioredis]: null,
  [rungs.auto]: null,
  [rungs.floor]: rungs.auto,
  [rungs.floorPlain]: rungs.ioredis,
  [rungs.batched]: rungs.floor,
  [rungs.get]: rungs.floor,
  [rungs.strict]: rungs.batched,
  [rungs.resilient]: rungs.strict,
  [rungs.traced]: rungs.resilient
}

export const runLadder = async (config: LadderConfig): Promise<LadderResult> => {
  const { runtime, target } = config
  const url = `redis://${target.host}:${target.port}`
  const keyspace = 10_000
  const keys = benchKeys("bench:ladder:", keyspace)
  const admin = new Redis({ host: target.host, port: target.port })
  // `LADDER_BYTES=10000` climbs the ladder with 10 KB values (issue 12: where the 10 KB gap comes from).
  const bytes = Number(process.env.LADDER_BYTES ?? 100)
  if (!Number.isInteger(bytes) || bytes < 1) throw new Error(`LADDER_BYTES must be a positive integer, got ${process.env.LADDER_BYTES}`)
  await fill(admin, keys, benchValue(bytes, 1))
  const key = (i: number) => keys[i % keyspace]!
  const settings = { timeoutMs: 2000, halfOpenAfterMs: 5000 }

  const plain = await makePeer("ioredis", target, settings)
  const auto = await makePeer("ioredis-autopipeline", target, settings)
  const connection = await buildLayer(RedisConnection.layer({ url }), runtime)
  const conn = Context.get(connection.context, RedisConnection.RedisConnection)
  const strict = await buildLayer(RedisCache.layer().pipe(Layer.provide(RedisConnection.layer({ url }))), runtime)
  const strictCache = Context.get(strict.context, RedisCache.RedisCache)
  const resilient = await buildSteadfast(rungs.resilient, { url }, runtime)

  const promised = (name: string, get: (key: string) => Promise<unknown>): Entrant<LadderCell> => ({
    name,
    measure: (c, ms) => promiseLoop((i) => get(key(i)), c, 2_000_000, ms)
  })
  const effected = <E>(
    name: string,
    get: (key: string) => Effect.Effect<unknown, E>,
    run: <A, E2>(effect: Effect.Effect<A, E2>) => Promise<A>
  ): Entrant<LadderCell> => ({
    name,
    measure: (c, ms) => run(effectLoop((i) => get(key(i)), c, 2_000_000, ms))
  })
  const runOn = connection.run
  const entrants: ReadonlyArray<Entrant<LadderCell>> = [
    promised(rungs.ioredis, plain.get),
    promised(rungs.auto, auto.get),
    effected(rungs.floor, (k) => Effect.tryPromise(() => auto.get(k)), runOn),
    effected(rungs.floorPlain, (k) => Effect.tryPromise(() => plain.get(k)), runOn),
    effected(rungs.batched, conn.getBatched, runOn),
    effected(rungs.get, conn.get, runOn),
    effected(rungs.strict, strictCache.get, strict.run),
    effected(rungs.traced, resilient.cache.get, (effect) => resilient.run(Effect.withTracer(effect, noopTracer))),
    {
      ...effected(rungs.resilient, resilient.cache.get, resilient.run),
      watch: async () => {
        const before = await resilient.stats()
        return async (sample) => {
          const after = await resilient.stats()
          if (after.fallbacks !== before.fallbacks || after.circuitState !== "CLOSED") {
            log(`WARNING ladder ${rungs.resilient}: fallback path taken! ${statsLine(after)}`)
          }
          if (config.verbose) log(`  ${rungs.resilient}: ${Math.round(sample.opsPerSec)} ops/s; ${statsLine(after)}`)
        }
      }
    }
  ]
  const cells: ReadonlyArray<LadderCell> = [1, 64]
  const samples = await interleave(
    {
      label: "ladder",
      cells,
      cellName: (c) => `GET ${bytes} B c=${c}`,
      rounds: config.rounds,
      durationMs: config.durationMs,
      warmupMs: config.warmupMs,
      gcBetween: config.gcBetween,
      settleMs: config.settleMs,
      verbose: config.verbose
    },
    entrants
  )

  const rows: Array<LadderRow> = []
  for (const c of cells) {
    for (const { name } of entrants) {
      const list = samples.of(name, c)
      const on = parents[name] ?? null
      rows.push({
        rung: name,
        on,
        concurrency: c,
        ...samples.medians(name, c),
        vsAutoPipeline: samples.ratio(name, rungs.auto, c, throughput),
        vsIoredis: samples.ratio(name, rungs.ioredis, c, throughput),
        step: on === null ? null : samples.ratio(name, on, c, throughput),
        p99VsAutoPipeline: samples.ratio(name, rungs.auto, c, p99),
        p99VsIoredis: samples.ratio(name, rungs.ioredis, c, p99),
        rounds: list,
        emptyReads: list.reduce((n, s) => n + s.empty, 0),
        errors: list.reduce((n, s) => n + s.errors, 0)
      })
    }
  }
  log(`ladder: ${rungs.resilient} stats after all rounds: ${statsLine(await resilient.stats())}`)
  await resilient.close()
  await strict.close()
  await connection.close()
  await auto.close()
  await plain.close()
  log(`ladder: deleted ${await unlinkMatching(admin, "bench:ladder:*")} bench:ladder:* keys`)
  await admin.quit()
  return { bytes, keyspace, rounds: config.rounds, msPerMeasurement: config.durationMs, rows }
}
