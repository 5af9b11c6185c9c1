/**
 * The child side of `ab.ts`: one build of Steadfast (`<dir>/packages/{cache,redis}/dist`, and the `effect` they
 * resolve), driven on request over IPC. This file imports no runtime module of this checkout's Effect or Steadfast
 * (type imports only), so the child holds one Effect module graph: the build's.
 */
import { execFileSync } from "node:child_process"
import { realpathSync } from "node:fs"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import type * as CacheModule from "@steadfast/cache"
import type * as RedisModule from "@steadfast/redis"
import type * as ContextModule from "effect/Context"
import type * as DurationModule from "effect/Duration"
import type * as EffectModule from "effect/Effect"
import type * as ExitModule from "effect/Exit"
import type * as LayerModule from "effect/Layer"
import type * as LoggerModule from "effect/Logger"
import type * as LogLevelModule from "effect/LogLevel"
import type * as OptionModule from "effect/Option"
import type * as RuntimeModule from "effect/Runtime"
import type * as ScopeModule from "effect/Scope"
import type { Sample } from "./drive.js"
import { serveParent } from "./ipc.js"
import { benchValue } from "./keyspace.js"
import { now, quantile, sleep } from "./util.js"

interface Kit {
  readonly label: string
  readonly dir: string
  readonly commit: string
  readonly Effect: typeof EffectModule
  readonly Layer: typeof LayerModule
  readonly Scope: typeof ScopeModule
  readonly Exit: typeof ExitModule
  readonly Context: typeof ContextModule
  readonly Option: typeof OptionModule
  readonly Duration: typeof DurationModule
  readonly Runtime: typeof RuntimeModule
  readonly Logger: typeof LoggerModule
  readonly LogLevel: typeof LogLevelModule
  readonly cache: typeof CacheModule
  readonly redis: typeof RedisModule
}

const load = async (label: string, dir: string): Promise<Kit> => {
  const root = Path.resolve(dir)
  const effect = realpathSync(Path.join(root, "packages/cache/node_modules/effect"))
  const imp = <M>(file: string): Promise<M> => import(pathToFileURL(file).href) as Promise<M>
  const fx = <M>(name: string) => imp<M>(Path.join(effect, "dist/esm", `${name}.js`))
  const commit = (() => {
    try {
      return execFileSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim()
    } catch {
      return "unknown"
    }
  })()
  return {
    label,
    dir: root,
    commit,
    Effect: await fx("Effect"),
    Layer: await fx("Layer"),
    Scope: await fx("Scope"),
    Exit: await fx("Exit"),
    Context: await fx("Context"),
    Option: await fx("Option"),
    Duration: await fx("Duration"),
    Runtime: await fx("Runtime"),
    Logger: await fx("Logger"),
    LogLevel: await fx("LogLevel"),
    cache: await imp(Path.join(root, "packages/cache/dist/index.js")),
    redis: await imp(Path.join(root, "packages/redis/dist/index.js"))
  }
}

interface Built {
  readonly kit: Kit
  readonly cache: CacheModule.Cache.Cache
  readonly run: <A, E>(effect: EffectModule.Effect<A, E>) => Promise<A>
  readonly close: () => Promise<void>
}

/** `ResilientCache.layer(...)` over `RedisConnection.layer({ url, commandTimeout })`, built once in its own scope. */
const build = async (
  kit: Kit,
  url: string,
  options: { readonly commandTimeoutMs?: number; readonly halfOpenAfterMs?: number } = {}
): Promise<Built> => {
  const { Duration, Effect, Exit, Layer, Scope } = kit
  const runtime = Effect.runSync(Effect.runtime<never>().pipe(kit.Logger.withMinimumLogLevel(kit.LogLevel.None)))
  const run = <A, E>(effect: EffectModule.Effect<A, E>): Promise<A> => kit.Runtime.runPromise(runtime)(effect)
  const layer = kit.cache.ResilientCache.layer(
    options.halfOpenAfterMs === undefined ? {} : { breaker: { halfOpenAfter: Duration.millis(options.halfOpenAfterMs) } }
  ).pipe(Layer.provide(kit.redis.RedisConnection.layer({
    url,
    ...(options.commandTimeoutMs === undefined ? {} : { commandTimeout: Duration.millis(options.commandTimeoutMs) })
  })))
  const scope = Effect.runSync(Scope.make())
  const context = await run(Layer.buildWithScope(layer, scope))
  const cache = kit.Context.get(context, kit.cache.Cache.Cache)
  return { kit, cache, run, close: () => run(Scope.close(scope, Exit.void)) }
}

export const capacity = 4_000_000
export const latencies = new Float64Array(capacity)

/** `drive.ts`'s `effectLoop`, written against the build's own Effect module. */
const effectLoop = <A, E>(
  kit: Kit,
  op: (index: number) => EffectModule.Effect<A, E>,
  concurrency: number,
  durationMs: number
): EffectModule.Effect<Sample> => {
  const { Effect, Option } = kit
  return Effect.suspend(() => {
    let started = 0
    let n = 0
    let empty = 0
    let errors = 0
    const start = now()
    const end = start + durationMs
    const body = () => {
      const index = started++
      const t0 = now()
      return Effect.matchCause(op(index), {
        onFailure: () => {
          errors++
          latencies[n++] = now() - t0
        },
        onSuccess: (a) => {
          if (a === undefined || a === null || (Option.isOption(a) && Option.isNone(a))) empty++
          latencies[n++] = now() - t0
        }
      })
    }
    return Effect.all(
      Array.from({ length: concurrency }, () => Effect.whileLoop({ while: () => started < capacity && now() < end, body, step: () => {} })),
      { concurrency: "unbounded", discard: true }
    ).pipe(Effect.map((): Sample => {
      const seconds = (now() - start) / 1000
      return { ops: n, seconds, opsPerSec: n / seconds, p50Ms: quantile(latencies, n, 0.5), p99Ms: quantile(latencies, n, 0.99), empty, errors }
    }))
  })
}

export interface Cell {
  readonly op: "get" | "set"
  readonly concurrency: 1 | 64
}
export const cells: ReadonlyArray<Cell> = [
  { op: "get", concurrency: 1 },
  { op: "get", concurrency: 64 },
  { op: "set", concurrency: 1 },
  { op: "set", concurrency: 64 }
]
export const cellName = (c: Cell) => `${c.op.toUpperCase()} 100 B c=${c.concurrency}`

export const keyspace = 10_000
export const benchKey = (i: number) => `bench:ab:v100:${i % keyspace}`
export const value = benchValue(100, 1)
const breakerKey = "bench:b:key"

// ---- Worker: one build, driven on request ----------------------------------------------------------------------------
export type Request =
  | { readonly op: "load"; readonly dir: string }
  | { readonly op: "happy-open"; readonly url: string }
  | { readonly op: "measure"; readonly cell: Cell; readonly ms: number; readonly gc: boolean }
  | { readonly op: "happy-close" }
  | { readonly op: "breaker-open"; readonly url: string }
  | { readonly op: "breaker-wait" }
  | { readonly op: "breaker-round" }
  | { readonly op: "breaker-close" }

const worker = () => {
  let kit: Kit | undefined
  let happy: Built | undefined
  let breaker: Built | undefined
  let before: CacheModule.Cache.Stats | undefined
  const gc = () => (globalThis as { gc?: () => void }).gc?.()
  const handle = async (req: Request): Promise<unknown> => {
    switch (req.op) {
      case "load":
        kit = await load(req.dir, req.dir)
        return { commit: kit.commit, dir: kit.dir }
      case "happy-open":
        happy = await build(kit!, req.url)
        return null
      case "measure": {
        const h = happy!
        const cell = req.cell
        if (req.gc) gc()
        return h.run(effectLoop(
          h.kit,
          cell.op === "get" ? (i) => h.cache.get(benchKey(i)) : (i) => h.cache.set(benchKey(i), value),
          cell.concurrency,
          req.ms
        ))
      }
      case "happy-close": {
        const s = await happy!.run(happy!.cache.stats)
        await happy!.close()
        return { fallbacks: s.fallbacks, circuitState: s.circuitState, hits: s.hits, misses: s.misses, errors: s.errors }
      }
      case "breaker-open":
        breaker = await build(kit!, req.url, { commandTimeoutMs: 500, halfOpenAfterMs: 600_000 })
        await breaker.run(breaker.cache.set(breakerKey, "x".repeat(100)))
        return null
      case "breaker-wait": {
        const b = breaker!
        const deadline = now() + 15_000
        while ((await b.run(b.cache.stats)).circuitState !== "OPEN") {
          if (now() > deadline) throw new Error("the breaker did not open within 15 s")
          await Promise.all(Array.from({ length: 5 }, () => b.run(b.cache.get(breakerKey))))
          await sleep(5)
        }
        before = await b.run(b.cache.stats)
        return null
      }
      case "breaker-round": {
        const b = breaker!
        const E = b.kit.Effect
        // No gc() here, as in breaker.ts: a forced full gc() before each round cut bb9411a's loop about 3x (HEAD's not).
        return b.run(E.suspend(() => {
          let i = 0
          const n = 2_000_000
          const start = now()
          const end = start + 800
          // The clock is read every 1,024 calls only (as breaker.ts does).
          return E.whileLoop({
            while: () => i < n && ((i & 1023) !== 0 || now() < end),
            body: () => {
              i++
              return b.cache.get(breakerKey)
            },
            step: () => {}
          }).pipe(E.map(() => i / ((now() - start) / 1000)))
        }))
      }
      case "breaker-close": {
        const b = breaker!
        const after = await b.run(b.cache.stats)
        await b.close()
        return `circuit=${after.circuitState} fallbacks +${after.fallbacks - before!.fallbacks}, circuit_open errors +${
          (after.errors["circuit_open"] ?? 0) - (before!.errors["circuit_open"] ?? 0)
        }`
      }
    }
  }
  serveParent(handle)
}

if (process.argv[1] !== undefined && Path.basename(process.argv[1]) === "ab-worker.js") worker()
