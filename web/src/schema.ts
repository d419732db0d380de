// The document schema (DESIGN.md §3), and the words buyers and sellers see for its values.

export const COLLECTIONS = ['objectives', 'stakeholders', 'milestones', 'criteria', 'risks'] as const
export type Collection = typeof COLLECTIONS[number]

/** Options of an enumeration: the stored value and the words shown for it. */
export type Options = ReadonlyArray<readonly [string, string]>

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
