/**
 * A real Redis Cluster (3 primaries, 3 replicas) as a scoped resource, for failover tests.
 *
 * `make` spawns six `redis-server` processes (cluster mode, persistence off, a small `cluster-node-timeout`),
 * joins them with `redis-cli --cluster create --cluster-replicas 1` and waits until every node reports
 * `cluster_state:ok`, agrees on the primaries and every replica is in sync. Helpers then fail a shard over
 * gracefully, kill or stall its primary, and bring the old primary back as a replica, each waiting until the
 * cluster has settled. Closing the scope resumes stalled processes, kills every process and removes the
 * temporary directories, also on failure and interruption.
 *
 * A shard is identified by its index: shards are numbered by their first slot at creation (shard 0 serves slot
 * 0). Its two nodes stay its two nodes (replica migration is off); which of them is the primary changes.
 *
 * @since 0.2.0
 */
import * as Command from "@effect/platform/Command"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { live } from "./internal/live.js"
import * as Platform from "./internal/platform.js"
import * as Poll from "./internal/poll.js"
import { freePorts } from "./internal/ports.js"
import * as Proc from "./internal/process.js"
import * as Slot from "./internal/slot.js"
import * as RedisServer from "./RedisServer.js"

/**
 * A failure to create the cluster, or a topology change that did not settle in time (the message says what
 * was still missing).
 *
 * @since 0.2.0
 * @category errors
 */
export class RedisClusterError extends Data.TaggedError("RedisClusterError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** `cluster-node-timeout`: how long a node may be unreachable before its failure is agreed. Default: 1 second. */
  readonly nodeTimeout?: Duration.DurationInput
  /**
   * `cluster-require-full-coverage`: with `true` (Redis' default) every node answers `CLUSTERDOWN` while any slot
   * is uncovered (between a primary's failure and its replica's promotion). Default: `true`.
   */
  readonly requireFullCoverage?: boolean
  /** Extra `redis.conf` lines for every node (they come last). */
  readonly config?: ReadonlyArray<string>
  /** Bound of `make` and of each helper's wait for the cluster to settle. Default: 30 seconds. */
  readonly timeout?: Duration.DurationInput
}

/**
 * One node as the cluster currently sees it.
 *
 * @since 0.2.0
 * @category models
 */
export interface ClusterNode {
  /** Always `"127.0.0.1"`. */
  readonly host: string
  readonly port: number
  /** The cluster bus port (`cluster-port`). */
  readonly busPort: number
  /** The node id (40 hex characters). */
  readonly id: string
  /** The shard the node belongs to (fixed at creation). */
  readonly shard: number
  /**
   * `"primary"` when it serves its shard's slots (as a running node sees it), otherwise `"replica"`: also a
   * killed primary once its replica has taken over.
   */
  readonly role: "primary" | "replica"
  /** The slot ranges (inclusive) of the node's shard; the primary serves them. */
  readonly slots: ReadonlyArray<readonly [number, number]>
  /** `"running"`, `"stalled"` (SIGSTOP) or `"stopped"` (killed, not restarted). */
  readonly state: "running" | "stalled" | "stopped"
  /** The pid of the running (or stalled) process. */
  readonly pid: number | undefined
}

/**
 * What a failover helper did: the shard, its primary before and after, and how long it took.
 *
 * @since 0.2.0
 * @category models
 */
export interface Failover {
  readonly shard: number
  /** The old primary, as it was before (with its pid, also once killed). */
  readonly from: ClusterNode
  readonly to: ClusterNode
  /** From the command (or the kill) until the cluster settled with the new primary. */
  readonly duration: Duration.Duration
}

/**
 * What {@link RedisCluster.migrateSlots} did.
 *
 * @since 0.2.0
 * @category models
 */
export interface Migration {
  /** The source and target shards. */
  readonly from: number
  readonly to: number
  /** The slots moved, in the order they were moved. */
  readonly slots: ReadonlyArray<number>
  /** Keys moved with `MIGRATE` (keys the clients created on the target meanwhile, by `ASK`, not counted). */
  readonly keys: number
  /** From the first `SETSLOT` until every running node agreed on the new owner and the cluster had settled. */
  readonly duration: Duration.Duration
}

/**
 * A running cluster.
 *
 * @since 0.2.0
 * @category models
 */
export interface RedisCluster {
  /** Always `"127.0.0.1"`. */
  readonly host: string
  /** Every node's address, in creation order: pass them as an ioredis `Cluster`'s startup nodes. */
  readonly seeds: ReadonlyArray<{ readonly host: string; readonly port: number }>
  /** The six servers, in creation order (`command`, `pid`, `kill`, ...). */
  readonly servers: ReadonlyArray<RedisServer.RedisServer>
  /** The cluster's nodes as a running node currently sees them, in creation order. */
  readonly nodes: Effect.Effect<ReadonlyArray<ClusterNode>, RedisClusterError>
  /** The current primary of each shard, by shard index. */
  readonly primaries: Effect.Effect<ReadonlyArray<ClusterNode>, RedisClusterError>
  /** The current primary serving `key`'s slot. */
  readonly primaryFor: (key: string) => Effect.Effect<ClusterNode, RedisClusterError>
  /**
   * A graceful failover (`CLUSTER FAILOVER` on the shard's replica): waits until the replica is primary, the
   * old primary its replica in sync, and the cluster ok everywhere. `shardOrPort`: a shard index (0-2) or the
   * port of a node of that shard.
   */
  readonly failover: (shardOrPort: number) => Effect.Effect<Failover, RedisClusterError>
  /**
   * SIGKILLs the shard's primary and waits for the forced promotion of its replica (after `nodeTimeout`) and
   * `cluster_state:ok` on every running node.
   */
  readonly killPrimary: (shardOrPort: number) => Effect.Effect<Failover, RedisClusterError>
  /**
   * Starts a killed node again (same port, same `nodes.conf`) and waits until the cluster has settled: an old
   * primary whose replica was promoted comes back as its replica, in sync.
   */
  readonly restart: (node: number | ClusterNode) => Effect.Effect<ClusterNode, RedisClusterError>
  /**
   * SIGSTOPs a node: a shard index (0-2) means its current primary, otherwise a port. Returns at once; the
   * replica takes over after `nodeTimeout` (wait with {@link RedisCluster.awaitHealthy}).
   */
  readonly stallNode: (shardOrPort: number) => Effect.Effect<ClusterNode, RedisClusterError>
  /**
   * Moves `count` slots of `fromShard` (0-2, or a port of that shard) to `toShard` the way `redis-cli --cluster
   * reshard` does, one slot after the other: `CLUSTER SETSLOT <slot> IMPORTING` on the target's primary, `MIGRATING`
   * on the source's, `CLUSTER GETKEYSINSLOT` + `MIGRATE ... KEYS` until the slot is empty on the source, then
   * `SETSLOT <slot> NODE <target>` on the target, the source and the third primary. Clients meanwhile get `ASK` for
   * keys no longer (or not yet) on the source, and `MOVED` once a slot has moved. The slots chosen are the ones of
   * the shard holding the most keys (ties and the remainder: its highest slots), so the move takes data with it.
   * Waits until every running node names the target as the slots' owner and the cluster has settled.
   */
  readonly migrateSlots: (fromShard: number, toShard: number, count: number) => Effect.Effect<Migration, RedisClusterError>
  /** SIGCONTs a stalled node (a port or node), or every stalled node. Returns at once. */
  readonly resume: (node?: number | ClusterNode) => Effect.Effect<void>
  /**
   * Waits until every running node reports `cluster_state:ok`, all agree on one running primary per shard, no
   * running node is flagged failing, and every running replica is connected to its primary and in sync.
   */
  readonly awaitHealthy: Effect.Effect<ReadonlyArray<ClusterNode>, RedisClusterError>
}

const HOST = "127.0.0.1"
const SHARDS = 3
const fail = (message: string, cause?: unknown) =>
  new RedisClusterError(cause === undefined ? { message } : { message, cause })

/**
 * The hash slot (0..16383) of a key: CRC16 of the key, or of its `{hash tag}`, modulo 16384.
 *
 * @since 0.2.0
 * @category utils
 */
export const slot: (key: string | Uint8Array) => number = Slot.slot

/** One line of `CLUSTER NODES`. */
interface Entry {
  readonly id: string
  readonly port: number
  readonly flags: ReadonlySet<string>
  readonly masterId: string | undefined
  readonly slots: ReadonlyArray<readonly [number, number]>
}

const parseNodes = (reply: unknown): ReadonlyArray<Entry> => {
  if (typeof reply !== "string") throw new Error(`CLUSTER NODES: unexpected reply ${JSON.stringify(reply)}`)
  return reply.split("\n").filter((line) => line.trim() !== "").map((line) => {
    const [id = "", address = "", flags = "", master = "-", , , , , ...slots] = line.trim().split(" ")
    return {
      id,
      port: Number(address.slice(address.lastIndexOf(":") + 1).split("@")[0]),
      flags: new Set(flags.split(",")),
      masterId: master === "-" ? undefined : master,
      slots: slots.filter((s) => !s.startsWith("[")).map((s) => {
        const [from, to = from] = s.split("-")
        return [Number(from), Number(to)] as const
      })
    }
  })
}

const BAD_FLAGS = ["fail", "fail?", "handshake", "noaddr"]

interface Member {
  readonly index: number
  readonly server: RedisServer.RedisServer
  readonly busPort: number
  id: string
  shard: number
  role: "primary" | "replica"
}

const runRedisCli = (args: ReadonlyArray<string>, timeout: Duration.Duration): Effect.Effect<string, RedisClusterError> =>
  Proc.run(Command.make("redis-cli", ...args), timeout).pipe(
    Platform.provide,
    Effect.mapError((cause) =>
      fail(
        `redis-cli ${args.slice(0, 2).join(" ")} failed: ${
          cause === "timeout" ? `no exit after ${Duration.format(timeout)}, killed` : cause.message
        }`,
        cause
      )
    ),
    Effect.flatMap((out) =>
      out.code === 0
        ? Effect.succeed(out.stdout)
        : Effect.fail(fail(
          `redis-cli ${args.slice(0, 2).join(" ")} failed: ${
            out.code === undefined ? "killed" : `exit code ${out.code}`
          }\n${out.stdout}\n${out.stderr}`
        ))
    )
  )

/**
 * Starts a 3-primary, 3-replica cluster as a scoped resource and waits until it is healthy.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<RedisCluster, RedisClusterError, Scope.Scope> =>
  live(Effect.gen(function*() {
    const timeout = Duration.decode(options.timeout ?? Duration.seconds(30))
    const nodeTimeout = Duration.toMillis(options.nodeTimeout ?? Duration.seconds(1))
    const ports = yield* Effect.mapError(freePorts(HOST, 12), (cause) => fail("cannot find free ports", cause))
    const servers = yield* Effect.all(
      Array.from({ length: 2 * SHARDS }, (_, i) =>
        RedisServer.make({
          port: ports[i]!,
          commandTimeout: Duration.seconds(2),
          config: [
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            `cluster-port ${ports[i + 2 * SHARDS]!}`,
            `cluster-node-timeout ${nodeTimeout}`,
            `cluster-require-full-coverage ${options.requireFullCoverage === false ? "no" : "yes"}`,
            // a replica may always take over (its data age is not held against it), and never moves shard
            "cluster-replica-validity-factor 0",
            "cluster-allow-replica-migration no",
            "repl-diskless-sync yes",
            "repl-diskless-sync-delay 0",
            ...(options.config ?? [])
          ]
        })),
      { concurrency: "unbounded" }
    ).pipe(Effect.mapError((cause) => fail(`cannot start the nodes: ${cause.message}`, cause)))

    const members: ReadonlyArray<Member> = servers.map((server, index) => ({
      index,
      server,
      busPort: ports[index + 2 * SHARDS]!,
      id: "",
      shard: -1,
      role: "primary"
    }))
    const stalled = new Set<Member>()
    // Runs before the servers' own finalizers (finalizers run in reverse order): a stopped process gets SIGCONT
    // before it is killed.
    yield* Effect.addFinalizer(() => Effect.sync(() => stalled.forEach((m) => Poll.signal(pidOf(m), "SIGCONT"))))

    const pids = new Map<Member, number | undefined>()
    const pidOf = (m: Member) => pids.get(m)
    const refreshPids = Effect.forEach(members, (m) => Effect.map(m.server.pid, (pid) => pids.set(m, pid)), {
      discard: true
    })
    yield* refreshPids
    const isRunning = (m: Member) => pidOf(m) !== undefined && !stalled.has(m)
    const stateOf = (m: Member): ClusterNode["state"] =>
      pidOf(m) === undefined ? "stopped" : stalled.has(m) ? "stalled" : "running"

    const createOutput = yield* runRedisCli(
      [
        "--cluster",
        "create",
        ...servers.map((s) => `${HOST}:${s.port}`),
        "--cluster-replicas",
        "1",
        "--cluster-yes"
      ],
      timeout
    )
    if (!createOutput.includes("[OK] All 16384 slots covered")) {
      return yield* Effect.fail(fail(`redis-cli --cluster create did not cover every slot:\n${createOutput}`))
    }

    const viewOf = (m: Member) => Effect.map(m.server.command("CLUSTER", "NODES"), parseNodes)
    const byPort = new Map(members.map((m) => [m.server.port, m]))

    // Assign ids and shards from the first node's view once it knows all six nodes and the three primaries.
    yield* Poll.until(
      Effect.gen(function*() {
        const view = yield* viewOf(members[0]!)
        const masters = view.filter((e) => e.flags.has("master") && e.slots.length > 0)
        const replicas = view.filter((e) => e.flags.has("slave") && e.masterId !== undefined)
        if (view.length !== 2 * SHARDS || masters.length !== SHARDS || replicas.length !== SHARDS) {
          return Poll.notYet(`node 0 sees ${view.length} nodes, ${masters.length} primaries, ${replicas.length} replicas`)
        }
        const sorted = [...masters].sort((a, b) => a.slots[0]![0] - b.slots[0]![0])
        for (const entry of view) {
          const m = byPort.get(entry.port)
          if (m === undefined) return Poll.notYet(`unknown node ${entry.port}`)
          const shardEntry = entry.flags.has("master") ? entry : view.find((e) => e.id === entry.masterId)
          m.id = entry.id
          m.shard = sorted.findIndex((e) => e.id === shardEntry?.id)
          m.role = entry.flags.has("master") ? "primary" : "replica"
          if (m.shard === -1) return Poll.notYet(`node ${entry.port}'s primary ${entry.masterId} is unknown`)
        }
        return Poll.done(undefined)
      }),
      timeout,
      (why) => fail(`the cluster did not form: ${why}`)
    )

    const shardMembers = (shard: number) => members.filter((m) => m.shard === shard)

    /** The cluster as `view` (one node's CLUSTER NODES) describes it. */
    const describe = (view: ReadonlyArray<Entry>): ReadonlyArray<ClusterNode> => {
      const shardSlots = (shard: number) =>
        shardMembers(shard).flatMap((m) => view.find((e) => e.id === m.id && e.flags.has("master"))?.slots ?? [])
      return members.map((m) => {
        const entry = view.find((e) => e.id === m.id)
        if (entry !== undefined) m.role = entry.flags.has("master") && entry.slots.length > 0 ? "primary" : "replica"
        return {
          host: HOST,
          port: m.server.port,
          busPort: m.busPort,
          id: m.id,
          shard: m.shard,
          role: m.role,
          slots: shardSlots(m.shard),
          state: stateOf(m),
          pid: pidOf(m)
        }
      })
    }

    /** One look at every running node; done when the cluster has settled (`expect`: shard index to primary). */
    const checkHealthy = (expect: ReadonlyMap<number, Member>) =>
      Effect.gen(function*() {
        yield* refreshPids
        const running = members.filter(isRunning)
        const looks = yield* Effect.all(
          running.map((m) =>
            Effect.all({
              m: Effect.succeed(m),
              info: Effect.map(m.server.command("CLUSTER", "INFO"), Poll.parseInfo),
              view: viewOf(m),
              replication: Effect.map(m.server.command("INFO", "replication"), Poll.parseInfo)
            })
          ),
          { concurrency: "unbounded" }
        )
        let agreed: ReadonlyArray<ClusterNode> | undefined
        for (const { info, m, view } of looks) {
          const port = m.server.port
          if (info.get("cluster_state") !== "ok") return Poll.notYet(`${port}: cluster_state:${info.get("cluster_state")}`)
          for (const entry of view) {
            const other = byPort.get(entry.port)
            const bad = BAD_FLAGS.find((flag) => entry.flags.has(flag))
            if (bad !== undefined && other !== undefined && isRunning(other)) {
              return Poll.notYet(`${port} flags running node ${entry.port} ${bad}`)
            }
          }
          const nodes = describe(view)
          for (let shard = 0; shard < SHARDS; shard++) {
            const primaries = nodes.filter((n) => n.shard === shard && n.role === "primary")
            if (primaries.length !== 1) return Poll.notYet(`${port} sees ${primaries.length} primaries in shard ${shard}`)
            const primary = byPort.get(primaries[0]!.port)!
            if (!isRunning(primary)) return Poll.notYet(`${port} sees stopped or stalled ${primary.server.port} as primary`)
            const expected = expect.get(shard)
            if (expected !== undefined && expected !== primary) {
              return Poll.notYet(`${port} sees ${primary.server.port}, not ${expected.server.port}, as primary of shard ${shard}`)
            }
            for (const replica of shardMembers(shard).filter((r) => r !== primary && isRunning(r))) {
              const entry = view.find((e) => e.id === replica.id)
              if (entry?.masterId !== primary.id) {
                return Poll.notYet(`${port} does not see ${replica.server.port} as replica of ${primary.server.port}`)
              }
            }
          }
          if (agreed !== undefined) {
            const a = agreed
            if (nodes.some((n, i) => n.role !== a[i]!.role)) return Poll.notYet(`nodes disagree on the roles (${port})`)
          }
          agreed = nodes
        }
        if (agreed === undefined) return Poll.notYet("no running node")
        for (const { m, replication } of looks) {
          const role = agreed[m.index]!.role
          if (role === "replica") {
            if (replication.get("role") !== "slave") return Poll.notYet(`${m.server.port} is not a replica yet`)
            if (replication.get("master_link_status") !== "up" || replication.get("master_sync_in_progress") !== "0") {
              return Poll.notYet(`${m.server.port} is not in sync with its primary`)
            }
          } else if (replication.get("role") !== "master") {
            return Poll.notYet(`${m.server.port} is not a primary yet`)
          }
        }
        return Poll.done(agreed)
      })

    const awaitWith = (expect: ReadonlyMap<number, Member>, what: string) =>
      Poll.until(checkHealthy(expect), timeout, (why) => fail(`${what}: not settled after ${Duration.format(timeout)}: ${why}`))

    const awaitHealthy = live(awaitWith(new Map(), "awaitHealthy"))

    yield* awaitWith(new Map(), "make")

    const nodes = live(Effect.gen(function*() {
      yield* refreshPids
      for (const m of members.filter(isRunning)) {
        const view = yield* Effect.option(viewOf(m))
        if (view._tag === "Some") return describe(view.value)
      }
      return yield* Effect.fail(fail("no running node answers CLUSTER NODES"))
    }))

    const primaries = Effect.map(nodes, (all) =>
      Array.from({ length: SHARDS }, (_, shard) => all.find((n) => n.shard === shard && n.role === "primary")!))

    const shardOf = (shardOrPort: number): Effect.Effect<number, RedisClusterError> => {
      if (Number.isInteger(shardOrPort) && shardOrPort >= 0 && shardOrPort < SHARDS) return Effect.succeed(shardOrPort)
      const m = byPort.get(shardOrPort)
      return m === undefined ? Effect.fail(fail(`no shard index or node port ${shardOrPort}`)) : Effect.succeed(m.shard)
    }

    const memberOf = (node: number | ClusterNode): Effect.Effect<Member, RedisClusterError> => {
      const m = byPort.get(typeof node === "number" ? node : node.port)
      return m === undefined ? Effect.fail(fail(`no node on port ${typeof node === "number" ? node : node.port}`)) : Effect.succeed(m)
    }

    /** The shard's current primary and its replica, from a running node's view. */
    const pair = (shard: number) =>
      Effect.gen(function*() {
        const all = yield* nodes
        const primaryNode = all.find((n) => n.shard === shard && n.role === "primary")
        const replicaNode = all.find((n) => n.shard === shard && n !== primaryNode)
        if (primaryNode === undefined || replicaNode === undefined) {
          return yield* Effect.fail(fail(`shard ${shard} has no primary and replica: ${JSON.stringify(all)}`))
        }
        const replica = byPort.get(replicaNode.port)!
        if (!isRunning(replica)) return yield* Effect.fail(fail(`shard ${shard}'s replica ${replicaNode.port} is ${stateOf(replica)}`))
        return { primaryNode, replica, primary: byPort.get(primaryNode.port)! }
      })

    const now = Effect.clockWith((clock) => clock.currentTimeMillis)
    const result = (shard: number, from: ClusterNode, settled: ReadonlyArray<ClusterNode>, start: number) =>
      Effect.map(now, (end): Failover => ({
        shard,
        from,
        to: settled.find((n) => n.shard === shard && n.role === "primary")!,
        duration: Duration.millis(end - start)
      }))

    const failover = (shardOrPort: number) =>
      live(Effect.gen(function*() {
        const shard = yield* shardOf(shardOrPort)
        const { primaryNode, replica } = yield* pair(shard)
        const start = yield* now
        const reply = yield* replica.server.command("CLUSTER", "FAILOVER").pipe(
          Effect.mapError((cause) => fail(`CLUSTER FAILOVER on ${replica.server.port}: ${cause.message}`, cause))
        )
        if (reply !== "OK") return yield* Effect.fail(fail(`CLUSTER FAILOVER on ${replica.server.port}: ${JSON.stringify(reply)}`))
        const settled = yield* awaitWith(new Map([[shard, replica]]), `failover of shard ${shard}`)
        return yield* result(shard, primaryNode, settled, start)
      }))

    const killPrimary = (shardOrPort: number) =>
      live(Effect.gen(function*() {
        const shard = yield* shardOf(shardOrPort)
        const { primary, primaryNode, replica } = yield* pair(shard)
        const start = yield* now
        stalled.delete(primary)
        yield* primary.server.kill
        const settled = yield* awaitWith(new Map([[shard, replica]]), `killPrimary of shard ${shard}`)
        return yield* result(shard, { ...primaryNode, state: "stopped" }, settled, start)
      }))

    const restart = (node: number | ClusterNode) =>
      live(Effect.gen(function*() {
        const m = yield* memberOf(node)
        if (stalled.has(m)) return yield* Effect.fail(fail(`node ${m.server.port} is stalled: resume it`))
        yield* m.server.start.pipe(Effect.mapError((cause) => fail(`restart of ${m.server.port}: ${cause.message}`, cause)))
        const settled = yield* awaitWith(new Map(), `restart of ${m.server.port}`)
        return settled[m.index]!
      }))

    const stallNode = (shardOrPort: number) =>
      live(Effect.gen(function*() {
        const m = Number.isInteger(shardOrPort) && shardOrPort >= 0 && shardOrPort < SHARDS
          ? byPort.get((yield* primaries)[shardOrPort]!.port)!
          : yield* memberOf(shardOrPort)
        yield* refreshPids
        const pid = pidOf(m)
        if (pid === undefined) return yield* Effect.fail(fail(`node ${m.server.port} is not running`))
        const before = (yield* nodes)[m.index]!
        stalled.add(m)
        Poll.signal(pid, "SIGSTOP")
        return { ...before, state: "stalled" as const }
      }))

    const resume = (node?: number | ClusterNode) =>
      Effect.sync(() => {
        const port = node === undefined ? undefined : typeof node === "number" ? node : node.port
        for (const m of [...stalled]) {
          if (port !== undefined && m.server.port !== port) continue
          Poll.signal(pidOf(m), "SIGCONT")
          stalled.delete(m)
        }
      })

    /** One command that must not answer an error. */
    const must = (m: Member, ...args: ReadonlyArray<string | number>) =>
      Effect.flatMap(
        m.server.command(...args.map(String)).pipe(
          Effect.mapError((cause) => fail(`${args.slice(0, 3).join(" ")} on ${m.server.port}: ${cause.message}`, cause))
        ),
        (reply) =>
          typeof reply === "object" && reply !== null && "_tag" in reply && reply._tag === "Error"
            ? Effect.fail(fail(`${args.slice(0, 3).join(" ")} on ${m.server.port}: ${(reply as { message: string }).message}`))
            : Effect.succeed(reply)
      )

    const migrateSlots = (fromShard: number, toShard: number, count: number) =>
      live(Effect.gen(function*() {
        const from = yield* shardOf(fromShard)
        const to = yield* shardOf(toShard)
        if (from === to) return yield* Effect.fail(fail(`migrateSlots: shard ${from} to itself`))
        const all = yield* primaries
        const source = byPort.get(all[from]!.port)!
        const target = byPort.get(all[to]!.port)!
        const others = members.filter((m) => m !== source && m !== target && all.some((n) => n.port === m.server.port))
        if (!isRunning(source) || !isRunning(target)) {
          return yield* Effect.fail(fail(`migrateSlots: shard ${from}'s or ${to}'s primary is not running`))
        }
        const owned = all[from]!.slots
        const size = owned.reduce((n, [a, b]) => n + b - a + 1, 0)
        if (!Number.isInteger(count) || count < 1 || count >= size) {
          return yield* Effect.fail(fail(`migrateSlots: count ${count} out of 1..${size - 1} (shard ${from}'s slots)`))
        }
        // Keys per slot on the source (SCAN answers the node's own keys).
        const perSlot = new Map<number, number>()
        let cursor = "0"
        do {
          const reply = (yield* must(source, "SCAN", cursor, "COUNT", 1000)) as [string, Array<string>]
          cursor = reply[0]
          for (const key of reply[1]) perSlot.set(Slot.slot(key), (perSlot.get(Slot.slot(key)) ?? 0) + 1)
        } while (cursor !== "0")
        const ranked = owned.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i))
          .sort((x, y) => (perSlot.get(y) ?? 0) - (perSlot.get(x) ?? 0) || y - x)
        const slots = ranked.slice(0, count)
        const start = yield* now
        let keys = 0
        for (const s of slots) {
          yield* must(target, "CLUSTER", "SETSLOT", s, "IMPORTING", source.id)
          yield* must(source, "CLUSTER", "SETSLOT", s, "MIGRATING", target.id)
          for (;;) {
            const batch = (yield* must(source, "CLUSTER", "GETKEYSINSLOT", s, 100)) as Array<string>
            if (batch.length === 0) break
            yield* must(source, "MIGRATE", HOST, target.server.port, "", 0, 5000, "KEYS", ...batch)
            keys += batch.length
          }
          yield* must(target, "CLUSTER", "SETSLOT", s, "NODE", target.id)
          yield* must(source, "CLUSTER", "SETSLOT", s, "NODE", target.id)
          // The third primary learns it by gossip too; telling it directly only makes it quicker.
          yield* Effect.forEach(others, (m) => Effect.ignore(must(m, "CLUSTER", "SETSLOT", s, "NODE", target.id)), { discard: true })
        }
        const moved = new Set(slots)
        yield* Poll.until(
          Effect.gen(function*() {
            for (const m of members.filter(isRunning)) {
              const raw = yield* m.server.command("CLUSTER", "NODES")
              if (typeof raw === "string" && raw.includes("[")) return Poll.notYet(`${m.server.port} still shows a slot migrating`)
              const view = parseNodes(raw)
              const owner = view.find((e) => e.slots.some(([a, b]) => [...moved].some((s) => s >= a && s <= b)) && e.id !== target.id)
              if (owner !== undefined) return Poll.notYet(`${m.server.port} sees ${owner.port} serving a moved slot`)
            }
            return yield* checkHealthy(new Map([[from, source], [to, target]]))
          }),
          timeout,
          (why) => fail(`migrateSlots ${from} -> ${to}: not settled after ${Duration.format(timeout)}: ${why}`)
        )
        const end = yield* now
        return { from, to, slots, keys, duration: Duration.millis(end - start) } satisfies Migration
      }))

    const primaryFor = (key: string) =>
      Effect.flatMap(nodes, (all) => {
        const s = Slot.slot(key)
        const node = all.find((n) => n.role === "primary" && n.slots.some(([from, to]) => s >= from && s <= to))
        return node === undefined ? Effect.fail(fail(`no primary serves slot ${s}`)) : Effect.succeed(node)
      })

    return {
      host: HOST,
      seeds: servers.map((s) => ({ host: HOST, port: s.port })),
      servers,
      nodes,
      primaries,
      primaryFor,
      failover,
      killPrimary,
      restart,
      stallNode,
      migrateSlots,
      resume,
      awaitHealthy
    } satisfies RedisCluster
  }))
