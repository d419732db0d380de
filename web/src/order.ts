// Fractional indexing for the schema's `order` field: keys are strings compared as text (byte
// order, as the server sorts them), and a key can always be made between two others, so
// concurrent reorders never clobber each other.

const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const BASE = DIGITS.length
const MID = DIGITS[BASE >> 1]

function digit (key: string, i: number, fallback: number): number {
  if (i >= key.length) return fallback
  const d = DIGITS.indexOf(key[i])
  return d < 0 ? fallback : d
}

/**
 * A key strictly between `before` and `after` (either may be null for the open end). Keys made
 * here use only the digits above and never end in the lowest digit, so there is always room.
 * Keys written by other clients in other alphabets still sort correctly, as text.
 */
export function keyBetween (before: string | null, after: string | null): string {
  if (before !== null && after !== null && before >= after) {
    // Out of order or equal (e.g. concurrent inserts): place after `before`.
    return keyBetween(before, null)
  }
  const key = walk(before, after)
  // Only foreign keys ending in the lowest digit leave no room (nothing sorts between "a" and
  // "a0" in this alphabet); then the new entry goes right after `before`'s neighbour instead.
  return after === null || key < after ? key : keyBetween(after, null)
}

function walk (before: string | null, after: string | null): string {
  let result = ''
  for (let i = 0; ; i++) {
    const low = before === null ? 0 : digit(before, i, 0)
    const high = after === null ? BASE : digit(after, i, BASE)
    if (high - low > 1) {
      const mid = (low + high) >> 1
      return result + DIGITS[mid]
    }
    // No room at this position: keep the lower digit and look further right.
    result += DIGITS[low]
    if (after !== null && high > low) {
      // From here on `after` no longer bounds us; only `before` does.
      return result + keyAfterSuffix(before, i + 1)
    }
  }
}

function keyAfterSuffix (before: string | null, from: number): string {
  let suffix = ''
  for (let i = from; ; i++) {
    const low = before === null ? 0 : digit(before, i, 0)
    if (BASE - low > 1) return suffix + DIGITS[(low + BASE) >> 1]
    suffix += DIGITS[low]
  }
}

/** A first key for an empty collection. */
export const FIRST_KEY = MID
