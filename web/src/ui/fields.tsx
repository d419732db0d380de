// Editable fields bound to the document. Prose (docs/schema.md) is bound to its `Y.Text` and
// written as it is typed, so concurrent edits merge; other text (names, sources, numbers)
// commits on blur or Enter (one update per edit, not per keystroke); choices commit at once;
// dates commit when complete. Each field tells the others, through presence, that this person
// is editing it, and shows who else is.

import * as Y from 'yjs'
import { useEffect, useRef, useState } from 'preact/hooks'
import type { ComponentChildren } from 'preact'
import { usePage } from './context'
import type { Options } from '../schema'
import { isDate, formatDate, datePattern, parseDate } from '../dates'
import type { DateMove } from './context'
import { writeProse, type Locate } from '../edits'
import { applyDelta, mapPosition, minimalDiff, spliceDelta, type TextDelta } from '../text-binding'

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

/** Presence keys of the seller's internal document: never announced (presence is shared with
 * the buyer, and even that a judgment is being edited is the seller's own business). */
const PRIVATE_FIELD = /^internal\./

function useEditing (field: string) {
  const { session } = usePage()
  return {
    onFocus: () => session.setEditing(PRIVATE_FIELD.test(field) ? null : field),
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
  return <TextControl label={label} hideLabel={hideLabel} cls={cls} wrap={wrap} multiline={multiline} field={field} common={common} />
}

/** The text a prose value shows: a `Y.Text`'s string, a v1 string, or nothing. */
function proseText (value: unknown): string {
  return value instanceof Y.Text ? value.toString() : typeof value === 'string' ? value : ''
}

/**
 * Shows `next` in `element` (if it shows something else), keeping the caret and selection where
 * they were relative to the text: mapped through `delta` when it is the edit from what the field
 * shows to `next` (a Y.Text event), else through the minimal diff.
 */
function showText (element: HTMLInputElement | HTMLTextAreaElement, next: string, delta: TextDelta | null): void {
  const before = element.value
  if (before === next) return
  const fits = delta !== null && applyDelta(before, delta) === next
  const splice = minimalDiff(before, next)
  const through = fits ? delta : splice === null ? [] : spliceDelta(splice)
  const focused = document.activeElement === element
  const start = element.selectionStart ?? 0
  const end = element.selectionEnd ?? start
  const direction = element.selectionDirection ?? 'none'
  element.value = next
  if (focused) element.setSelectionRange(mapPosition(start, through), mapPosition(end, through), direction)
}

/**
 * A prose field (docs/schema.md) bound to its `Y.Text`: every keystroke is written as it is typed
 * (the minimal edit, one transaction with origin `LOCAL`), so two people typing in the same note
 * — one of them offline — both keep what they typed; someone else's edit shows at once with the
 * caret kept where it was in the text. A field holding a v1 string shows it, and its first edit
 * replaces it with a `Y.Text`. `field` is the presence key (`milestones.{id}.notes`).
 */
export function ProseField ({ label, ariaLabel, doc, locate, name, field, multiline = false, wrap = false, placeholder, hideLabel = false, readOnly: forceReadOnly = false, class: cls }: {
  label: string
  ariaLabel?: string
  /** The document holding the field (the plan, or the seller's internal document). */
  doc: Y.Doc
  locate: Locate
  /** The field's name in its map (`notes`). */
  name: string
  field: string
  multiline?: boolean
  /** One line of text that wraps to show all of it (a long title on a phone); Enter leaves. */
  wrap?: boolean
  placeholder?: string
  hideLabel?: boolean
  readOnly?: boolean
  class?: string
}) {
  const page = usePage()
  const readOnly = page.readOnly || forceReadOnly
  const element = useRef<HTMLInputElement & HTMLTextAreaElement>(null)
  const editing = useEditing(field)
  const value = locate(false)?.get(name)
  const text = value instanceof Y.Text ? value : null
  const plain = text === null ? proseText(value) : null
  // Uncontrolled: what the field shows is set here, never by a re-render, so that a re-render
  // never moves the caret. A Y.Text is followed edit by edit; a plain value when it changes.
  useEffect(() => {
    const input = element.current
    if (input === null) return
    showText(input, text === null ? plain ?? '' : text.toString(), null)
    if (text === null) return
    const follow = (event: Y.YTextEvent) => showText(input, text.toString(), event.delta as TextDelta)
    text.observe(follow)
    return () => text.unobserve(follow)
  }, [text, plain])
  const write = (e: Event) => {
    const input = e.currentTarget as HTMLInputElement | HTMLTextAreaElement
    if (wrap && input.value.includes('\n')) {
      // A wrapping one-liner keeps one line even when a pasted text had several.
      const [start, end] = [input.selectionStart, input.selectionEnd]
      input.value = input.value.replace(/\n/g, ' ')
      if (start !== null && end !== null) input.setSelectionRange(start, end)
    }
    writeProse(doc, locate, name, input.value)
  }
  const common = {
    ref: element,
    'aria-label': ariaLabel ?? label,
    'data-prose': field,
    readOnly,
    placeholder: readOnly ? '' : placeholder,
    style: busyStyle(field, page.peers),
    onInput: write,
    onFocus: editing.onFocus,
    onBlur: editing.onBlur
  }
  return <TextControl label={label} hideLabel={hideLabel} cls={cls} wrap={wrap} multiline={multiline} field={field} common={common} />
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

/** A labelled text control — one line, a wrapping line (Enter leaves it) or several lines —
 * with who else is editing it; `common` holds its value, handlers and ARIA. */
function TextControl ({ label, hideLabel, cls, wrap, multiline, field, common }: {
  label: string
  hideLabel?: boolean
  cls?: string
  wrap?: boolean
  multiline?: boolean
  field: string
  common: Record<string, unknown>
}) {
  return (
    <label class={`field ${cls ?? ''}`}>
      <span class={hideLabel === true ? 'visually-hidden' : 'field-label'}>{label}</span>
      {wrap === true
        ? <textarea rows={1} class='wrap' {...common} onKeyDown={(e: KeyboardEvent) => { if (e.key === 'Enter') { e.preventDefault(); (e.currentTarget as HTMLTextAreaElement).blur() } }} />
        : multiline === true
          ? <textarea rows={2} {...common} />
          : <input type='text' {...common} onKeyDown={(e: KeyboardEvent) => { if (e.key === 'Enter') (e.currentTarget as HTMLInputElement).blur() }} />}
      <EditingBy field={field} />
    </label>
  )
}
