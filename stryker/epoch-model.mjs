// Bounded exhaustive check behind some "equivalent" verdicts in MUTATION.md: a model of the breaker's state machine
// (packages/resilience/src/internal/circuitBreaker.ts: admission, result recording, reset; time abstracted as "the
// open period elapsed") run over every sequence of up to DEPTH events, comparing what a user can observe (state,
// count, opens, probe slot, published transitions, which calls run) between the original and each mutant.
// Usage: node stryker/epoch-model.mjs
const DEPTH = Number(process.env.DEPTH ?? 9)

const variants = {
  original: {},
  "open(): epoch s.epoch - 1": { openEpoch: -1 },
  "probe success: epoch s.epoch - 1": { closeEpoch: -1 },
  "OPEN -> HALF_OPEN: epoch s.epoch - 1": { halfEpoch: -1 },
  "reset: epoch s.epoch - 1": { resetEpoch: -1 },
  "recordClosed success: s.state === CLOSED -> true": { closedSuccessState: true },
  "recordClosed success: s.failures !== 0 -> true": { closedSuccessFailures: true },
  "recordProbe: s.state !== HALF_OPEN -> false": { probeState: true },
  "recordClosed failure: s.state !== CLOSED -> false": { closedFailureState: true },
  "open(): probing true": { openProbing: true },
  "probe success: probing true": { closeProbing: true },
  "reset: probing true": { resetProbing: true }
}

const make = (threshold, m) => {
  let s = { state: "CLOSED", epoch: 0, failures: 0, opens: 0, due: false, probing: false }
  const log = []
  const publish = (from, to) => log.push(`${from.state}->${to.state}:${to.failures}`)
  const open = (x) => ({ state: "OPEN", epoch: x.epoch + (m.openEpoch ?? 1), failures: x.failures + 1, opens: x.opens + 1, due: false, probing: !!m.openProbing })
  const recordClosed = (epoch, outcome) => {
    if (outcome === "success") {
      const stateOk = m.closedSuccessState ? true : s.state === "CLOSED"
      const failOk = m.closedSuccessFailures ? true : s.failures !== 0
      if (stateOk && s.epoch === epoch && failOk) s = { ...s, failures: 0 }
      return
    }
    if (outcome !== "counted") return
    if ((m.closedFailureState ? false : s.state !== "CLOSED") || s.epoch !== epoch) return
    if (s.failures + 1 < threshold) { s = { ...s, failures: s.failures + 1 }; return }
    const next = open(s); publish(s, next); s = next
  }
  const recordProbe = (epoch, outcome) => {
    if ((m.probeState ? false : s.state !== "HALF_OPEN") || s.epoch !== epoch) return
    let next
    if (outcome === "success") next = { state: "CLOSED", epoch: s.epoch + (m.closeEpoch ?? 1), failures: 0, opens: s.opens, due: false, probing: !!m.closeProbing }
    else if (outcome === "counted") next = open(s)
    else { s = { ...s, probing: false }; return }
    publish(s, next); s = next
  }
  return {
    observe: () => JSON.stringify([s.state, s.failures, s.opens, s.state === "HALF_OPEN" ? s.probing : null, s.state === "OPEN" ? s.due : null, log.length, log.at(-1)]),
    // returns a token when the call runs, null when rejected
    call: () => {
      switch (s.state) {
        case "CLOSED": return { kind: "closed", epoch: s.epoch }
        case "OPEN": {
          if (!s.due) return null
          const next = { ...s, state: "HALF_OPEN", epoch: s.epoch + (m.halfEpoch ?? 1), due: false, probing: true }
          publish(s, next); s = next
          return { kind: "probe", epoch: next.epoch }
        }
        case "HALF_OPEN": {
          if (s.probing) return null
          s = { ...s, probing: true }
          return { kind: "probe", epoch: s.epoch }
        }
      }
    },
    finish: (token, outcome) => token.kind === "closed" ? recordClosed(token.epoch, outcome) : recordProbe(token.epoch, outcome),
    elapse: () => { if (s.state === "OPEN") s = { ...s, due: true } },
    reset: () => {
      if (s.state === "CLOSED") { if (s.failures !== 0) s = { ...s, failures: 0 }; return }
      const next = { state: "CLOSED", epoch: s.epoch + (m.resetEpoch ?? 1), failures: 0, opens: s.opens, due: false, probing: !!m.resetProbing }
      publish(s, next); s = next
    }
  }
}

const outcomes = ["success", "counted", "uncounted"]
/** Every event sequence; `inFlight` are indices of calls still running. */
function* sequences(depth, prefix = [], inFlight = [], started = 0) {
  yield prefix
  if (depth === 0) return
  if (inFlight.length < 3) yield* sequences(depth - 1, [...prefix, ["call", started]], [...inFlight, started], started + 1)
  for (const i of inFlight) {
    for (const o of outcomes) yield* sequences(depth - 1, [...prefix, ["finish", i, o]], inFlight.filter((j) => j !== i), started)
  }
  yield* sequences(depth - 1, [...prefix, ["elapse"]], inFlight, started)
  yield* sequences(depth - 1, [...prefix, ["reset"]], inFlight, started)
}

const run = (threshold, m, events) => {
  const b = make(threshold, m)
  const tokens = new Map()
  const trace = []
  for (const [kind, i, o] of events) {
    if (kind === "call") { const t = b.call(); tokens.set(i, t); trace.push(t === null ? "rejected" : "ran") }
    else if (kind === "finish") { const t = tokens.get(i); if (t) b.finish(t, o) }
    else b[kind]()
    trace.push(b.observe())
  }
  return trace.join("|")
}

for (const [name, m] of Object.entries(variants)) {
  if (name === "original") continue
  let witness = null
  let checked = 0
  outer: for (const threshold of [1, 2]) {
    for (const events of sequences(DEPTH)) {
      checked++
      if (run(threshold, {}, events) !== run(threshold, m, events)) {
        witness = `threshold ${threshold}: ${events.map((e) => e.join(" ")).join(", ")}`
        break outer
      }
    }
  }
  console.log(`${witness === null ? "EQUIVALENT (bounded)" : "DIFFERS"}  ${name}  [${checked} sequences]${witness ? `\n    e.g. ${witness}` : ""}`)
}
