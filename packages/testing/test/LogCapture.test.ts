import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as LogCapture from "../src/LogCapture.js"

describe("LogCapture", () => {
  it.effect("keeps level, message and annotations of every line, debug included", () => {
    const capture = LogCapture.make()
    return Effect.gen(function*() {
      yield* Effect.logDebug("probing").pipe(Effect.annotateLogs({ operation: "get" }))
      yield* Effect.logError("redis operation failed").pipe(Effect.annotateLogs({ error_type: "auth", error_count: 3 }))
      expect(capture.lines.map((l) => [l.level, l.message])).toEqual([["DEBUG", "probing"], ["ERROR", "redis operation failed"]])
      expect(capture.lines[1]!.annotations).toEqual({ error_type: "auth", error_count: 3 })
      expect(capture.lines[1]!.line).toContain("\"error_type\":\"auth\"")
      expect(capture.byLevel).toEqual({ DEBUG: 1, ERROR: 1 })
    }).pipe(Effect.provide(capture.layer))
  })

  it.effect("counts every line but keeps only maxLines", () => {
    const capture = LogCapture.make({ maxLines: 3 })
    return Effect.gen(function*() {
      for (let i = 0; i < 10; i++) yield* Effect.logWarning(`line ${i}`)
      expect(capture.lines.map((l) => l.message)).toEqual(["line 0", "line 1", "line 2"])
      expect(capture.byLevel["WARN"]).toBe(10)
    }).pipe(Effect.provide(capture.layer))
  })
})
