// Pure pieces of binding a text field to a `Y.Text` (docs/schema.md): the edit one keystroke
// makes (the minimal diff between what the field held and what it holds now), and where a caret
// goes when someone else's edit arrives (mapped through the Y.Text event's delta). Indices are
// UTF-16 code units, as both `HTMLInputElement.selectionStart` and Yjs count them.

/** One edit that turns a text into another: delete `remove` units at `index`, insert `insert`. */
export interface Splice {
  index: number
  remove: number
  insert: string
}

function isHighSurrogate (code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}

function isLowSurrogate (code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff
}

/**
 * The smallest single splice that turns `before` into `after`: the common prefix and the common
 * suffix (not overlapping it) stay; what lies between is one delete and one insert. Never splits
 * a surrogate pair (an emoji is deleted or inserted whole). `null` when the texts are equal.
 */
export function minimalDiff (before: string, after: string): Splice | null {
  if (before === after) return null
  const limit = Math.min(before.length, after.length)
  let prefix = 0
  while (prefix < limit && before.charCodeAt(prefix) === after.charCodeAt(prefix)) prefix++
  // Back off if the prefix ends between the halves of a pair.
  if (prefix > 0 && isHighSurrogate(before.charCodeAt(prefix - 1))) prefix--
  let suffix = 0
  while (
    suffix < limit - prefix &&
    before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)
  ) suffix++
  if (suffix > 0 && isLowSurrogate(before.charCodeAt(before.length - suffix))) suffix--
  return {
    index: prefix,
    remove: before.length - prefix - suffix,
    insert: after.slice(prefix, after.length - suffix)
  }
}

/** A Y.Text event's delta (`event.delta`): retain, insert (a string here) and delete runs. */
export type TextDelta = ReadonlyArray<{ retain?: number, insert?: unknown, delete?: number }>

function insertLength (insert: unknown): number {
  return typeof insert === 'string' ? insert.length : Array.isArray(insert) ? insert.length : 1
}

/**
 * Where the caret (or one end of a selection) at `position` of the old text is in the new text
 * after `delta`: text inserted before it pushes it on; text deleted before it pulls it back; a
 * deletion around it leaves it where the deletion was. Text inserted exactly at the caret goes
 * after it (the caret stays after the character it was after), unless `stickRight` (the end of a
 * selection that should grow to cover text inserted at its end: not used by the page).
 */
export function mapPosition (position: number, delta: TextDelta, stickRight = false): number {
  let old = 0 // index in the old text
  let shift = 0 // how far the caret moved so far
  for (const op of delta) {
    if (old > position || (old === position && !stickRight && op.insert !== undefined)) break
    if (op.retain !== undefined) {
      old += op.retain
    } else if (op.insert !== undefined) {
      shift += insertLength(op.insert)
    } else if (op.delete !== undefined) {
      const removed = Math.min(op.delete, Math.max(0, position - old))
      shift -= removed
      old += op.delete
    }
  }
  return Math.max(0, position + shift)
}

/** `mapPosition` for a splice (a value that changed without a delta, e.g. a v1 string). */
export function spliceDelta (splice: Splice): TextDelta {
  const delta: Array<{ retain?: number, insert?: string, delete?: number }> = []
  if (splice.index > 0) delta.push({ retain: splice.index })
  if (splice.remove > 0) delta.push({ delete: splice.remove })
  if (splice.insert !== '') delta.push({ insert: splice.insert })
  return delta
}

/** The text a delta makes of `before`, or `null` when the delta does not fit it (it was made
 * for another text). */
export function applyDelta (before: string, delta: TextDelta): string | null {
  let out = ''
  let at = 0
  for (const op of delta) {
    if (op.retain !== undefined) {
      if (at + op.retain > before.length) return null
      out += before.slice(at, at + op.retain)
      at += op.retain
    } else if (op.insert !== undefined) {
      if (typeof op.insert !== 'string') return null
      out += op.insert
    } else if (op.delete !== undefined) {
      if (at + op.delete > before.length) return null
      at += op.delete
    }
  }
  return out + before.slice(at)
}
