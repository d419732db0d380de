// What the history on record asks of the page: conflicts (a lost write, with one action to take
// the other value) and entries deleted recently (with Restore).

import { useState } from 'preact/hooks'
import { usePage } from './context'
import { Section } from './sections'
import * as edit from '../edits'
import { conflictWords, takesBack, whoName, type Conflict } from '../conflicts'
import { COLLECTIONS, type Collection } from '../schema'
import { isDate, timeAgo } from '../dates'
import { ApiFailure, type Api, type Deleted } from '../api'

/** Reason prefilled in the move dialog when a date takes the other value of a conflict. */
export const CONFLICT_REASON = 'Took the other value of a conflict'

/** The conflicts shown on an entry (a step) or on `meta` / `success` fields (`entityId` null). */
export function ConflictBanners ({ entity, entityId, fields, subject }: { entity: string, entityId: string | null, fields?: string[], subject: string }) {
  const { conflicts, readOnly, doc, askReason, dismissConflict } = usePage()
  const mine = conflicts.filter(c => c.entity === entity && c.entityId === entityId && (fields === undefined || fields.includes(c.field)))
  if (mine.length === 0) return null
  const useLost = async (c: Conflict) => {
    const value = c.lost.value
    if (c.field === 'due' || (c.entity === 'meta' && c.field === 'goLive')) {
      const from = typeof c.kept.value === 'string' ? c.kept.value : null
      const to = typeof value === 'string' && isDate(value) ? value : null
      const reason = await askReason({ subject: c.field === 'goLive' ? 'Go-live' : subject, from, to, reason: CONFLICT_REASON })
      if (reason === null) return
      if (to === null) {
        // The lost write cleared the date.
        if (c.entityId === null) edit.setRootField(doc, 'meta', c.field, '')
        else edit.setEntryField(doc, c.entity as Collection, c.entityId, c.field, '')
      } else if (c.entityId === null) edit.moveGoLive(doc, to, reason)
      else edit.moveDue(doc, c.entityId, to, reason)
      return
    }
    const text = value === null || value === undefined ? '' : typeof value === 'string' ? value : JSON.stringify(value)
    if (c.entityId === null && (c.entity === 'meta' || c.entity === 'success')) edit.setRootField(doc, c.entity, c.field, text)
    else if (c.entityId !== null && (COLLECTIONS as readonly string[]).includes(c.entity)) edit.setEntryField(doc, c.entity as Collection, c.entityId, c.field, text)
  }
  return (
    <>
      {mine.map(c => (
        <div class='banner warn conflict' role='note' key={c.key} data-testid='conflict' data-field={c.field}>
          <span>{conflictWords(c)}</span>{' '}
          {!readOnly && takesBack(c) && <button type='button' onClick={() => { void useLost(c) }}>Use this value</button>}{' '}
          <button type='button' class='link' onClick={() => dismissConflict(c)}>Dismiss</button>
        </div>
      ))}
    </>
  )
}

const NOUNS: Record<string, string> = { milestones: 'Step', stakeholders: 'Person', criteria: 'Criterion', risks: 'Risk', objectives: 'Metric' }

/** The words naming a deleted entry: its title, name or text. */
export function deletedName (d: Deleted): string {
  for (const field of ['title', 'name', 'text']) {
    const value = d.entry[field]
    if (typeof value === 'string' && value.trim() !== '') return value
  }
  return 'Untitled'
}

/** Entries deleted and not back (`null`: not known, e.g. offline), with Restore for editors. */
export function DeletedSection ({ deleted, api, onChanged }: { deleted: Deleted[] | null, api: Api, onChanged: () => void }) {
  const { readOnly } = usePage()
  const [message, setMessage] = useState<string | null>(null)
  const [busy, setBusy] = useState<string | null>(null)
  const restore = async (d: Deleted) => {
    setBusy(`${d.collection}/${d.id}`)
    try {
      await api.restore(d.collection, d.id)
      setMessage(`“${deletedName(d)}” is back.`)
    } catch (error) {
      if (error instanceof ApiFailure && error.code === 'not_deleted') setMessage(`“${deletedName(d)}” is already back.`)
      else if (error instanceof ApiFailure && error.status === 403) setMessage('This link cannot restore entries.')
      else setMessage('Restoring needs a connection.')
    } finally {
      setBusy(null)
      onChanged()
    }
  }
  return (
    <Section id='deleted' title='Recently deleted' intro='Steps, people, criteria, risks and metrics someone removed, and who did. Anyone who may edit can bring one back.'>
      {deleted === null && <p class='muted'>The list of deleted entries needs a connection.</p>}
      {deleted !== null && deleted.length === 0 && <p class='muted'>Nothing has been deleted.</p>}
      {deleted !== null && deleted.length > 0 && (
        <ul class='deleted-list' aria-label='Recently deleted'>
          {[...deleted].sort((a, b) => b.seq - a.seq).map(d => (
            <li key={`${d.collection}/${d.id}/${d.seq}`} data-testid='deleted'>
              <span><span class='badge'>{NOUNS[d.collection] ?? d.collection}</span> <strong>{deletedName(d)}</strong>{' '}
                <span class='muted'>— deleted by {whoName(d.who)}, <time dateTime={d.at} title={d.at}>{timeAgo(d.at)}</time></span>
              </span>
              {!readOnly && (
                <button type='button' disabled={busy === `${d.collection}/${d.id}`} onClick={() => { void restore(d) }} aria-label={`Restore ${deletedName(d)}`}>Restore</button>
              )}
            </li>
          ))}
        </ul>
      )}
      {message !== null && <p class='muted' role='status'>{message}</p>}
    </Section>
  )
}
