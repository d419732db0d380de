// Editable fields bound to the document. Text commits on blur or Enter (one update per edit, not
// per keystroke); choices commit at once. Each field tells the others, through presence, that
// this person is editing it, and shows who else is.

import { useEffect, useRef, useState } from 'preact/hooks'
import type { ComponentChildren } from 'preact'
import { usePage } from './context'
import type { Options } from '../schema'
import { isDate, formatDate } from '../dates'

function EditingBy ({ field }: { field: string }) {
  const { peers } = usePage()
  const here = peers.filter(p => p.editing === field)
  if (here.length === 0) return null
  return (
    <span class='editing-by' style={{ background: here[0].color }} data-testid='editing-by'>
      {here.map(p => p.name).join(', ')} editing
    </span>
  )
}

function useEditing (field: string) {
  const { session } = usePage()
  return {
    onFocus: () => session.setEditing(field),
    onBlur: () => session.setEditing(null)
  }
}

function busyStyle (field: string, peers: ReturnType<typeof usePage>['peers']) {
  const peer = peers.find(p => p.editing === field)
  return peer === undefined ? undefined : { outline: `2px solid ${peer.color}`, outlineOffset: '1px' }
}

export function TextField ({ label, ariaLabel, value, field, onCommit, multiline = false, wrap = false, placeholder, hideLabel = false, class: cls }: {
  label: string
  /** The accessible name when the visible label needs context ("Due date of …"). */
  ariaLabel?: string
  value: string | null
  field: string
  onCommit: (value: string) => void
  multiline?: boolean
  /** One line of text that wraps to show all of it (a long title on a phone); Enter commits. */
  wrap?: boolean
  placeholder?: string
  hideLabel?: boolean
  class?: string
}) {
  const { readOnly, peers } = usePage()
  const [draft, setDraft] = useState(value ?? '')
  const focused = useRef(false)
  const editing = useEditing(field)
  useEffect(() => { if (!focused.current) setDraft(value ?? '') }, [value])
  const commit = () => {
    // A wrapping one-liner keeps one line even when a pasted text had several.
    const text = wrap ? draft.replace(/\s*\n\s*/g, ' ') : draft
    const next = text.trim() === '' ? '' : text
    if (next !== (value ?? '')) onCommit(next)
  }
  const common = {
    'aria-label': ariaLabel ?? label,
    value: draft,
    readOnly,
    placeholder: readOnly ? '' : placeholder,
    style: busyStyle(field, peers),
    onInput: (e: Event) => setDraft((e.currentTarget as HTMLInputElement).value),
    onFocus: () => { focused.current = true; editing.onFocus() },
    onBlur: () => { focused.current = false; editing.onBlur(); commit() }
  }
  return (
    <label class={`field ${cls ?? ''}`}>
      <span class={hideLabel ? 'visually-hidden' : 'field-label'}>{label}</span>
      {wrap
        ? <textarea rows={1} class='wrap' {...common} onKeyDown={(e: KeyboardEvent) => { if (e.key === 'Enter') { e.preventDefault(); (e.currentTarget as HTMLTextAreaElement).blur() } }} />
        : multiline
        ? <textarea rows={2} {...common} />
        : <input type='text' {...common} onKeyDown={(e: KeyboardEvent) => { if (e.key === 'Enter') (e.currentTarget as HTMLInputElement).blur() }} />}
      <EditingBy field={field} />
    </label>
  )
}

export function SelectField ({ label, ariaLabel, value, field, options, onCommit, hideLabel = false, empty = '—' }: {
  label: string
  /** The accessible name when the visible label needs context ("Due date of …"). */
  ariaLabel?: string
  value: string | null
  field: string
  options: Options
  onCommit: (value: string) => void
  hideLabel?: boolean
  empty?: string
}) {
  const { readOnly, peers } = usePage()
  const editing = useEditing(field)
  const known = value === null || options.some(([v]) => v === value)
  return (
    <label class='field'>
      <span class={hideLabel ? 'visually-hidden' : 'field-label'}>{label}</span>
      <select
        aria-label={ariaLabel ?? label}
        value={value ?? ''}
        disabled={readOnly}
        style={busyStyle(field, peers)}
        onFocus={editing.onFocus}
        onBlur={editing.onBlur}
        onChange={e => onCommit((e.currentTarget as HTMLSelectElement).value)}
      >
        <option value=''>{empty}</option>
        {!known && <option value={value ?? ''}>{value} (unknown)</option>}
        {options.map(([v, words]) => <option key={v} value={v}>{words}</option>)}
      </select>
      <EditingBy field={field} />
    </label>
  )
}

/**
 * A date. Changing a date that was set asks for the reason first (the move and its reason are
 * written together); setting a first date does not.
 */
export function DateField ({ label, ariaLabel, value, field, subject, onSet, onMove, hideLabel = false, children }: {
  label: string
  /** The accessible name when the visible label needs context ("Due date of …"). */
  ariaLabel?: string
  value: string | null
  field: string
  subject: string
  onSet: (value: string) => void
  onMove: (value: string, reason: string) => void
  hideLabel?: boolean
  children?: ComponentChildren
}) {
  const { readOnly, peers, askReason } = usePage()
  const editing = useEditing(field)
  const input = useRef<HTMLInputElement>(null)
  const change = async (next: string) => {
    const current = value ?? ''
    if (next === current) return
    if (!isDate(current)) { onSet(next); return }
    const reason = await askReason({ subject, from: current, to: next === '' ? null : next })
    if (reason === null) {
      if (input.current !== null) input.current.value = current
      return
    }
    onMove(next, reason)
  }
  return (
    <label class='field date-field'>
      <span class={hideLabel ? 'visually-hidden' : 'field-label'}>{label}</span>
      <input
        ref={input}
        type='date'
        aria-label={ariaLabel ?? label}
        value={isDate(value) ? value : ''}
        title={value !== null && !isDate(value) ? `Not a date: ${value}` : formatDate(value)}
        readOnly={readOnly}
        disabled={readOnly}
        style={busyStyle(field, peers)}
        onFocus={editing.onFocus}
        onBlur={editing.onBlur}
        onChange={e => { void change((e.currentTarget as HTMLInputElement).value) }}
      />
      {children}
      <EditingBy field={field} />
    </label>
  )
}
