/**
 * Validation of what callers pass in. Synchronous and allocation-free on the good path: it runs on every call.
 *
 * @internal
 */
import { PermanentError } from "@steadfast/resilience"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/** Longest key accepted, in UTF-16 code units (Redis allows more; a key this long is a bug). */
export const maxKeyLength = 8192

const invalid = (operation: string, message: string) =>
  new PermanentError({ operation, reason: "invalid_argument", message })

/** The problem with a key, or `undefined`. */
export const checkKey = (operation: string, key: unknown): PermanentError | undefined => {
  if (typeof key !== "string") return invalid(operation, `${operation}: the key must be a string, got ${typeof key}`)
  if (key.length === 0) return invalid(operation, `${operation}: the key must not be empty`)
  if (key.length > maxKeyLength) {
    return invalid(operation, `${operation}: the key is ${key.length} characters long; the limit is ${maxKeyLength}`)
  }
  return undefined
}

export const checkValue = (operation: string, key: string, value: unknown): PermanentError | undefined =>
  typeof value === "string"
    ? undefined
    : invalid(operation, `${operation}: the value for key "${key}" must be a string, got ${typeof value}`)

/** A TTL as a positive, finite Duration, or the problem. */
export const parseTtl = (
  operation: string,
  ttl: Duration.DurationInput | undefined
): Option.Option<Duration.Duration> | PermanentError => {
  if (ttl === undefined) return Option.none()
  const decoded = Duration.decodeUnknown(ttl)
  if (Option.isNone(decoded) || !Duration.isFinite(decoded.value) || Duration.toMillis(decoded.value) <= 0) {
    return invalid(operation, `${operation}: the TTL must be a positive, finite duration`)
  }
  return decoded
}

/** The first bad key, or `undefined`. */
export const checkKeys = (operation: string, keys: ReadonlyArray<unknown>): PermanentError | undefined => {
  if (!Array.isArray(keys)) return invalid(operation, `${operation}: the keys must be an array`)
  for (const key of keys) {
    const bad = checkKey(operation, key)
    if (bad) return bad
  }
  return undefined
}

/** The entries as an array, or the first bad one. */
export const checkEntries = (
  operation: string,
  entries: Iterable<readonly [string, string]>
): Array<readonly [string, string]> | PermanentError => {
  const list = Array.from(entries)
  for (const entry of list) {
    const bad = Array.isArray(entry) && entry.length === 2
      ? checkKey(operation, entry[0]) ?? checkValue(operation, entry[0], entry[1])
      : invalid(operation, `${operation}: each entry must be a [key, value] pair`)
    if (bad) return bad
  }
  return list
}
