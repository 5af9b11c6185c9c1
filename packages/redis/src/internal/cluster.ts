/**
 * The connection over a Redis Cluster (ioredis' `Cluster`): the same `RedisConnection` service as a standalone
 * server's, so the caches work unchanged over it. See `RedisConnection.clusterOptions` for the ioredis options and
 * the README's "Cluster" for what is guaranteed across a failover.
 *
 * - Pool: `maxConnections` `Cluster` clients, each with one socket per node (so the setting keeps meaning "sockets
 *   per server"), used round-robin.
 * - Multi-key commands (`mget`, `mset`, `del`, and the coalesced `getBatched` / `setBatched`) are split by hash slot
 *   (a multi-key command across slots fails with `CROSSSLOT`); the groups are sent at once and reassembled in order. In a coalesced batch each item answers for
 *   itself: a dead shard fails only its own keys.
 * - `shardOf(key)`: the shard serving the key, named by the first slot it serves (`slots:0`, `slots:5461`, ...): the
 *   name survives a failover (a shard keeps its slots), so a per-shard breaker follows its shard through it.
 * - `scan` walks the shards' primaries one after the other (cursor `<shard>:<cursor>`).
 * - `ping` PINGs every primary (fails if one fails); the health check PINGs every primary of an idle client.
 * - A failover is followed without traffic: while a node that errs or goes silent still serves slots, the client asks
 *   another node for the slot map every deadline / 10 and refreshes its own as soon as it changed (see `follow`).
 * - No command is sent again once its caller has its answer (see "Re-sends"): ioredis re-sends a command after
 *   `MOVED` / `ASK` / `TRYAGAIN` / `CLUSTERDOWN` or a closed socket; one written after the caller's deadline could
 *   overwrite a newer, acknowledged write of the same key.
 *
 * @internal
 */
import { Errors } from "@steadfast/resilience"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { Cluster } from "ioredis"
import type { ClusterOptions, Redis } from "ioredis"
import * as Classification from "../Classification.js"
import type * as RedisConfig from "../RedisConfig.js"
import type { RedisConnection, SocketStatus } from "../RedisConnection.js"
import * as Batcher from "./batcher.js"
import * as Deadlines from "./deadlines.js"
import { slot } from "./slot.js"

export interface Shared {
  readonly options: ClusterOptions
  readonly maxBatch: number
  /** A coalesced write batch closes at this weight (`RedisConnection.maxBatchBytes`; see `Batcher.weighWrite`). */
  readonly maxBatchBytes: number
  readonly poolSizeGauge: Metric.Metric.Gauge<number>
  readonly healthCheckIntervalGauge: Metric.Metric.Gauge<number>
  readonly healthCheckFailures: Metric.Metric.Counter<number>
}

const SLOTS = 16384
const quitTimeout = Duration.millis(1000)
/** How long a suspect node is followed at the fast pace (deadline / 10), then once a second (see `follow`). */
const followFastMillis = 30_000
const followSlowMillis = 1000

/** `host:port` of each node serving a slot range in a `CLUSTER SLOTS` reply, primary first; the range's bounds. */
export const slotRanges = (
  reply: unknown
): Array<{ readonly start: number; readonly end: number; readonly nodes: ReadonlyArray<string> }> => {
  if (!Array.isArray(reply)) return []
  const ranges: Array<{ start: number; end: number; nodes: Array<string> }> = []
  for (const range of reply) {
    if (!Array.isArray(range) || range.length < 3) continue
    const start = Number(range[0])
    const end = Number(range[1])
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end >= SLOTS || start > end) continue
    const nodes: Array<string> = []
    for (const node of range.slice(2)) {
      // ioredis skips entries without a host (a node whose address is unknown): so does this.
      if (Array.isArray(node) && typeof node[0] === "string" && node[0] !== "") nodes.push(`${node[0]}:${Number(node[1])}`)
    }
    if (nodes.length > 0) ranges.push({ start, end, nodes })
  }
  return ranges
}

/**
 * Whether `ranges` (a fresh `CLUSTER SLOTS`) disagree with a client's slot map (ioredis' `slots`: per slot the
 * `host:port` of its primary, then its replicas): another primary, or other replicas (in any order).
 */
export const mapDiffers = (
  slots: ReadonlyArray<ReadonlyArray<string> | undefined>,
  ranges: ReadonlyArray<{ readonly start: number; readonly end: number; readonly nodes: ReadonlyArray<string> }>
): boolean => {
  const same = (have: ReadonlyArray<string> | undefined, want: ReadonlyArray<string>) => {
    if (have === undefined || have.length !== want.length || have[0] !== want[0]) return false
    if (want.length <= 2) return want.length === 1 || have[1] === want[1]
    const rest = new Set(have.slice(1))
    return want.slice(1).every((n) => rest.has(n))
  }
  return ranges.some((r) => !same(slots[r.start], r.nodes) || !same(slots[r.end], r.nodes))
}

/** Groups indexes of `keys` by hash slot, in first-seen order. */
export const bySlot = (keys: ReadonlyArray<string>): Map<number, Array<number>> => {
  const groups = new Map<number, Array<number>>()
  for (let i = 0; i < keys.length; i++) {
    const s = slot(keys[i]!)
    const group = groups.get(s)
    if (group === undefined) groups.set(s, [i])
    else group.push(i)
  }
  return groups
}

/**
 * A call's ioredis commands may be written to a node only while the call is not `over`: until its caller was told
 * anything (its deadline passed, it failed, it succeeded). See "Re-sends" in `make`.
 */
interface Call {
  over: boolean
}

/** What ioredis' `Command` is to the re-send guard (ioredis 6.0's `Command`: `reject` is an own, replaceable field). */
interface SentCommand {
  readonly name: string
  reject: (error: Error) => void
  readonly promise: Promise<unknown>
}
type SendCommand = (command: SentCommand, ...rest: Array<unknown>) => unknown

export const make = (
  config: RedisConfig.RedisConfig,
  url: RedisConfig.ClusterUrl,
  shared: Shared
): Effect.Effect<RedisConnection, never, Scope.Scope> =>
  Effect.gen(function*() {
    const secrets = Option.match(url.password, { onNone: () => [], onSome: (p) => [Redacted.value(p)] })
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)
    const clock = yield* Effect.clock
    const server = { host: url.seeds[0]!.host, port: url.seeds[0]!.port, tls: url.tls }
    const spanAttributes = {
      "db.system.name": "redis",
      "db.namespace": "0",
      "server.address": server.host,
      "server.port": server.port
    }
    const classify = (operation: string, error: unknown) => Classification.classify(operation, error, secrets, "cluster")
    const seeds = url.seeds.map((s) => ({ host: s.host, port: s.port }))

    const clients: Array<Cluster> = []
    const lastUsed: Array<number> = []
    const reconnectAttempt: Array<number> = []
    const permanentFailure: Array<Errors.PermanentError | undefined> = []

    /**
     * Slot -> shard name, rebuilt at every slot refresh of any client: a shard is the set of slots one primary serves,
     * named by its first slot. Names survive a failover (the replica takes over the same slots).
     */
    let shardOfSlot: Array<string | undefined> = new Array(SLOTS).fill(undefined)
    /** Shard names in slot order, with the slot a shard starts at (for `scan`). */
    let shardList: ReadonlyArray<{ readonly name: string; readonly first: number }> = []
    const rebuildShards = (cluster: Cluster) => {
      const slots = cluster.slots
      const firstOf = new Map<string, number>()
      const next: Array<string | undefined> = new Array(SLOTS)
      for (let s = 0; s < SLOTS; s++) {
        const primary = slots[s]?.[0]
        if (primary === undefined) {
          next[s] = undefined
          continue
        }
        let first = firstOf.get(primary)
        if (first === undefined) {
          first = s
          firstOf.set(primary, s)
        }
        next[s] = `slots:${first}`
      }
      if (firstOf.size === 0) return
      shardOfSlot = next
      shardList = [...firstOf.values()].sort((a, b) => a - b).map((first) => ({ name: `slots:${first}`, first }))
    }

    const nodeKey = (r: Redis) => `${r.options.host}:${r.options.port}`

    /**
     * Per client: the nodes (`host:port`) whose socket erred or went silent, with when they were first suspected. See
     * `follow`, started by `startFollowing` once the connection is set up.
     */
    const suspects: Array<Map<string, number>> = []
    const following: Array<boolean> = []
    let startFollowing: ((index: number) => void) | undefined
    const suspect = (index: number, address: string) => {
      const nodes = suspects[index] ?? (suspects[index] = new Map())
      if (!nodes.has(address)) nodes.set(address, clock.unsafeCurrentTimeMillis())
      if (following[index] !== true) startFollowing?.(index)
    }

    /**
     * Re-sends. ioredis' `Cluster` keeps a command it sent and sends it again, on a timer (`retryDelayOnFailover`,
     * `...OnClusterDown`, `...OnTryAgain`, then after a slot refresh) or at once (`MOVED`, `ASK`), up to
     * `maxRedirections` times: after a redirection, and after "Connection is closed." (its node's socket closed: the
     * socket timeout, 1.25 x the deadline, does that to a silent node; so does a slot refresh that drops a node). The
     * deadline does not cancel it: the caller is told "timeout" (outcome unknown) and may write the key again, be
     * acknowledged, and then the older write, re-sent, lands over it (reproduced: `Cluster.resend.test.ts`, a primary
     * pausing writes). So each call's commands carry their `Call` (set while the call creates them, synchronously:
     * `within`), and once the call is over:
     *
     * - an error ioredis would retry settles the command instead (`command.reject`, wrapped after ioredis' own);
     * - a retry already scheduled is refused where it would be written: every node's `sendCommand` (nodes are
     *   guarded as ioredis creates them, `+node`), which also sees a command leaving a node's offline queue (a node
     *   connecting), and the `ASKING` that precedes a command redirected by `ASK`.
     *
     * Commands created after an `await` in an `execute` callback are not tied to the call (ioredis may still re-send
     * them until its redirection budget runs out), nor are a `Pipeline`'s.
     */
    /** The call whose commands are being created (synchronously, in `within`). */
    let current: Call | undefined
    /** The call whose command ioredis is redirecting (synchronously, in its `reject`): an `ASK` sends `ASKING` first. */
    let redirecting: Call | undefined
    const callOf = new WeakMap<object, Call>()
    const within = <A>(call: Call, start: () => Promise<A>): Promise<A> => {
      const end = () => {
        call.over = true
      }
      const previous = current
      current = call
      let promise: Promise<A>
      try {
        promise = start()
      } catch (error) {
        end()
        throw error
      } finally {
        current = previous
      }
      promise.then(end, end)
      return promise
    }
    const notResent = (command: SentCommand, node: string) =>
      new Error(`${command.name} not sent to ${node}: its caller already had its answer (deadline passed or call settled)`)
    /** Tags `command` with the call creating it (if any) and settles, not retries, its errors once the call is over. */
    const tag = (index: number, cluster: Cluster) => {
      const send = (cluster as unknown as { sendCommand: SendCommand }).sendCommand
      ;(cluster as unknown as { sendCommand: SendCommand }).sendCommand = function(this: Cluster, command, ...rest) {
        const call = current
        if (call === undefined || callOf.has(command)) return send.call(this, command, ...rest)
        callOf.set(command, call)
        const settle = command.reject
        const sent = send.call(this, command, ...rest)
        const retry = command.reject
        if (retry !== settle) {
          command.reject = function(this: unknown, error: Error) {
            if (call.over) {
              runFork(
                Effect.logDebug("redis cluster command not retried: its caller already had its answer").pipe(
                  Effect.annotateLogs({ socket: index, command: command.name, error_message: error?.message })
                )
              )
              return settle.call(this, error)
            }
            const previous = redirecting
            redirecting = call
            try {
              return retry.call(this, error)
            } finally {
              redirecting = previous
            }
          }
        }
        return sent
      }
    }
    /** Refuses to write a command whose call is over (a retry ioredis scheduled earlier), or the `ASKING` before it. */
    const guard = (node: Redis) => {
      const send = (node as unknown as { sendCommand: SendCommand }).sendCommand
      ;(node as unknown as { sendCommand: SendCommand }).sendCommand = function(this: Redis, command, ...rest) {
        if (command.name === "asking" && redirecting !== undefined) callOf.set(command, redirecting)
        const call = callOf.get(command)
        if (call === undefined || !call.over) return send.call(this, command, ...rest)
        // (Logged by the command's `reject`, above; an `ASKING` has no caller to reject to.)
        if (command.name === "asking") command.promise.catch(() => {})
        command.reject(notResent(command, nodeKey(node)))
        return command.promise
      }
    }

    const publishPoolSize = () =>
      runFork(Metric.set(shared.poolSizeGauge, clients.reduce((n, c) => n + (c.status === "ready" ? c.nodes("master").filter((r) => r.status === "ready").length : 0), 0)))

    const open = (index: number) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const cluster = new Cluster(seeds, {
            ...shared.options,
            clusterRetryStrategy: (attempt: number) => {
              reconnectAttempt[index] = attempt
              const delay = shared.options.clusterRetryStrategy
              return permanentFailure[index] === undefined && typeof delay === "function" ? delay(attempt) : 5000
            }
            // ioredis' declared option types predate exactOptionalPropertyTypes; the object is a plain ClusterOptions.
          } as never)
          tag(index, cluster)
          cluster.on("+node", guard)
          let down = false
          cluster.on("error", (error: unknown) => {
            const failure = classify("connection", error)
            if (failure._tag === "PermanentError") permanentFailure[index] = failure
            const log = down ? Effect.logDebug : failure._tag === "PermanentError" ? Effect.logError : Effect.logWarning
            down = true
            runFork(
              log("redis cluster connection error").pipe(
                Effect.annotateLogs({ operation: "connection", socket: index, error_type: failure.reason, error_message: failure.message })
              )
            )
          })
          // A node's own socket errors (a node killed, reset) reach the cluster as "node error".
          cluster.on("node error", (error: unknown, address: string) => {
            if (typeof address === "string") suspect(index, address)
            const failure = classify("connection", error)
            runFork(
              Effect.logDebug("redis cluster node error").pipe(
                Effect.annotateLogs({ operation: "connection", socket: index, node: address, error_type: failure.reason, error_message: failure.message })
              )
            )
          })
          cluster.on("refresh", () => rebuildShards(cluster))
          cluster.on("ready", () => {
            permanentFailure[index] = undefined
            reconnectAttempt[index] = 0
            rebuildShards(cluster)
            if (down) {
              down = false
              runFork(Effect.logInfo("redis cluster connection ready again").pipe(Effect.annotateLogs({ socket: index })))
            }
            publishPoolSize()
          })
          // A node's socket connects at its first command, after `+node`: the gauge follows each node's own
          // `ready` and `close` too, or it would keep the count of the last cluster-level event (the seed only).
          cluster.on("+node", (node: Redis) => {
            node.on("ready", publishPoolSize)
            node.on("close", publishPoolSize)
            publishPoolSize()
          })
          cluster.on("-node", publishPoolSize)
          cluster.on("close", publishPoolSize)
          clients[index] = cluster
          reconnectAttempt[index] = 0
          lastUsed[index] = clock.unsafeCurrentTimeMillis()
          return cluster
        }),
        (cluster) =>
          Effect.async<void>((resume) => {
              if (cluster.status !== "ready") {
                cluster.disconnect(false)
                return resume(Effect.void)
              }
              cluster.once("end", () => resume(Effect.void))
              // QUIT on every node; a stalled node never answers: the timeout below disconnects.
              cluster.quit().catch(() => cluster.disconnect(false))
            }).pipe(
            Effect.timeout(quitTimeout),
            Effect.ignore,
            Effect.ensuring(Effect.sync(() => cluster.status !== "end" && cluster.disconnect(false))),
            Effect.interruptible
          )
      ).pipe(
        Effect.tap((cluster) =>
          Effect.tryPromise({ try: () => cluster.connect(), catch: (error) => classify("connect", error) }).pipe(
            Effect.timeoutFail({
              duration: config.connectTimeout,
              onTimeout: () =>
                new Errors.TransientError({
                  operation: "connect",
                  reason: "timeout",
                  message: `connect exceeded ${Duration.toMillis(config.connectTimeout)} ms`,
                  outcome: "not_sent"
                })
            }),
            Effect.catchAll((failure) =>
              Effect.logWarning("redis cluster unavailable at start-up; the connection heals in the background").pipe(
                Effect.annotateLogs({ socket: index, error_type: failure.reason, error_message: failure.message })
              )
            )
          )
        )
      )

    yield* Effect.forEach(Array.from({ length: config.maxConnections }, (_, i) => i), open, {
      concurrency: "unbounded",
      discard: true
    })
    yield* Metric.set(shared.healthCheckIntervalGauge, Duration.toSeconds(config.healthCheckInterval))

    let next = 0
    const size = clients.length
    const pick = (): Cluster => {
      for (let i = 0; i < size; i++) {
        const index = (next + i) % size
        if (clients[index]!.status === "ready") {
          next = (index + 1) % size
          lastUsed[index] = clock.unsafeCurrentTimeMillis()
          return clients[index]!
        }
      }
      next = (next + 1) % size
      return clients[next]!
    }

    const classifyFor = (cluster: Cluster, operation: string, error: unknown): Errors.RedisFailure => {
      const failure = classify(operation, error)
      const permanent = permanentFailure[clients.indexOf(cluster)]
      return permanent !== undefined && failure._tag === "TransientError" && failure.outcome === "not_sent"
        ? new Errors.PermanentError({ operation, reason: permanent.reason, message: `not connected: ${permanent.message}`, cause: permanent.cause })
        : failure
    }

    const deadlines = yield* Deadlines.make(config.commandTimeout)
    const deadlineMillis = () => Duration.toMillis(deadlines.timeout())
    const timeoutOf = (operation: string) => () =>
      new Errors.TransientError({
        operation,
        reason: "timeout",
        message: `${operation} exceeded its ${deadlineMillis()} ms deadline`,
        outcome: "unknown"
      })

    /**
     * Following a failover when nothing else would. ioredis refreshes a client's slot map when a command meets `MOVED`,
     * `CLUSTERDOWN` or a connection that closed, and every `slotsRefreshInterval` (5 s). A primary that stops
     * answering (stalled, cut off, killed) gives none of these once calls stop going to it, and that is what its
     * shard's breaker does when it opens: the promotion of its replica went unseen for up to 5 s, and every probe of
     * the breaker went to the silent node, timed out and re-opened it (chaos, a stalled primary: the shard answered
     * again 2.4 s after every node agreed on the new primary, after a failed probe).
     *
     * So a node whose socket errs or times out (ioredis' `node error`) is suspect. While a suspect node still appears
     * in the client's slot map, the client asks another node, one not suspect, for `CLUSTER SLOTS` on its open socket
     * every deadline / 10 (10-100 ms; once a second after 30 s) and, as soon as the two differ, loads its own map from
     * that node (`reload`). A suspect node stops being one when it answers a `PING` or no longer appears in the map.
     * Loading the map does what any ioredis refresh does, only sooner: a node that no longer serves a slot is
     * disconnected, and what was still waiting on it is retried by ioredis on the new map (its handling of a closed
     * connection, which the silent socket's own timeout triggers anyway).
     */
    const followDelay = (since: number) =>
      clock.unsafeCurrentTimeMillis() - since < followFastMillis
        ? Math.min(100, Math.max(10, Math.round(deadlineMillis() / 10)))
        : followSlowMillis
    const mapped = (cluster: Cluster): Set<string> => {
      const nodes = new Set<string>()
      const slots = cluster.slots
      let previous: ReadonlyArray<string> | undefined
      for (let s = 0; s < SLOTS; s++) {
        const entry = slots[s]
        if (entry === undefined || entry === previous) continue
        previous = entry
        for (const node of entry) nodes.add(node)
      }
      return nodes
    }
    /**
     * Loads `cluster`'s slot map from `node`, one known to answer. ioredis' own `refreshSlotsCache` asks its nodes in
     * a random order, the silent one included, and waits `slotsRefreshTimeout` on it before the next; and while such a
     * refresh runs, another one only waits for it (seen: the change found by the probe applied 400 ms later, after
     * ioredis' refresh gave up on the stalled node). So this uses the step that refresh runs for each node it asks
     * (ioredis 6's `getInfoFromNode`, private in its typings), and falls back to `refreshSlotsCache` if it is gone.
     */
    const reload = (cluster: Cluster, node: Redis) =>
      Effect.async<void>((resume) => {
        const load = (cluster as unknown as {
          readonly getInfoFromNode?: (node: Redis, callback: (error?: Error | null) => void) => void
        }).getInfoFromNode
        if (typeof load !== "function") return cluster.refreshSlotsCache(() => resume(Effect.void))
        load.call(cluster, node, (error) => {
          if (error === undefined || error === null) rebuildShards(cluster)
          resume(Effect.void)
        })
      }).pipe(Effect.timeout(Duration.times(deadlines.timeout(), 2)), Effect.ignore)
    const follow = (index: number) =>
      Effect.gen(function*() {
        const cluster = clients[index]!
        const nodes = suspects[index]!
        const pinging = new Set<string>()
        let turn = 0
        while (nodes.size > 0) {
          yield* Effect.sleep(Duration.millis(followDelay(Math.min(...nodes.values()))))
          if (cluster.status === "end" || cluster.status === "close" || cluster.status === "disconnecting") {
            nodes.clear()
            return
          }
          // Not ready: ioredis is connecting the whole client again, and loads the map when it is ready.
          if (cluster.status !== "ready") continue
          const inMap = mapped(cluster)
          for (const address of [...nodes.keys()]) if (!inMap.has(address)) nodes.delete(address)
          if (nodes.size === 0) return
          const pool = cluster.nodes("all")
          for (const address of nodes.keys()) {
            const node = pool.find((n) => n.status === "ready" && nodeKey(n) === address)
            if (node === undefined || pinging.has(address)) continue
            pinging.add(address)
            node.ping().then(() => nodes.delete(address), () => {}).finally(() => pinging.delete(address))
          }
          const askable = [...cluster.nodes("master"), ...cluster.nodes("slave")].filter((n) =>
            n.status === "ready" && !nodes.has(nodeKey(n))
          )
          if (askable.length === 0) continue
          const asked = askable[turn++ % askable.length]!
          const reply = yield* Effect.tryPromise(() => asked.call("CLUSTER", "SLOTS")).pipe(
            Effect.timeout(deadlines.timeout()),
            Effect.option
          )
          if (reply._tag === "Some" && mapDiffers(cluster.slots, slotRanges(reply.value))) yield* reload(cluster, asked)
        }
      }).pipe(
        Effect.ensuring(Effect.sync(() => {
          following[index] = false
        }))
      )
    const runFollower = yield* FiberSet.makeRuntime<never>()
    startFollowing = (index) => {
      if (clients[index] === undefined) return
      following[index] = true
      runFollower(follow(index))
    }
    for (let index = 0; index < clients.length; index++) {
      if ((suspects[index]?.size ?? 0) > 0 && following[index] !== true) startFollowing(index)
    }

    // Every call is a client span on the caller's tracer, read per call (see `Spans`).
    const specs = Deadlines.spanSpecs(spanAttributes)
    const run = <A>(operation: string, f: (cluster: Cluster) => Promise<A>) => {
      const spec = specs.of(operation)
      const onTimeout = timeoutOf(operation)
      return Effect.suspend(() => {
        const cluster = pick()
        const call: Call = { over: false }
        return deadlines.run(() => within(call, () => f(cluster)), (error) => classifyFor(cluster, operation, error), () => {
          call.over = true
          return onTimeout()
        }, spec)
      })
    }

    const ttlMillis = (ttl: Duration.Duration) => Math.max(1, Math.ceil(Duration.toMillis(ttl)))

    /** Sends one request per slot group; answers per key its value or the `Error` its group failed with. */
    const mgetBySlot = (cluster: Cluster, keys: ReadonlyArray<string>): Promise<Array<string | null | Error>> => {
      const out: Array<string | null | Error> = new Array(keys.length)
      const groups = bySlot(keys)
      return Promise.all([...groups.values()].map((indexes) => {
        const request = indexes.length === 1
          ? cluster.get(keys[indexes[0]!]!).then((v) => [v])
          : cluster.mget(...indexes.map((i) => keys[i]!))
        return request.then(
          (values) => indexes.forEach((i, j) => (out[i] = values[j] ?? null)),
          (error: Error) => indexes.forEach((i) => (out[i] = error))
        )
      })).then(() => out)
    }
    const setBySlot = (
      cluster: Cluster,
      entries: ReadonlyArray<readonly [string, string, Option.Option<Duration.Duration>]>
    ): Promise<Array<undefined | Error>> => {
      const out: Array<undefined | Error> = new Array(entries.length)
      const groups = bySlot(entries.map(([k]) => k))
      const requests: Array<Promise<void>> = []
      for (const indexes of groups.values()) {
        const plain = indexes.filter((i) => Option.isNone(entries[i]![2]))
        const timed = indexes.filter((i) => Option.isSome(entries[i]![2]))
        if (plain.length > 1) {
          requests.push(cluster.mset(...plain.flatMap((i) => [entries[i]![0], entries[i]![1]])).then(
            () => plain.forEach((i) => (out[i] = undefined)),
            (error: Error) => plain.forEach((i) => (out[i] = error))
          ))
        } else if (plain.length === 1) timed.unshift(plain[0]!)
        for (const i of timed) {
          const [key, value, ttl] = entries[i]!
          requests.push(
            (Option.isSome(ttl) ? cluster.set(key, value, "PX", ttlMillis(ttl.value)) : cluster.set(key, value)).then(
              () => (out[i] = undefined),
              (error: Error) => (out[i] = error)
            ) as Promise<void>
          )
        }
      }
      return Promise.all(requests).then(() => out)
    }
    /** Fails with the first item's error, in key order. */
    const allOrFirstError = <A>(results: Array<A | Error>): Array<A> => {
      for (const r of results) if (r instanceof Error) throw r
      return results as Array<A>
    }

    // Coalesced reads and writes: calls made in the same tick share one deadline; each key answers for itself.
    const clientIndex = (cluster: Cluster) => clients.indexOf(cluster)
    /**
     * A batch's `Call` is over once the batcher stopped tracking its deadline entry (the deadline passed, or the reply
     * settled and the callers have their answers), or once `within` saw its request settle.
     */
    const sendBatch = <A>(tracked: Deadlines.Pending, start: () => Promise<A>): Promise<A> => {
      let ended = false
      const call: Call = {
        get over() {
          return ended || !tracked.tracked
        },
        set over(value: boolean) {
          ended = value
        }
      }
      return within(call, start)
    }
    const reads = Batcher.make<string, string | null>({
      deadlines,
      maxBatch: shared.maxBatch,
      send: (keys, tracked) => {
        const cluster = pick()
        return { index: clientIndex(cluster), reply: sendBatch(tracked, () => mgetBySlot(cluster, keys)) }
      },
      classify: (index, error) => classifyFor(clients[Math.max(0, index)]!, "get", error),
      onTimeout: timeoutOf("get")
    })
    const writes = Batcher.make<readonly [string, string, Option.Option<Duration.Duration>], void>({
      deadlines,
      maxBatch: shared.maxBatch,
      weigh: Batcher.weighWrite,
      maxWeight: shared.maxBatchBytes,
      send: (entries, tracked) => {
        const cluster = pick()
        return { index: clientIndex(cluster), reply: sendBatch(tracked, () => setBySlot(cluster, entries)) }
      },
      classify: (index, error) => classifyFor(clients[Math.max(0, index)]!, "set", error),
      onTimeout: timeoutOf("set")
    })
    const mgetSpec = specs.make("get", "MGET")
    const msetSpec = specs.make("set", "MSET")
    const getBatched = (key: string) => reads.submit(key, mgetSpec)
    const setBatched = (key: string, value: string, ttl: Option.Option<Duration.Duration>) =>
      writes.submit([key, value, ttl] as const, msetSpec)

    /** PING every primary of `cluster`; fails with the first failure. */
    const pingAll = (cluster: Cluster) => {
      const masters = cluster.nodes("master")
      if (masters.length === 0) return Promise.reject(new Error("Cluster isn't ready and enableOfflineQueue options is false"))
      return Promise.all(masters.map((node) =>
        node.ping().catch((error: Error) => {
          throw Object.assign(new Error(`${nodeKey(node)}: ${error.message}`), { code: (error as { code?: string }).code, name: error.name })
        })
      )).then(() => undefined)
    }
    const ping = run("ping", pingAll)

    /** `scan` over the shards' primaries in slot order; the cursor is `<shard index>:<node cursor>`. */
    const scan = (cursor: string, pattern: string, count: number) =>
      run("scan", async (cluster): Promise<readonly [string, ReadonlyArray<string>]> => {
        const m = /^(\d+):(\d+)$/.exec(cursor)
        const shard = cursor === "0" ? 0 : m === null ? -1 : Number(m[1])
        const nodeCursor = cursor === "0" ? "0" : m?.[2] ?? "0"
        const shards = shardList
        if (shard < 0 || (shards.length > 0 && shard >= shards.length)) throw new Error("ERR invalid cursor")
        const primary = cluster.slots[shards[shard]?.first ?? 0]?.[0]
        const node = cluster.nodes("master").find((r) => nodeKey(r) === primary)
        if (node === undefined) throw new Error("Cluster isn't ready and enableOfflineQueue options is false")
        const [nextCursor, keys] = await node.scan(nodeCursor, "MATCH", pattern, "COUNT", count)
        if (nextCursor !== "0") return [`${shard}:${nextCursor}`, keys]
        return [shard + 1 < shards.length ? `${shard + 1}:0` : "0", keys]
      })

    const waiting = new Map<number, Promise<void>>()
    const nextReady = (index: number): Promise<void> => {
      const existing = waiting.get(index)
      if (existing !== undefined) return existing
      const cluster = clients[index]!
      const promise = new Promise<void>((resolve, reject) => {
        const done = () => {
          waiting.delete(index)
          cluster.off("ready", onReady)
          cluster.off("end", onEnd)
        }
        const onReady = () => (done(), resolve())
        const onEnd = () => (done(), reject(new Error("Connection is closed.")))
        cluster.once("ready", onReady)
        cluster.once("end", onEnd)
      })
      promise.catch(() => {})
      waiting.set(index, promise)
      return promise
    }
    const reconnecting: ReadonlySet<string> = new Set(["connecting", "connect", "reconnecting"])
    const ready: Effect.Effect<void, Errors.RedisFailure> = Effect.suspend(() => {
      if (clients.some((c) => c.status === "ready")) return Effect.void
      const index = clients.findIndex((c) => reconnecting.has(c.status))
      if (index < 0) {
        return Effect.fail(classifyFor(clients[0]!, "ready", new Error("Cluster isn't ready and enableOfflineQueue options is false")))
      }
      return deadlines.run(() => nextReady(index), (error) => classifyFor(clients[index]!, "ready", error), () =>
        new Errors.TransientError({
          operation: "ready",
          reason: "timeout",
          message: `no cluster connection ready within ${deadlineMillis()} ms`,
          outcome: "not_sent"
        }))
    })

    // Health check: a client idle for the interval PINGs every primary; a failing node's socket is destroyed, so
    // ioredis drops it and refreshes the slots (its nodes do not reconnect on their own) before a user request
    // finds it dead.
    const interval = Duration.toMillis(config.healthCheckInterval)
    const checkIdle = Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      return Effect.forEach(
        clients.map((cluster, index) => ({ cluster, index })).filter(({ cluster, index }) =>
          cluster.status === "ready" && now - (lastUsed[index] ?? 0) >= interval
        ),
        ({ cluster, index }) =>
          Effect.forEach(cluster.nodes("master").filter((n) => n.status === "ready"), (node) =>
            deadlines.run(() => node.ping(), (error) => classify("health_check", error), timeoutOf("health_check")).pipe(
              Effect.catchAll((failure) =>
                Effect.sync(() => node.stream?.destroy()).pipe(
                  Effect.zipRight(Metric.increment(shared.healthCheckFailures)),
                  Effect.zipRight(
                    Effect.logWarning("idle redis cluster node failed its health check; reconnecting").pipe(
                      Effect.annotateLogs({ socket: index, node: nodeKey(node), error_type: failure.reason, error_message: failure.message })
                    )
                  )
                )
              )
            ), { concurrency: "unbounded", discard: true }).pipe(
            Effect.ensuring(Effect.sync(() => (lastUsed[index] = clock.unsafeCurrentTimeMillis())))
          ),
        { concurrency: "unbounded", discard: true }
      )
    })
    yield* checkIdle.pipe(
      Effect.repeat(Schedule.spaced(Duration.millis(Math.max(1, interval / 2)))),
      Effect.interruptible,
      Effect.forkScoped
    )

    const statusOf = (c: Cluster): SocketStatus =>
      c.status === "disconnecting" ? "close" : c.status as SocketStatus

    // Each node's client reads it when it arms its socket's timer; nodes added later take the cluster's options.
    const setCommandTimeout = (input: Duration.DurationInput) =>
      Deadlines.retune(deadlines, input, (millis) => {
        for (const cluster of clients) {
          const redisOptions = cluster.options.redisOptions
          if (redisOptions !== undefined) redisOptions.socketTimeout = millis
          for (const node of cluster.nodes()) node.options.socketTimeout = millis
        }
      })

    const connection: RedisConnection = {
      config,
      commandTimeout: deadlines.timeout,
      setCommandTimeout,
      server,
      execute: (operation, f) => run(operation, (cluster) => f(cluster as unknown as Redis)),
      get: (key) => run("get", (c) => c.get(key)),
      getBatched,
      setBatched,
      mget: (keys) =>
        keys.length === 0 ? Effect.succeed([]) : run("mget", (c) => mgetBySlot(c, keys).then(allOrFirstError)),
      set: (key, value, ttl) =>
        run("set", (c) => Option.isSome(ttl) ? c.set(key, value, "PX", ttlMillis(ttl.value)) : c.set(key, value)).pipe(Effect.asVoid),
      mset: (entries, ttl) =>
        entries.length === 0 ? Effect.void : run("mset", (c) =>
          setBySlot(c, entries.map(([k, v]) => [k, v, ttl] as const)).then(allOrFirstError)).pipe(Effect.asVoid),
      del: (keys) =>
        keys.length === 0 ? Effect.succeed(0) : run("del", (c) => {
          const groups = [...bySlot(keys).values()]
          return Promise.all(groups.map((indexes) => c.del(...indexes.map((i) => keys[i]!)))).then((counts) =>
            counts.reduce((a, b) => a + b, 0)
          )
        }),
      scan,
      ping,
      ready,
      availability: () => {
        let reconnectingNow = false
        for (let i = 0; i < size; i++) {
          const c = clients[i]!
          if (c.status === "ready") return "ready"
          if (reconnectAttempt[i]! <= 1 && permanentFailure[i] === undefined && reconnecting.has(c.status)) reconnectingNow = true
        }
        return reconnectingNow ? "reconnecting" : "down"
      },
      status: Effect.sync(() => clients.map(statusOf)),
      shardOf: (key) => shardOfSlot[slot(key)],
      shards: () => shardList.map((s) => s.name)
    }
    return connection
  })
