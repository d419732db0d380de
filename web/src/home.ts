// The seller's home and the pipeline, pure: plan summaries (`GET /api/plans`) filtered and
// sorted, health and buyer silence in words, and the email text of a buyer invitation.

import { formatDate } from './dates'

export type SummaryHealth = 'on_track' | 'at_risk' | 'off_track' | 'done'

/** One row of `GET /api/plans` (docs/api.md). */
export interface Summary {
  id: string
  title: string | null
  buyerOrg: string | null
  sellerOrg: string | null
  goLive: string | null
  owner: { id: string, name: string } | null
  health: SummaryHealth
  healthWords: string
  overdue: number
  atRisk: number
  openSteps: number
  openStepsWithoutBuyerOwner: number
  goLiveDriftDays: number | null
  slips: { buyer: number, seller: number, last14Days: number }
  lastBuyerActivityAt: string | null
  lastSellerActivityAt: string | null
  buyerQuietDays: number | null
}

export const HEALTH_WORDS: Record<SummaryHealth, string> = { on_track: 'On track', at_risk: 'At risk', off_track: 'Off track', done: 'Done' }

/** The buyer's silence after which a plan counts as gone quiet. */
export const QUIET_AFTER_DAYS = 7

/** "gone quiet for 12 days", "active 3 days ago", "active today", "no buyer activity yet". */
export function quietWords (days: number | null): string {
  if (days === null) return 'no buyer activity yet'
  if (days <= 0) return 'active today'
  if (days === 1) return 'active yesterday'
  if (days >= QUIET_AFTER_DAYS) return `gone quiet for ${days} days`
  return `active ${days} days ago`
}

/** The buyer's activity in words for a plan's row: a buyer who never edited has "no buyer
 * activity yet (12 days)" — the days since the plan was made; none on its first day — never
 * "gone quiet" or "active today", which would say they once were active. */
export function buyerActivityWords (s: Pick<Summary, 'buyerQuietDays' | 'lastBuyerActivityAt'>): string {
  if (s.lastBuyerActivityAt === null) {
    const days = s.buyerQuietDays
    return days === null || days <= 0 ? 'no buyer activity yet' : `no buyer activity yet (${days} ${days === 1 ? 'day' : 'days'})`
  }
  return quietWords(s.buyerQuietDays)
}

/** A plan's health in words for its row: the server's sentence ("At risk: 1 step overdue"),
 * which already names the verdict; the verdict alone when there is none. */
export function healthCellWords (s: Pick<Summary, 'health' | 'healthWords'>): string {
  return s.healthWords.trim() !== '' ? s.healthWords : HEALTH_WORDS[s.health] ?? s.health
}

export function isQuiet (s: Summary): boolean {
  return s.buyerQuietDays === null ? s.lastBuyerActivityAt === null : s.buyerQuietDays >= QUIET_AFTER_DAYS
}

/** "Go-live moved 12 days later", "Go-live held", "—" (no go-live). */
export function driftWords (days: number | null): string {
  if (days === null) return '—'
  if (days === 0) return 'held'
  return `${Math.abs(days)} ${Math.abs(days) === 1 ? 'day' : 'days'} ${days > 0 ? 'later' : 'earlier'}`
}

export type SortKey = 'title' | 'buyer' | 'goLive' | 'health' | 'overdue' | 'slips' | 'quiet' | 'drift'

const HEALTH_ORDER: Record<SummaryHealth, number> = { off_track: 0, at_risk: 1, on_track: 2, done: 3 }

function keyOf (s: Summary, key: SortKey): string | number | null {
  switch (key) {
    case 'title': return s.title?.toLocaleLowerCase() ?? null
    case 'buyer': return s.buyerOrg?.toLocaleLowerCase() ?? null
    case 'goLive': return s.goLive
    case 'health': return HEALTH_ORDER[s.health] ?? 9
    case 'overdue': return s.overdue + s.atRisk / 1000
    case 'slips': return s.slips.last14Days
    case 'quiet': return s.buyerQuietDays
    case 'drift': return s.goLiveDriftDays === null ? null : Math.abs(s.goLiveDriftDays)
  }
}

/** Sorted by `key` (`desc` for the largest first); rows without a value last either way; ties
 * by title then id, so the order is stable. */
export function sortPlans (plans: Summary[], key: SortKey, desc = false): Summary[] {
  return [...plans].sort((a, b) => {
    const x = keyOf(a, key)
    const y = keyOf(b, key)
    if (x !== y) {
      if (x === null) return 1
      if (y === null) return -1
      const order = x < y ? -1 : 1
      return desc ? -order : order
    }
    return (a.title ?? '').localeCompare(b.title ?? '') || a.id.localeCompare(b.id)
  })
}

export interface PlanFilter {
  /** Words in the title, the buyer or the seller org, or the owner. */
  text: string
  health: '' | SummaryHealth
  quietOnly: boolean
  /** Plans with an open step without a buyer-side owner. */
  noBuyerOwnerOnly: boolean
}

export const ALL_PLANS: PlanFilter = { text: '', health: '', quietOnly: false, noBuyerOwnerOnly: false }

export function filterPlans (plans: Summary[], filter: PlanFilter): Summary[] {
  const words = filter.text.trim().toLocaleLowerCase().split(/\s+/).filter(w => w !== '')
  return plans.filter(s => {
    if (filter.health !== '' && s.health !== filter.health) return false
    if (filter.quietOnly && !isQuiet(s)) return false
    if (filter.noBuyerOwnerOnly && s.openStepsWithoutBuyerOwner === 0) return false
    const haystack = [s.title, s.buyerOrg, s.sellerOrg, s.owner?.name].filter(v => v != null).join(' ').toLocaleLowerCase()
    return words.every(w => haystack.includes(w))
  })
}

/** The pipeline's totals over the plans shown. */
export function pipelineTotals (plans: Summary[]): { plans: number, offTrack: number, atRisk: number, quiet: number, noBuyerOwner: number, slipsBuyer: number, slipsSeller: number } {
  return {
    plans: plans.length,
    offTrack: plans.filter(s => s.health === 'off_track').length,
    atRisk: plans.filter(s => s.health === 'at_risk').length,
    quiet: plans.filter(isQuiet).length,
    noBuyerOwner: plans.filter(s => s.openStepsWithoutBuyerOwner > 0).length,
    slipsBuyer: plans.reduce((n, s) => n + s.slips.buyer, 0),
    slipsSeller: plans.reduce((n, s) => n + s.slips.seller, 0)
  }
}

export interface Invitation {
  /** The buyer's person: name, and email (may be empty). */
  name: string
  email: string
  role: 'editor' | 'viewer'
  url: string
  planTitle: string
  goLive: string | null
  /** Who sends it (the signed-in member) and their company. */
  from: string
  sellerOrg: string | null
}

/** The label of a buyer's link: their name, and email when known. */
export function inviteLabel (name: string, email: string): string {
  return email.trim() === '' ? name.trim() : `${name.trim()} <${email.trim()}>`
}

/** An invitation email's subject and text: what the plan is, what they can do, the link. */
export function inviteEmail (i: Invitation, locale?: string): { subject: string, body: string } {
  const first = i.name.trim().split(/\s+/)[0] ?? ''
  const can = i.role === 'editor' ? 'see and update' : 'see'
  const goLive = i.goLive === null ? '' : ` towards go-live on ${formatDate(i.goLive, locale)}`
  return {
    subject: `Our shared plan: ${i.planTitle}`,
    body: [
      `Hi ${first === '' ? 'there' : first},`,
      '',
      `Here is the plan we are working through together${goLive}. You can ${can} the steps, dates and owners, and everyone on the plan sees the same page:`,
      '',
      i.url,
      '',
      'The link is personal to you: please do not forward it. No account or password is needed.',
      '',
      'Best,',
      i.from + (i.sellerOrg !== null && i.sellerOrg !== '' ? `, ${i.sellerOrg}` : '')
    ].join('\n')
  }
}

/** A `mailto:` address for the invitation. */
export function mailto (email: string, message: { subject: string, body: string }): string {
  return `mailto:${encodeURIComponent(email.trim())}?subject=${encodeURIComponent(message.subject)}&body=${encodeURIComponent(message.body)}`
}
