import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as List from "effect/List"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

export interface CapturedLog {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
  /** Everything, as one string: what a log shipper would see. */
  readonly line: string
}

/** A logger that keeps every line (instead of printing it), to assert on fields and on what must never appear. */
export const captureLogs = () => {
  const logs: Array<CapturedLog> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const text = List.isList(message) ? List.toArray(message).map(String).join(" ") : Array.isArray(message) ? message.map(String).join(" ") : String(message)
    const record = Object.fromEntries(HashMap.toEntries(annotations))
    logs.push({ level: logLevel.label, message: text, annotations: record, line: `${logLevel.label} ${text} ${JSON.stringify(record)}` })
  })
  const layer = Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(LogLevel.All))
  return { logs, layer }
}

/** Polls `check` every 50 ms until it returns true, for at most `timeoutMs` (a real socket needs real time). */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeoutMs: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (yield* check) return true
      yield* Effect.sleep("50 millis")
    }
    return yield* check
  })
