/** Command-line options: `--quick`, `--json <file>`, `--only a,b`, `--verbose`, `--rounds n`, `--latency-ms ms`, `--shared-process`. */
export type Scenario = "happy" | "ladder" | "remote" | "outage" | "breaker" | "recovery" | "connections" | "reconcile" | "policies" | "hybrid"
export const allScenarios: ReadonlyArray<Scenario> = [
  "happy",
  "ladder",
  "remote",
  "breaker",
  "recovery",
  "reconcile",
  "connections",
  "outage",
  "policies",
  "hybrid"
]

export interface Args {
  readonly quick: boolean
  readonly json: string | undefined
  readonly only: ReadonlyArray<Scenario>
  readonly verbose: boolean
  readonly rounds: number | undefined
  readonly outageSeconds: number | undefined
  /** Latency the remote scenario's proxy adds each way. */
  readonly latencyMs: number | undefined
  /** The happy path with every contender in this one process (as before session 13) instead of one per library. */
  readonly sharedProcess: boolean
}

export const parseArgs = (argv: ReadonlyArray<string>): Args => {
  let quick = false
  let json: string | undefined
  let only: ReadonlyArray<Scenario> = allScenarios
  let verbose = false
  let rounds: number | undefined
  let outageSeconds: number | undefined
  let latencyMs: number | undefined
  let sharedProcess = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${arg} needs a value`)
      return v
    }
    if (arg === "--") continue
    else if (arg === "--quick") quick = true
    else if (arg === "--json") json = value()
    else if (arg === "--verbose" || arg === "-v") verbose = true
    else if (arg === "--rounds") rounds = Number(value())
    else if (arg === "--outage-seconds") outageSeconds = Number(value())
    else if (arg === "--latency-ms") latencyMs = Number(value())
    else if (arg === "--shared-process") sharedProcess = true
    else if (arg === "--only") {
      const names = value().split(",").map((s) => s.trim()).filter((s) => s !== "")
      for (const name of names) {
        if (!allScenarios.includes(name as Scenario)) throw new Error(`unknown scenario ${name}; one of ${allScenarios.join(", ")}`)
      }
      only = allScenarios.filter((s) => names.includes(s))
    } else if (arg === "--help" || arg === "-h") {
      process.stdout.write(
        "usage: pnpm bench [--quick] [--json out.json] [--only happy,ladder,remote,breaker,recovery,reconcile,connections,outage,policies,hybrid] [--rounds n] [--outage-seconds s] [--latency-ms ms] [--shared-process] [--verbose]\n"
      )
      process.exit(0)
    } else throw new Error(`unknown argument ${arg}`)
  }
  return { quick, json, only, verbose, rounds, outageSeconds, latencyMs, sharedProcess }
}
