/**
 * The hybrid cache across processes: separate Node processes share one Redis. A writer process
 * (test/src/support/hybridWriter.mjs) writes hot keys through Steadfast's hybrid cache, a plain ioredis client or a
 * spawned `redis-cli`, and reports each write's acknowledgement time; 1 or 3 reader processes
 * (test/src/support/hybridReader.mjs) read the same keys through their own hybrid caches with 64 fibers each, in a
 * loop. So a run is 2 or 4 Node processes (this one only starts them and computes the figures).
 *
 * The staleness window of a write: from its acknowledgement to the start of the last read, in any reader, that still
 * returned an older value of its key (0 if none did). Reported as p50 / p99 / max over every write, with a trace of
 * the worst write (the acknowledgement, each reader's invalidation message and L1 drop, its last old read) and each
 * reader's event-loop figures.
 *
 * Clock: every process runs on this machine, so `performance.timeOrigin + performance.now()` (the wall clock at
 * sub-millisecond resolution) is comparable across them, once each process corrects it by its own measured offset to
 * the system clock (support/hybridClock.mjs; the offsets are in the figures, within ±0.5 ms).
 *
 * `HYBRID_CACHE_MODULE=<path to a build's index.js>` runs the readers over another build of @steadfast/cache (to
 * compare a change under the same load); the writer always uses the workspace's.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import { type ChildProcess, fork } from "node:child_process"
import * as Fs from "node:fs"
import { fileURLToPath } from "node:url"

const REDIS_URL = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const writerScript = fileURLToPath(new URL("./support/hybridWriter.mjs", import.meta.url))
const readerScript = fileURLToPath(new URL("./support/hybridReader.mjs", import.meta.url))
const compiled = fileURLToPath(new URL("../../packages/cache/dist/HybridCache.js", import.meta.url))

const KEYS = 8
const WRITES = 400
const PAUSE_MS = 2
const CONCURRENCY = 64
/** The default canary interval + timeout. */
const BOUND_MS = 1500
/**
 * What the test asserts. An invalidation path that stopped working leaves L1 answering until the next canary round
 * fails: measured with a build whose subscriber ignores every message, 2 processes, every writer kind: p50 234-287 ms,
 * p99 715-967 ms, max < 1 s (each failed round clears L1), 0 beyond the bound. The p50 limit catches that; the p99 one
 * only a slower death. Before the hybrid cache waited for a fresh event loop (tracking's `fresh` / `turn`), a working
 * path on this shared 2-core box reached p99 0.65 s when other suites loaded it (the reader processes, descheduled,
 * answered from L1 before their next poll). With the wait: p99 0.4-1.8 ms, max 2.2 ms (2026-12-04, load ~1). The p99
 * limit keeps a wide margin for a loaded machine and still catches a dead path (p99 >= 715 ms).
 */
const P50_LIMIT_MS = 50
const P99_LIMIT_MS = 100

type WriterKind = "steadfast" | "ioredis" | "redis-cli"

interface Ack {
  readonly key: string
  readonly i: number
  readonly ackAt: number
}

interface ReaderReport {
  readonly pid: number
  readonly clockOffsetMs: number
  readonly reads: number
  readonly l1HitRatio: number
  readonly lastSeen: ReadonlyArray<ReadonlyArray<readonly [number, number]>>
  /** [key number, received, dropped, the newest value of that key read before] */
  readonly messages: ReadonlyArray<readonly [number, number, number, number]>
  readonly loopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number }
  readonly gc: { readonly count: number; readonly totalMs: number; readonly maxMs: number }
  readonly readGapsMs: { readonly over1: number; readonly over2: number; readonly over5: number; readonly over10: number; readonly max: number }
  readonly losses: Record<string, number>
  readonly canaryFailures: number
  readonly invalidationMessages: number
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

const r2 = (n: number) => Math.round(n * 100) / 100

const messageOf = (child: ChildProcess) => {
  const waiting: Array<(m: any) => void> = []
  const queued: Array<any> = []
  child.on("message", (m) => {
    const w = waiting.shift()
    if (w !== undefined) w(m)
    else queued.push(m)
  })
  return (): Promise<any> => (queued.length > 0 ? Promise.resolve(queued.shift()) : new Promise((r) => waiting.push(r)))
}

const exited = (child: ChildProcess, what: string) =>
  new Promise<void>((resolve, reject) => {
    if (child.exitCode !== null) return child.exitCode === 0 ? resolve() : reject(new Error(`${what} exited with ${child.exitCode}`))
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${what} exited with ${code}`))))
  })

const KINDS: ReadonlyArray<WriterKind> = ["steadfast", "ioredis", "redis-cli"]

/**
 * One run: `readers` reader processes and one writer process, started together; then a phase per writer kind, each on
 * its own keys (the processes stay up between phases).
 */
const run = async (readers: number) => {
  const prefix = `steadfast:hybrid-mp:${process.pid}:${readers}:${Math.random().toString(36).slice(2)}:`
  const admin = new Redis(REDIS_URL, { protocol: 2 })
  const children: Array<ChildProcess> = []
  const keysOf = (kind: WriterKind) => Array.from({ length: KEYS }, (_, k) => `${prefix}${kind}k${k}`)
  try {
    const start = (script: string, args: ReadonlyArray<string>, what: string) => {
      const child = fork(script, args, { stdio: ["ignore", "ignore", "inherit", "ipc"] })
      children.push(child)
      return { child, next: messageOf(child), exit: exited(child, what) }
    }
    const readerProcesses = Array.from({ length: readers }, () =>
      start(readerScript, [REDIS_URL, prefix, String(KEYS), String(CONCURRENCY)], "reader"))
    const writer = start(writerScript, [REDIS_URL, prefix, String(KEYS), String(WRITES), String(PAUSE_MS)], "writer")
    if (!(await writer.next()).ready) throw new Error("the writer is not ready")

    const results: Array<{ kind: WriterKind; acks: Array<Ack>; reports: Array<ReaderReport>; writerClockOffsetMs: number }> = []
    for (const kind of KINDS) {
      await admin.mset(...keysOf(kind).flatMap((key) => [key, "v-1"]))
      for (const r of readerProcesses) r.child.send({ phase: kind })
      const ready = await Promise.all(readerProcesses.map((r) => r.next()))
      if (!ready.every((m) => m.ready && m.trusted)) throw new Error(`a reader's L1 is not trusted: ${JSON.stringify(ready)}`)
      await new Promise((r) => setTimeout(r, 200))

      writer.child.send({ go: kind })
      const acks: Array<Ack> = []
      let writerClockOffsetMs = 0
      for (;;) {
        const m = await writer.next()
        if (m.done) {
          writerClockOffsetMs = m.clockOffsetMs
          break
        }
        acks.push(m)
      }
      await new Promise((r) => setTimeout(r, 100))
      for (const r of readerProcesses) r.child.send({ report: true })
      const reports: Array<ReaderReport> = (await Promise.all(readerProcesses.map((r) => r.next()))).map((m) => m.report)
      results.push({ kind, acks, reports, writerClockOffsetMs })
    }
    for (const r of [...readerProcesses, writer]) r.child.send({ stop: true })
    await Promise.all([...readerProcesses, writer].map((r) => r.exit))
    return results
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill()
    await admin.del(...KINDS.flatMap(keysOf)).catch(() => 0)
    admin.disconnect()
  }
}

/** The figures of a run, and a trace of its worst write. */
const analyse = ({ kind, acks, reports, writerClockOffsetMs }: Awaited<ReturnType<typeof run>>[number]) => {
  const lastSeen = reports.map((r) => r.lastSeen.map((entries) => new Map(entries)))
  /**
   * Each reader's invalidation messages by the write they are about: a message for key k arriving when the newest value
   * of k the reader had read was v<j> is about the next write of k after j (Redis tracked k from the read of v<j>),
   * unless it arrived before that write could have been sent (the writer sends write i after write i - 1's
   * acknowledgement): then it is about an earlier write of k (the reader had read v<j> from Redis before it heard).
   */
  const ackAt = new Map(acks.map((a) => [a.i, a.ackAt]))
  const messagesOf = reports.map((r) => {
    const byWrite = new Map<number, readonly [number, number]>()
    for (const [k, received, dropped, newest] of r.messages) {
      let i = newest + 1 + ((((k - (newest + 1)) % KEYS) + KEYS) % KEYS)
      while (i >= KEYS && received < (ackAt.get(i - 1) ?? 0)) i -= KEYS
      if (!byWrite.has(i)) byWrite.set(i, [received, dropped])
    }
    return byWrite
  })
  const perWrite = acks.map((ack) => {
    const k = Number(ack.key.slice(kind.length + 1))
    const readers = reports.map((_, r) => {
      let lastOld = 0
      for (const [i, at] of lastSeen[r]![k]!) if (i < ack.i && at > lastOld) lastOld = at
      const message = messagesOf[r]!.get(ack.i)
      return {
        window: Math.max(0, lastOld - ack.ackAt),
        lastOld,
        received: message?.[0],
        dropped: message?.[1]
      }
    })
    return { ack, window: Math.max(...readers.map((r) => r.window)), readers }
  })
  const windows = perWrite.map((w) => w.window).sort((a, b) => a - b)
  const perReaderWindows = reports.map((_, r) => perWrite.map((w) => w.readers[r]!.window).sort((a, b) => a - b))
  /** Message arrival minus acknowledgement, every write, every reader (negative: the reader heard before the writer). */
  const delivery = perWrite.flatMap((w) => w.readers.flatMap((r) => (r.received === undefined ? [] : [r.received - w.ack.ackAt])))
    .sort((a, b) => a - b)
  const worst = perWrite.reduce((a, b) => (b.window > a.window ? b : a))
  const relative = (t: number | undefined) => (t === undefined || t === 0 ? null : r2(t - worst.ack.ackAt))
  return {
    writer: kind,
    readers: reports.length,
    processes: reports.length + 1,
    writes: acks.length,
    reads: reports.reduce((a, r) => a + r.reads, 0),
    l1HitRatio: Math.min(...reports.map((r) => Number(r.l1HitRatio.toFixed(3)))),
    staleWrites: windows.filter((w) => w > 0).length,
    p50Ms: r2(percentile(windows, 50)),
    p99Ms: r2(percentile(windows, 99)),
    maxMs: r2(windows[windows.length - 1] ?? 0),
    perReaderP99Ms: perReaderWindows.map((w) => r2(percentile(w, 99))),
    boundMs: BOUND_MS,
    beyondBound: windows.filter((w) => w > BOUND_MS).length,
    deliveryMs: { p50: r2(percentile(delivery, 50)), p99: r2(percentile(delivery, 99)), max: r2(delivery[delivery.length - 1] ?? 0) },
    messagesMatched: delivery.length,
    worst: {
      key: worst.ack.key,
      i: worst.ack.i,
      windowMs: r2(worst.window),
      // ms relative to the writer's acknowledgement
      readers: worst.readers.map((r) => ({ receivedMs: relative(r.received), droppedMs: relative(r.dropped), lastOldReadMs: relative(r.lastOld) }))
    },
    loop: reports.map((r) => ({
      delayP99Ms: r2(r.loopDelayMs.p99),
      delayMaxMs: r2(r.loopDelayMs.max),
      gcMaxMs: r2(r.gc.maxMs),
      gcCount: r.gc.count,
      readGapsOver5Ms: r.readGapsMs.over5,
      readGapMaxMs: r2(r.readGapsMs.max)
    })),
    losses: reports.map((r) => r.losses),
    canaryFailures: reports.reduce((a, r) => a + r.canaryFailures, 0),
    clockOffsetsMs: { writer: r2(writerClockOffsetMs), readers: reports.map((r) => r2(r.clockOffsetMs)) }
  }
}

describe("HybridCache across processes: 1 writer process, 1 or 3 reader processes (64 fibers each)", () => {
  for (const readers of [1, 3]) {
    it.live(`${readers + 1} processes, writes through steadfast, ioredis and redis-cli: staleness window, none beyond the bound`, () =>
      Effect.gen(function*() {
        if (!Fs.existsSync(compiled)) {
          throw new Error(`${compiled} is missing: run \`npx tsc -b\` first (the children run the compiled packages)`)
        }
        const all = (yield* Effect.promise(() => run(readers))).map(analyse)
        for (const figures of all) console.log(`hybrid staleness across processes: ${JSON.stringify(figures)}`)
        for (const figures of all) {
          expect(figures.writes, figures.writer).toBe(WRITES)
          expect(figures.beyondBound, figures.writer).toBe(0)
          // The target is p99 < 5 ms: printed (see the README for the runs); asserted with a margin (see the limits).
          expect(figures.p50Ms, figures.writer).toBeLessThan(P50_LIMIT_MS)
          expect(figures.p99Ms, figures.writer).toBeLessThan(P99_LIMIT_MS)
          expect(figures.l1HitRatio, figures.writer).toBeGreaterThan(0.5)
        }
      }))
  }
})
