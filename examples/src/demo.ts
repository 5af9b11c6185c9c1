/**
 * `pnpm demo`: a live chaos demonstration (~30 s). The same workload runs through Steadfast (the resilient cache),
 * Steadfast's hybrid cache (an L1 in process in front of it, invalidated by Redis; its row shows its L1 hit ratio)
 * and a plain ioredis client with default options, all through one ChaosProxy in front of a spawned redis-server (or
 * REDIS_URL), while resets, a stall and a server restart are injected. See `demo/run.ts`.
 *
 *   pnpm demo [--duration <s>] [--topology standalone|cluster|sentinel] [--json <file>] [--html <file>] [--verbose] [--no-color]
 *
 * `--topology cluster|sentinel` spawns a Redis Cluster or a Sentinel set instead (@steadfast/testing) and plays
 * failovers on it (graceful, a primary killed, for the cluster the old primary's return) instead of network faults.
 *
 * Ctrl-C once: stop early, print the summary, clean up, exit 0. Twice: interrupt at once (still cleaning up).
 */
import * as Fs from "node:fs"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { parseArgs, usage } from "./demo/args.js"
import { renderReport } from "./demo/report.js"
import { runDemo } from "./demo/run.js"

const parsed = parseArgs(process.argv.slice(2))
if (!parsed.ok) {
  console.error(`${parsed.error}\n\n${usage}`)
  process.exitCode = 2
} else if (parsed.options.help) {
  console.log(usage)
} else {
  const options = parsed.options
  const color = options.color ?? (process.stdout.isTTY === true && process.env["NO_COLOR"] === undefined)
  const redisUrl = process.env["REDIS_URL"]
  const stop = Effect.runSync(Deferred.make<void>())

  const program = runDemo({
    duration: options.duration,
    topology: options.topology,
    redisUrl: redisUrl === undefined || redisUrl === "" ? undefined : redisUrl,
    color,
    verbose: options.verbose,
    stop: Deferred.await(stop)
  }).pipe(
    Effect.tap((summary) =>
      options.json === undefined ? Effect.void : Effect.sync(() => {
        Fs.writeFileSync(options.json!, JSON.stringify(summary, null, 2) + "\n")
        console.log(`\nSummary written to ${options.json}`)
      })
    ),
    Effect.tap((summary) =>
      options.html === undefined ? Effect.void : Effect.sync(() => {
        Fs.writeFileSync(options.html!, renderReport(summary))
        console.log(`${options.json === undefined ? "\n" : ""}Report written to ${options.html}`)
      })
    )
  )

  const fiber = Effect.runFork(program)
  let signals = 0
  const onSignal = () => {
    signals++
    if (signals === 1) {
      console.log("\n(stopping: summary and clean-up follow; press Ctrl-C again to skip the summary)")
      Effect.runFork(Deferred.succeed(stop, undefined))
    } else {
      Effect.runFork(Fiber.interrupt(fiber))
    }
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
  fiber.addObserver((exit) => {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    if (Exit.isFailure(exit)) {
      if (Cause.isInterruptedOnly(exit.cause)) {
        console.error("interrupted; everything was released")
        process.exitCode = 130
      } else {
        console.error(Cause.pretty(exit.cause))
        process.exitCode = 1
      }
    }
    // No process.exit(): the process ends by itself once nothing is left open, which is the proof that nothing is.
  })
}
