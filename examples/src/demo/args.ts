/**
 * Plain argument parsing for `pnpm demo`: `--duration <s>`, `--topology standalone|cluster|sentinel`,
 * `--json <file>`, `--html <file>`, `--verbose`, `--no-color`, `--help`.
 */
import type { Topology } from "./run.js"

export interface CliOptions {
  readonly duration: number
  readonly topology: Topology
  readonly json: string | undefined
  readonly html: string | undefined
  readonly verbose: boolean
  readonly color: boolean | undefined
  readonly help: boolean
}

export const usage = `Usage: pnpm demo [--duration <seconds>] [--topology standalone|cluster|sentinel] [--json <file>]
                 [--html <file>] [--verbose] [--no-color]

  --duration <s>   length of the run, 5..3600 seconds (default 30); the fault timeline scales with it
  --topology <t>   standalone (default): one Redis behind a ChaosProxy (resets, a stall, a restart);
                   cluster: a spawned 3-primary, 3-replica Redis Cluster (a graceful failover, a primary
                   killed, the old primary back as a replica); sentinel: a spawned primary, 2 replicas and
                   3 sentinels (SENTINEL FAILOVER, the primary killed). Both need redis-server and redis-cli
                   on the PATH and ignore REDIS_URL
  --json <file>    also write the summary as JSON to <file>
  --html <file>    also write a self-contained HTML page with charts over time (throughput, p99 latency,
                   fallbacks, breaker state per client; fault windows shaded) to <file>
  --verbose        show Steadfast's own log lines (connection errors, breaker transitions)
  --no-color       no ANSI colours (also: NO_COLOR=1, or when stdout is not a terminal)

Redis: REDIS_URL if set (no server restart then), otherwise a spawned redis-server on a free port,
otherwise (no redis-server binary) a memory-only run.`

/** `Left` is an error message. */
export const parseArgs = (argv: ReadonlyArray<string>): { readonly ok: true; readonly options: CliOptions } | {
  readonly ok: false
  readonly error: string
} => {
  let duration = 30
  let topology: Topology = "standalone"
  let json: string | undefined
  let html: string | undefined
  let verbose = false
  let color: boolean | undefined
  let help = false
  const args = [...argv]
  for (let i = 0; i < args.length; i++) {
    const raw = args[i]!
    if (raw === "--") continue // pnpm / npm may pass a separator through
    const eq = raw.indexOf("=")
    const name = raw.startsWith("--") && eq > 0 ? raw.slice(0, eq) : raw
    const inline = raw.startsWith("--") && eq > 0 ? raw.slice(eq + 1) : undefined
    const value = (): string | undefined => inline ?? args[++i]
    switch (name) {
      case "--duration":
      case "-d": {
        const text = value()
        const n = Number(text)
        if (text === undefined || text.trim() === "" || !Number.isFinite(n) || n < 5 || n > 3600) {
          return { ok: false, error: `--duration wants a number of seconds between 5 and 3600, got ${text ?? "nothing"}` }
        }
        duration = n
        break
      }
      case "--topology":
      case "-t": {
        const text = value()
        if (text !== "standalone" && text !== "cluster" && text !== "sentinel") {
          return { ok: false, error: `--topology wants standalone, cluster or sentinel, got ${text ?? "nothing"}` }
        }
        topology = text
        break
      }
      case "--json": {
        const text = value()
        if (text === undefined || text === "") return { ok: false, error: "--json wants a file name" }
        json = text
        break
      }
      case "--html": {
        const text = value()
        if (text === undefined || text === "") return { ok: false, error: "--html wants a file name" }
        html = text
        break
      }
      case "--verbose":
      case "-v":
        verbose = true
        break
      case "--no-color":
        color = false
        break
      case "--color":
        color = true
        break
      case "--help":
      case "-h":
        help = true
        break
      default:
        return { ok: false, error: `unknown argument: ${raw}` }
    }
  }
  return { ok: true, options: { duration, topology, json, html, verbose, color, help } }
}
