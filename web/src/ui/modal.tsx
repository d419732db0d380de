// A modal dialog: opened with `showModal()` (in view, the rest of the page inert), focus moved
// into it and kept there (Tab and Shift+Tab cycle inside), Escape closes it, and on close focus
// goes back to the control that opened it. Every dialog of the page is one of these.

import type { ComponentChildren } from 'preact'
import { useEffect, useRef } from 'preact/hooks'

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])'

/** The elements Tab reaches inside `dialog`, in order, excluding those of a nested dialog. */
function focusables (dialog: HTMLDialogElement): HTMLElement[] {
  return [...dialog.querySelectorAll<HTMLElement>(FOCUSABLE)]
    .filter(e => e.closest('dialog') === dialog && e.getClientRects().length > 0)
}

export function Modal ({ class: cls, role, labelledBy, describedBy, onClose, children }: {
  class?: string
  /** `alertdialog` for a confirmation. */
  role?: 'dialog' | 'alertdialog'
  labelledBy: string
  describedBy?: string
  /** Called once when the person closes it (Escape); the owner then stops rendering it. */
  onClose: () => void
  children: ComponentChildren
}) {
  const ref = useRef<HTMLDialogElement>(null)
  const done = useRef(false)
  useEffect(() => {
    const dialog = ref.current
    if (dialog === null) return
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null
    if (!dialog.open) dialog.showModal()
    return () => {
      done.current = true
      if (dialog.open) dialog.close()
      // Back to the opener; if it went (e.g. a revoked link's button), to the dialog underneath.
      if (opener !== null && opener.isConnected) opener.focus()
      else {
        const under = [...document.querySelectorAll<HTMLDialogElement>('dialog[open]')].at(-1)
        if (under !== undefined) focusables(under)[0]?.focus()
      }
    }
  }, [])
  // Escape closes the dialog natively; `close` tells the owner (once, and not after unmount).
  const closed = () => { if (!done.current) { done.current = true; onClose() } }
  const trap = (e: KeyboardEvent) => {
    const dialog = ref.current
    if (e.key !== 'Tab' || dialog === null) return
    const items = focusables(dialog)
    if (items.length === 0) { e.preventDefault(); return }
    const first = items[0]
    const last = items[items.length - 1]
    const active = document.activeElement
    const inside = active instanceof HTMLElement && items.includes(active)
    if (e.shiftKey && (active === first || !inside)) { e.preventDefault(); last.focus() } else if (!e.shiftKey && (active === last || !inside)) { e.preventDefault(); first.focus() }
  }
  return (
    <dialog ref={ref} class={cls} role={role === 'alertdialog' ? 'alertdialog' : undefined} aria-modal='true'
      aria-labelledby={labelledBy} aria-describedby={describedBy} onClose={closed}
      onKeyDown={(e: KeyboardEvent) => { if (e.target instanceof Node && (e.target as Element).closest?.('dialog') === ref.current) trap(e) }}
    >
      {children}
    </dialog>
  )
}
