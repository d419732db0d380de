// Reads the plan's Yjs document into plain values for rendering: every collection as a list in
// display order (by `order` as text, then id; entries without `order` last, as the server's
// projection orders them). Values of the wrong type read as `null`, never as a crash. Prose is a
// `Y.Text` (schema v2) or a string (v1): both read as the string (an empty text as `null`, like a
// cleared v1 field). A stakeholder's `power` and `engagement` are never read from the plan
// document: they are the seller's judgments and live in the internal document (a v1 document
// still holds them, and a buyer must not see them).

import * as Y from 'yjs'
import { type Collection, COLLECTIONS, SELLER_JUDGMENTS } from './schema'
import type { Slip } from './api'

export interface Entry {
  id: string
  order: string | null
  /** Text fields (a non-string value reads as null). */
  text: Record<string, string | null>
}

export interface Milestone extends Entry {
  dependsOn: string[]
}

export interface PlanView {
  meta: Record<string, string | null>
  success: Record<string, string | null>
  objectives: Entry[]
  stakeholders: Entry[]
  milestones: Milestone[]
  criteria: Entry[]
  risks: Entry[]
}

/** A value as text: a string, or a `Y.Text`'s string (an empty one as `null`). */
export function textOf (value: unknown): string | null {
  if (value instanceof Y.Text) {
    const text = value.toString()
    return text === '' ? null : text
  }
  return typeof value === 'string' ? value : null
}

function fieldsOf (map: Y.Map<unknown>, skip: readonly string[] = []): Record<string, string | null> {
  const out: Record<string, string | null> = {}
  for (const [key, value] of map.entries()) if (!skip.includes(key)) out[key] = textOf(value)
  return out
}

export function compareEntries (a: Entry, b: Entry): number {
  if (a.order !== null && b.order !== null && a.order !== b.order) return a.order < b.order ? -1 : 1
  if ((a.order === null) !== (b.order === null)) return a.order === null ? 1 : -1
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

function entries (doc: Y.Doc, name: Collection): Milestone[] {
  const root = doc.getMap<unknown>(name)
  const list: Milestone[] = []
  for (const [id, value] of root.entries()) {
    if (!(value instanceof Y.Map)) continue
    const text = fieldsOf(value, name === 'stakeholders' ? SELLER_JUDGMENTS : [])
    const deps = value.get('dependsOn')
    const dependsOn = deps instanceof Y.Array
      ? deps.toArray().filter((d): d is string => typeof d === 'string')
      : []
    list.push({ id, order: text.order ?? null, text, dependsOn })
  }
  return list.sort(compareEntries)
}

export function readPlan (doc: Y.Doc): PlanView {
  const [objectives, stakeholders, milestones, criteria, risks] = COLLECTIONS.map(name => entries(doc, name))
  return {
    meta: fieldsOf(doc.getMap('meta')),
    success: fieldsOf(doc.getMap('success')),
    objectives,
    stakeholders,
    milestones: milestones.map(m => ({ ...m, dependsOn: m.dependsOn.filter(d => milestones.some(x => x.id === d)) })),
    criteria,
    risks
  }
}

/** The name to show for a milestone's owner: a stakeholder's name for an id, else the text. */
export function ownerName (plan: PlanView, owner: string | null): string {
  if (owner === null) return ''
  return plan.stakeholders.find(s => s.id === owner)?.text.name ?? owner
}

/** Milestones grouped by workstream, groups in the usual deal order (`order`: the known
 * workstream values), then the others by first appearance. */
export function byWorkstream (milestones: Milestone[], order: readonly string[]): Array<[string, Milestone[]]> {
  const groups = new Map<string, Milestone[]>()
  for (const m of milestones) {
    const name = m.text.workstream?.trim() || 'other'
    const group = groups.get(name) ?? []
    group.push(m)
    groups.set(name, group)
  }
  const rank = (name: string): number => {
    const i = order.indexOf(name)
    return i < 0 ? order.length : i
  }
  return [...groups.entries()].sort((a, b) => rank(a[0]) - rank(b[0]))
}

/** How often and how far (net days) a milestone's date moved, from the slip history. */
export function slipSummary (slips: Slip[], milestoneId: string): { count: number, days: number } {
  const mine = slips.filter(s => s.subject === 'milestone' && s.milestoneId === milestoneId)
  return { count: mine.length, days: mine.reduce((sum, s) => sum + (s.days ?? 0), 0) }
}

const FIELD_WORDS: Record<string, string> = {
  title: 'title', goLive: 'go-live date', goLiveReason: 'why this date', costOfInaction: 'cost of doing nothing',
  objective: 'objective', definition: 'success definition', metrics: 'how we will know', due: 'due date',
  status: 'status', side: 'side', owner: 'owner', notes: 'notes', name: 'name', role: 'role', text: 'text', quote: 'quote', source: 'where it was said', priority: 'priority',
  kind: 'kind', likelihood: 'likelihood', impact: 'impact', mitigation: 'what we are doing about it',
  metric: 'metric', baseline: 'today’s value', target: 'target', workstream: 'workstream'
}

/**
 * Words for what someone is editing, from a presence field key (`meta.goLive`,
 * `milestones.{id}.due`): "due date of “Order form signed”". Unknown keys read as themselves.
 */
export function describeField (plan: PlanView, key: string): string {
  const parts = key.split('.')
  if (parts.length === 2 && (parts[0] === 'meta' || parts[0] === 'success')) {
    return parts[0] === 'meta' && parts[1] === 'title' ? 'the plan title' : FIELD_WORDS[parts[1]] ?? parts[1]
  }
  if (parts.length === 3) {
    const [collection, id, field] = parts
    const list = (plan as unknown as Record<string, Entry[] | undefined>)[collection]
    const entry = Array.isArray(list) ? list.find(e => e.id === id) : undefined
    const name = entry?.text.title ?? entry?.text.name ?? entry?.text.text
    const words = FIELD_WORDS[field] ?? field
    return name == null ? words : `${words} of “${name}”`
  }
  return key
}
