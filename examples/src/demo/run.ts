/**
 * The live chaos demo: the same read/write workload through Steadfast (`ResilientCache` over `RedisConnection`),
 * through Steadfast's hybrid cache (`HybridCache`: an L1 in process in front of the resilient cache, invalidated by
 * Redis' `CLIENT TRACKING`) and through a plain ioredis client with its default options, all through ONE `ChaosProxy`
 * in front of Redis (the hybrid cache's invalidation subscriber too), while a timeline of faults (resets, a stall, a
 * server kill + restart) plays. One row per client per second, a summary at the end. (With `--topology cluster` or
 * `sentinel`, no hybrid client: the hybrid cache is not made for those topologies.)
 *
 * Everything is a scoped resource (server, proxy, connections, workers, timers): `runDemo` returns after all of it
 * is released, also when interrupted.
 */
import { Cache, HybridCache, MemoryCache, ResilientCache } from "@steadfast/cache"
import { RedisConnection } from "@steadfast/redis"
import { ChaosProxy, RedisCluster, RedisSentinel, RedisServer, Workload } from "@steadfast/testing"
import * as Clock from "effect/Clock"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { Cluster, Redis } from "ioredis"
import { count, left, ms, type Paint, paint, percent, right, seconds, wrap } from "./format.js"

// ---------------------------------------------------------------------------------------------------------------
// Options and results
// ---------------------------------------------------------------------------------------------------------------

/** What the demo runs against: one server behind the proxy (the default), or a spawned cluster or sentinel set. */
export type Topology = "standalone" | "cluster" | "sentinel"

export interface DemoOptions {
  /** Seconds (default 30). The fault timeline is scaled to it. */
  readonly duration?: number | undefined
  /**
   * `"standalone"` (default): one Redis (REDIS_URL or spawned) behind a ChaosProxy, with resets, a stall and a
   * restart. `"cluster"`: a spawned 3-primary, 3-replica Redis Cluster (`RedisCluster.make`), with a graceful
   * failover, a primary killed and the old primary's return as a replica. `"sentinel"`: a spawned primary, 2 replicas
   * and 3 sentinels (`RedisSentinel.make`), with `SENTINEL FAILOVER` and a primary killed. No proxy then (ioredis
   * discovers the nodes' own addresses); REDIS_URL is ignored.
   */
  readonly topology?: Topology | undefined
  /** Use this Redis (through the proxy) instead of spawning one; then there is no server restart. */
  readonly redisUrl?: string | undefined
  /** Where lines go (default `console.log`). */
  readonly print?: ((line: string) => void) | undefined
  /** ANSI colours (default false). */
  readonly color?: boolean | undefined
  /** Show Steadfast's own log lines (default false: they would interleave with the table). */
  readonly verbose?: boolean | undefined
  /** Completes when the viewer wants to stop early (Ctrl-C): the demo then prints its summary and cleans up. */
  readonly stop?: Effect.Effect<void> | undefined
  /** After the run, how long to keep waiting for a client whose recovery was not seen yet (default 5 s). */
  readonly recoveryGrace?: number | undefined
  readonly workload?: {
    readonly keys?: number | undefined
    readonly concurrency?: number | undefined
    readonly readRatio?: number | undefined
    readonly pauseMillis?: number | undefined
  } | undefined
}

export interface ClientSummary {
  readonly client: "steadfast" | "ioredis" | "hybrid"
  readonly ops: number
  readonly reads: number
  readonly writes: number
  readonly hits: number
  readonly misses: number
  /** Hits / successful reads, in percent (null without reads). */
  readonly hitRate: number | null
  /** Caller-visible errors: read errors + write errors. */
  readonly callerErrors: number
  readonly readErrors: number
  readonly writeErrors: number
  readonly errorsByKind: Readonly<Record<string, number>>
  /** Reads that returned a value never written for their key. */
  readonly wrongValues: number
  /** Reads that returned a value a write acknowledged before the read started had already replaced. */
  readonly staleReads: number
  /** Operations served from memory because Redis failed (always 0 for ioredis: it has no fallback). */
  readonly fallbacks: number
  /** Times the circuit breaker opened (always 0 for ioredis: it has no breaker). */
  readonly breakerOpens: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /**
   * A value written straight into Redis after the last fault was read back through this client: Redis serves its
   * reads again. `null` when there was no Redis (memory-only run) or the run was stopped before the last fault
   * was over.
   */
  readonly recovered: boolean | null
  /** From the end of the last fault to that read. */
  readonly recoveredAfterMs: number | null
  /** Operations waiting for longer than 1 s when the demo stopped (they were interrupted). */
  readonly pendingAtEnd: number
  readonly oldestPendingMs: number
  /** One-second rows in which this client completed no operation at all. */
  readonly secondsWithoutProgress: number
  /** The hybrid client only: the share of its reads L1 answered (no round trip), in percent (null without reads). */
  readonly l1HitRatio?: number | null | undefined
}

export interface FaultRecord {
  readonly fault: string
  readonly startedAtS: number
  readonly endedAtS: number
}

export interface SecondRow {
  readonly t: number
  readonly clients: Readonly<Record<string, {
    /** Operations completed in this row's window (about one second). */
    readonly ops: number
    /** `ops` divided by the window's measured length: the ops/s the text row prints. */
    readonly opsPerS: number
    readonly hitRate: number | null
    readonly readErrors: number
    readonly writeErrors: number
    readonly fallbacks: number | null
    /** The breaker's state when the row was taken (null: the client has no breaker). */
    readonly breaker: string | null
    /** Times the breaker opened during this row's window (null: the client has no breaker). */
    readonly breakerOpens: number | null
    readonly p50Ms: number
    readonly p99Ms: number
    readonly maxMs: number
    readonly stuck: number
    readonly oldestMs: number
    /** The hybrid client only: the share of its reads in this window L1 answered, in percent (null: no read). */
    readonly l1HitRate?: number | null | undefined
  }>>
}

export interface Summary {
  readonly mode: "spawned" | "url" | "memory"
  /** `--topology` (absent in summaries from before it existed: standalone). */
  readonly topology?: Topology | undefined
  readonly redis: {
    readonly url: string | null
    readonly version: string | null
    /** The spawned server's pid at the end (after the restart, a new process). */
    readonly pid: number | null
    /** Every pid the spawned server had (before and after the restart). */
    readonly pids: ReadonlyArray<number>
    /** Whether any of those pids was still alive after the demo released everything (it must not be). */
    readonly pidAliveAfterExit: boolean | null
    readonly note: string | null
  }
  readonly durationS: number
  readonly elapsedS: number
  readonly stoppedEarly: boolean
  readonly steadfastConfig: Readonly<Record<string, string | number | boolean>>
  readonly workload: { readonly keys: number; readonly concurrency: number; readonly readRatio: number; readonly pauseMillis: number }
  readonly faults: ReadonlyArray<FaultRecord>
  readonly proxy: ChaosProxy.Stats | null
  /** Redis failures Steadfast absorbed (retried, then answered from memory), by reason: its own `stats.errors`. */
  readonly steadfastRedisFailures: Readonly<Record<string, number>>
  /** The same for the hybrid client (absent without one). */
  readonly hybridRedisFailures?: Readonly<Record<string, number>> | undefined
  /** The plain client's `error` events (connection-level; ioredis prints them itself when nobody listens). */
  readonly ioredisConnectionErrors: number | null
  readonly clients: {
    readonly steadfast: ClientSummary
    readonly ioredis?: ClientSummary
    /** Steadfast's hybrid cache (standalone runs with Redis; absent in summaries from before it existed). */
    readonly hybrid?: ClientSummary
  }
  readonly verdict: { readonly steadfastHeld: boolean; readonly lines: ReadonlyArray<string> }
  readonly series: ReadonlyArray<SecondRow>
}

// ---------------------------------------------------------------------------------------------------------------
// Pieces
// ---------------------------------------------------------------------------------------------------------------

/** The Steadfast settings of the demo (printed in the header from the cache's own `stats.config`). */
export const steadfastSettings = {
  commandTimeout: Duration.millis(500),
  breaker: { failureThreshold: 5, halfOpenAfter: Duration.seconds(1) }
} as const

type Backend =
  | {
    readonly mode: "spawned"
    readonly url: string
    readonly host: string
    readonly port: number
    readonly server: RedisServer.RedisServer
    readonly setDirect: (key: string, value: string) => Effect.Effect<boolean>
    readonly version: string | null
  }
  | {
    readonly mode: "url"
    readonly url: string
    readonly host: string
    readonly port: number
    readonly setDirect: (key: string, value: string) => Effect.Effect<boolean>
    readonly version: string | null
  }
  | {
    readonly mode: "topology"
    readonly topology: "cluster" | "sentinel"
    /** `redis+cluster://` / `redis+sentinel://`, for Steadfast. */
    readonly url: string
    readonly label: string
    /** ioredis on its defaults over the same topology. */
    readonly plain: () => Redis | Cluster
    readonly setDirect: (key: string, value: string) => Effect.Effect<boolean>
    readonly servers: ReadonlyArray<RedisServer.RedisServer>
    readonly steps: (at: (s: number) => number) => ReadonlyArray<Step>
    readonly version: string | null
  }
  | { readonly mode: "memory"; readonly reason: string }

const versionOf = (info: unknown): string | null =>
  typeof info === "string" ? (/redis_version:([^\r\n]+)/.exec(info)?.[1] ?? null) : null

/** The URL with its host and port replaced (credentials and db kept): the same Redis, through the proxy. */
const through = (url: string, port: number): string => {
  const u = new URL(url)
  u.hostname = "127.0.0.1"
  u.port = String(port)
  return u.toString()
}

const withoutPassword = (url: string): string => {
  const u = new URL(url)
  if (u.password !== "") u.password = "***"
  return u.toString()
}

/** Whether a process still exists (`kill(pid, 0)`; EPERM means it exists but is not ours). */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

const promise = <A>(f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: (e) => e })

/**
 * A direct (not proxied) ioredis connection to a given Redis, for writing the recovery probes and cleaning up the
 * demo's keys afterwards. Bounded everywhere: it must never hold the demo.
 */
const adminClient = (url: string, cleanupKeys: () => ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const client = new Redis(url, {
        lazyConnect: false,
        connectTimeout: 2000,
        commandTimeout: 1000,
        maxRetriesPerRequest: 1,
        retryStrategy: () => 200
      })
      client.on("error", () => {})
      return client
    }),
    (client) =>
      promise(() => client.del(...cleanupKeys())).pipe(
        Effect.zipRight(promise(() => client.quit())),
        Effect.timeout("2 seconds"),
        Effect.ignore,
        Effect.ensuring(Effect.sync(() => client.disconnect()))
      )
  )

/** Counts the operations a target is still waiting for, and how old the oldest is. */
const tracked = (target: Workload.Target) => {
  const pending = new Map<number, number>()
  let next = 0
  const wrap = <A>(effect: Effect.Effect<A, unknown>): Effect.Effect<A, unknown> =>
    Effect.suspend(() => {
      const id = next++
      pending.set(id, performance.now())
      return Effect.ensuring(effect, Effect.sync(() => pending.delete(id)))
    })
  const waiting = (olderThanMs = 0) => {
    const now = performance.now()
    let n = 0
    let oldest = 0
    for (const start of pending.values()) {
      const age = now - start
      if (age >= olderThanMs) n++
      if (age > oldest) oldest = age
    }
    return { count: n, oldestMs: oldest }
  }
  return {
    target: { get: (key: string) => wrap(target.get(key)), set: (key: string, value: string) => wrap(target.set(key, value)) },
    waiting
  }
}

interface Step {
  readonly at: number
  readonly kind: "fault" | "heal" | "blip"
  readonly fault: string
  readonly text: string
  readonly run: Effect.Effect<string | void>
}

const setOn = (server: RedisServer.RedisServer | undefined, key: string, value: string) =>
  server === undefined
    ? Effect.succeed(false)
    : server.command("SET", key, value).pipe(Effect.map((reply) => reply === "OK"), Effect.orElseSucceed(() => false))

const ms0 = (d: Duration.Duration) => Math.round(Duration.toMillis(d))

/** A spawned cluster (shard 0 fails over) or sentinel set, and its fault timeline. */
const spawnTopology = (topology: "cluster" | "sentinel"): Effect.Effect<Backend, never, Scope.Scope> =>
  topology === "cluster"
    ? Effect.gen(function*() {
      const cluster = yield* RedisCluster.make({ requireFullCoverage: false })
      const info = yield* Effect.option(cluster.servers[0]!.command("INFO", "server"))
      const seeds = cluster.seeds.map((s) => `${s.host}:${s.port}`).join(",")
      let killed: RedisCluster.ClusterNode | undefined
      const steps = (at: (s: number) => number): ReadonlyArray<Step> => [
        {
          at: at(5),
          kind: "blip",
          fault: "graceful failover",
          text: "CLUSTER FAILOVER of shard 0: its replica takes over, the old primary becomes its replica",
          run: cluster.failover(0).pipe(
            Effect.map((f) => `(:${f.from.port} -> :${f.to.port}, settled in ${ms0(f.duration)} ms)`),
            Effect.catchAll((e) => Effect.succeed(`FAILED: ${e.message.split("\n")[0]}`))
          )
        },
        {
          at: at(12),
          kind: "blip",
          fault: "primary killed",
          text: "shard 0's primary killed (SIGKILL): its replica is promoted after cluster-node-timeout (1 s)",
          run: cluster.killPrimary(0).pipe(
            Effect.tap((f) => Effect.sync(() => (killed = f.from))),
            Effect.map((f) => `(:${f.from.port} -> :${f.to.port}, promoted and settled in ${ms0(f.duration)} ms)`),
            Effect.catchAll((e) => Effect.succeed(`FAILED: ${e.message.split("\n")[0]}`))
          )
        },
        {
          at: at(20),
          kind: "blip",
          fault: "old primary returns",
          text: "the killed primary restarted: it rejoins shard 0 as a replica",
          run: Effect.suspend(() =>
            killed === undefined
              ? Effect.succeed("(skipped: nothing was killed)")
              : cluster.restart(killed).pipe(
                Effect.map((n) => `(:${n.port} is a ${n.role} now)`),
                Effect.catchAll((e) => Effect.succeed(`FAILED: ${e.message.split("\n")[0]}`))
              )
          )
        }
      ]
      return {
        mode: "topology",
        topology,
        url: `redis+cluster://${seeds}`,
        label: `Redis Cluster (3 primaries + 3 replicas) spawned on 127.0.0.1:${cluster.seeds.map((s) => s.port).join(",")}`,
        plain: () => new Cluster(cluster.seeds.map((s) => ({ host: s.host, port: s.port }))),
        setDirect: (key: string, value: string) =>
          cluster.primaryFor(key).pipe(
            Effect.flatMap((node) => setOn(cluster.servers.find((s) => s.port === node.port), key, value)),
            Effect.orElseSucceed(() => false)
          ),
        servers: cluster.servers,
        steps,
        version: Option.match(info, { onNone: () => null, onSome: versionOf })
      } as const
    }).pipe(Effect.catchAll((e) => Effect.succeed({ mode: "memory", reason: e.message.split("\n")[0] ?? "the cluster did not start" } as const)))
    : Effect.gen(function*() {
      const set = yield* RedisSentinel.make()
      const info = yield* Effect.option(set.servers[0]!.command("INFO", "server"))
      const sentinels = set.sentinels.map((s) => `${s.host}:${s.port}`).join(",")
      const steps = (at: (s: number) => number): ReadonlyArray<Step> => [
        {
          at: at(5),
          kind: "blip",
          fault: "SENTINEL FAILOVER",
          text: "SENTINEL FAILOVER: a replica is promoted; the old primary keeps saying it is one for ~10 s",
          run: set.failover.pipe(
            Effect.map((f) => `(:${f.from.port} -> :${f.to.port}, every sentinel agreed in ${ms0(f.duration)} ms)`),
            Effect.catchAll((e) => Effect.succeed(`FAILED: ${e.message.split("\n")[0]}`))
          )
        },
        {
          // After the old primary's demotion (~11 s after the failover), so what a client kept writing there is gone.
          at: at(20),
          kind: "blip",
          fault: "primary killed",
          text: "the primary killed (SIGKILL): the sentinels promote a replica after down-after-milliseconds (1 s)",
          run: set.killPrimary.pipe(
            Effect.map((f) => `(:${f.from.port} -> :${f.to.port}, every sentinel agreed in ${ms0(f.duration)} ms)`),
            Effect.catchAll((e) => Effect.succeed(`FAILED: ${e.message.split("\n")[0]}`))
          )
        }
      ]
      return {
        mode: "topology",
        topology,
        url: `redis+sentinel://${sentinels}/${set.masterName}`,
        label: `Sentinel set (a primary, 2 replicas, 3 sentinels) spawned, sentinels on 127.0.0.1:${
          set.sentinels.map((s) => s.port).join(",")
        }`,
        plain: () => new Redis({ sentinels: set.sentinels.map((s) => ({ host: s.host, port: s.port })), name: set.masterName }),
        setDirect: (key: string, value: string) =>
          set.primary.pipe(
            Effect.flatMap((primary) => setOn(set.servers.find((s) => s.port === primary.port), key, value)),
            Effect.orElseSucceed(() => false)
          ),
        servers: [...set.servers, ...set.sentinelServers],
        steps,
        version: Option.match(info, { onNone: () => null, onSome: versionOf })
      } as const
    }).pipe(Effect.catchAll((e) => Effect.succeed({ mode: "memory", reason: e.message.split("\n")[0] ?? "the sentinel set did not start" } as const)))

// ---------------------------------------------------------------------------------------------------------------
// The demo
// ---------------------------------------------------------------------------------------------------------------

/**
 * Runs the demo and returns its summary once every process, socket and timer it made is released.
 */
export const runDemo = (options: DemoOptions = {}): Effect.Effect<Summary, ConfigError.ConfigError | ChaosProxy.ChaosProxyError> => {
  const verbose = options.verbose ?? false
  const program = demo(options)
  // Steadfast logs connection errors and breaker transitions through Effect's logger: useful in production, noise
  // in the middle of a table. `--verbose` keeps them.
  return Effect.withClock(verbose ? program : Logger.withMinimumLogLevel(program, LogLevel.None), Clock.make())
}

const demo = (options: DemoOptions): Effect.Effect<Summary, ConfigError.ConfigError | ChaosProxy.ChaosProxyError> =>
  Effect.gen(function*() {
    const duration = options.duration ?? 30
    const print = options.print ?? ((line: string) => console.log(line))
    const p = paint(options.color ?? false)
    const stop = options.stop ?? Effect.never
    const grace = options.recoveryGrace ?? 5
    const workloadOptions = {
      keys: options.workload?.keys ?? 100,
      concurrency: options.workload?.concurrency ?? 8,
      readRatio: options.workload?.readRatio ?? 0.8,
      pauseMillis: options.workload?.pauseMillis ?? 2
    }
    // Everything the run makes lives in this scope; the summary is printed once it is all released.
    const summary = yield* Effect.scoped(body(options, { duration, print, p, stop, grace, workloadOptions }))
    const alive = summary.redis.pids.length === 0 ? null : summary.redis.pids.some(isAlive)
    const final: Summary = { ...summary, redis: { ...summary.redis, pidAliveAfterExit: alive } }
    printSummary(final, print, p)
    return final
  })

interface Settings {
  readonly duration: number
  readonly print: (line: string) => void
  readonly p: Paint
  readonly stop: Effect.Effect<void>
  readonly grace: number
  readonly workloadOptions: Summary["workload"]
}

const body = (
  options: DemoOptions,
  { duration, grace, p, print, stop, workloadOptions }: Settings
): Effect.Effect<Summary, ConfigError.ConfigError | ChaosProxy.ChaosProxyError, Scope.Scope> =>
  Effect.gen(function*() {
    const runId = options.redisUrl === undefined ? "" : `${process.pid}:`
    const prefix = { steadfast: `demo:${runId}steadfast:`, ioredis: `demo:${runId}ioredis:`, hybrid: `demo:${runId}hybrid:` }
    const probeKey = { steadfast: `${prefix.steadfast}probe`, ioredis: `${prefix.ioredis}probe`, hybrid: `${prefix.hybrid}probe` }
    const demoKeys = () => [
      ...Array.from({ length: workloadOptions.keys }, (_, i) => `${prefix.steadfast}${i}`),
      ...Array.from({ length: workloadOptions.keys }, (_, i) => `${prefix.ioredis}${i}`),
      ...Array.from({ length: workloadOptions.keys }, (_, i) => `${prefix.hybrid}${i}`),
      probeKey.steadfast,
      probeKey.ioredis,
      probeKey.hybrid
    ]

    // --- Redis: REDIS_URL, else a spawned server, else memory only -------------------------------------------
    const backend: Backend = yield* Effect.gen(function*() {
      if (options.topology === "cluster" || options.topology === "sentinel") return yield* spawnTopology(options.topology)
      if (options.redisUrl !== undefined) {
        const url = options.redisUrl
        const parsed = new URL(url)
        const admin = yield* adminClient(url, demoKeys)
        const info = yield* promise(() => admin.info("server")).pipe(Effect.timeout("2 seconds"), Effect.option)
        return {
          mode: "url",
          url,
          host: parsed.hostname.replace(/^\[|\]$/g, ""),
          port: Number(parsed.port || 6379),
          setDirect: (key: string, value: string) =>
            promise(() => admin.set(key, value)).pipe(
              Effect.timeout("1 second"),
              Effect.map((reply) => reply === "OK"),
              Effect.orElseSucceed(() => false)
            ),
          version: Option.match(info, { onNone: () => null, onSome: versionOf })
        } as const
      }
      const spawned = yield* Effect.either(RedisServer.make())
      if (spawned._tag === "Left") {
        return { mode: "memory", reason: spawned.left.message.split("\n")[0] ?? "redis-server did not start" } as const
      }
      const server = spawned.right
      const info = yield* Effect.option(server.command("INFO", "server"))
      return {
        mode: "spawned",
        url: server.url,
        host: server.host,
        port: server.port,
        server,
        setDirect: (key: string, value: string) =>
          server.command("SET", key, value).pipe(Effect.map((reply) => reply === "OK"), Effect.orElseSucceed(() => false)),
        version: Option.match(info, { onNone: () => null, onSome: versionOf })
      } as const
    })
    const pids: Array<number> = []
    const notePid = backend.mode === "spawned" || backend.mode === "topology"
      ? Effect.forEach(backend.mode === "spawned" ? [backend.server] : backend.servers, (server) =>
        Effect.map(server.pid, (pid) => {
          if (pid !== undefined && !pids.includes(pid)) pids.push(pid)
        }), { discard: true })
      : Effect.void
    yield* notePid

    // --- the proxy and the two clients ---------------------------------------------------------------------------
    const proxy = backend.mode === "memory" || backend.mode === "topology"
      ? undefined
      : yield* ChaosProxy.make({ upstream: { host: backend.host, port: backend.port } })
    // The URL both clients use: through the proxy, or (a topology) the cluster's seeds / the sentinels.
    const proxiedUrl = backend.mode === "topology"
      ? backend.url
      : backend.mode === "memory" || proxy === undefined
      ? undefined
      : through(backend.url, proxy.port)

    const cacheLayer = proxiedUrl === undefined
      ? MemoryCache.layer()
      : ResilientCache.layer({ breaker: steadfastSettings.breaker }).pipe(
        Layer.provide(RedisConnection.layer({ url: proxiedUrl, commandTimeout: steadfastSettings.commandTimeout }))
      )
    const cache = Context.get(yield* Layer.build(cacheLayer), Cache.Cache)
    // The hybrid client: the same resilient cache settings under an L1, on its own connection through the same proxy
    // (its invalidation subscriber connects to the same URL, so the faults hit both of its paths).
    const hybrid = proxiedUrl === undefined || backend.mode === "topology" ? undefined : Context.get(
      yield* Layer.build(
        HybridCache.layer({ breaker: steadfastSettings.breaker }).pipe(
          Layer.provide(RedisConnection.layer({ url: proxiedUrl, commandTimeout: steadfastSettings.commandTimeout }))
        )
      ),
      Cache.Cache
    )
    if (hybrid !== undefined) {
      // Tracking set up (a round trip or two): from the first second on, L1 answers.
      yield* Effect.repeat(Effect.zipRight(Effect.sleep("20 millis"), hybrid.stats), {
        until: (stats) => stats.hybrid?.trusted === true,
        times: 100
      })
    }

    let ioredisConnectionErrors = 0
    const plain = proxiedUrl === undefined ? undefined : yield* Effect.acquireRelease(
      Effect.sync(() => {
        // Exactly ioredis' defaults: that is the point. The listener only keeps ioredis from printing
        // "[ioredis] Unhandled error event" over the table; it changes no behaviour.
        const client = backend.mode === "topology" ? backend.plain() : new Redis(proxiedUrl)
        client.on("error", () => void ioredisConnectionErrors++)
        return client
      }),
      // At the end, whatever the plain client still waits for is abandoned: disconnect rejects it.
      (client) => Effect.sync(() => client.disconnect())
    )

    const initialStats = yield* cache.stats
    const config = initialStats.config
    const initialHybrid = hybrid === undefined ? undefined : yield* hybrid.stats

    // --- header --------------------------------------------------------------------------------------------------
    const scale = duration / 30
    const at = (s: number) => Math.round(s * scale * 10) / 10
    const span = (s: number) => seconds(s * scale)
    const steps: Array<Step> = []
    if (backend.mode === "topology") {
      steps.push(...backend.steps(at).map((step) => ({ ...step, run: Effect.zipLeft(step.run, notePid) })))
    }
    if (proxy !== undefined) {
      steps.push(
        {
          at: at(4),
          kind: "blip",
          fault: "reset all",
          text: "reset: every open connection gets a TCP RST, once",
          run: proxy.resetConnections
        },
        {
          at: at(7),
          kind: "fault",
          fault: "repeated resets",
          text: `repeated resets: every connection, new ones too, is reset (for ${span(2)})`,
          run: proxy.setFault(ChaosProxy.Reset())
        },
        { at: at(9), kind: "heal", fault: "repeated resets", text: "resets end: pass-through", run: proxy.setFault(ChaosProxy.PassThrough()) },
        {
          at: at(11),
          kind: "fault",
          fault: "stall",
          text: `stall: the proxy holds every byte both ways, sockets stay open (for ${span(5)})`,
          run: proxy.setFault(ChaosProxy.Stall())
        },
        {
          at: at(16),
          kind: "heal",
          fault: "stall",
          text: "stall ends: pass-through, held bytes are delivered",
          run: proxy.setFault(ChaosProxy.PassThrough())
        }
      )
      if (backend.mode === "spawned") {
        const server = backend.server
        steps.push(
          {
            at: at(20),
            kind: "fault",
            fault: "redis kill+restart",
            text: `redis-server killed (SIGKILL); restarted in ${span(2)}, empty (no persistence)`,
            run: server.kill
          },
          {
            at: at(22),
            kind: "heal",
            fault: "redis kill+restart",
            text: "redis-server restarted on the same port",
            run: server.start.pipe(
              Effect.zipLeft(notePid),
              Effect.timed,
              Effect.map(([took]) => `(ready in ${ms(Duration.toMillis(took))} ms)`),
              Effect.catchAll((error) => Effect.succeed(`FAILED to restart: ${error.message.split("\n")[0]}`))
            )
          }
        )
      }
    }

    const w = workloadOptions
    const header: Array<string> = []
    header.push(
      p.bold(`Steadfast live chaos demo · ${duration} s`) + "  " + p.dim(
        backend.mode === "topology"
          ? `${backend.label} · redis-server ${backend.version ?? ""}`
          : backend.mode === "spawned"
          ? `redis-server ${backend.version ?? ""} spawned on 127.0.0.1:${backend.port} · proxy :${proxy?.port}`
          : backend.mode === "url"
          ? `REDIS_URL ${withoutPassword(backend.url)} (${backend.version ?? "?"}) · proxy :${proxy?.port}`
          : "memory only"
      ),
      ""
    )
    if (backend.mode === "memory") {
      header.push(
        p.yellow("No Redis: REDIS_URL is not set and redis-server could not be spawned:"),
        `  ${backend.reason}`,
        p.yellow("Running MEMORY-ONLY: Steadfast on MemoryCache, no plain ioredis client, no network faults."),
        "Set REDIS_URL or put redis-server on the PATH for the real demo.",
        ""
      )
    } else if (backend.mode === "topology") {
      const cluster = backend.topology === "cluster"
      header.push(
        `Two clients drive the same workload (${w.concurrency} workers each, ${Math.round(w.readRatio * 100)}% GET / ${
          Math.round((1 - w.readRatio) * 100)
        }% SET, ${w.keys} keys,`,
        `own key prefix) against the same ${cluster ? "cluster" : "sentinel set"}, so every failover hits both at the same moment:`,
        `  ${p.cyan("steadfast")}  ResilientCache over RedisConnection (${
          cluster ? "redis+cluster://" : "redis+sentinel://"
        }): command deadline ${config["commandTimeoutMs"]} ms,`,
        `             GET retried ${config["getMaxRetries"]}x, ${
          cluster ? "one breaker per shard" : "the old primary fenced from +selected-slave on"
        }, breaker half-open after ${Number(config["breakerHalfOpenAfterMs"]) / 1000} s; memory fallback`,
        `  ${p.cyan("ioredis")}    ${
          cluster ? "new Cluster(seeds)" : "new Redis({ sentinels, name })"
        } with ioredis' defaults, nothing tuned${cluster ? "" : " (failoverDetector off)"}`,
        `Faults: ${steps.map((s) => `${s.at}s ${s.fault}`).join(" · ")} (each helper returns once the topology settled)`,
        `Recovered = a fresh value SET straight into the primary after the last fault is read back by the client.`,
        `Each second, per client: ops done, hit rate, errors the CALLER saw (reads / writes), operations`,
        `served from memory (fallbk), breaker state (+opens), latency p50/p99/max in ms, and stuck =`,
        `operations waiting longer than 1 s (how many, the oldest's age).`,
        ""
      )
    } else {
      header.push(
        `${hybrid === undefined ? "Two" : "Three"} clients drive the same workload (${w.concurrency} workers each, ${
          Math.round(w.readRatio * 100)
        }% GET / ${Math.round((1 - w.readRatio) * 100)}% SET, ${w.keys} keys,`,
        `own key prefix) through ONE ChaosProxy, so every fault hits ${hybrid === undefined ? "both" : "all"} at the same moment:`,
        `  ${p.cyan("steadfast")}  ResilientCache over RedisConnection: command deadline ${config["commandTimeoutMs"]} ms, GET`,
        `             retried ${config["getMaxRetries"]}x (${config["retryDelayMs"]} ms base backoff), breaker opens after ${
          config["breakerFailureThreshold"]
        } failures,`,
        `             half-open after ${Number(config["breakerHalfOpenAfterMs"]) / 1000} s; memory fallback (mirror ${
          config["mirror"] ? "on" : "off"
        }, ${Number(config["fallbackTtlMs"]) / 1000} s bound)`,
        ...(hybrid === undefined ? [] : [
          `  ${p.cyan("hybrid")}     HybridCache: an in-process L1 over the same resilient cache, invalidated by`,
          `             Redis (CLIENT TRACKING to its own subscriber, also through the proxy); L1 is`,
          `             off while a path is down (canary bound ${
            Number(initialHybrid?.config["canaryIntervalMs"] ?? 1000) + Number(initialHybrid?.config["canaryTimeoutMs"] ?? 500)
          } ms). L1% = reads L1 answered`
        ]),
        `  ${p.cyan("ioredis")}    new Redis(url) with ioredis' defaults, nothing tuned: offline queue on,`,
        `             20 retries per request, no command timeout, resend in-flight after reconnect`,
        `Faults: ${
          steps.filter((s) => s.kind !== "heal").map((s) => {
            const end = steps.find((e) => e.kind === "heal" && e.fault === s.fault)
            return `${s.at}${end ? `-${end.at}` : ""}s ${s.fault}`
          }).join(" · ")
        }`,
        `Recovered = a fresh value SET straight into Redis after the last fault is read back by the client.`,
        `Each second, per client: ops done, hit rate, errors the CALLER saw (reads / writes), operations`,
        `served from memory (fallbk), breaker state (+opens), latency p50/p99/max in ms, and stuck =`,
        `operations waiting longer than 1 s (how many, the oldest's age).`,
        ""
      )
    }
    header.forEach((line) => print(line))
    const columns = `${right("time", 5)}  ${left("client", 10)}${right("ops/s", 6)}${right("hit%", 7)}${right("rd-err", 7)}${
      right("wr-err", 7)
    }${right("fallbk", 7)}  ${left("breaker", 10)}${right("p50", 6)}${right("p99", 7)}${right("max ms", 8)}${
      hybrid === undefined ? "" : right("L1%", 7)
    }  stuck`
    print(p.bold(columns))
    print(p.dim("─".repeat(columns.length + 4)))

    // --- workloads -----------------------------------------------------------------------------------------------
    const runOptions = (keyPrefix: string) => ({
      keys: w.keys,
      concurrency: w.concurrency,
      readRatio: w.readRatio,
      pause: Duration.millis(w.pauseMillis),
      keyPrefix
    })
    const start = performance.now()
    const elapsed = () => (performance.now() - start) / 1000
    const sleepUntil = (s: number) => Effect.suspend(() => Effect.sleep(Duration.millis(Math.max(0, start + s * 1000 - performance.now()))))

    const steadfast = tracked(Workload.fromCache(cache))
    const steadfastLoad = yield* Workload.run(steadfast.target, runOptions(prefix.steadfast))
    const ioredis = plain === undefined ? undefined : tracked(Workload.fromPromises(plain))
    const ioredisLoad = ioredis === undefined ? undefined : yield* Workload.run(ioredis.target, runOptions(prefix.ioredis))
    const hybridClient = hybrid === undefined ? undefined : tracked(Workload.fromCache(hybrid))
    const hybridLoad = hybridClient === undefined ? undefined : yield* Workload.run(hybridClient.target, runOptions(prefix.hybrid))

    // --- the per-second rows -------------------------------------------------------------------------------------
    const series: Array<SecondRow> = []
    let lastFallbacks = initialStats.fallbacks
    let lastOpens = initialStats.circuitOpens
    const lastHybrid = {
      fallbacks: initialHybrid?.fallbacks ?? 0,
      opens: initialHybrid?.circuitOpens ?? 0,
      l1Hits: initialHybrid?.hybrid?.l1.hits ?? 0,
      l1Misses: initialHybrid?.hybrid?.l1.misses ?? 0
    }
    /** The L1% column: blank on the other clients' rows (absent without a hybrid client). */
    const l1Blank = hybrid === undefined ? "" : right("", 7)
    const ticks = Math.ceil(duration)
    const cell = (n: number, width: number, bad = false) => {
      const text = right(count(n), width)
      return bad && n > 0 ? p.red(text) : text
    }
    const stuckCell = (stuck: { count: number; oldestMs: number }) =>
      stuck.count === 0 ? "" : p.red(`${stuck.count} (${seconds(stuck.oldestMs / 1000)})`)
    const latencyCell = (value: number, width: number) => {
      const text = right(ms(value), width)
      return value >= 1000 ? p.red(text) : value >= 100 ? p.yellow(text) : text
    }
    // A window where nothing completed has no latency to show: "-" (the stuck column says why).
    const latencies = (w: Workload.Stats) =>
      w.ops === 0
        ? `${right("-", 6)}${right("-", 7)}${right("-", 8)}`
        : `${latencyCell(w.p50Ms, 6)}${latencyCell(w.p99Ms, 7)}${latencyCell(w.maxMs, 8)}`
    const ticker = Effect.gen(function*() {
      for (let k = 1; k <= ticks; k++) {
        const t = Math.min(k, duration)
        yield* sleepUntil(t)
        const s = yield* steadfastLoad.window
        const stats = yield* cache.stats
        const i = ioredisLoad === undefined ? undefined : yield* ioredisLoad.window
        const h = hybridLoad === undefined ? undefined : yield* hybridLoad.window
        const hStats = hybrid === undefined ? undefined : yield* hybrid.stats
        const fallbacks = stats.fallbacks - lastFallbacks
        const opens = stats.circuitOpens - lastOpens
        lastFallbacks = stats.fallbacks
        lastOpens = stats.circuitOpens
        const breakerCell = (state: string, opens: number) => {
          const text = state === "NONE"
            ? "-"
            : `${state === "HALF_OPEN" ? "half-open" : state === "OPEN" ? "OPEN" : "closed"}${opens > 0 ? ` +${opens}` : ""}`
          return state === "CLOSED" && opens === 0 ? left(text, 10) : p.yellow(left(text, 10))
        }
        const breaker = breakerCell(stats.circuitState, opens)
        const sStuck = steadfast.waiting(1000)
        const perSecond = (n: number, window: number) => Math.round(n / Math.max(window, 0.001))
        print(
          `${right(`${t}s`, 5)}  ${p.cyan(left("steadfast", 10))}${cell(perSecond(s.ops, s.seconds), 6)}${
            right(percent(s.hits, s.hits + s.misses), 7)
          }${cell(s.readErrors, 7, true)}${cell(s.writeErrors, 7, true)}${cell(fallbacks, 7)}  ${breaker}${latencies(s)}${l1Blank}  ${
            stuckCell(sStuck)
          }`.trimEnd()
        )
        const row: Record<string, SecondRow["clients"][string]> = {
          steadfast: {
            ops: s.ops,
            opsPerS: perSecond(s.ops, s.seconds),
            hitRate: s.hits + s.misses === 0 ? null : round((100 * s.hits) / (s.hits + s.misses)),
            readErrors: s.readErrors,
            writeErrors: s.writeErrors,
            fallbacks,
            breaker: stats.circuitState,
            breakerOpens: stats.circuitState === "NONE" ? null : opens,
            p50Ms: round(s.p50Ms),
            p99Ms: round(s.p99Ms),
            maxMs: round(s.maxMs),
            stuck: sStuck.count,
            oldestMs: Math.round(sStuck.oldestMs)
          }
        }
        if (h !== undefined && hStats !== undefined && hybridClient !== undefined) {
          const hFallbacks = hStats.fallbacks - lastHybrid.fallbacks
          const hOpens = hStats.circuitOpens - lastHybrid.opens
          const l1 = hStats.hybrid!.l1
          const l1Hits = l1.hits - lastHybrid.l1Hits
          const l1Reads = l1Hits + l1.misses - lastHybrid.l1Misses
          lastHybrid.fallbacks = hStats.fallbacks
          lastHybrid.opens = hStats.circuitOpens
          lastHybrid.l1Hits = l1.hits
          lastHybrid.l1Misses = l1.misses
          const hStuck = hybridClient.waiting(1000)
          print(
            `${right("", 5)}  ${p.cyan(left("hybrid", 10))}${cell(perSecond(h.ops, h.seconds), 6)}${
              right(percent(h.hits, h.hits + h.misses), 7)
            }${cell(h.readErrors, 7, true)}${cell(h.writeErrors, 7, true)}${cell(hFallbacks, 7)}  ${
              breakerCell(hStats.circuitState, hOpens)
            }${latencies(h)}${right(percent(l1Hits, l1Reads), 7)}  ${stuckCell(hStuck)}`.trimEnd()
          )
          row["hybrid"] = {
            ops: h.ops,
            opsPerS: perSecond(h.ops, h.seconds),
            hitRate: h.hits + h.misses === 0 ? null : round((100 * h.hits) / (h.hits + h.misses)),
            readErrors: h.readErrors,
            writeErrors: h.writeErrors,
            fallbacks: hFallbacks,
            breaker: hStats.circuitState,
            breakerOpens: hStats.circuitState === "NONE" ? null : hOpens,
            p50Ms: round(h.p50Ms),
            p99Ms: round(h.p99Ms),
            maxMs: round(h.maxMs),
            stuck: hStuck.count,
            oldestMs: Math.round(hStuck.oldestMs),
            l1HitRate: l1Reads === 0 ? null : round((100 * l1Hits) / l1Reads)
          }
        }
        if (i !== undefined && ioredis !== undefined) {
          const iStuck = ioredis.waiting(1000)
          print(
            `${right("", 5)}  ${p.cyan(left("ioredis", 10))}${cell(perSecond(i.ops, i.seconds), 6)}${
              right(percent(i.hits, i.hits + i.misses), 7)
            }${cell(i.readErrors, 7, true)}${cell(i.writeErrors, 7, true)}${right("-", 7)}  ${left("-", 10)}${latencies(i)}${l1Blank}  ${
              stuckCell(iStuck)
            }`.trimEnd()
          )
          row["ioredis"] = {
            ops: i.ops,
            opsPerS: perSecond(i.ops, i.seconds),
            hitRate: i.hits + i.misses === 0 ? null : round((100 * i.hits) / (i.hits + i.misses)),
            readErrors: i.readErrors,
            writeErrors: i.writeErrors,
            fallbacks: null,
            breaker: null,
            breakerOpens: null,
            p50Ms: round(i.p50Ms),
            p99Ms: round(i.p99Ms),
            maxMs: round(i.maxMs),
            stuck: iStuck.count,
            oldestMs: Math.round(iStuck.oldestMs)
          }
        }
        series.push({ t, clients: row })
      }
    })

    // --- recovery probes -----------------------------------------------------------------------------------------
    const recovery: { steadfast: number | null; ioredis: number | null; hybrid: number | null } = {
      steadfast: null,
      ioredis: null,
      hybrid: null
    }
    const probe = (name: "steadfast" | "ioredis" | "hybrid", since: number, attempt: (value: string) => Effect.Effect<boolean>) =>
      Effect.gen(function*() {
        for (let n = 0;; n++) {
          if (backend.mode === "memory") return
          const value = `fresh-${n}-${Date.now()}`
          const written = yield* backend.setDirect(probeKey[name], value)
          if (written && (yield* attempt(value))) {
            const after = performance.now() - since
            recovery[name] = after
            print(
              p.green(
                `${right(`✓ ${seconds(elapsed())}`, 9)}  ${name}: a value SET straight into Redis reads back: Redis serves again (${
                  ms(after)
                } ms after the last fault)`
              )
            )
            return
          }
          yield* Effect.sleep("200 millis")
        }
      })
    const probeSteadfast = (value: string) =>
      cache.get(probeKey.steadfast).pipe(
        Effect.map((found) => Option.getOrUndefined(found) === value),
        Effect.timeout("2 seconds"),
        Effect.orElseSucceed(() => false)
      )
    const probeHybrid = (value: string) =>
      hybrid === undefined ? Effect.succeed(false) : hybrid.get(probeKey.hybrid).pipe(
        Effect.map((found) => Option.getOrUndefined(found) === value),
        Effect.timeout("2 seconds"),
        Effect.orElseSucceed(() => false)
      )
    const probeIoredis = (value: string) =>
      plain === undefined ? Effect.succeed(false) : promise(() => plain.get(probeKey.ioredis)).pipe(
        Effect.map((found) => found === value),
        Effect.timeout("1 second"),
        Effect.orElseSucceed(() => false)
      )

    // --- the fault timeline ----------------------------------------------------------------------------------------
    const faults: Array<FaultRecord> = []
    const probes: Array<Fiber.RuntimeFiber<void>> = []
    const timeline: Effect.Effect<void, never, Scope.Scope> = Effect.gen(function*() {
      const open = new Map<string, number>()
      for (const [index, step] of steps.entries()) {
        // Just after the row of that second, so a fault line sits between the rows before and after it.
        yield* sleepUntil(step.at + 0.02)
        const startedAt = elapsed()
        const note = yield* step.run
        const now = elapsed()
        const extra = typeof note === "string" ? ` ${note}` : ""
        if (step.kind === "heal") {
          faults.push({ fault: step.fault, startedAtS: round(open.get(step.fault) ?? startedAt), endedAtS: round(now) })
          print(p.green(`${right(`<<< ${seconds(now)}`, 9)}  HEALED  ${step.text}${extra}`))
        } else {
          if (step.kind === "blip") faults.push({ fault: step.fault, startedAtS: round(startedAt), endedAtS: round(now) })
          else open.set(step.fault, startedAt)
          print(p.yellow(p.bold(`${right(`>>> ${seconds(startedAt)}`, 9)}  FAULT   ${step.text}${extra}`)))
        }
        if (index === steps.length - 1) {
          const since = performance.now()
          // Scoped, not children of this fiber: they outlive the timeline (until found, or the end of the run).
          probes.push(yield* Effect.forkScoped(probe("steadfast", since, probeSteadfast)))
          if (hybrid !== undefined) probes.push(yield* Effect.forkScoped(probe("hybrid", since, probeHybrid)))
          if (plain !== undefined) probes.push(yield* Effect.forkScoped(probe("ioredis", since, probeIoredis)))
        }
      }
    })

    const timelineFiber = yield* Effect.forkScoped(timeline)
    const tickerFiber = yield* Effect.forkScoped(ticker)
    const stopped = yield* Effect.raceFirst(Effect.as(Fiber.join(tickerFiber), false), Effect.as(stop, true))
    if (stopped) print(p.yellow(`\nStopped early at ${seconds(elapsed())}: summary so far, then cleaning up.`))

    // A client that has not shown recovery yet gets a short grace (its workload keeps running meanwhile).
    const unrecovered = () =>
      [
        ...(recovery.steadfast === null ? ["steadfast"] : []),
        ...(hybrid !== undefined && recovery.hybrid === null ? ["hybrid"] : []),
        ...(plain !== undefined && recovery.ioredis === null ? ["ioredis"] : [])
      ]
    if (!stopped && probes.length > 0 && unrecovered().length > 0) {
      print(p.dim(`… waiting up to ${grace} s for ${unrecovered().join(" and ")} to read from Redis again`))
      yield* Effect.raceFirst(
        Effect.forEach(probes, Fiber.await, { discard: true }).pipe(Effect.timeout(Duration.seconds(grace)), Effect.ignore),
        stop
      )
    }
    yield* Fiber.interrupt(timelineFiber)
    yield* Fiber.interruptAll(probes)

    const elapsedS = elapsed()
    const sTotal = yield* steadfastLoad.stats
    const iTotal = ioredisLoad === undefined ? undefined : yield* ioredisLoad.stats
    const hTotal = hybridLoad === undefined ? undefined : yield* hybridLoad.stats
    const finalStats = yield* cache.stats
    const finalHybrid = hybrid === undefined ? undefined : yield* hybrid.stats
    const proxyStats = proxy === undefined ? null : yield* proxy.stats
    const hasRedis = backend.mode !== "memory"
    const summarize = (
      client: "steadfast" | "ioredis" | "hybrid",
      stats: Workload.Stats,
      pending: { count: number; oldestMs: number },
      fallbacks: number,
      breakerOpens: number
    ): ClientSummary => ({
      client,
      ops: stats.ops,
      reads: stats.reads,
      writes: stats.writes,
      hits: stats.hits,
      misses: stats.misses,
      hitRate: stats.hits + stats.misses === 0 ? null : Math.round((1000 * stats.hits) / (stats.hits + stats.misses)) / 10,
      callerErrors: stats.readErrors + stats.writeErrors,
      readErrors: stats.readErrors,
      writeErrors: stats.writeErrors,
      errorsByKind: stats.errorsByKind,
      wrongValues: stats.wrongValues,
      staleReads: stats.staleReads,
      fallbacks,
      breakerOpens,
      p50Ms: round(stats.p50Ms),
      p99Ms: round(stats.p99Ms),
      maxMs: round(stats.maxMs),
      // Not checked (null) without Redis, or when the run was stopped before the last fault was over.
      recovered: hasRedis && probes.length > 0 ? recovery[client] !== null : null,
      recoveredAfterMs: recovery[client] === null ? null : Math.round(recovery[client]),
      pendingAtEnd: pending.count,
      oldestPendingMs: Math.round(pending.oldestMs),
      secondsWithoutProgress: series.filter((row) => row.clients[client]?.ops === 0).length
    })
    const sSummary = summarize("steadfast", sTotal, steadfast.waiting(1000), finalStats.fallbacks, finalStats.circuitOpens)
    const iSummary = iTotal === undefined || ioredis === undefined ? undefined : summarize("ioredis", iTotal, ioredis.waiting(1000), 0, 0)
    const hSummary: ClientSummary | undefined = hTotal === undefined || hybridClient === undefined || finalHybrid === undefined
      ? undefined
      : (() => {
        // L1's share of the reads since the workload started (the warm-up read before it excluded).
        const l1 = finalHybrid.hybrid!.l1
        const l1Hits = l1.hits - (initialHybrid?.hybrid?.l1.hits ?? 0)
        const l1Reads = l1Hits + l1.misses - (initialHybrid?.hybrid?.l1.misses ?? 0)
        return {
          ...summarize("hybrid", hTotal, hybridClient.waiting(1000), finalHybrid.fallbacks, finalHybrid.circuitOpens),
          l1HitRatio: l1Reads === 0 ? null : Math.round((1000 * l1Hits) / l1Reads) / 10
        }
      })()
    const hybridHeld = hSummary === undefined ||
      (hSummary.readErrors === 0 && hSummary.wrongValues === 0 && hSummary.staleReads === 0 && (hSummary.recovered ?? true))

    const steadfastHeld = sSummary.readErrors === 0 && sSummary.wrongValues === 0 && sSummary.staleReads === 0 &&
      (sSummary.recovered ?? true)
    const held = steadfastHeld && hybridHeld
    const lines: Array<string> = []
    if (steadfastHeld) {
      lines.push(
        `Steadfast held${stopped ? " (so far)" : ""}: 0 caller-visible read errors, 0 wrong values, 0 stale reads${
          sSummary.recovered ? `, Redis serving its reads again ${ms(sSummary.recoveredAfterMs ?? 0)} ms after the last fault` : ""
        }${sSummary.fallbacks > 0 ? ` (${count(sSummary.fallbacks)} operations answered from memory meanwhile)` : ""}.`
      )
    } else {
      lines.push(
        `FINDING: Steadfast did NOT hold: ${sSummary.readErrors} read errors, ${sSummary.wrongValues} wrong values, ` +
          `${sSummary.staleReads} stale reads, recovered: ${sSummary.recovered}` +
          ` (errors by kind: ${JSON.stringify(sSummary.errorsByKind)}).`
      )
    }
    if (hSummary !== undefined) {
      lines.push(
        hybridHeld
          ? `Steadfast hybrid held${stopped ? " (so far)" : ""}: 0 caller-visible read errors, 0 wrong values, 0 stale reads, ` +
            `L1 answered ${hSummary.l1HitRatio ?? 0}% of its reads (no round trip)${
              hSummary.recovered ? `, Redis serving its reads again ${ms(hSummary.recoveredAfterMs ?? 0)} ms after the last fault` : ""
            }${hSummary.fallbacks > 0 ? ` (${count(hSummary.fallbacks)} operations answered from memory meanwhile)` : ""}.`
          : `FINDING: Steadfast hybrid did NOT hold: ${hSummary.readErrors} read errors, ${hSummary.wrongValues} wrong values, ` +
            `${hSummary.staleReads} stale reads, recovered: ${hSummary.recovered}` +
            ` (errors by kind: ${JSON.stringify(hSummary.errorsByKind)}).`
      )
    }
    if (iSummary !== undefined) {
      const hurt = iSummary.callerErrors > 0 || iSummary.p99Ms >= 1000 || iSummary.maxMs >= 1000 || iSummary.wrongValues > 0 ||
        iSummary.staleReads > 0
      lines.push(
        `ioredis (defaults) under the same faults: ${count(iSummary.readErrors)} read / ${count(iSummary.writeErrors)} write errors, ` +
          `${iSummary.wrongValues} wrong values, ${iSummary.staleReads} stale reads, ` +
          `no operation completed in ${iSummary.secondsWithoutProgress} of ${series.length} seconds, ` +
          `slowest operation ${ms(iSummary.maxMs)} ms, ${iSummary.pendingAtEnd} stuck at the end` +
          `${iSummary.recovered === false ? ", never seen reading from Redis again" : ""}${hurt ? "." : " (the faults did not hurt it this time)."}`
      )
    }
    if (stopped) lines.push(`(stopped early${probes.length === 0 ? ", before the last fault was over: recovery not checked" : ""})`)

    const summary: Summary = {
      mode: backend.mode === "topology" ? "spawned" : backend.mode,
      topology: backend.mode === "topology" ? backend.topology : options.topology === undefined ? "standalone" : options.topology,
      redis: {
        url: backend.mode === "memory" ? null : backend.mode === "topology" ? backend.url : withoutPassword(backend.url),
        version: backend.mode === "memory" ? null : backend.version,
        pid: pids.at(-1) ?? null,
        pids,
        pidAliveAfterExit: null,
        note: backend.mode === "memory"
          ? `memory-only: ${backend.reason}`
          : backend.mode === "topology"
          ? backend.label
          : backend.mode === "url"
          ? "REDIS_URL given: no server restart in the timeline"
          : null
      },
      durationS: duration,
      elapsedS: round(elapsedS),
      stoppedEarly: stopped,
      steadfastConfig: config,
      workload: workloadOptions,
      faults,
      proxy: proxyStats,
      steadfastRedisFailures: finalStats.errors,
      ...(finalHybrid === undefined ? {} : { hybridRedisFailures: finalHybrid.errors }),
      ioredisConnectionErrors: plain === undefined ? null : ioredisConnectionErrors,
      clients: {
        steadfast: sSummary,
        ...(iSummary === undefined ? {} : { ioredis: iSummary }),
        ...(hSummary === undefined ? {} : { hybrid: hSummary })
      },
      verdict: { steadfastHeld: held, lines },
      series
    }
    print(p.dim(
      backend.mode === "memory"
        ? "\nCleaning up …"
        : backend.mode === "topology"
        ? `\nCleaning up: workers, the plain client, Steadfast's connection, the ${backend.topology === "cluster" ? "cluster" : "sentinel set"}'s ${pids.length} processes …`
        : `\nCleaning up: workers, the plain client, Steadfast's connection, the proxy${pids.length === 0 ? "" : ", redis-server"} …`
    ))
    return summary
  })

const round = (n: number) => Math.round(n * 100) / 100

// ---------------------------------------------------------------------------------------------------------------
// The closing table
// ---------------------------------------------------------------------------------------------------------------

const printSummary = (summary: Summary, print: (line: string) => void, p: Paint) => {
  const s = summary.clients.steadfast
  const i = summary.clients.ioredis
  const h = summary.clients.hybrid
  /** The columns: steadfast, then the hybrid client and ioredis when they ran. */
  const columns = [s, ...(h === undefined ? [] : [h]), ...(i === undefined ? [] : [i])]
  const titles: Record<ClientSummary["client"], string> = { steadfast: "steadfast", hybrid: "steadfast hybrid", ioredis: "ioredis (defaults)" }
  const labelWidth = 24
  const colWidth = 20
  const plain = (x: string) => x
  const row = (label: string, cell: (c: ClientSummary) => string, paint: (c: ClientSummary) => (x: string) => string = () => plain) =>
    print(`  ${left(label, labelWidth)}${columns.map((c) => paint(c)(right(cell(c), colWidth))).join("")}`)
  const bad = (n: number) => (x: string) => n > 0 ? p.red(x) : p.green(x)
  const hasBreaker = (c: ClientSummary) => c.client !== "ioredis"
  print("")
  print(p.bold(`Summary · ${seconds(summary.elapsedS)} · ${summary.mode === "memory" ? "memory only" : summary.redis.url ?? ""}`))
  row("", (c) => titles[c.client], () => p.bold)
  row("operations", (c) => count(c.ops))
  row("hit rate", (c) => (c.hitRate === null ? "-" : `${c.hitRate.toFixed(1)}%`))
  if (h !== undefined) row("L1 hit ratio", (c) => (c.l1HitRatio === undefined || c.l1HitRatio === null ? "-" : `${c.l1HitRatio.toFixed(1)}%`))
  row("read errors (caller)", (c) => count(c.readErrors), (c) => bad(c.readErrors))
  row("write errors (caller)", (c) => count(c.writeErrors), (c) => bad(c.writeErrors))
  row("wrong values", (c) => count(c.wrongValues), (c) => bad(c.wrongValues))
  row("stale reads", (c) => count(c.staleReads), (c) => bad(c.staleReads))
  row("fallbacks (memory)", (c) => (hasBreaker(c) ? count(c.fallbacks) : "-"))
  row("breaker opens", (c) => (hasBreaker(c) ? count(c.breakerOpens) : "-"))
  row("p50 / p99 latency", (c) => `${ms(c.p50Ms)} / ${ms(c.p99Ms)} ms`)
  row("slowest operation", (c) => `${ms(c.maxMs)} ms`)
  row("seconds with 0 ops done", (c) => count(c.secondsWithoutProgress), (c) => bad(c.secondsWithoutProgress))
  row("stuck (>1 s) at the end", (c) => count(c.pendingAtEnd))
  const rec = (c: ClientSummary) =>
    c.recovered === null ? (summary.mode === "memory" ? "n/a (no Redis)" : "not checked") : c.recovered ? `yes, +${ms(c.recoveredAfterMs ?? 0)} ms` : "NO"
  row("recovered (Redis read)", rec, (c) => (c.recovered === false ? p.red : p.green))
  const kinds = (c: ClientSummary) =>
    Object.entries(c.errorsByKind).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ×${count(n)}`)
  for (const c of columns) {
    const k = kinds(c)
    if (k.length > 0) print(`  ${left(`${c.client} errors by kind`, labelWidth)}${k.join(", ")}`)
  }
  for (const [name, failures] of [["steadfast", summary.steadfastRedisFailures], ["hybrid", summary.hybridRedisFailures]] as const) {
    const absorbed = Object.entries(failures ?? {}).sort((x, y) => y[1] - x[1])
    if (absorbed.length === 0) continue
    wrap(`${name} absorbed: ${absorbed.map(([k, n]) => `${k} ×${count(n)}`).join(", ")}`, 94, "    ").forEach((line) =>
      print(p.dim(`  ${line}`))
    )
  }
  if (summary.proxy !== null) {
    print(
      p.dim(
        `  proxy: ${summary.proxy.accepted} connections accepted, ${summary.proxy.resets} reset, ${summary.proxy.closes} closed; ` +
          `ioredis 'error' events: ${summary.ioredisConnectionErrors ?? 0}`
      )
    )
  }
  if (summary.redis.pids.length > 0) {
    print(p.dim(`  redis-server pids ${summary.redis.pids.join(", ")}: ${summary.redis.pidAliveAfterExit ? "STILL ALIVE" : "all gone"}`))
  }
  print("")
  // Steadfast's lines (the first, and the hybrid client's) in green when they held, red for a finding.
  summary.verdict.lines.forEach((text) => {
    const paint = text.startsWith("FINDING") ? (x: string) => p.red(p.bold(x)) : text.startsWith("Steadfast") ? (x: string) => p.green(p.bold(x)) : plain
    wrap(text, 96, "  ").forEach((line) => print(paint(line)))
  })
}
