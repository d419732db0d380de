// Conflicts on record (docs/schema.md, "Conflicts on record"): a plain value written while
// apart from another write of it loses, and the server's history holds a `conflict` change
// naming the kept and the lost value with their authors. The page shows one on its step (or meta
// field) while the field still holds the kept value, with one action to take the other value.

import * as Y from 'yjs'
import type { HistoryEntry, Who } from './api'
import { formatDate, isDate } from './dates'

export interface ConflictSide {
  value: unknown
  who: Who | null
  at: string | null
}

export interface Conflict {
  /** Stable on this device for "Dismiss": the history entry and the field. */
  key: string
  seq: number
  /** `meta`, `success` or a collection. */
  entity: string
  entityId: string | null
  field: string
  kept: ConflictSide
  lost: ConflictSide
}

function side (value: unknown): ConflictSide | null {
  if (value === null || typeof value !== 'object') return null
  const v = value as { value?: unknown, who?: unknown, at?: unknown }
  const who = v.who !== null && typeof v.who === 'object' && typeof (v.who as { kind?: unknown }).kind === 'string' ? v.who as Who : null
  return { value: v.value ?? null, who, at: typeof v.at === 'string' ? v.at : null }
}

/** The conflict changes of history entries (any order), newest first; malformed ones are
 * skipped. */
export function conflictsOf (entries: HistoryEntry[]): Conflict[] {
  const out: Conflict[] = []
  for (const entry of entries) {
    for (const change of entry.changes ?? []) {
      if (change.kind !== 'conflict' || typeof change.entity !== 'string' || typeof change.field !== 'string') continue
      const kept = side(change.kept)
      const lost = side(change.lost)
      if (kept === null || lost === null) continue
      const entityId = typeof change.entityId === 'string' ? change.entityId : null
      out.push({ key: `${entry.seq}:${change.entity}:${entityId ?? ''}:${change.field}`, seq: entry.seq, entity: change.entity, entityId, field: change.field, kept, lost })
    }
  }
  return out.sort((a, b) => b.seq - a.seq)
}

/** A field's value in the document as JSON (a Y.Text as its string), `null` when absent. */
export function fieldValue (doc: Y.Doc, entity: string, entityId: string | null, field: string): unknown {
  const root = doc.getMap<unknown>(entity)
  const map = entityId === null ? root : root.get(entityId)
  if (!(map instanceof Y.Map)) return null
  const value = map.get(field)
  if (value instanceof Y.Text) return value.toString()
  if (value instanceof Y.AbstractType) return value.toJSON()
  return value ?? null
}

function same (a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null)
}

/** Whether "Use this value" can write the lost value back: a plain value (text, number, yes or
 * no). A lost text, list or entry is recorded without its content (`null`), and writing that
 * would wipe what was kept. */
export function takesBack (c: Conflict): boolean {
  return ['string', 'number', 'boolean'].includes(typeof c.lost.value)
}

/** A move's reason: lost with its date, it is shown with the date's conflict (whose "Use this
 * value" asks for a reason again), not on its own. */
const MOVE_REASONS = new Set(['slipReason', 'goLiveSlipReason'])

/** The conflicts to show: per field the newest, and only while the field holds its kept value
 * and this device has not dismissed it. */
export function activeConflicts (conflicts: Conflict[], doc: Y.Doc, dismissed: ReadonlySet<string>): Conflict[] {
  const seen = new Set<string>()
  const out: Conflict[] = []
  for (const c of conflicts) {
    if (MOVE_REASONS.has(c.field)) continue
    const field = `${c.entity}.${c.entityId ?? ''}.${c.field}`
    if (seen.has(field)) continue
    seen.add(field)
    if (dismissed.has(c.key)) continue
    if (same(fieldValue(doc, c.entity, c.entityId, c.field), c.kept.value)) out.push(c)
  }
  return out
}

/** A person as the banner names them. */
export function whoName (who: Who | null): string {
  if (who === null) return 'Someone'
  if (who.kind === 'admin') return 'The admin'
  if (who.kind === 'system') return 'Mapline'
  if (who.kind === 'member') return who.name ?? who.email ?? 'A member of the seller team'
  return who.label ?? 'Someone'
}

/** A value as the banner shows it: a date in the locale's format, text as written. */
export function valueWords (value: unknown, locale?: string): string {
  if (value === null || value === undefined || value === '') return 'nothing'
  if (isDate(value)) return formatDate(value, locale)
  return typeof value === 'string' ? `“${value}”` : JSON.stringify(value)
}

/**
 * "Buyer team set 12/03/2027 offline; 19/03/2027 was kept". Both writes were made apart; the
 * one that reached the server later was made without seeing the other (offline), and is said
 * to be so: the lost one ("set … offline"), or the kept one ("…, set offline, was kept").
 */
export function conflictWords (c: Conflict, locale?: string): string {
  const lostAt = c.lost.at === null ? NaN : Date.parse(c.lost.at)
  const keptAt = c.kept.at === null ? NaN : Date.parse(c.kept.at)
  const lostLater = lostAt > keptAt
  const keptLater = keptAt > lostAt
  const lost = `${whoName(c.lost.who)} set ${valueWords(c.lost.value, locale)}${lostLater ? ' offline' : ''}`
  const kept = keptLater
    ? `${valueWords(c.kept.value, locale)}, set offline by ${whoName(c.kept.who)}, was kept`
    : `${valueWords(c.kept.value, locale)} was kept`
  return `${lost}; ${kept}`
}
