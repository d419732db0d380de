// The seller's link manager: one link per person (side, role, label, expiry), copy it once,
// revoke it, and see who has opened the plan and when. Links show who minted them (indented
// under that link); revoking asks first, naming every link minted through it that goes too.

import { useEffect, useRef, useState } from 'preact/hooks'
import type { Api, ListedShare, NewShare, RevokedLink } from '../api'
import { ApiFailure } from '../api'
import { absoluteLink } from '../link'
import { timeAgo, formatDate } from '../dates'
import { lineageOrder } from '../lineage'
import { Modal } from './modal'

/** A revocation waiting for confirmation: the link, and what the server says goes with it. */
interface PendingRevocation { share: ListedShare, links: RevokedLink[] | null }

export function ShareManager ({ api, sides, canList, onClose }: { api: Api, sides: string[], canList: boolean, onClose: () => void }) {
  const [shares, setShares] = useState<ListedShare[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [made, setMade] = useState<NewShare | null>(null)
  const [copied, setCopied] = useState(false)
  const [label, setLabel] = useState('')
  const [side, setSide] = useState(sides[0] ?? 'buyer')
  const [role, setRole] = useState('editor')
  const [expires, setExpires] = useState('')
  const [pending, setPending] = useState<PendingRevocation | null>(null)
  const confirmButton = useRef<HTMLButtonElement>(null)
  useEffect(() => { if (pending?.links != null) confirmButton.current?.focus() }, [pending?.links])

  const load = async () => {
    if (!canList) return
    try { setShares(await api.shares()); setError(null) } catch (e) { setError(e instanceof ApiFailure ? e.message : 'The links could not be loaded (offline?).') }
  }
  useEffect(() => { void load() }, [])

  const create = async (e: Event) => {
    e.preventDefault()
    try {
      const expiresAt = expires === '' ? undefined : new Date(`${expires}T23:59:59`).toISOString()
      const share = await api.createShare({ side, role, label, expiresAt })
      setMade(share)
      setCopied(false)
      setLabel('')
      setExpires('')
      await load()
    } catch (e) { setError(e instanceof ApiFailure ? e.message : 'The link could not be made (offline?).') }
  }
  // Revoking asks first, listing the links minted through this one: they stop working too.
  const askRevoke = async (share: ListedShare) => {
    setPending({ share, links: null })
    try {
      const links = await api.revocation(share.id)
      setPending(p => p?.share.id === share.id ? { share, links } : p)
    } catch (e) {
      setPending(null)
      setError(e instanceof ApiFailure ? e.message : 'The link could not be checked (offline?).')
    }
  }
  const revoke = async (share: ListedShare) => {
    setPending(null)
    try { await api.revokeShare(share.id); await load() } catch (e) { setError(e instanceof ApiFailure ? e.message : 'The link could not be revoked (offline?).') }
  }
  const goingToo = (pending?.links ?? []).slice(1).filter(l => l.status !== 'revoked')
  const link = made === null ? '' : absoluteLink(made.url, location.origin)
  const copy = async () => {
    try { await navigator.clipboard.writeText(link); setCopied(true) } catch { setCopied(false) }
  }

  return (
    <div class='share-manager'>
      <div class='dialog-head'>
        <h2 id='share-title'>Share this plan</h2>
        <button type='button' class='icon' aria-label='Close' onClick={onClose}>✕</button>
      </div>
      <p class='intro'>Make one link per person: whoever has the link can open the plan, no account needed.</p>
      <form class='share-form' onSubmit={e => { void create(e) }}>
        <label class='field'><span class='field-label'>Who is it for</span>
          <input required maxLength={200} value={label} placeholder='e.g. Ana Ruiz (CFO)' onInput={e => setLabel((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label class='field'><span class='field-label'>Their side</span>
          <select value={side} disabled={sides.length < 2} onChange={e => setSide((e.currentTarget as HTMLSelectElement).value)}>
            {sides.map(s => <option key={s} value={s}>{s === 'buyer' ? 'Buyer' : 'Seller'}</option>)}
          </select>
        </label>
        <label class='field'><span class='field-label'>They can</span>
          <select value={role} onChange={e => setRole((e.currentTarget as HTMLSelectElement).value)}>
            <option value='editor'>Edit</option><option value='viewer'>Only view</option>
          </select>
        </label>
        <label class='field'><span class='field-label'>Expires (optional)</span>
          <input type='date' value={expires} onInput={e => setExpires((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <button type='submit' class='primary'>Create link</button>
      </form>
      {made !== null && (
        <div class='new-link' role='status'>
          <p>Link for <strong>{made.label}</strong> — copy it now; it is not shown again.</p>
          <div class='copy-row'>
            <input readOnly aria-label={`Link for ${made.label}`} value={link} onFocus={e => (e.currentTarget as HTMLInputElement).select()} />
            <button type='button' onClick={() => { void copy() }}>{copied ? 'Copied' : 'Copy'}</button>
          </div>
        </div>
      )}
      {error !== null && <p class='error' role='alert'>{error}</p>}
      {!canList && <p class='muted'>The seller's team sees every link and can revoke them.</p>}
      {canList && <h3>Links</h3>}
      {canList && shares === null && error === null && <p class='muted'>Loading…</p>}
      {pending !== null && (
        <Modal class='revoke-confirm' role='alertdialog' labelledBy='revoke-title' describedBy='revoke-what' onClose={() => setPending(null)}>
          <h4 id='revoke-title'>Revoke the link of {pending.share.label}?</h4>
          <div id='revoke-what'>
            {pending.links === null
              ? <p class='muted'>Checking which links were made with it…</p>
              : goingToo.length === 0
                ? <p>It stops working at once, and its open pages close.</p>
                : (
                  <>
                    <p>It stops working at once, and so {goingToo.length === 1 ? 'does the link' : `do the ${goingToo.length} links`} made with it:</p>
                    <ul class='revoke-list' aria-label='Links revoked with it'>
                      {goingToo.map(l => (
                        <li key={l.id} style={{ marginLeft: `${(l.depth - 1) * 16}px` }}>
                          {l.label} <span class='muted'>· {l.side === 'buyer' ? 'Buyer' : 'Seller'} · {l.role === 'editor' ? 'edits' : 'views'}{l.mintedBy !== null ? ` · minted by ${l.mintedBy}` : ''}</span>
                        </li>
                      ))}
                    </ul>
                  </>
                  )}
          </div>
          <div class='actions'>
            <button type='button' onClick={() => setPending(null)}>Cancel</button>
            <button type='button' class='danger' ref={confirmButton} disabled={pending.links === null} onClick={() => { void revoke(pending.share) }}>
              {goingToo.length === 0 ? 'Revoke link' : `Revoke ${goingToo.length + 1} links`}
            </button>
          </div>
        </Modal>
      )}
      {shares !== null && (
        <table class='shares'>
          <thead><tr><th scope='col'>Person</th><th scope='col'>Access</th><th scope='col'>Last opened</th><th scope='col'><span class='visually-hidden'>Actions</span></th></tr></thead>
          <tbody>
            {lineageOrder(shares).map(({ share: s, depth }) => (
              <tr key={s.id} class={`share-${s.status}`} data-share={s.id} data-depth={depth}>
                <td style={depth > 0 ? { paddingLeft: `${4 + depth * 16}px` } : undefined}>
                  {depth > 0 && <span class='lineage-mark' aria-hidden='true'>↳ </span>}{s.label}
                  {s.mintedBy !== null && <div class='muted minted-by'>minted by {s.mintedBy}</div>}
                </td>
                <td>{s.side === 'buyer' ? 'Buyer' : 'Seller'} · {s.role === 'editor' ? 'edits' : 'views'}
                  {s.expiresAt !== null && s.status === 'active' && <div class='muted'>until {formatDate(s.expiresAt.slice(0, 10))}</div>}
                </td>
                <td>{s.lastSeenAt === null ? 'never' : `${timeAgo(s.lastSeenAt)} (${s.opens}×)`}</td>
                <td>{s.status === 'active'
                  ? <button type='button' class='danger' aria-label={`Revoke the link of ${s.label}`} onClick={() => { void askRevoke(s) }}>Revoke</button>
                  : <span class='badge'>{s.status}</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  )
}
