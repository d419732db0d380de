// Editable fields bound to the document. Text commits on blur or Enter (one update per edit, not
// per keystroke); choices commit at once. Each field tells the others, through presence, that
// this person is editing it, and shows who else is.

import { useEffect, useRef, useState } from 'preact/hooks'
import type { ComponentChildren } from 'preact'
import { usePage } from './context'
import type { Options } from '../schema'
import { isDate, formatDate, datePattern, parseDate } from '../dates'
import type { DateMove } from './context'

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
 * A date, typed and shown in the browser's locale format (`04/15/2027` in en-US, `15/04/2027`
 * in en-GB; ISO is accepted too), with the browser's date picker beside it. Changing a date
 * that was set asks for the reason first (the move and its reason are written together);
 * setting a first date does not. Typing commits on Enter or on leaving the field, never on a
 * keystroke; a date chosen in the picker commits at once. `warn` says what a move to a date
 * would put out of order; `alsoMove` is another date the move dialog offers to move along.
 */
export function DateField ({ label, ariaLabel, value, field, subject, onSet, onMove, warn, alsoMove, hideLabel = false, children }: {
  label: string
  /** The accessible name when the visible label needs context ("Due date of …"). */
  ariaLabel?: string
  value: string | null | undefined
  field: string
  subject: string
  onSet: (value: string) => void
  onMove: (value: string, reason: string) => void
  warn?: (to: string | null) => string[]
  alsoMove?: DateMove['alsoMove']
  hideLabel?: boolean
  children?: ComponentChildren
}) {
  const { readOnly, peers, askReason } = usePage()
  const editing = useEditing(field)
  const input = useRef<HTMLInputElement>(null)
  const picker = useRef<HTMLInputElement>(null)
  const focused = useRef(false)
  const [problem, setProblem] = useState<string | null>(null)
  const name = ariaLabel ?? label
  const current = isDate(value) ? value : ''
  const shown = formatDate(current)
  // Uncontrolled: a re-render (someone else's edit, presence) must not replace what is being typed.
  useEffect(() => {
    if (input.current !== null && !focused.current) input.current.value = shown
    if (picker.current !== null) picker.current.value = current
  }, [shown])
  const revert = () => {
    if (input.current !== null) input.current.value = shown
    if (picker.current !== null) picker.current.value = current
  }
  // While the reason dialog is open for a move: the dialog taking focus blurs this field, and
  // that blur must not ask a second time.
  const asking = useRef(false)
  const change = async (next: string) => {
    if (asking.current) return
    if (next === current) { revert(); return }
    if (input.current !== null) input.current.value = formatDate(next)
    if (!isDate(current)) { onSet(next); return }
    const to = next === '' ? null : next
    asking.current = true
    let reason: string | null
    try {
      reason = await askReason({ subject, from: current, to, warnings: warn?.(to) ?? [], alsoMove: to === null ? undefined : alsoMove })
    } finally {
      asking.current = false
    }
    if (reason === null) { revert(); return }
    onMove(next, reason)
  }
  // Enter or leaving the field: what was typed is the new date, if it is one.
  const settle = () => {
    const element = input.current
    if (element === null || readOnly || asking.current) return
    const text = element.value.trim()
    if (text === shown) { setProblem(null); return }
    const next = text === '' ? '' : parseDate(text)
    if (next === null) {
      setProblem(`“${text}” is not a date: type it as ${datePattern()}.`)
      revert()
      return
    }
    setProblem(null)
    void change(next)
  }
  return (
    <div class='field date-field'>
      <label for={`date-${field}`} class={hideLabel ? 'visually-hidden' : 'field-label'}>{label}</label>
      <span class='date-input'>
        <input
          ref={input}
          id={`date-${field}`}
          type='text'
          inputMode='numeric'
          autoComplete='off'
          aria-label={name}
          aria-invalid={problem !== null}
          aria-describedby={problem !== null ? `date-problem-${field}` : undefined}
          data-date={current}
          defaultValue={shown}
          placeholder={readOnly ? '' : datePattern()}
          title={value == null || value === '' ? 'No date yet' : isDate(value) ? shown : `Not a date: ${value}`}
          readOnly={readOnly}
          style={busyStyle(field, peers)}
          onFocus={() => { focused.current = true; editing.onFocus() }}
          onBlur={() => { focused.current = false; editing.onBlur(); settle() }}
          onKeyDown={(e: KeyboardEvent) => { if (e.key === 'Enter') { e.preventDefault(); settle() } }}
        />
        {!readOnly && (
          <button type='button' class='icon pick-date' aria-label={`Pick a date on a calendar for ${subject}`} onClick={() => { try { picker.current?.showPicker() } catch { picker.current?.focus() } }}>
            <svg width='16' height='16' viewBox='0 0 16 16' aria-hidden='true' focusable='false'>
              <rect x='1.5' y='3' width='13' height='11.5' rx='1.5' fill='none' stroke='currentColor' />
              <path d='M1.5 6.5h13M5 1.5v3M11 1.5v3' fill='none' stroke='currentColor' />
            </svg>
          </button>
        )}
        <input
          ref={picker}
          type='date'
          class='date-picker'
          tabIndex={-1}
          aria-hidden='true'
          aria-label={`Calendar for ${subject}`}
          data-testid='date-picker'
          defaultValue={current}
          disabled={readOnly}
          onChange={e => { const next = (e.currentTarget as HTMLInputElement).value; if (next !== '') void change(next) }}
        />
      </span>
      {problem !== null && <span class='hint bad' id={`date-problem-${field}`} role='alert'>{problem}</span>}
      {children}
      <EditingBy field={field} />
    </div>
  )
}
