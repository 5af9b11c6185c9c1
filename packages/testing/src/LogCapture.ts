/**
 * Captures what a program logs through Effect's `Logger`, to assert on it: the fields a log line carries, its level,
 * and what must never appear (a password, say). Every line is counted by level; the first `maxLines` are kept, so a
 * chatty program cannot grow a test's memory without bound.
 *
 * @since 0.1.0
 */
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as List from "effect/List"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

/**
 * @since 0.1.0
 * @category models
 */
export interface CapturedLog {
  /** `"ERROR"`, `"WARN"`, `"INFO"`, `"DEBUG"`, ... */
  readonly level: string
  readonly message: string
  /** The line's annotations (`operation`, `error_type`, ...). */
  readonly annotations: Readonly<Record<string, unknown>>
  /** Level, message and annotations as one string: what a log shipper would receive. */
  readonly line: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface LogCapture {
  /** The first `maxLines` lines, in order. */
  readonly lines: ReadonlyArray<CapturedLog>
  /** Every line, counted by level (also those past `maxLines`). */
  readonly byLevel: Readonly<Record<string, number>>
  /** Replaces the default logger and logs every level: provide it to the program under test. */
  readonly layer: Layer.Layer<never>
}

const text = (message: unknown): string =>
  List.isList(message)
    ? List.toArray(message).map(String).join(" ")
    : Array.isArray(message)
    ? message.map(String).join(" ")
    : String(message)

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: { readonly maxLines?: number | undefined } = {}): LogCapture => {
  const maxLines = options.maxLines ?? 10_000
  const lines: Array<CapturedLog> = []
  const byLevel: Record<string, number> = {}
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    byLevel[logLevel.label] = (byLevel[logLevel.label] ?? 0) + 1
    if (lines.length >= maxLines) return
    const body = text(message)
    const record = Object.fromEntries(HashMap.toEntries(annotations))
    lines.push({
      level: logLevel.label,
      message: body,
      annotations: record,
      line: `${logLevel.label} ${body} ${JSON.stringify(record)}`
    })
  })
  return {
    lines,
    byLevel,
    layer: Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(LogLevel.All))
  }
}
