// The timeline's geometry: milestones on a date axis that ends at go-live, one row per
// workstream, dependencies as links, today and go-live marked. Pure (no DOM), so it is tested.
//
// A milestone's state is computed here from the document, so the timeline is right offline too:
// the same rules as the server's health (docs/api.md), on this device's date.

import { dayNumber, isoDate, formatShortDate } from './dates'
import { byWorkstream, type Milestone, type PlanView } from './plan-view'

export type MilestoneState = 'done' | 'cancelled' | 'overdue' | 'at_risk' | 'open' | 'undated'

/** Due within this many days (today through today + 7) counts as at risk, as on the server. */
export const DUE_SOON_DAYS = 7

function isOpen (m: Milestone): boolean {
  return m.text.status !== 'done' && m.text.status !== 'cancelled'
}

/** Each milestone's state on `today`. */
export function milestoneStates (plan: PlanView, today: string): Map<string, MilestoneState> {
  const now = dayNumber(today) ?? 0
  const byId = new Map(plan.milestones.map(m => [m.id, m]))
  const states = new Map<string, MilestoneState>()
  for (const m of plan.milestones) {
    const due = dayNumber(m.text.due)
    if (m.text.status === 'done') states.set(m.id, 'done')
    else if (m.text.status === 'cancelled') states.set(m.id, 'cancelled')
    else if (due === null) states.set(m.id, 'undated')
    else if (due < now) states.set(m.id, 'overdue')
    else {
      const impossible = m.dependsOn.some(d => {
        const dep = byId.get(d)
        const depDue = dep === undefined ? null : dayNumber(dep.text.due)
        return dep !== undefined && isOpen(dep) && depDue !== null && depDue > due
      })
      const soon = due - now <= DUE_SOON_DAYS
      states.set(m.id, impossible || soon || m.text.status === 'blocked' ? 'at_risk' : 'open')
    }
  }
  return states
}

export interface TimelinePoint { id: string, title: string, due: string, x: number, y: number, state: MilestoneState }
export interface TimelineLink { from: string, to: string, x1: number, y1: number, x2: number, y2: number, backwards: boolean }
export interface TimelineRow { workstream: string, y: number }
export interface TimelineTick { x: number, label: string }
export interface TimelineLayout {
  width: number
  height: number
  rows: TimelineRow[]
  points: TimelinePoint[]
  links: TimelineLink[]
  ticks: TimelineTick[]
  today: number | null
  goLive: number | null
}

export const ROW_HEIGHT = 44
export const AXIS_HEIGHT = 28
export const LABEL_WIDTH = 0

/** Lays out the timeline `width` pixels wide. Milestones without a valid date are left out. */
export function layoutTimeline (plan: PlanView, today: string, width: number, workstreamOrder: readonly string[]): TimelineLayout {
  const states = milestoneStates(plan, today)
  const goLive = dayNumber(plan.meta.goLive)
  const now = dayNumber(today)
  const dated = plan.milestones.filter(m => dayNumber(m.text.due) !== null)
  const days = [...dated.map(m => dayNumber(m.text.due) as number), ...(goLive === null ? [] : [goLive]), ...(now === null ? [] : [now])]
  const first = days.length > 0 ? Math.min(...days) : (now ?? 0)
  const last = days.length > 0 ? Math.max(...days) : first + 30
  const span = Math.max(last - first, 14)
  const pad = Math.ceil(span * 0.04) + 1
  const start = first - pad
  const end = last + pad
  const inner = Math.max(width - LABEL_WIDTH, 100)
  const xOf = (day: number): number => LABEL_WIDTH + ((day - start) / (end - start)) * inner

  const groups = byWorkstream(dated, workstreamOrder)
  const rows: TimelineRow[] = groups.map(([workstream], i) => ({ workstream, y: AXIS_HEIGHT + i * ROW_HEIGHT + ROW_HEIGHT / 2 }))
  const points: TimelinePoint[] = []
  groups.forEach(([, milestones], i) => {
    for (const m of milestones) {
      const due = dayNumber(m.text.due) as number
      points.push({ id: m.id, title: m.text.title ?? '', due: m.text.due ?? '', x: xOf(due), y: rows[i].y, state: states.get(m.id) ?? 'open' })
    }
  })
  const at = new Map(points.map(p => [p.id, p]))
  const links: TimelineLink[] = []
  for (const m of dated) {
    const to = at.get(m.id)
    if (to === undefined) continue
    for (const d of m.dependsOn) {
      const from = at.get(d)
      if (from === undefined) continue
      links.push({ from: d, to: m.id, x1: from.x, y1: from.y, x2: to.x, y2: to.y, backwards: from.x > to.x })
    }
  }
  return {
    width,
    height: AXIS_HEIGHT + Math.max(rows.length, 1) * ROW_HEIGHT,
    rows,
    points,
    links,
    ticks: monthTicks(start, end).map(day => ({ x: xOf(day), label: formatShortDate(isoDate(day)) })),
    today: now === null ? null : xOf(now),
    goLive: goLive === null ? null : xOf(goLive)
  }
}

/** The first day of each month in [start, end], thinned to at most 8 ticks. */
export function monthTicks (start: number, end: number): number[] {
  const ticks: number[] = []
  const d = new Date(start * 86_400_000)
  let month = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1))
  while (month.getTime() / 86_400_000 <= end) {
    ticks.push(Math.round(month.getTime() / 86_400_000))
    month = new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + 1, 1))
  }
  const step = Math.ceil(ticks.length / 8)
  return ticks.filter((_, i) => i % step === 0)
}
