// The audit page's logic, pure: the activity feed and its filters, the log positions the time
// slider moves over, changes between two moments and since a review, and slip analytics.

import type { HistoryChange, HistoryEntry, ListedShare, Slip, Who } from './api'
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

/** The person with their side, as the plan page's date changes name them: "Dev Patel
 * (champion) (buyer)", "Ana Seller (seller)" for a member, "Admin", "Mapline". */
export function personWithSide (who: Who): string {
  if (who.kind !== 'share' && who.kind !== 'member') return personName(who)
  return `${personName(who)}${who.side !== undefined ? ` (${who.side})` : ''}`
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
  /** Moves that held: lost moves are in none of the counts below. */
  total: number
  perStep: StepSlips[]
  perSide: { buyer: number, seller: number, other: number }
  /** Go-live after each of its moves that held, against the first go-live that was moved. */
  drift: DriftPoint[]
  withoutReason: Slip[]
  /** Moves that did not hold (`kept: false`: lost to a concurrent move of the same date),
   * newest first. */
  lost: Slip[]
}

export function slipAnalytics (slips: Slip[]): SlipAnalytics {
  const all = [...slips].sort((a, b) => a.seq - b.seq)
  const ordered = all.filter(s => s.kept !== false)
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
    withoutReason: ordered.filter(s => s.reason === null || s.reason.trim() === '').reverse(),
    lost: all.filter(s => s.kept === false).reverse()
  }
}

/**
 * A link's lifecycle in the activity feed: created, revoked or expired. Access changes are not
 * plan history (they are not in the hash chain): these come from the plan's link list
 * (`GET /api/plans/{id}/shares`), which only the seller's team may read.
 */
export interface AccessEvent {
  /** `{shareId}:{action}`, unique in a feed. */
  key: string
  shareId: string
  action: 'created' | 'revoked' | 'expired'
  at: string
  /** "Link for Dev Patel (buyer, editor) created by Ana Seller". */
  words: string
  /** Who made the link, as `personKey` names them (a member, the link it was minted with); null
   * when not on record (the admin, a plan's first links, every revocation and expiry). */
  by: { key: string, side: 'buyer' | 'seller' | null } | null
}

/** The lifecycle events of every listed link; an expiry counts once it has passed (`now`). */
export function accessEvents (shares: ListedShare[], now: Date = new Date()): AccessEvent[] {
  const byId = new Map(shares.map(s => [s.id, s]))
  const out: AccessEvent[] = []
  for (const s of shares) {
    const link = `Link for ${s.label} (${s.side}, ${s.role})`
    const parent = s.parentId === null ? undefined : byId.get(s.parentId)
    const mintedByMember = s.mintedByMember ?? null
    const by = mintedByMember !== null
      ? { key: `member:${mintedByMember}`, side: 'seller' as const }
      : s.parentId !== null ? { key: `share:${s.parentId}`, side: parent?.side ?? null } : null
    const maker = s.mintedBy !== null ? s.mintedBy : s.parentId === null && mintedByMember === null ? null : 'another link'
    if (s.createdAt !== null) {
      out.push({ key: `${s.id}:created`, shareId: s.id, action: 'created', at: s.createdAt, by, words: `${link} created ${maker === null ? 'with the plan or by the admin' : `by ${maker}`}` })
    }
    if (s.revokedAt !== null) {
      out.push({ key: `${s.id}:revoked`, shareId: s.id, action: 'revoked', at: s.revokedAt, by: null, words: `${link} revoked` })
    } else if (s.expiresAt !== null && Date.parse(s.expiresAt) <= now.getTime()) {
      out.push({ key: `${s.id}:expired`, shareId: s.id, action: 'expired', at: s.expiresAt, by: null, words: `${link} expired` })
    }
  }
  return out.sort((a, b) => Date.parse(b.at) - Date.parse(a.at) || a.key.localeCompare(b.key))
}

/** The access events a filter lets through: only with no kind or the kind "Access", never for
 * a step; for a person or a side, only events whose maker is on record and matches. */
export function filterAccess (events: AccessEvent[], filter: FeedFilter): AccessEvent[] {
  if ((filter.kind !== '' && filter.kind !== 'access') || filter.step !== '') return []
  return events.filter(e =>
    (filter.person === '' || e.by?.key === filter.person) &&
    (filter.side === '' || e.by?.side === filter.side))
}

export type FeedItem = { type: 'change', at: string, entry: HistoryEntry } | { type: 'access', at: string, event: AccessEvent }

/**
 * History entries (newest first, as `filterFeed` gives them) and access events in one list,
 * newest first by time. The entries keep their log order among themselves (a clock that went
 * back never reorders the log); an event goes before the first entry older than it, and after
 * an entry of the same moment.
 */
export function mergeFeed (entries: HistoryEntry[], events: AccessEvent[]): FeedItem[] {
  const ordered = [...events].sort((a, b) => Date.parse(b.at) - Date.parse(a.at))
  const out: FeedItem[] = []
  let i = 0
  for (const entry of entries) {
    const t = Date.parse(entry.at)
    while (i < ordered.length && Date.parse(ordered[i].at) > t) { out.push({ type: 'access', at: ordered[i].at, event: ordered[i] }); i++ }
    out.push({ type: 'change', at: entry.at, entry })
  }
  for (; i < ordered.length; i++) out.push({ type: 'access', at: ordered[i].at, event: ordered[i] })
  return out
}

/** People who made links, for the person filter (a member or a link not otherwise in the
 * history): keys as `personKey`, names from the link list. */
export function accessPeople (shares: ListedShare[]): Array<{ key: string, name: string }> {
  const out = new Map<string, string>()
  for (const s of shares) {
    const member = s.mintedByMember ?? null
    if (member !== null && s.mintedBy !== null) out.set(`member:${member}`, s.mintedBy)
    else if (s.parentId !== null && s.mintedBy !== null) out.set(`share:${s.parentId}`, s.mintedBy)
  }
  return [...out].map(([key, name]) => ({ key, name }))
}
