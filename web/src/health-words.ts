// Health in words for the read view: the verdict and why, what is late or stuck, whose turn it
// is — sentences, not a dashboard.

import type { Health } from './api'
import { formatDate } from './dates'

const VERDICT_WORDS: Record<Health['verdict'], string> = { on_track: 'On track', at_risk: 'At risk', off_track: 'Off track' }

export function count (n: number, one: string, many: string = `${one}s`): string {
  return `${n === 0 ? 'no' : n} ${n === 1 ? one : many}`
}

/** Health as sentences: the verdict and why, what is late or stuck, whose turn it is. */
export function healthSentences (health: Health): string[] {
  const out: string[] = []
  const reasons = health.reasons.length > 0 ? `: ${health.reasons.join('; ')}` : ''
  out.push(`${VERDICT_WORDS[health.verdict]}${reasons}.`)
  out.push(`${count(health.overdue.length, 'step')} overdue, ${count(health.dueSoon.length, 'step')} due this week, ${count(health.blocked.length, 'step')} blocked.`.replace(/^./, c => c.toUpperCase()))
  const slack = health.criticalPath?.slackDays
  if (slack != null) {
    out.push(slack < 0 ? `The longest chain of steps ends ${count(-slack, 'day')} after go-live.` : `The longest chain of steps leaves ${count(slack, 'day')} to spare before go-live.`)
  }
  for (const [side, words] of [['buyer', 'the buyer'], ['seller', 'the seller']] as const) {
    const m = health.nextUp[side]
    if (m !== null) out.push(`Next for ${words}: ${m.title ?? m.id}${m.due !== null ? `, due ${formatDate(m.due)}` : ''}${m.owner !== null ? ` (${m.owner})` : ''}.`)
  }
  return out
}
