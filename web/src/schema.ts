// The document schema (docs/schema.md, version 2), and the words buyers and sellers see for its
// values.

export const COLLECTIONS = ['objectives', 'stakeholders', 'milestones', 'criteria', 'risks'] as const
export type Collection = typeof COLLECTIONS[number]

/** A root of the plan document: a collection, or `meta` / `success` (fields directly). */
export type Root = Collection | 'meta' | 'success'

/** The schema version this page writes (`meta.schemaVersion`). */
export const SCHEMA_VERSION = 2

/**
 * Fields people write prose into: `Y.Text` from schema v2 on, so that concurrent and offline
 * edits merge character by character (the same list as `mapline_plan::schema::PROSE`).
 * `[root, field]`; a collection's root names its entries' fields. Everything else — dates,
 * enumerations, ids, owners, `order`, the slip reasons — stays a plain value. A v1 document
 * holds strings here: readers accept both.
 */
export const PROSE: ReadonlyArray<readonly [Root, string]> = [
  ['meta', 'title'], ['meta', 'goLiveReason'], ['meta', 'costOfInaction'], ['meta', 'objective'],
  ['objectives', 'text'], ['objectives', 'metric'],
  ['stakeholders', 'title'], ['stakeholders', 'notes'],
  ['milestones', 'title'], ['milestones', 'notes'],
  ['criteria', 'text'], ['criteria', 'quote'],
  ['risks', 'text'], ['risks', 'mitigation'],
  ['success', 'definition'], ['success', 'metrics']
]

/** Whether a field of a root (or of a collection's entries) is prose. */
export function isProse (root: string, field: string): boolean {
  return PROSE.some(([r, f]) => r === root && f === field)
}

/** The prose fields of a root (or of a collection's entries). */
export function proseFields (root: Root): string[] {
  return PROSE.filter(([r]) => r === root).map(([, f]) => f)
}

/** The internal document's root of the seller's judgments of each stakeholder, keyed by the
 * plan's stakeholder ids: `power`, `engagement`, `notes` (Y.Text, private). Never in the plan
 * document from v2 on: a buyer must not read them. */
export const INTERNAL_STAKEHOLDERS = 'stakeholders'
/** The internal document's root map of the seller's forecast: `category`, `amount` (a number),
 * `closeDate` (`YYYY-MM-DD`). */
export const INTERNAL_FORECAST = 'forecast'
/** The internal document's root `Y.Text` of the seller's qualification notes. */
export const INTERNAL_QUALIFICATION = 'qualification'
/** The stakeholder fields that are seller judgments (internal document only). */
export const SELLER_JUDGMENTS = ['power', 'engagement'] as const

/** Options of an enumeration: the stored value and the words shown for it. */
export type Options = ReadonlyArray<readonly [string, string]>

export const FORECAST_CATEGORIES: Options = [['commit', 'Commit'], ['best_case', 'Best case'], ['pipeline', 'Pipeline'], ['omitted', 'Omitted']]
export const SIDES: Options = [['buyer', 'Buyer'], ['seller', 'Seller']]
export const MILESTONE_SIDES: Options = [['buyer', 'Buyer'], ['seller', 'Seller'], ['joint', 'Both']]
export const STATUSES: Options = [
  ['not_started', 'Not started'], ['in_progress', 'In progress'], ['done', 'Done'],
  ['blocked', 'Blocked'], ['cancelled', 'Cancelled']
]
export const ROLES: Options = [
  ['economic_buyer', 'Signs off the budget'], ['champion', 'Champion'],
  ['technical_evaluator', 'Technical evaluator'], ['end_user', 'Day-to-day user'],
  ['procurement', 'Procurement'], ['legal', 'Legal'], ['security', 'Security'],
  ['finance', 'Finance'], ['executive_sponsor', 'Executive sponsor'], ['other', 'Other']
]
export const POWERS: Options = [
  ['decider', 'Makes the decision'], ['influencer', 'Influences it'], ['blocker', 'Can stop it'], ['user', 'Uses the result']
]
export const ENGAGEMENTS: Options = [
  ['engaged', 'Engaged'], ['neutral', 'Neutral'], ['dark', 'Gone quiet'], ['unknown', 'Not met yet']
]
export const PRIORITIES: Options = [['must', 'Must have'], ['should', 'Should have'], ['nice', 'Nice to have']]
export const RISK_KINDS: Options = [
  ['budget', 'Budget'], ['competitive', 'Other options'], ['organizational', 'People & process'],
  ['technical', 'Technical'], ['other', 'Other']
]
export const LEVELS: Options = [['low', 'Low'], ['medium', 'Medium'], ['high', 'High']]
export const RISK_STATUSES: Options = [['open', 'Open'], ['mitigated', 'Handled'], ['closed', 'Closed']]

/** The words for a stored value, or the value itself when it is not one of the options. */
export function wordFor (options: Options, value: string | null): string {
  if (value === null) return ''
  return options.find(([v]) => v === value)?.[1] ?? value
}

/** Workstreams as the templates write them, in the order a deal usually runs. A plan may also
 * use its own names (free text), shown as written after these. */
export const WORKSTREAMS: Options = [
  ['discovery', 'Discovery'], ['technical_validation', 'Technical validation'],
  ['security_compliance', 'Security & compliance'], ['business_case', 'Business case'],
  ['legal_procurement', 'Legal & procurement'], ['implementation_prep', 'Implementation prep'],
  ['implementation', 'Implementation']
]
