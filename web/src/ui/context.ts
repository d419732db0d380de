// What every part of the page needs: the document, the session, who this is, what others edit.

import { createContext } from 'preact'
import { useContext } from 'preact/hooks'
import type * as Y from 'yjs'
import type { PlanSession, Peer } from '../session'
import type { PlanView } from '../plan-view'
import type { Slip } from '../api'
import type { InternalSession, Judgment } from '../internal'
import type { Conflict } from '../conflicts'

export interface DateMove {
  /** What is moving, in words ("Security review signed off", "Go-live"). */
  subject: string
  from: string | null
  to: string | null
  /** What the move puts out of order ("Security review waits for this step and is due …"). */
  warnings?: string[]
  /** The reason the dialog starts with (taking the other value of a conflict). */
  reason?: string
  /** Another date the dialog offers to move along (the go-live step when go-live moves). */
  alsoMove?: { subject: string, from: string | null, words: string, checked: boolean, move: (to: string, reason: string) => void }
}

/** A date moved on this device that the server's date-change record does not show yet. */
export interface PendingMove {
  subject: string
  from: string | null
  to: string | null
  reason: string
  at: string
}

export interface PageContext {
  doc: Y.Doc
  session: PlanSession
  plan: PlanView
  readOnly: boolean
  peers: Peer[]
  slips: Slip[]
  today: string
  /** The seller's internal document (seller links only; `null` for a buyer, who never opens it). */
  internal: InternalSession | null
  /** The seller's judgments of each stakeholder, by id (empty for a buyer). */
  judgments: Map<string, Judgment>
  /** Lost writes on record (`/history`) whose kept value is still the field's value and that this
   * device has not dismissed. */
  conflicts: Conflict[]
  /** Hides a conflict on this device. */
  dismissConflict: (conflict: Conflict) => void
  /** Asks for the reason of a moved date; resolves null when the person cancels. */
  askReason: (move: DateMove) => Promise<string | null>
}

export const Page = createContext<PageContext | null>(null)

export function usePage (): PageContext {
  const page = useContext(Page)
  if (page === null) throw new Error('usePage outside the plan page')
  return page
}
