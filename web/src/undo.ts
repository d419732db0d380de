// Undo and redo of this person's own edits: one `Y.UndoManager` over the plan's roots that tracks
// only the page's own origin (`LOCAL`), so undo never takes back what someone else wrote, and
// goes through Yjs (it merges with the others' edits like any edit). Typing is grouped into
// steps of ~500 ms; every discrete edit (a choice, a move) is a step of its own (edits.ts).

import * as Y from 'yjs'
import { COLLECTIONS } from './schema'
import { LOCAL, registerUndo } from './edits'

export function createUndo (doc: Y.Doc): Y.UndoManager {
  const roots = ['meta', ...COLLECTIONS, 'success'].map(name => doc.getMap<unknown>(name))
  const undo = new Y.UndoManager(roots, { trackedOrigins: new Set([LOCAL]), captureTimeout: 500 })
  registerUndo(doc, undo)
  return undo
}

/** What a key press asks of undo: Ctrl/Cmd+Z undo; Ctrl/Cmd+Shift+Z and Ctrl+Y redo. */
export function undoShortcut (e: { key: string, ctrlKey: boolean, metaKey: boolean, shiftKey: boolean, altKey: boolean }): 'undo' | 'redo' | null {
  if (!(e.ctrlKey || e.metaKey) || e.altKey) return null
  const key = e.key.toLowerCase()
  if (key === 'z') return e.shiftKey ? 'redo' : 'undo'
  if (key === 'y' && e.ctrlKey && !e.shiftKey) return 'redo'
  return null
}

/**
 * Whether the page's undo should answer a shortcut pressed in `target`: everywhere except in a
 * text field that is not prose (a date or a name being typed: the browser undoes the typing
 * there, which is not in the document yet) and inside a dialog.
 */
export function pageHandlesUndo (target: EventTarget | null): boolean {
  if (!(target instanceof Element)) return true
  if (target.closest('dialog') !== null) return false
  const textual = target instanceof HTMLTextAreaElement || (target instanceof HTMLInputElement && !['checkbox', 'radio', 'button', 'submit'].includes(target.type))
  return !textual || target.hasAttribute('data-prose')
}
