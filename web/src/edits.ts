// Every change the page makes to the plan document. Each is one Yjs transaction, so it reaches
// the server as one update: a moved date and its reason arrive together, which is what makes
// the server record the reason with the slip.

import * as Y from 'yjs'
import { isProse, proseFields, type Collection } from './schema'
import { FIRST_KEY, keyBetween } from './order'
import { compareEntries, type Entry } from './plan-view'
import { minimalDiff } from './text-binding'

/** The transaction origin of the page's own edits (the only origin undo tracks). */
export const LOCAL = 'mapline-page'

/** Undo managers by document, told when a discrete edit (a choice, a move, an added entry)
 * starts and ends, so that it is one undo step of its own and never merges with typing. */
const undoManagers = new WeakMap<Y.Doc, Y.UndoManager>()

export function registerUndo (doc: Y.Doc, undo: Y.UndoManager): void {
  undoManagers.set(doc, undo)
}

/** One discrete edit: its own transaction with origin `LOCAL`, and its own undo step. */
function discrete (doc: Y.Doc, change: () => void): void {
  const undo = undoManagers.get(doc)
  undo?.stopCapturing()
  doc.transact(change, LOCAL)
  undo?.stopCapturing()
}

/**
 * Where a prose field lives: `locate(false)` finds the map holding it (null when it is not
 * there); `locate(true)` may create it (called inside the transaction), e.g. the internal
 * document's entry for a stakeholder on its first write.
 */
export type Locate = (create: boolean) => Y.Map<unknown> | null

/** The origin of the page's own structural writes that undo must not take back: making the
 * `Y.Text` of a field on its first edit (others may type into it from then on). */
export const PREPARE = 'mapline-page-prepare'

/**
 * Makes a prose field hold `next`, by the smallest edit of its `Y.Text` (one delete and one
 * insert, in one transaction with origin `LOCAL`) so that concurrent edits merge. A field that
 * holds a v1 string (or nothing) first gets a `Y.Text` holding that string (origin `PREPARE`, so
 * undo leaves the text — and what others typed into it — in place and takes back only the
 * typing).
 */
export function writeProse (doc: Y.Doc, locate: Locate, field: string, next: string): void {
  const current = locate(false)?.get(field)
  if (!(current instanceof Y.Text)) {
    // Nothing to write: the v1 string already says it, or an absent field stays empty.
    if (current === next || ((current === undefined || current === null) && next === '')) return
    doc.transact(() => {
      const map = locate(true)
      if (map === null || map.get(field) instanceof Y.Text) return
      const old = map.get(field)
      map.set(field, new Y.Text(typeof old === 'string' ? old : ''))
    }, PREPARE)
  }
  doc.transact(() => {
    const value = locate(false)?.get(field)
    if (!(value instanceof Y.Text)) return
    const splice = minimalDiff(value.toString(), next)
    if (splice === null) return
    if (splice.remove > 0) value.delete(splice.index, splice.remove)
    if (splice.insert !== '') value.insert(splice.index, splice.insert)
  }, LOCAL)
}

/** The `Locate` of a field of `meta` or `success`. */
export function rootLocate (doc: Y.Doc, root: 'meta' | 'success'): Locate {
  return () => doc.getMap<unknown>(root)
}

/** The `Locate` of an entry's field (never creates the entry: a deleted one stays deleted). */
export function entryLocate (doc: Y.Doc, collection: Collection, id: string): Locate {
  return () => entryMap(doc, collection, id)
}

function entryMap (doc: Y.Doc, collection: Collection, id: string): Y.Map<unknown> | null {
  const entry = doc.getMap<unknown>(collection).get(id)
  return entry instanceof Y.Map ? entry : null
}

/** Sets (or, with an empty value, clears) one text field of `meta` or `success`. */
export function setRootField (doc: Y.Doc, root: 'meta' | 'success', field: string, value: string): void {
  if (isProse(root, field)) { undoManagers.get(doc)?.stopCapturing(); writeProse(doc, rootLocate(doc, root), field, value); return }
  discrete(doc, () => {
    const map = doc.getMap<unknown>(root)
    if (value === '') map.delete(field)
    else if (map.get(field) !== value) map.set(field, value)
  })
}

/** Sets (or clears) one field of an entry; nothing happens if the entry is gone. */
export function setEntryField (doc: Y.Doc, collection: Collection, id: string, field: string, value: string): void {
  if (isProse(collection, field)) { undoManagers.get(doc)?.stopCapturing(); writeProse(doc, entryLocate(doc, collection, id), field, value); return }
  discrete(doc, () => {
    const entry = entryMap(doc, collection, id)
    if (entry === null) return
    if (value === '') entry.delete(field)
    else if (entry.get(field) !== value) entry.set(field, value)
  })
}

/** Moves a milestone's due date with the reason, in one transaction (one update, one slip). */
export function moveDue (doc: Y.Doc, milestoneId: string, due: string, reason: string): void {
  discrete(doc, () => {
    const entry = entryMap(doc, 'milestones', milestoneId)
    if (entry === null) return
    entry.set('due', due)
    entry.set('slipReason', reason)
  })
}

/** Moves go-live with the reason, in one transaction: `goLive` and `goLiveSlipReason` (why it
 * moved). `goLiveReason` (why this date matters) is never touched by a move. */
export function moveGoLive (doc: Y.Doc, goLive: string, reason: string): void {
  discrete(doc, () => {
    const meta = doc.getMap<unknown>('meta')
    meta.set('goLive', goLive)
    meta.set('goLiveSlipReason', reason)
  })
}

/** Adds an entry at the end of its collection (after `after` when given); returns its id. */
export function addEntry (doc: Y.Doc, collection: Collection, fields: Record<string, string>, siblings: Entry[], afterId?: string): string {
  const id = crypto.randomUUID()
  const sorted = [...siblings].sort(compareEntries)
  const at = afterId === undefined ? sorted.length - 1 : sorted.findIndex(e => e.id === afterId)
  const before = at >= 0 ? sorted[at].order : null
  const after = at + 1 < sorted.length ? sorted[at + 1].order : null
  const order = before === null && after === null ? FIRST_KEY : keyBetween(before, after)
  discrete(doc, () => {
    const entry = new Y.Map<unknown>()
    // Prose fields are Y.Text from the start, so that the first edits of two people merge.
    for (const field of proseFields(collection)) entry.set(field, new Y.Text(fields[field] ?? ''))
    for (const [key, value] of Object.entries(fields)) if (value !== '' && !isProse(collection, key)) entry.set(key, value)
    entry.set('order', order)
    if (collection === 'milestones') entry.set('dependsOn', new Y.Array<string>())
    doc.getMap<unknown>(collection).set(id, entry)
  })
  return id
}

/** Deletes an entry, and (for a milestone) every dependency on it. */
export function deleteEntry (doc: Y.Doc, collection: Collection, id: string): void {
  discrete(doc, () => {
    const root = doc.getMap<unknown>(collection)
    root.delete(id)
    if (collection !== 'milestones') return
    for (const other of root.values()) {
      if (!(other instanceof Y.Map)) continue
      const deps = other.get('dependsOn')
      if (!(deps instanceof Y.Array)) continue
      for (let i = deps.length - 1; i >= 0; i--) if (deps.get(i) === id) deps.delete(i, 1)
    }
  })
}

/** Moves an entry one place up (-1) or down (+1) among `siblings` (in display order). */
export function moveEntry (doc: Y.Doc, collection: Collection, id: string, siblings: Entry[], step: -1 | 1): void {
  const sorted = [...siblings].sort(compareEntries)
  const i = sorted.findIndex(e => e.id === id)
  const j = i + step
  if (i < 0 || j < 0 || j >= sorted.length) return
  // The new neighbours: moving up lands between j-1 and j; down between j and j+1.
  const [lo, hi] = step < 0 ? [sorted[j - 1], sorted[j]] : [sorted[j], sorted[j + 1]]
  const order = keyBetween(lo?.order ?? null, hi?.order ?? null)
  setEntryField(doc, collection, id, 'order', order)
}

/** Adds a dependency (`milestoneId` waits for `on`), unless it is already there or itself. */
export function addDependency (doc: Y.Doc, milestoneId: string, on: string): void {
  if (milestoneId === on) return
  discrete(doc, () => {
    const entry = entryMap(doc, 'milestones', milestoneId)
    if (entry === null) return
    let deps = entry.get('dependsOn')
    if (!(deps instanceof Y.Array)) {
      deps = new Y.Array<string>()
      entry.set('dependsOn', deps)
    }
    const list = deps as Y.Array<unknown>
    if (!list.toArray().includes(on)) list.push([on])
  })
}

/** Removes a dependency. */
export function removeDependency (doc: Y.Doc, milestoneId: string, on: string): void {
  discrete(doc, () => {
    const deps = entryMap(doc, 'milestones', milestoneId)?.get('dependsOn')
    if (!(deps instanceof Y.Array)) return
    for (let i = deps.length - 1; i >= 0; i--) if (deps.get(i) === on) deps.delete(i, 1)
  })
}
