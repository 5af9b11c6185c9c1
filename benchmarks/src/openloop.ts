/**
 * An open-loop driver: calls are started on a timer at a fixed rate, whether or not earlier calls settled (a caller
 * that waits for the previous call hides a stall). Each call's start, end and outcome are recorded.
 */
import type { PromiseClient } from "./contenders.js"
import { now } from "./util.js"

export type Outcome = "value" | "empty" | "error" | "pending"

export interface Call {
  readonly start: number
  end: number
  outcome: Outcome
  value: string | null | undefined
}

export interface OpenLoop {
  readonly calls: ReadonlyArray<Call>
  readonly pending: () => number
  /** Stops starting calls. */
  readonly stop: () => void
  /** Resolves when `pending()` is 0 or after `ms`. */
  readonly drain: (ms: number) => Promise<void>
}

export const openLoop = (
  client: PromiseClient,
  key: (index: number) => string,
  ratePerSec: number,
  options: { readonly maxCalls: number; readonly onTick?: () => void; readonly onSettle?: (call: Call) => void }
): OpenLoop => {
  const calls: Array<Call> = []
  let pending = 0
  const t0 = now()
  const issue = () => {
    const call: Call = { start: now(), end: Number.NaN, outcome: "pending", value: undefined }
    calls.push(call)
    pending++
    const index = calls.length - 1
    let promise: Promise<string | null | undefined>
    try {
      promise = client.get(key(index))
    } catch (error) {
      promise = Promise.reject(error)
    }
    promise.then(
      (value) => {
        call.end = now()
        call.value = value
        call.outcome = value === null || value === undefined ? "empty" : "value"
        pending--
        options.onSettle?.(call)
      },
      () => {
        call.end = now()
        call.outcome = "error"
        pending--
        options.onSettle?.(call)
      }
    )
  }
  const timer = setInterval(() => {
    options.onTick?.()
    const due = Math.min(options.maxCalls, Math.floor(((now() - t0) * ratePerSec) / 1000))
    while (calls.length < due) issue()
  }, Math.max(1, Math.floor(1000 / ratePerSec)))
  const stop = () => clearInterval(timer)
  const drain = async (ms: number) => {
    const end = now() + ms
    while (pending > 0 && now() < end) await new Promise((r) => setTimeout(r, 10))
  }
  return { calls, pending: () => pending, stop, drain }
}
