// The audit page's logic, pure: the activity feed and its filters, the log positions the time
// slider moves over, changes between two moments and since a review, and slip analytics.

import type { HistoryChange, HistoryEntry, Slip, Who } from './api'
import { daysBetween } from './dates'

/** The kinds a change is filtered by. */
export type ChangeKind = 'date' | 'status' | 'text' | 'access' | 'entries'

export const KIND_WORDS: Record<ChangeKind, string> = {
  date: 'Date moves',
  status: 'Status',
  text: 'Text and other fields',
  access: 'Access',
  entries: 'Added or removed'
}

const DATE_FIELDS = new Set(['due', 'goLive', 'closeDate'])
const ACCESS_ENTITIES = new Set(['shares', 'members', 'access'])

export function changeKind (change: HistoryChange): ChangeKind {
  if (ACCESS_ENTITIES.has(change.entity)) return 'access'
  if (change.field !== null && DATE_FIELDS.has(change.field)) return 'date'
  if (change.field === 'status') return 'status'
  if (change.kind === 'created' || change.kind === 'deleted') return 'entries'
  return 'text'
}

/** Who an entry names, as one key (a member, a link, the admin, the server). */
export function personKey (who: Who): string {
  if (who.kind === 'member') return `member:${who.memberId ?? who.email ?? who.name ?? ''}`
  if (who.kind === 'share') return `share:${who.shareId ?? who.label ?? ''}`
  return who.kind
}

/** The person's name in words: a member's name, a link's label, "Admin", "Mapline". */
export function personName (who: Who): string {
  if (who.kind === 'member') return who.name ?? who.email ?? 'A member'
  if (who.kind === 'share') return who.label ?? 'A share link'
  if (who.kind === 'admin') return 'Admin'
  return 'Mapline'
}

/** Everyone named in the feed, by name. */
export function people (entries: HistoryEntry[]): Array<{ key: string, name: string }> {
  const seen = new Map<string, string>()
  for (const e of entries) if (!seen.has(personKey(e.who))) seen.set(personKey(e.who), personName(e.who))
  return [...seen].map(([key, name]) => ({ key, name })).sort((a, b) => a.name.localeCompare(b.name) || a.key.localeCompare(b.key))
}

/** Every step named in the feed (`milestones` entries), with its latest known title. */
export function steps (entries: HistoryEntry[]): Array<{ id: string, title: string }> {
  const titles = new Map<string, string>()
  // Oldest first, so the newest title wins.
  for (const e of [...entries].sort((a, b) => a.seq - b.seq)) {
    for (const c of e.changes) {
      if (c.entity !== 'milestones' || c.entityId == null) continue
      const whole = (c.kind === 'created' ? c.new : undefined) as { title?: unknown } | undefined
      const title = c.field === 'title' && typeof c.new === 'string' ? c.new : typeof whole?.title === 'string' ? whole.title : null
      if (title !== null && title !== '') titles.set(c.entityId, title)
      else if (!titles.has(c.entityId)) titles.set(c.entityId, c.entityId)
    }
  }
  return [...titles].map(([id, title]) => ({ id, title })).sort((a, b) => a.title.localeCompare(b.title))
}

export interface FeedFilter {
  /** `personKey`, or '' for everyone. */
  person: string
  side: '' | 'buyer' | 'seller'
  kind: '' | ChangeKind
  /** A milestone id, or ''. */
  step: string
}

export const NO_FILTER: FeedFilter = { person: '', side: '', kind: '', step: '' }

/** The entries (newest first) whose changes match; each keeps only its matching changes. An
 * entry with no matching change is left out. */
export function filterFeed (entries: HistoryEntry[], filter: FeedFilter): HistoryEntry[] {
  const out: HistoryEntry[] = []
  for (const e of entries) {
    if (filter.person !== '' && personKey(e.who) !== filter.person) continue
    if (filter.side !== '' && e.who.side !== filter.side) continue
    const changes = e.changes.filter(c =>
      (filter.kind === '' || changeKind(c) === filter.kind) &&
      (filter.step === '' || (c.entity === 'milestones' && c.entityId === filter.step)))
    if (changes.length === 0) continue
    out.push(changes.length === e.changes.length ? e : { ...e, changes })
  }
  return out.sort((a, b) => b.seq - a.seq)
}

/** The log positions the slider moves over: every entry's `seq`, oldest first. */
export function positions (entries: HistoryEntry[]): number[] {
  return [...new Set(entries.map(e => e.seq))].sort((a, b) => a - b)
}

/** The entries after the moment `from` (a log position; exclusive) up to `to` (inclusive),
 * newest first: what changed between the two. The order of the two does not matter. */
export function between (entries: HistoryEntry[], from: number, to: number): HistoryEntry[] {
  const [low, high] = from <= to ? [from, to] : [to, from]
  return entries.filter(e => e.seq > low && e.seq <= high).sort((a, b) => b.seq - a.seq)
}

/** What changed since a review marked at `reviewed` (null: never reviewed, so everything). */
export function sinceReview (entries: HistoryEntry[], reviewed: number | null): HistoryEntry[] {
  return entries.filter(e => reviewed === null || e.seq > reviewed).sort((a, b) => b.seq - a.seq)
}

/** A value of a change in words: text as it is, JSON for the rest, "nothing" for none. */
export function valueText (value: unknown): string {
  if (value === null || value === undefined || value === '') return 'nothing'
  if (typeof value === 'string') return value
  return JSON.stringify(value)
}

export interface StepSlips { milestoneId: string, title: string, count: number, days: number }
export interface DriftPoint { seq: number, at: string, goLive: string | null, driftDays: number | null }
export interface SlipAnalytics {
  total: number
  perStep: StepSlips[]
  perSide: { buyer: number, seller: number, other: number }
  /** Go-live after each of its moves, against the first go-live that was moved. */
  drift: DriftPoint[]
  withoutReason: Slip[]
}

export function slipAnalytics (slips: Slip[]): SlipAnalytics {
  const ordered = [...slips].sort((a, b) => a.seq - b.seq)
  const steps = new Map<string, StepSlips>()
  const perSide = { buyer: 0, seller: 0, other: 0 }
  const drift: DriftPoint[] = []
  let first: string | null = null
  for (const s of ordered) {
    if (s.who.side === 'buyer') perSide.buyer++
    else if (s.who.side === 'seller') perSide.seller++
    else perSide.other++
    if (s.subject === 'milestone' && s.milestoneId !== undefined) {
      const step = steps.get(s.milestoneId) ?? { milestoneId: s.milestoneId, title: s.title ?? s.milestoneId, count: 0, days: 0 }
      step.count++
      step.days += s.days ?? 0
      if (s.title != null) step.title = s.title
      steps.set(s.milestoneId, step)
    } else if (s.subject === 'go_live') {
      if (first === null) first = s.from
      drift.push({ seq: s.seq, at: s.at, goLive: s.to, driftDays: daysBetween(first, s.to) })
    }
  }
  return {
    total: ordered.length,
    perStep: [...steps.values()].sort((a, b) => b.count - a.count || b.days - a.days || a.title.localeCompare(b.title)),
    perSide,
    drift,
    withoutReason: ordered.filter(s => s.reason === null || s.reason.trim() === '').reverse()
  }
}
