/**
 * A Redis connection as a scoped `Layer` over ioredis 6, configured so that outages are bounded:
 *
 * - no offline queue: while Redis is down a command fails at once instead of waiting in a queue that grows;
 * - no re-sending of in-flight commands after a reconnect (`maxRetriesPerRequest: 0`,
 *   `autoResendUnfulfilledCommands: false`): a lost `INCR` reply never runs the `INCR` twice;
 * - a deadline on every command (`CACHE_SOCKET_TIMEOUT_MS`) on Effect's `Clock`, and a socket timeout just after it
 *   (ioredis' `socketTimeout` over a Cluster, the connection's own watch otherwise: see `internal/silence.ts`), so a
 *   socket that stops answering is destroyed (which rejects what it held: no promise stays pending) and re-opened;
 * - TCP keepalive, a connect timeout, TLS with verification for `rediss://`;
 * - a background health check that PINGs a connection idle longer than `CACHE_HEALTH_CHECK_INTERVAL`, so a
 *   socket the provider silently dropped is found before a user request hits it.
 *
 * - a Sentinel set (`redis+sentinel://`): each socket resolves the primary through the sentinels, follows
 *   `+switch-master` (ioredis' failover detector), and never writes to a primary whose failover has begun (the fence,
 *   see `sentinelOptions` and the README's "Sentinel").
 *
 * Building the layer never fails because Redis is down: it logs, and the connection heals in the background.
 * Only invalid configuration fails it. Closing the scope quits within a bound.
 *
 * @since 0.1.0
 */
import { Deadline, Errors } from "@steadfast/resilience"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import type { ClusterOptions, RedisOptions } from "ioredis"
import { isIP } from "node:net"
import * as Classification from "./Classification.js"
import * as Batcher from "./internal/batcher.js"
import * as ClusterConnection from "./internal/cluster.js"
import * as Deadlines from "./internal/deadlines.js"
import * as Silence from "./internal/silence.js"
import * as RedisConfig from "./RedisConfig.js"

/**
 * The state of one socket, as ioredis reports it.
 *
 * @since 0.1.0
 * @category models
 */
export type SocketStatus = "wait" | "connecting" | "connect" | "ready" | "reconnecting" | "close" | "end"

/**
 * @since 0.1.0
 * @category models
 */
export interface RedisConnection {
  /** The settings it was built with (`commandTimeout` there is the initial deadline: see {@link commandTimeout}). */
  readonly config: RedisConfig.RedisConfig
  /** The deadline of the calls started now: `config.commandTimeout`, or what {@link setCommandTimeout} last set. */
  readonly commandTimeout: () => Duration.Duration
  /**
   * Changes the deadline of the calls started from now on (runtime tuning); calls in flight keep theirs. Validated as
   * `commandTimeout` is at start-up (a `ConfigError` changes nothing). The sockets' silence timeout follows it
   * (deadline + a quarter, as at start-up). Every user of this connection sees the new deadline.
   */
  readonly setCommandTimeout: (timeout: Duration.DurationInput) => Effect.Effect<void, ConfigError.ConfigError>
  /** The server; for a Sentinel set, the first sentinel of the URL (the primary changes at every failover). */
  readonly server: { readonly host: string; readonly port: number; readonly tls: boolean }
  /**
   * Runs one command on a pooled socket, bounded by the command deadline, with its failure classified.
   * The escape hatch for commands this interface does not name.
   */
  readonly execute: <A>(operation: string, run: (client: Redis) => Promise<A>) => Effect.Effect<A, Errors.RedisFailure>
  readonly get: (key: string) => Effect.Effect<string | null, Errors.RedisFailure>
  /**
   * `GET`, coalesced: concurrent calls made in the same tick share one `MGET` (at most {@link maxBatch} keys) and one
   * deadline. With nothing in flight, a tick's first calls go before the rest (two `MGET`s: a quarter of the last
   * tick's calls, at least 2, then the others), and a single caller's call, after a tick of one, is sent at once.
   * Measured at 2x-3x the throughput of auto-pipelined GETs at 64 concurrent callers. One difference from `get`: a key
   * holding a non-string value reads as `null` (MGET's semantics), not as a `WRONGTYPE` error.
   */
  readonly getBatched: (key: string) => Effect.Effect<string | null, Errors.RedisFailure>
  /**
   * `SET [PX ttl]`, coalesced: concurrent calls made in the same tick share one `MSET` (when none has a TTL) or one
   * pipeline of `SET`s (each answering for itself), and one deadline. Same semantics as `set`, call by call. A batch
   * holds at most {@link maxBatch} calls and {@link maxBatchBytes} of keys and values; the tick's other calls follow
   * in further batches. With nothing in flight, a tick's first calls go before the rest, and a single caller is sent
   * at once, as with `getBatched`.
   */
  readonly setBatched: (
    key: string,
    value: string,
    ttl: Option.Option<Duration.Duration>
  ) => Effect.Effect<void, Errors.RedisFailure>
  /**
   * `getBatched` and `setBatched` without an effect of their own, for a layer above that settles its own effect from
   * the reply (`@steadfast/cache` does: one asynchronous step per call instead of four). Queue the call and call
   * `onExit` once with its outcome, from the reply's callback (on no fiber; it must not throw). Call them only
   * synchronously from a step a fiber is running: the call's span is that fiber's child. Optional: a connection
   * without them (`ScriptedConnection`) is used through `getBatched` / `setBatched`. Not enumerable on the real
   * connection: a wrapper that spreads it (`{ ...connection, getBatched }`) is used through its own `getBatched`.
   *
   * @since 0.6.0
   */
  readonly unsafeGetBatched?: (key: string, onExit: (exit: Exit.Exit<string | null, Errors.RedisFailure>) => void) => void
  /** See {@link unsafeGetBatched}. @since 0.6.0 */
  readonly unsafeSetBatched?: (
    key: string,
    value: string,
    ttl: Option.Option<Duration.Duration>,
    onExit: (exit: Exit.Exit<void, Errors.RedisFailure>) => void
  ) => void
  readonly mget: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<string | null>, Errors.RedisFailure>
  /** `SET key value [PX ttl]`. */
  readonly set: (key: string, value: string, ttl: Option.Option<Duration.Duration>) => Effect.Effect<void, Errors.RedisFailure>
  /** Many `SET`s in one round trip (a pipeline); fails with the first failure. */
  readonly mset: (
    entries: ReadonlyArray<readonly [string, string]>,
    ttl: Option.Option<Duration.Duration>
  ) => Effect.Effect<void, Errors.RedisFailure>
  readonly del: (keys: ReadonlyArray<string>) => Effect.Effect<number, Errors.RedisFailure>
  /**
   * One `SCAN cursor MATCH pattern COUNT count` step: the next cursor (`"0"` when the scan is complete) and the keys
   * it found. A cursor stays valid across reconnects, so a scan interrupted by an outage resumes where it stopped.
   */
  readonly scan: (
    cursor: string,
    pattern: string,
    count: number
  ) => Effect.Effect<readonly [string, ReadonlyArray<string>], Errors.RedisFailure>
  /**
   * Succeeds once a socket is ready: at once if one is, otherwise when the reconnect under way completes, failing
   * with its error (or at the command deadline). Fails at once if no socket is (re)connecting, and with the
   * `PermanentError` of a socket that cannot connect for a reason retrying cannot fix (a wrong password) when no other
   * socket is worth waiting for. For a breaker's probe: one call, worth waiting for, where a "not connected yet" would
   * waste the probe.
   */
  readonly ready: Effect.Effect<void, Errors.RedisFailure>
  /**
   * What a command sent now would find (synchronous): `ready`, a socket is ready; `reconnecting`, none is, but one
   * that was ready is on its first reconnect attempt after its peer reset or closed it (made at once: a peer that
   * reset us is usually back), so waiting for {@link ready} a few milliseconds beats failing with "not connected";
   * `down`, none is ready and none is about to be (its reconnects failed, its peer went silent, or a wrong password
   * or certificate keeps it down): fail fast.
   */
  readonly availability: () => "ready" | "reconnecting" | "down"
  /** `PING` with the command deadline. */
  readonly ping: Effect.Effect<void, Errors.RedisFailure>
  /** The status of each socket in the pool (`close` for one ioredis still calls ready whose stream is gone). */
  readonly status: Effect.Effect<ReadonlyArray<SocketStatus>>
  /**
   * Watches every socket of the pool until the scope closes: `watcher.ready(index, client)` for each socket ready now,
   * and each time a socket becomes ready (first connect and every reconnect); `watcher.closed(index)` when one closes.
   * `ready` runs synchronously inside ioredis' `ready` event, so what it sends on `client` is written before any other
   * command can use the socket: for per-connection server state that a reconnect loses (`CLIENT TRACKING`, read by
   * the hybrid cache). Optional so that test doubles need not provide it.
   */
  readonly watchSockets?: ((watcher: SocketWatcher) => Effect.Effect<void, never, Scope.Scope>) | undefined
  /**
   * Cluster only: the shard serving `key` now (synchronous), named by the first hash slot it serves (`"slots:0"`,
   * `"slots:5461"`, ...): a shard keeps its slots across a failover, so it keeps its name; a resharding may rename it.
   * `undefined` before the first slot map, for a slot no node serves, and on a standalone or Sentinel connection (one
   * shard). The cache keeps a breaker per shard with it.
   */
  readonly shardOf?: ((key: string) => string | undefined) | undefined
  /** Cluster only: the shards' names, in slot order (empty before the first slot map). */
  readonly shards?: (() => ReadonlyArray<string>) | undefined
}

/**
 * See {@link RedisConnection.watchSockets}. Both callbacks must not throw.
 *
 * @since 0.3.0
 * @category models
 */
export interface SocketWatcher {
  readonly ready: (index: number, client: Redis) => void
  readonly closed: (index: number) => void
}

/**
 * @since 0.1.0
 * @category tags
 */
export const RedisConnection = Context.GenericTag<RedisConnection>("@steadfast/redis/RedisConnection")

/**
 * Sockets in the `ready` state (the seed's `redis_connection_pool_size`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const poolSizeGauge = Metric.gauge("redis_connection_pool_size", {
  description: "Redis sockets currently ready"
})

/**
 * The configured health-check interval in seconds (the seed's `redis_health_check_interval`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const healthCheckIntervalGauge = Metric.gauge("redis_health_check_interval", {
  description: "Seconds a Redis socket may stay idle before it is PINGed"
})

/**
 * Health-check PINGs that failed and made the socket reconnect.
 *
 * @since 0.1.0
 * @category metrics
 */
export const healthCheckFailures = Metric.counter("redis_health_check_failure_total", {
  description: "Idle-socket PINGs that failed and forced a reconnect",
  incremental: true
})

/**
 * ioredis' reconnect delay: the first attempt at once (0–20 ms: a peer that reset us is usually there), then 50 ms
 * doubling to a 500 ms cap, plus jitter, forever (the breaker, not this, bounds what callers wait).
 */
const reconnectDelay = (attempt: number): number =>
  attempt <= 1
    ? Math.floor(Math.random() * 20)
    : Math.min(50 * 2 ** Math.min(attempt - 2, 10), 500) + Math.floor(Math.random() * 50)

/**
 * The commands `getBatched` / `setBatched` send, excluded from ioredis' auto-pipelining (see {@link clientOptions}).
 *
 * @since 0.1.0
 * @category constants
 */
export const batchedCommands: ReadonlyArray<string> = ["mget", "mset"]

/**
 * How long a socket with replies outstanding may stay silent before it is replaced: a quarter after the deadline (at
 * least 50 ms), so the caller sees its deadline first. A standalone or Sentinel connection watches this itself
 * (`internal/silence.ts`); a Cluster's nodes and other ioredis clients get it as ioredis' `socketTimeout`.
 *
 * @since 0.6.0
 * @category constants
 */
export const socketTimeoutMillis = (config: RedisConfig.RedisConfig): number =>
  Deadlines.socketTimeoutOf(config.commandTimeout)

/**
 * The ioredis options Steadfast uses; exported so tests and benchmarks can show exactly what differs from
 * ioredis' defaults.
 *
 * @since 0.1.0
 * @category constructors
 */
export const clientOptions = (config: RedisConfig.RedisConfig, url: RedisConfig.ParsedUrl): RedisOptions => {
  const options: RedisOptions = {
    ...(url.topology === "standalone" ? { host: url.host, port: url.port } : {}),
    db: url.db,
    lazyConnect: true,
    connectTimeout: Duration.toMillis(config.connectTimeout),
    // No `socketTimeout`: ioredis arms a timer and a listener for it on every write (1.0-3.7 µs of CPU per call at
    // one caller); the connection watches its sockets' silence itself (`internal/silence.ts`), with the same limit.
    // A Cluster's nodes get the option (see `clusterOptions`).
    keepAlive: Duration.toMillis(config.keepAlive),
    noDelay: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // Auto-pipelining coalesces the single-key commands sent through `execute` (GET, SET, DEL, ...) into one write
    // per event-loop turn. The coalesced MGET / MSET of `getBatched` / `setBatched` are already one command per batch:
    // through auto-pipelining each would pay for a `Pipeline`, a `setImmediate` and extra `nextTick`s, and wait behind
    // the auto-pipeline already in flight (ioredis runs one at a time per socket). They are written at once instead.
    // (The pipeline of `SET ... PX` used for a batch with TTLs is a `Pipeline` itself, which ioredis never
    // auto-pipelines.) The plain `mget` / `mset` of this interface skip it too: they are multi-key already.
    enableAutoPipelining: true,
    autoPipeliningIgnoredCommands: [...batchedCommands],
    retryStrategy: reconnectDelay,
    reconnectOnError: null,
    disableClientInfo: true,
    // How long ioredis' own `disconnect` waits for a socket to close before destroying it (default 2 s, and its timer
    // outlives a socket that was already closed, e.g. one waiting to reconnect). Ready sockets are QUIT and awaited
    // first; the others have nothing to flush.
    disconnectTimeout: 100,
    // While the server loads its dataset, ioredis' ready check sleeps for the server's own estimate of the time left
    // (up to 10 s by default) before asking again, so a socket stayed "not ready" long after the load ended (seen:
    // 8 s on a busy machine). Ask at least twice a second.
    maxLoadingRetryTime: 500,
    connectionName: "steadfast"
  }
  if (Option.isSome(url.username)) options.username = url.username.value
  if (Option.isSome(url.password)) options.password = Redacted.value(url.password.value)
  if (url.topology !== "sentinel") {
    if (url.tls) {
      options.tls = {
        rejectUnauthorized: true,
        ...(url.topology === "standalone" && isIP(url.host) === 0 ? { servername: url.host } : {}),
        ...(Option.isSome(config.tlsCa) ? { ca: config.tlsCa.value } : {})
      }
    }
    return options
  }
  return Object.assign(options, sentinelOptions(config, url))
}

/**
 * What a Sentinel set adds to {@link clientOptions} (read in ioredis 6.0's `connectors/SentinelConnector/`; the
 * figures are packages/testing/TOPOLOGIES.md's):
 *
 * - `failoverDetector: true` (ioredis: off). Sentinel does not demote the old primary at a failover: it stays a
 *   primary for ~10 s, and a client that is not told keeps writing there. Measured: 477-484 writes acknowledged by
 *   the old primary after a `SENTINEL FAILOVER`, 476-483 of them lost when it resynced as a replica, for 11.2 s;
 *   with the detector (a subscription to `+switch-master` on the sentinels that drops the socket at once, which then
 *   asks the sentinels again), 1 write after the switch and none lost.
 * - `sentinelRetryStrategy`: the pause after a pass over every sentinel failed, and so how often the
 *   "All sentinels are unreachable" error comes. ioredis: `min(10 * n, 1000)` ms; here the reconnect backoff (50 ms
 *   doubling to 500 ms, jitter), 5 s while the last failure was permanent (a wrong sentinel password). It must stay a
 *   number: `null` makes ioredis end the client for good ("retry is disabled"), which no standalone socket ever does.
 * - `sentinelCommandTimeout`: the command deadline (ioredis: none), so a sentinel that accepts the connection but
 *   never answers `SENTINEL GET-MASTER-ADDR-BY-NAME` costs one deadline, then the next sentinel is asked. Each
 *   sentinel's connect is bounded by `connectTimeout`, as a server's is.
 * - `sentinelReconnectStrategy`: how soon the failover detector re-subscribes on a sentinel whose connection dropped
 *   (ioredis: every 60 s, so a sentinel restart blinds that subscription for a minute): 100 ms doubling to 2 s.
 * - `role: "master"` (ioredis' default, kept) and `sentinelMaxConnections: 10` (kept): the detector listens on up to
 *   ten sentinels, so one dead sentinel does not hide a failover.
 * - `reconnectOnError` for `READONLY`: a write that reaches a demoted primary (the detector missed the switch) drops
 *   the socket, which asks the sentinels again; the write itself fails as a transient `read_only` (not re-sent).
 * - TLS (`rediss+sentinel://`): `enableTLSForSentinelMode` for the data nodes (ioredis: plain TCP to them even when
 *   `tls` is set), and `sentinelTLS` for the sentinels, both verifying certificates against `CACHE_TLS_CA_FILE` or the
 *   system CAs. The data nodes' host names come from the sentinels, so no fixed `servername`.
 * - `sentinelPassword`: the sentinels' own password (`REDIS_SENTINEL_PASSWORD`); the URL's user and password are the
 *   data nodes'.
 *
 * @since 0.3.0
 * @category constructors
 */
export const sentinelOptions = (
  config: RedisConfig.RedisConfig,
  url: RedisConfig.SentinelUrl,
  deadline: number = Duration.toMillis(config.commandTimeout)
): Partial<RedisOptions> => {
  const tls = url.tls
    ? { rejectUnauthorized: true, ...(Option.isSome(config.tlsCa) ? { ca: config.tlsCa.value } : {}) }
    : undefined
  return {
    sentinels: url.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: url.masterName,
    role: "master",
    failoverDetector: true,
    sentinelMaxConnections: 10,
    sentinelRetryStrategy: (attempt: number) => reconnectDelay(attempt + 1),
    sentinelReconnectStrategy: (attempt: number) => Math.min(100 * 2 ** Math.min(Math.max(attempt - 1, 0), 10), 2000),
    sentinelCommandTimeout: deadline,
    reconnectOnError: (error: Error) => (/^READONLY/.test(error.message) ? 1 : false),
    ...(Option.isSome(config.sentinelPassword) ? { sentinelPassword: Redacted.value(config.sentinelPassword.value) } : {}),
    ...(tls === undefined ? {} : { tls, enableTLSForSentinelMode: true, sentinelTLS: tls })
  }
}

/**
 * The ioredis `Cluster` options of a `redis+cluster://` connection (ioredis 6.0's defaults and the figures are
 * packages/testing/TOPOLOGIES.md's; see the README's "Cluster"):
 *
 * - `redisOptions`: {@link clientOptions} for every node (connect timeout, keepalive, TLS, credentials, no re-sending
 *   after a reconnect), plus ioredis' `socketTimeout` just after the deadline: the silence watch of a standalone
 *   connection is not applied to a Cluster's nodes. A node's socket does not reconnect on its own (ioredis' design: a
 *   lost node is found again by the slot refresh its errors trigger).
 * - `enableOfflineQueue: false` (ioredis: true): while the cluster (or the slot's node) is not connected a command
 *   fails at once, `not_sent`, instead of waiting in a queue.
 * - `slotsRefreshInterval: 5000` (ioredis: none, the slot map is refreshed only on `MOVED`, `CLUSTERDOWN` and closed
 *   connections). One `CLUSTER SLOTS` per client every 5 s bounds how long a change that produces no error goes
 *   unseen (a replica added or promoted, which `scaleReads` would read from; a resharding of keys not read lately).
 *   A primary that errs or goes silent is followed faster than that, without traffic (see `internal/cluster.ts`,
 *   "Following a failover": its replica's promotion is seen within a tenth of the deadline).
 * - `maxRedirections: 6` (ioredis: 16) with `retryDelayOnFailover` / `retryDelayOnClusterDown` / `retryDelayOnTryAgain`
 *   a tenth of the command deadline, between 10 and 100 ms (ioredis: 100 ms; 100 ms at the default 2 s deadline, 50 ms
 *   at 500 ms): ioredis' own retry loop gives up after at most 5 delayed retries, half the deadline at most (0.5 s at
 *   2 s), instead of 16 x 100 ms = 1.6 s. A forced failover takes 2.1-2.7 s here (`cluster-node-timeout` 1 s): no redirection budget
 *   within a 2 s deadline covers it, and ioredis' 1.6 s loop ate most of the deadline, leaving the cache no time to
 *   retry and its breaker nothing to count until late. With 0.5 s, a call on the failed shard fails within its
 *   deadline, the cache retries once or twice, the shard's breaker opens after its threshold and the shard's keys are
 *   answered from the fallback until a probe finds the new primary. Six still follows a `MOVED` (at once,
 *   `retryDelayOnMoved` 0), an `ASK`, and a `TRYAGAIN` during a slot migration several times over. (The delays are
 *   not the whole loop: a retry after "Connection is closed." first waited for the socket's timeout, 1.25 x the
 *   deadline, so ioredis could send a command again long after its caller's deadline, over a newer write of the key.
 *   It no longer does: a command is never sent again once its caller has its answer, see `internal/cluster.ts`,
 *   "Re-sends".)
 * - `clusterRetryStrategy`: the reconnect backoff of the standalone sockets (first at once, then 50 ms doubling to
 *   500 ms), forever (ioredis: `min(100 + 2n, 2000)` ms).
 * - `scaleReads` (`master` by default, as ioredis): `REDIS_CLUSTER_SCALE_READS` / `scaleReads` (`replica` is ioredis'
 *   `slave`). Replicas lag: see {@link RedisConfig.RedisConfig.scaleReads}.
 * - `enableAutoPipelining` stays off (ioredis' default): through the Cluster's auto-pipeline a `MOVED` during a
 *   graceful `CLUSTER FAILOVER` reached callers (measured: 4 failed calls in 0.44 s); sent on their own, ioredis
 *   follows it and no call failed.
 *
 * @since 0.3.0
 * @category constructors
 */
export const clusterOptions = (config: RedisConfig.RedisConfig, url: RedisConfig.ClusterUrl): ClusterOptions => {
  const {
    autoPipeliningIgnoredCommands: _i,
    db: _db,
    enableAutoPipelining: _p,
    enableOfflineQueue: _q,
    lazyConnect: _l,
    retryStrategy: _r,
    ...node
  } = clientOptions(config, url)
  const retryDelay = Math.min(100, Math.max(10, Math.round(Duration.toMillis(config.commandTimeout) / 10)))
  return {
    // A little after the deadline: the caller sees its deadline, then the silent socket is replaced.
    redisOptions: { ...node, socketTimeout: socketTimeoutMillis(config) },
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: true,
    slotsRefreshInterval: clusterSlotsRefreshInterval,
    slotsRefreshTimeout: Math.min(1000, Duration.toMillis(config.commandTimeout)),
    maxRedirections: clusterMaxRedirections,
    retryDelayOnFailover: retryDelay,
    retryDelayOnClusterDown: retryDelay,
    retryDelayOnTryAgain: retryDelay,
    retryDelayOnMoved: 0,
    clusterRetryStrategy: reconnectDelay,
    scaleReads: config.scaleReads === "replica" ? "slave" : config.scaleReads ?? "master",
    enableAutoPipelining: false
  }
}

/** See {@link clusterOptions}. */
const clusterSlotsRefreshInterval = 5000
/** See {@link clusterOptions}. */
const clusterMaxRedirections = 6

const quitTimeout = Duration.millis(1000)

/**
 * Sentinel only: how long writes to a primary whose failover has begun may wait for `+switch-master` before the
 * fence is lifted anyway (a failover that neither completes nor aborts; Sentinel itself gives up after its
 * `failover-timeout`, 3 minutes by default).
 */
const fenceTimeout = Duration.seconds(10)

/** Reconnect delay while the last connect failure was permanent: a wrong password is retried, but slowly. */
const permanentReconnectDelay = 5000

/**
 * The most keys one coalesced MGET carries; more concurrent reads start another batch.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxBatch = 256

/**
 * The most a coalesced write carries, in UTF-16 code units of its keys and values (bytes, for ASCII): a write batch
 * is sent once it holds this much, and the tick's other writes follow in further batches, each written while the
 * server works on the one before. One `MSET` of 64 values of 10 KB measured 0.44x the throughput of 64 plain SETs
 * at 64 concurrent callers, batches of 8 (80 KB) 1.26-1.33x and of 16 (160 KB) 0.40x (benchmarks/README.md, "large
 * values"); 64 KiB stays under that step. Values of 100 B fill `maxBatch` first, and are not affected.
 *
 * @since 0.7.0
 * @category constants
 */
export const maxBatchBytes = 65_536

/**
 * The mean value size (in bytes, or UTF-16 code units) from which coalesced reads ask for `Buffer`s (`MGET` as
 * `mgetBuffer`), each decoded only as its caller is settled. An `MGET` answered as strings holds every value in its
 * reply's array until the last arrives; with values of 10 KB at 64 callers, enough of them were promoted out of V8's
 * young generation that garbage collection took most of the time (benchmarks/README.md, "large values"). With small
 * values, strings are cheaper: a `Buffer` per value cost GET 100 B c=64 ~10 % (`benchmarks/dist/ab.js`, both orders).
 *
 * @since 0.7.0
 * @category constants
 */
export const largeValueBytes = 4096


/** Reasons that only say "this socket is not connected right now". */
const notConnected: ReadonlySet<string> = new Set(["connection_unavailable", "connection_closed"])

/**
 * Opens the pool. Requires a `Scope`: closing it quits every socket (at most 1 s, then disconnects).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config: RedisConfig.RedisConfig
): Effect.Effect<RedisConnection, never, Scope.Scope> =>
  Effect.gen(function*() {
    // The config was validated when it was built; a failure here is a programming error.
    const url = yield* Either.match(RedisConfig.parseUrl(config.url), {
      onLeft: (problem) => Effect.dieMessage(`invalid Redis URL: ${problem}`),
      onRight: Effect.succeed
    })
    if (url.topology === "cluster") {
      return yield* ClusterConnection.make(config, url, {
        options: clusterOptions(config, url),
        maxBatch,
        maxBatchBytes,
        poolSizeGauge,
        healthCheckIntervalGauge,
        healthCheckFailures
      })
    }
    const secrets = [url.password, config.sentinelPassword].flatMap((p) =>
      Option.match(p, { onNone: () => [], onSome: (p) => [Redacted.value(p)] })
    )
    const sentinel = url.topology === "sentinel"
    const options = clientOptions(config, url)
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)
    const clock = yield* Effect.clock
    const server = RedisConfig.serverOf(url)
    const spanAttributes = {
      "db.system.name": "redis",
      "db.namespace": String(url.db),
      "server.address": server.host,
      "server.port": server.port
    }

    const clients: Array<Redis> = []
    const lastUsed: Array<number> = []
    /**
     * A socket's last connect failure when it was permanent (wrong password, untrusted certificate). While it is
     * set, the socket is down for a reason retrying cannot fix: commands fail with it (not with a transient
     * "not connected"), so the breaker is not tripped by a misconfiguration, and reconnects slow to one per
     * {@link permanentReconnectDelay}.
     */
    const permanentFailure: Array<Errors.PermanentError | undefined> = []
    /** The socket's reconnect attempt under way (ioredis' count since it was last ready); 0 while ready. */
    const reconnectAttempt: Array<number> = []
    /**
     * Why the socket last dropped, when its peer went silent (a socket or health-check timeout): a reconnect to a
     * silent peer is not worth waiting for, unlike one to a peer that reset us. Cleared when it is ready again.
     */
    const silentPeer: Array<boolean> = []
    /**
     * Sentinel only: a whole pass over the sentinels failed since the socket was last ready ("All sentinels are
     * unreachable"). ioredis keeps such a socket `connecting` while it asks them again: it is down, not about to be
     * ready, so calls fail fast as they do while a standalone server refuses connections.
     */
    const sentinelsDown: Array<boolean> = []
    /** Sentinel only: the timer that revives a socket ioredis ended on its own (see `open`). */
    const revive: Array<ReturnType<typeof setTimeout> | undefined> = []
    let closing = false
    const watchers = new Set<SocketWatcher>()
    /**
     * Sentinel only: the primary being failed over, or the last one demoted. Sentinel promotes a replica ~1 s before
     * it announces the switch (`+switch-master`, after the other replicas are reconfigured), and the old primary keeps
     * acknowledging writes meanwhile, writes the promoted replica never gets: measured, 158-163 of a writer's
     * acknowledged writes lost at a `SENTINEL FAILOVER` with ioredis' failover detector alone. So the connection
     * watches the sentinels' failover events itself: from `+selected-slave` (the leader chose the replica to
     * promote) no command is sent on a socket connected to the old primary (it fails at once, `not_sent`); from
     * `+switch-master` on, a socket that reaches the old primary again is dropped, until a later switch elects it.
     * A failover that is aborted lifts the fence; one that never completes lifts it after {@link fenceTimeout}.
     */
    let fenced: { host: string; port: number; switched: boolean; timer: ReturnType<typeof setTimeout> | undefined } | undefined
    const bare = (host: string | undefined) => (host ?? "").replace(/^::ffff:/, "")
    const onFenced = (c: Redis) =>
      fenced !== undefined && c.stream?.remotePort === fenced.port && bare(c.stream?.remoteAddress) === bare(fenced.host)
    const countReady = () => clients.reduce((n, c) => (c.status === "ready" ? n + 1 : n), 0)
    /**
     * Ready and writeable. After a reset, the socket is destroyed (unwriteable) a little before ioredis handles its
     * `close` (measured: up to tens of ms on a loaded loop): a command sent then fails with "Stream isn't writeable".
     */
    const usable = (c: Redis) => c.status === "ready" && c.stream?.writable !== false && !onFenced(c)
    /** Ready as ioredis says, but its socket is gone: the `close`, then the reconnect, are coming. */
    const dying = (c: Redis) => c.status === "ready" && c.stream?.writable === false
    const publishPoolSize = () => runFork(Metric.set(poolSizeGauge, countReady()))

    const open = (index: number) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          // ioredis' declared option types predate exactOptionalPropertyTypes; the object is a plain RedisOptions.
          const client = new Redis({
            ...options,
            retryStrategy: (attempt: number) => {
              reconnectAttempt[index] = attempt
              return permanentFailure[index] === undefined ? reconnectDelay(attempt) : permanentReconnectDelay
            },
            ...(sentinel
              ? {
                sentinelRetryStrategy: (attempt: number) => {
                  sentinelsDown[index] = true
                  return permanentFailure[index] === undefined ? reconnectDelay(attempt + 1) : permanentReconnectDelay
                }
              }
              : {})
          } as RedisOptions & { replyMapping: "legacy" })
          let down = false
          client.on("error", (error: unknown) => {
            const failure = Classification.classify("connection", error, secrets)
            if (failure._tag === "PermanentError") permanentFailure[index] = failure
            if (failure.reason === "socket_timeout" || failure.reason === "timeout") silentPeer[index] = true
            const log = down ? Effect.logDebug : failure._tag === "PermanentError" ? Effect.logError : Effect.logWarning
            down = true
            runFork(
              log("redis connection error").pipe(
                Effect.annotateLogs({
                  operation: "connection",
                  socket: index,
                  error_type: failure.reason,
                  error_message: failure.message
                })
              )
            )
          })
          client.on("ready", () => {
            permanentFailure[index] = undefined
            reconnectAttempt[index] = 0
            silentPeer[index] = false
            sentinelsDown[index] = false
            if (fenced?.switched === true && onFenced(client)) {
              // A sentinel that had not heard of the switch yet named the old primary: ask again.
              runFork(Effect.logInfo("redis socket reached the demoted primary; reconnecting").pipe(Effect.annotateLogs({ socket: index })))
              client.disconnect(true)
              return
            }
            if (down) {
              down = false
              runFork(Effect.logInfo("redis connection ready again").pipe(Effect.annotateLogs({ socket: index })))
            }
            publishPoolSize()
            for (const watcher of watchers) watcher.ready(index, client)
          })
          client.on("close", () => {
            publishPoolSize()
            for (const watcher of watchers) watcher.closed(index)
          })
          if (sentinel) {
            // ioredis' failover detector opens its own connections to the sentinels without an error listener, so a
            // sentinel that goes away would print "[ioredis] Unhandled error event" at every reconnect. They exist once
            // the socket has connected (ioredis 6.0 internals, read defensively).
            client.on("connect", () => {
              const detector = (client as unknown as {
                connector?: { failoverDetector?: { sentinels?: Array<{ client?: Redis }> } | null }
              }).connector?.failoverDetector
              for (const s of detector?.sentinels ?? []) {
                if (s.client !== undefined && s.client.listenerCount("error") === 0) s.client.on("error", () => {})
              }
            })
            // ioredis ends a Sentinel client for good when a connect is cut short: the failover detector's
            // `+switch-master` landing while the sentinels are being asked makes the connect fail with "Connection is
            // closed." and the client `end`s, never to reconnect (a standalone client always reconnects). Revive it.
            client.on("end", () => {
              if (closing) return
              reconnectAttempt[index] = (reconnectAttempt[index] ?? 0) + 1
              revive[index] = setTimeout(() => {
                revive[index] = undefined
                if (!closing && client.status === "end") client.connect().catch(() => {})
              }, permanentFailure[index] === undefined ? reconnectDelay(reconnectAttempt[index]!) : permanentReconnectDelay)
            })
          }
          clients[index] = client
          reconnectAttempt[index] = 0
          silentPeer[index] = false
          sentinelsDown[index] = false
          lastUsed[index] = clock.unsafeCurrentTimeMillis()
          return client
        }),
        (client) =>
          Effect.sync(() => {
            closing = true
            clearTimeout(revive[index])
          }).pipe(Effect.zipRight(Effect.async<void>((resume) => {
            // QUIT lets the server finish what it has; without a ready socket there is nothing to finish.
            if (client.status !== "ready") {
              client.disconnect(false)
              return resume(Effect.void)
            }
            client.once("end", () => resume(Effect.void))
            client.quit().catch(() => client.disconnect(false))
          }))).pipe(
            Effect.timeout(quitTimeout),
            Effect.ignore,
            // Only a client that has not ended: `disconnect` on an ended one arms ioredis' close timer. A Sentinel client
            // is disconnected anyway: its failover detector's subscriptions to the sentinels end only there.
            Effect.ensuring(Effect.sync(() => (sentinel || client.status !== "end") && client.disconnect(false))),
            Effect.interruptible
          )
      ).pipe(
        Effect.tap((client) =>
          Effect.tryPromise({
            try: () => client.connect(),
            catch: (error) => Classification.classify("connect", error, secrets)
          }).pipe(
            Deadline.within("connect", config.connectTimeout),
            Effect.catchAll((failure) =>
              Effect.logWarning("redis unavailable at start-up; the connection heals in the background").pipe(
                Effect.annotateLogs({ socket: index, error_type: failure.reason, error_message: failure.message })
              )
            )
          )
        )
      )

    const log = (level: "info" | "warning", message: string, annotations: Record<string, unknown>) =>
      runFork((level === "info" ? Effect.logInfo(message) : Effect.logWarning(message)).pipe(Effect.annotateLogs(annotations)))
    const liftFence = (why: string) => {
      if (fenced === undefined) return
      clearTimeout(fenced.timer)
      log("info", "redis primary fence lifted", { primary: `${fenced.host}:${fenced.port}`, why })
      fenced = undefined
    }
    /** One Sentinel event (channel, payload) for any master; only ours counts. */
    const onSentinelEvent = (masterName: string, channel: string, message: string) => {
      const words = message.split(" ")
      if (channel === "+switch-master") {
        // "<master> <old-ip> <old-port> <new-ip> <new-port>"
        if (words[0] !== masterName || words.length < 5) return
        const old = { host: words[1]!, port: Number(words[2]) }
        const now = { host: words[3]!, port: Number(words[4]) }
        if (fenced !== undefined) clearTimeout(fenced.timer)
        fenced = { ...old, switched: true, timer: undefined }
        log("info", "redis primary switched (Sentinel)", { from: `${old.host}:${old.port}`, to: `${now.host}:${now.port}` })
        // ioredis' failover detector drops its socket on this message too; one that is still on the old primary (the
        // detector missed it) is dropped here.
        for (const c of clients) if (c.status === "ready" && c.stream?.writable !== false && onFenced(c)) c.disconnect(true)
        return
      }
      const at = words.indexOf("@")
      const master = at >= 0 ? words.slice(at + 1) : words[0] === "master" ? words.slice(1) : []
      if (master[0] !== masterName || master.length < 3) return
      const primary = { host: master[1]!, port: Number(master[2]) }
      if (/^-failover-abort/.test(channel)) {
        if (fenced !== undefined && !fenced.switched && fenced.port === primary.port) liftFence(channel)
        return
      }
      if (channel === "+selected-slave" || channel === "+failover-state-send-slaveof-noone" || channel === "+promoted-slave") {
        if (fenced !== undefined && !fenced.switched && fenced.port === primary.port && fenced.host === primary.host) return
        if (fenced !== undefined) clearTimeout(fenced.timer)
        const timer = setTimeout(() => {
          if (fenced !== undefined && !fenced.switched) liftFence("no +switch-master in time")
        }, Duration.toMillis(fenceTimeout))
        fenced = { ...primary, switched: false, timer }
        log("info", "redis primary fenced: a failover is under way (Sentinel)", { primary: `${primary.host}:${primary.port}`, event: channel })
      }
    }
    const watchSentinels = (url: RedisConfig.SentinelUrl) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const extra = sentinelOptions(config, url)
          return url.sentinels.map((address) => {
            const watcher = new Redis({
              host: address.host,
              port: address.port,
              ...(extra.sentinelPassword === undefined ? {} : { password: extra.sentinelPassword }),
              ...(extra.sentinelTLS === undefined ? {} : { tls: extra.sentinelTLS }),
              connectTimeout: Duration.toMillis(config.connectTimeout),
              keepAlive: Duration.toMillis(config.keepAlive),
              enableReadyCheck: false,
              disableClientInfo: true,
              maxRetriesPerRequest: null,
              disconnectTimeout: 100,
              retryStrategy: (attempt: number) => Math.min(100 * 2 ** Math.min(attempt - 1, 10), 2000)
            } as RedisOptions & { replyMapping: "legacy" })
            watcher.on("error", () => {})
            watcher.on("pmessage", (_pattern: string, channel: string, message: string) =>
              onSentinelEvent(url.masterName, channel, message)
            )
            watcher.psubscribe("*").catch(() => {})
            return watcher
          })
        }),
        (watchers) =>
          Effect.sync(() => {
            if (fenced !== undefined) clearTimeout(fenced.timer)
            for (const w of watchers) w.disconnect(false)
          })
      )

    // A socket silent a little past the deadline with replies outstanding is replaced (ioredis' `socketTimeout`,
    // without its cost per write). Started before the sockets are opened, so it stops after they are closed: a socket
    // that stalled is still destroyed while its QUIT waits (in real time, whatever clock the QUIT's bound is on).
    let silenceLimit = socketTimeoutMillis(config)
    yield* Effect.acquireRelease(
      Effect.sync(() => Silence.watch(clients, () => silenceLimit)),
      (stop) => Effect.sync(stop)
    )
    yield* Effect.forEach(Array.from({ length: config.maxConnections }, (_, i) => i), open, {
      concurrency: "unbounded",
      discard: true
    })
    yield* Metric.set(healthCheckIntervalGauge, Duration.toSeconds(config.healthCheckInterval))
    if (url.topology === "sentinel") yield* watchSentinels(url)

    let next = 0
    const size = clients.length
    /** Round-robin over ready sockets; if none is ready, the next one (it fails fast: no offline queue). */
    const pick = (): number => {
      for (let i = 0; i < size; i++) {
        const index = (next + i) % size
        if (usable(clients[index]!)) {
          next = (index + 1) % size
          lastUsed[index] = clock.unsafeCurrentTimeMillis()
          return index
        }
      }
      next = (next + 1) % size
      return next
    }

    const classifyOn = (operation: string, index: number, error: unknown): Errors.RedisFailure => {
      const failure = Classification.classify(operation, error, secrets)
      const permanent = permanentFailure[index]
      return permanent !== undefined && failure._tag === "TransientError" && notConnected.has(failure.reason)
        ? new Errors.PermanentError({
          operation,
          reason: permanent.reason,
          message: `not connected: ${permanent.message}`,
          cause: permanent.cause
        })
        : failure
    }

    const deadlines = yield* Deadlines.make(config.commandTimeout)
    const deadlineMillis = () => Duration.toMillis(deadlines.timeout())
    // Every call is a client span on the caller's tracer, read per call (`Spans`: none under Effect's built-in tracer
    // or `Effect.withTracerEnabled(false)`). The attributes are built once per operation.
    const specs = Deadlines.spanSpecs(spanAttributes)
    const mgetSpec = specs.make("get", "MGET")
    const msetSpec = specs.make("set", "MSET")

    /** Sends unless the socket is connected to a fenced (old) primary: then fails as never sent. */
    const guarded = <A>(index: number, f: (client: Redis) => Promise<A>): Promise<A> => {
      const client = clients[index]!
      return onFenced(client)
        ? Promise.reject(new Error("Stream isn't writeable: its server is a primary being failed over (Sentinel)"))
        : f(client)
    }

    const run = <A>(operation: string, choose: () => number, f: (client: Redis) => Promise<A>) => {
      const spec = specs.of(operation)
      return Effect.suspend(() => {
        const index = choose()
        const millis = deadlineMillis()
        const onTimeout = () =>
          new Errors.TransientError({
            operation,
            reason: "timeout",
            message: `${operation} exceeded its ${millis} ms deadline`,
            outcome: "unknown"
          })
        return deadlines.run(() => guarded(index, f), (error) => classifyOn(operation, index, error), onTimeout, spec)
      })
    }

    const execute = <A>(operation: string, f: (client: Redis) => Promise<A>) => run(operation, pick, f)

    // Coalesced reads and writes: calls made in the same tick share one request and one deadline.
    const batchTimeout = (operation: string) => () =>
      new Errors.TransientError({
        operation,
        reason: "timeout",
        message: `${operation} exceeded its ${deadlineMillis()} ms deadline`,
        outcome: "unknown"
      })
    // The size of the values read since the last batch was sent: the next batch asks for Buffers when they averaged
    // `largeValueBytes` or more (see there). Values are counted as they are decoded, a hit or a miss alike.
    let readBytes = 0
    let readValues = 0
    let asBuffers = false
    const decodeRead = (raw: string | Buffer | null): string | null => {
      readValues++
      if (raw === null || typeof raw === "string") {
        if (raw !== null) readBytes += raw.length
        return raw
      }
      readBytes += raw.length
      return raw.toString()
    }
    const reads = Batcher.make<string, string | null, string | Buffer | null>({
      deadlines,
      maxBatch,
      send: (keys) => {
        const index = pick()
        if (readValues > 0) {
          asBuffers = readBytes >= largeValueBytes * readValues
          readBytes = 0
          readValues = 0
        }
        return {
          index,
          reply: guarded<ReadonlyArray<string | Buffer | null>>(
            index,
            (c) => asBuffers ? c.mgetBuffer(keys as Array<string>) : c.mget(keys as Array<string>)
          )
        }
      },
      decode: decodeRead,
      classify: (index, error) => classifyOn("get", index, error),
      onTimeout: batchTimeout("get")
    })
    const noResults: ReadonlyArray<void> = []
    const writes = Batcher.make<readonly [string, string, Option.Option<Duration.Duration>], void>({
      deadlines,
      maxBatch,
      weigh: Batcher.weighWrite,
      maxWeight: maxBatchBytes,
      send: (entries) => {
        const index = pick()
        const client = clients[index]!
        if (onFenced(client)) return { index, reply: guarded(index, () => Promise.resolve(entries.map(() => undefined))) }
        // No TTL anywhere: one MSET, its arguments built in one array. Otherwise one pipeline of SETs, each answering
        // for itself.
        const args: Array<string> = new Array(entries.length * 2)
        let untimed = true
        for (let i = 0; i < entries.length; i++) {
          const [key, value, ttl] = entries[i]!
          if (Option.isSome(ttl)) {
            untimed = false
            break
          }
          args[2 * i] = key
          args[2 * i + 1] = value
        }
        // An MSET succeeds or fails as a whole: no per-key results (the batcher reads a missing one as success).
        if (untimed) return { index, reply: client.mset(args).then(() => noResults) }
        const pipeline = client.pipeline()
        for (const [key, value, ttl] of entries) {
          if (Option.isSome(ttl)) pipeline.set(key, value, "PX", ttlMillis(ttl.value))
          else pipeline.set(key, value)
        }
        return {
          index,
          reply: pipeline.exec().then((results) =>
            entries.map((_, i) => {
              const error = results?.[i]?.[0]
              return error ?? undefined
            })
          )
        }
      },
      classify: (index, error) => classifyOn("set", index, error),
      onTimeout: batchTimeout("set")
    })
    const getBatched = (key: string) => reads.submit(key, mgetSpec)
    const setBatched = (key: string, value: string, ttl: Option.Option<Duration.Duration>) =>
      writes.submit([key, value, ttl] as const, msetSpec)
    const unsafeGetBatched = (key: string, onExit: (exit: Exit.Exit<string | null, Errors.RedisFailure>) => void) =>
      reads.unsafeSubmit(key, mgetSpec, onExit)
    const unsafeSetBatched = (
      key: string,
      value: string,
      ttl: Option.Option<Duration.Duration>,
      onExit: (exit: Exit.Exit<void, Errors.RedisFailure>) => void
    ) => writes.unsafeSubmit([key, value, ttl] as const, msetSpec, onExit)

    const ttlMillis = (ttl: Duration.Duration) => Math.max(1, Math.ceil(Duration.toMillis(ttl)))

    const pipelineErrors = (results: Array<[Error | null, unknown]> | null) => {
      for (const [error] of results ?? []) {
        if (error) throw error
      }
    }

    const ping = execute("ping", (c) => c.ping()).pipe(Effect.asVoid)

    const reconnecting: ReadonlySet<string> = new Set(["connecting", "connect", "reconnecting"])
    const readyTimeout = () =>
      new Errors.TransientError({
        operation: "ready",
        reason: "timeout",
        message: `no socket ready within ${deadlineMillis()} ms`,
        outcome: "not_sent"
      })
    /**
     * One promise per socket for "its next `ready`", shared by every caller waiting for it (one set of listeners,
     * however many callers: a listener each would pass Node's limit of 10 at the first outage).
     */
    const waiting = new Map<number, Promise<void>>()
    const nextReady = (index: number): Promise<void> => {
      const existing = waiting.get(index)
      if (existing !== undefined) return existing
      const client = clients[index]!
      const promise = new Promise<void>((resolve, reject) => {
        const done = () => {
          waiting.delete(index)
          client.off("ready", onReady)
          client.off("error", onError)
          client.off("close", onClose)
          client.off("end", onEnd)
        }
        const onReady = () => (done(), resolve())
        const onError = (error: unknown) => (done(), reject(error))
        // Once the socket has closed, errors are the reconnect's: they fail the wait.
        const onClose = () => client.once("error", onError)
        const onEnd = () => (done(), reject(new Error("Connection is closed.")))
        client.once("ready", onReady)
        // A dying socket's own error (the reset) is still to come: only what follows its close counts.
        if (dying(client)) client.once("close", onClose)
        else client.once("error", onError)
        client.once("end", onEnd)
      })
      // Nobody may be waiting any more when it settles (their deadlines passed): never an unhandled rejection.
      promise.catch(() => {})
      waiting.set(index, promise)
      return promise
    }
    const notWriteable = () => new Error("Stream isn't writeable and enableOfflineQueue options is false")
    const ready: Effect.Effect<void, Errors.RedisFailure> = Effect.suspend(() => {
      if (clients.some(usable)) return Effect.void
      // A socket down for a reason retrying cannot fix (a wrong password, a missing ACL permission) reconnects only
      // every `permanentReconnectDelay`: it is not worth waiting for, and the caller is told why at once, as a command
      // would be (`PermanentError`, "not connected: …"), rather than with a transient timeout a deadline later.
      const worthWaiting = (c: Redis, i: number) => permanentFailure[i] === undefined && (reconnecting.has(c.status) || dying(c))
      let index = clients.findIndex((c, i) => worthWaiting(c, i) && reconnecting.has(c.status))
      if (index < 0) index = clients.findIndex(worthWaiting)
      if (index < 0) {
        const permanent = permanentFailure.findIndex((failure) => failure !== undefined)
        return Effect.fail(classifyOn("ready", permanent >= 0 ? permanent : Math.max(0, next), notWriteable()))
      }
      return deadlines.run(() => nextReady(index), (error) => classifyOn("ready", index, error), readyTimeout)
    })

    // The seed's "PING on reuse", done ahead of time: any socket idle for the interval gets a PING; a failing
    // PING drops the socket so ioredis reconnects it now, not when a user request finds it dead.
    const interval = Duration.toMillis(config.healthCheckInterval)
    const checkIdle = Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      return Effect.forEach(
        clients.map((client, index) => ({ client, index })).filter(({ client, index }) =>
          client.status === "ready" && now - (lastUsed[index] ?? 0) >= interval
        ),
        ({ client, index }) =>
          run("health_check", () => index, (c) => c.ping()).pipe(
            Effect.tap(() => Effect.sync(() => (lastUsed[index] = clock.unsafeCurrentTimeMillis()))),
            Effect.catchAll((failure) =>
              // Destroy the socket first (ioredis reconnects it), then report: a counted failure means it is gone.
              // Not `disconnect(true)`: that ends the socket with a FIN, which a blackholed peer never answers, so the
              // socket would stay "ready" and unwritable.
              Effect.sync(() => {
                silentPeer[index] = true
                client.stream?.destroy()
              }).pipe(
                Effect.zipRight(Metric.increment(healthCheckFailures)),
                Effect.zipRight(
                  Effect.logWarning("idle redis socket failed its health check; reconnecting").pipe(
                    Effect.annotateLogs({ socket: index, error_type: failure.reason, error_message: failure.message })
                  )
                )
              )
            )
          ),
        { concurrency: "unbounded", discard: true }
      )
    })
    yield* checkIdle.pipe(
      Effect.repeat(Schedule.spaced(Duration.millis(Math.max(1, interval / 2)))),
      Effect.interruptible,
      Effect.forkScoped
    )

    const setCommandTimeout = (input: Duration.DurationInput) =>
      Deadlines.retune(deadlines, input, (millis) => {
        silenceLimit = millis
      })

    const service = RedisConnection.of({
      config,
      commandTimeout: deadlines.timeout,
      setCommandTimeout,
      server,
      execute,
      get: (key) => execute("get", (c) => c.get(key)),
      getBatched,
      setBatched,
      mget: (keys) => keys.length === 0 ? Effect.succeed([]) : execute("mget", (c) => c.mget(...keys)),
      set: (key, value, ttl) =>
        execute("set", (c) =>
          Option.isSome(ttl)
            ? c.set(key, value, "PX", ttlMillis(ttl.value))
            : c.set(key, value)).pipe(Effect.asVoid),
      mset: (entries, ttl) => {
        if (entries.length === 0) return Effect.void
        return execute("mset", (c): Promise<unknown> => {
          if (Option.isNone(ttl)) return c.mset(...entries.flat())
          const px = ttlMillis(ttl.value)
          const pipeline = c.pipeline()
          for (const [key, value] of entries) pipeline.set(key, value, "PX", px)
          return pipeline.exec().then(pipelineErrors)
        }).pipe(Effect.asVoid)
      },
      del: (keys) => keys.length === 0 ? Effect.succeed(0) : execute("del", (c) => c.del(...keys)),
      scan: (cursor, pattern, count) =>
        execute("scan", (c) => c.scan(cursor, "MATCH", pattern, "COUNT", count)).pipe(
          Effect.map(([next, keys]) => [next, keys] as const)
        ),
      ping,
      ready,
      availability: () => {
        let reconnectingNow = false
        for (let i = 0; i < size; i++) {
          const client = clients[i]!
          if (usable(client)) return "ready"
          if (
            dying(client) ||
            (reconnectAttempt[i]! <= 1 && permanentFailure[i] === undefined && !silentPeer[i] && !sentinelsDown[i] &&
              reconnecting.has(client.status))
          ) reconnectingNow = true
        }
        return reconnectingNow ? "reconnecting" : "down"
      },
      // A socket ioredis still calls ready but whose stream is gone is closing (its `close` is on its way).
      status: Effect.sync(() => clients.map((c) => (dying(c) ? "close" : c.status) as SocketStatus)),
      watchSockets: (watcher) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            watchers.add(watcher)
            clients.forEach((client, index) => client.status === "ready" && watcher.ready(index, client))
          }),
          () => Effect.sync(() => watchers.delete(watcher))
        )
    })
    // Not enumerable: a wrapper made by spreading the service (`{ ...connection, getBatched: counted }`, as the
    // failover benchmark and the Cluster chaos file do) does not copy them, so `RedisCache` goes through its `getBatched`
    // rather than around it.
    Object.defineProperties(service, {
      unsafeGetBatched: { value: unsafeGetBatched, enumerable: false },
      unsafeSetBatched: { value: unsafeSetBatched, enumerable: false }
    })
    return service
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: RedisConfig.Options): Layer.Layer<RedisConnection, ConfigError.ConfigError> =>
  Layer.scoped(RedisConnection, Effect.flatMap(RedisConfig.fromOptions(options), make))

/**
 * Reads the settings from a `Config` (by default the environment, see {@link RedisConfig.config}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config<RedisConfig.RedisConfig> = RedisConfig.config
): Layer.Layer<RedisConnection, ConfigError.ConfigError> => Layer.scoped(RedisConnection, Effect.flatMap(config, make))
