// The plan page: opened from a share link (`/p/{planId}#token=…`), live with everyone else on
// the plan, usable offline. A link that no longer opens the plan shows one page saying why, and
// nothing of the plan; a link pasted into the tab (a `hashchange`) opens without a reload.
// Opened without a token by a signed-in member, the same page runs on the session cookie.
// The workspace pages (route.ts) — sign-in, home, pipeline, audit — are in ui/workspace.tsx and
// ui/audit.tsx.

import { render } from 'preact'
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import './styles.css'
import { endOfRefusal, LINK_END_WORDS, parseShareLink, type LinkEnd, type LinkProblem } from './link'
import { PlanSession, storageKey, type Peer } from './session'
import { describeField, readPlan, type PlanView } from './plan-view'
import { Api, ApiFailure, type Deleted, type Health, type HistoryEntry, type Me, type PlanIssue, type Slip } from './api'
import { STATUS_WORDS, type SyncStatus } from './sync-status'
import { today as todayOnDevice, formatDate, signedDays, daysBetween, relativeDays } from './dates'
import { Page, type DateMove, type PageContext, type PendingMove } from './ui/context'
import { CriteriaSection, PeopleSection, RisksSection, SlipsSection, StepsSection, SuccessSection, WhySection } from './ui/sections'
import { TimelineSection } from './ui/timeline'
import { ShareManager } from './ui/shares'
import { ProseField } from './ui/fields'
import { Modal } from './ui/modal'
import { ReadView } from './ui/read'
import { DeletedSection } from './ui/history'
import * as edit from './edits'
import { InternalSession, type Judgment } from './internal'
import { createUndo, pageHandlesUndo, undoShortcut } from './undo'
import { InternalSection } from './ui/internal'
import { SellerTeam } from './ui/team'
import { localNext, parseRoute, planPath } from './route'
import { currentSession, maybeSignedIn } from './workspace'
import { AuditPage } from './ui/audit'
import { HomePage, NoAccessPage, PipelinePage, SignInLinkPage, SignInPage } from './ui/workspace'
import { activeConflicts, conflictsOf, type Conflict } from './conflicts'

/** Remembers what the API said last, so the page still says it offline. */
function remembered<T> (key: string): T | null {
  try { const text = localStorage.getItem(key); return text === null ? null : JSON.parse(text) as T } catch { return null }
}
function remember (key: string, value: unknown): void {
  try { localStorage.setItem(key, JSON.stringify(value)) } catch { /* storage full or off: fine */ }
}

function useDocPlan (session: PlanSession): PlanView {
  const [plan, setPlan] = useState(() => readPlan(session.doc))
  useEffect(() => {
    let frame = 0
    const changed = () => {
      if (frame !== 0) return
      frame = requestAnimationFrame(() => { frame = 0; setPlan(readPlan(session.doc)) })
    }
    session.doc.on('update', changed)
    // Effects run after the first render: whatever the document got before this subscription
    // (e.g. the copy kept on this device, loaded meanwhile) would otherwise never show.
    setPlan(readPlan(session.doc))
    return () => { session.doc.off('update', changed); cancelAnimationFrame(frame) }
  }, [session])
  return plan
}

/** The seller's internal document, open while this is a seller link (never for a buyer). */
function useInternal (planId: string, token: string | null, seller: boolean, ended: boolean, onRefused: (reason: string) => void): [InternalSession | null, Map<string, Judgment>] {
  const [internal, setInternal] = useState<InternalSession | null>(null)
  const [judgments, setJudgments] = useState<Map<string, Judgment>>(() => new Map())
  useEffect(() => {
    if (!seller || ended) return
    const opened = new InternalSession(planId, token)
    let frame = 0
    const changed = () => {
      if (frame !== 0) return
      frame = requestAnimationFrame(() => { frame = 0; setJudgments(opened.judgments()) })
    }
    opened.doc.on('update', changed)
    opened.onRefused(onRefused)
    opened.start()
    setInternal(opened)
    return () => { cancelAnimationFrame(frame); opened.destroy(); setInternal(null); setJudgments(new Map()) }
  }, [planId, token, seller, ended])
  return [internal, judgments]
}

/** Undo/redo of this person's own edits (undo.ts): the shortcuts anywhere on the page — in a
 * prose field too, instead of the browser's own undo of the field — and the header's buttons. */
function useUndo (session: PlanSession, enabled: boolean) {
  const undo = useMemo(() => createUndo(session.doc), [session])
  const [can, setCan] = useState({ undo: false, redo: false })
  const on = useRef(enabled)
  on.current = enabled
  useEffect(() => {
    const update = () => setCan({ undo: undo.canUndo(), redo: undo.canRedo() })
    undo.on('stack-item-added', update)
    undo.on('stack-item-popped', update)
    undo.on('stack-cleared', update)
    const act = (action: 'undo' | 'redo') => {
      undo.stopCapturing()
      if (action === 'undo') undo.undo()
      else undo.redo()
    }
    const onKey = (e: KeyboardEvent) => {
      const action = undoShortcut(e)
      if (action === null || !on.current || !pageHandlesUndo(e.target)) return
      e.preventDefault()
      act(action)
    }
    // Undo from a menu (not a key) in a prose field: through Yjs too, never the field's own.
    const onBeforeInput = (e: InputEvent) => {
      if (e.inputType !== 'historyUndo' && e.inputType !== 'historyRedo') return
      if (!on.current || !(e.target instanceof Element) || !e.target.hasAttribute('data-prose')) return
      e.preventDefault()
      act(e.inputType === 'historyUndo' ? 'undo' : 'redo')
    }
    // Typing in another field starts a new step.
    const onFocus = () => undo.stopCapturing()
    addEventListener('keydown', onKey, true)
    addEventListener('beforeinput', onBeforeInput, true)
    addEventListener('focusin', onFocus)
    return () => {
      removeEventListener('keydown', onKey, true)
      removeEventListener('beforeinput', onBeforeInput, true)
      removeEventListener('focusin', onFocus)
      undo.destroy()
    }
  }, [undo])
  return { can, undo: () => { undo.stopCapturing(); undo.undo() }, redo: () => { undo.stopCapturing(); undo.redo() } }
}

function StatusPill ({ status }: { status: SyncStatus }) {
  const words = STATUS_WORDS[status]
  return (
    <div class={`status status-${status}`} role='status' aria-live='polite' data-testid='sync-status' data-status={status} title={words.detail}>
      <span class='status-dot' aria-hidden='true' />{words.label}
    </div>
  )
}

function Presence ({ peers, plan }: { peers: Peer[], plan: PlanView }) {
  if (peers.length === 0) return <div class='presence muted' data-testid='presence'>Only you are here</div>
  return (
    <ul class='presence' aria-label='Also here now' data-testid='presence'>
      {peers.map(p => {
        const doing = p.editing === null ? 'viewing' : `editing ${describeField(plan, p.editing)}`
        return (
          <li key={p.clientId} class='peer' style={{ borderColor: p.color }} title={`${p.name}: ${doing}`}>
            <span class='avatar' style={{ background: p.color }} aria-hidden='true'>{p.name.slice(0, 1).toUpperCase()}</span>
            <span class='peer-name'>{p.name}</span>
            {p.side !== null && <span class='peer-side'>{p.side}</span>}
            {p.editing !== null && <span class='peer-doing'>{doing}</span>}
          </li>
        )
      })}
    </ul>
  )
}

function ExportMenu ({ api, title, me }: { api: Api, title: string, me: Me | null }) {
  const [message, setMessage] = useState<string | null>(null)
  const save = async (file: string, name: string) => {
    try {
      const blob = await api.download(file)
      const url = URL.createObjectURL(blob)
      const link = document.createElement('a')
      link.href = url
      link.download = name
      link.click()
      setTimeout(() => URL.revokeObjectURL(url), 10_000)
      setMessage(null)
    } catch {
      setMessage('The download needs a connection.')
    }
  }
  const base = title.replace(/[^\p{L}\p{N}]+/gu, '-').replace(/^-|-$/g, '').toLowerCase() || 'plan'
  const subscribe = async () => {
    let feed = me?.calendarUrl
    if (feed === undefined) {
      // A `/me` remembered from before feeds existed: ask for the feed now.
      try { feed = (await api.me()).calendarUrl } catch { setMessage('The calendar link needs a connection.'); return }
    }
    if (feed === null || feed === undefined) { setMessage('Open the plan with a share link to subscribe in a calendar.'); return }
    const url = api.subscriptionUrl(feed, location.origin)
    try { await navigator.clipboard.writeText(url); setMessage('Calendar link copied: add it in your calendar as a subscription.') } catch { setMessage(url) }
  }
  return (
    <details class='export-menu'>
      <summary>Export</summary>
      <div class='export-items'>
        <button type='button' onClick={() => { void save('export.md', `${base}.md`) }}>One-pager (Markdown)</button>
        <button type='button' onClick={() => { void save('export.csv', `${base}-milestones.csv`) }}>Milestones (CSV)</button>
        <button type='button' onClick={() => { void subscribe() }}>Subscribe in your calendar</button>
        {message !== null && <p class='muted' role='status'>{message}</p>}
      </div>
    </details>
  )
}

/** Whether an editor last chose the read view or the form, on this device (all plans). */
const VIEW_KEY = 'mapline:view'
type ViewChoice = 'read' | 'edit'
function rememberedView (): ViewChoice {
  try { return localStorage.getItem(VIEW_KEY) === 'read' ? 'read' : 'edit' } catch { return 'edit' }
}

/** Read or Edit, for people who may edit; the choice is kept on this device. */
function ViewSwitch ({ view, onChange }: { view: ViewChoice, onChange: (view: ViewChoice) => void }) {
  const choose = (next: ViewChoice) => {
    try { localStorage.setItem(VIEW_KEY, next) } catch { /* storage off: the choice lasts this visit */ }
    onChange(next)
  }
  return (
    <div class='view-switch' role='group' aria-label='View'>
      <button type='button' aria-pressed={view === 'read'} onClick={() => choose('read')}>Read</button>
      <button type='button' aria-pressed={view === 'edit'} onClick={() => choose('edit')}>Edit</button>
    </div>
  )
}

function HealthCard ({ health, issues }: { health: Health | null, issues: PlanIssue[] }) {
  if (health === null) return null
  const verdict = { on_track: 'On track', at_risk: 'At risk', off_track: 'Off track' }[health.verdict]
  const slack = health.criticalPath?.slackDays ?? null
  const next = (side: 'buyer' | 'seller', words: string) => {
    const m = health.nextUp[side]
    return (
      <li><strong>{words}:</strong> {m === null ? 'nothing waiting' : `${m.title ?? m.id}${m.due !== null ? `, due ${formatDate(m.due)}` : ''}${m.owner !== null ? ` (${m.owner})` : ''}`}</li>
    )
  }
  return (
    <section class={`health verdict-${health.verdict}`} aria-label='How the plan is doing' data-testid='health'>
      <div class='verdict'><span class='verdict-word'>{verdict}</span>
        {health.reasons.length > 0 && <span class='reasons'>{health.reasons.map(r => r.charAt(0).toUpperCase() + r.slice(1)).join(' · ')}</span>}
      </div>
      <ul class='counts'>
        <li class={health.overdue.length > 0 ? 'bad' : ''}><strong>{health.overdue.length}</strong> overdue</li>
        <li><strong>{health.dueSoon.length}</strong> due this week</li>
        <li class={health.blocked.length > 0 ? 'warn' : ''}><strong>{health.blocked.length}</strong> blocked</li>
        {slack !== null && (slack < 0
          ? <li class='bad'><strong>{-slack}</strong> {slack === -1 ? 'day' : 'days'} past go-live</li>
          : slack === 0
            ? <li class='warn'><strong>No slack</strong> before go-live</li>
            : <li><strong>{slack}</strong> {slack === 1 ? 'day' : 'days'} to spare before go-live</li>)}
        {health.goLiveDriftDays !== null && health.goLiveDriftDays !== 0 && <li class='warn'>Go-live moved {signedDays(health.goLiveDriftDays)}</li>}
      </ul>
      <ul class='next-up' aria-label='Whose turn'>
        {next('buyer', 'Buyer next')}
        {next('seller', 'Seller next')}
      </ul>
      {issues.length > 0 && <p class='muted'>{issues.length} value{issues.length === 1 ? '' : 's'} in this plan could not be read (e.g. a date that is not a date); they are left out above.</p>}
    </section>
  )
}

function ReasonDialog ({ move, onDone }: { move: DateMove, onDone: (reason: string | null, alsoMoved: boolean) => void }) {
  const [reason, setReason] = useState(move.reason ?? '')
  const [also, setAlso] = useState(move.alsoMove?.checked ?? false)
  const days = daysBetween(move.from, move.to)
  return (
    <Modal class='reason-dialog' labelledBy='reason-title' onClose={() => onDone(null, false)}>
      <form method='dialog' onSubmit={e => { e.preventDefault(); if (reason.trim().length > 0) onDone(reason.trim(), also && move.alsoMove !== undefined) }}>
        <h2 id='reason-title'>Why is this date moving?</h2>
        <p><strong>{move.subject}</strong>: {formatDate(move.from)} → {move.to === null ? 'no date' : formatDate(move.to)} ({signedDays(days)})</p>
        {(move.warnings ?? []).map(w => <p class='banner warn' role='alert' key={w} data-testid='move-warning'>{w}</p>)}
        {move.alsoMove !== undefined && move.to !== null && (
          <label class='check'>
            <input type='checkbox' checked={also} onChange={e => setAlso((e.currentTarget as HTMLInputElement).checked)} />
            {' '}{move.alsoMove.words} to {formatDate(move.to)}
          </label>
        )}
        <p class='muted'>Everyone on the plan sees this reason in the date-change history.</p>
        <label class='field'><span class='field-label'>Reason</span>
          <textarea required rows={3} value={reason} onInput={e => setReason((e.currentTarget as HTMLTextAreaElement).value)} placeholder='e.g. Security team is out until late January' />
        </label>
        <div class='buttons'>
          <button type='button' onClick={() => onDone(null, false)}>Keep the old date</button>
          <button type='submit' class='primary' disabled={reason.trim().length === 0}>Move the date</button>
        </div>
      </form>
    </Modal>
  )
}

/** Keeps `--top-height` at the sticky header's height (0 where it does not stick), so that a
 * section link scrolls its heading below the header rather than under it. */
function useStickyHeight (shown: boolean) {
  const header = useRef<HTMLElement>(null)
  useEffect(() => {
    const element = header.current
    if (element === null) return
    const root = document.documentElement
    const measure = () => {
      const sticky = getComputedStyle(element).position === 'sticky'
      root.style.setProperty('--top-height', sticky ? `${element.offsetHeight}px` : '0px')
    }
    const observer = new ResizeObserver(measure)
    observer.observe(element)
    addEventListener('resize', measure)
    measure()
    return () => { observer.disconnect(); removeEventListener('resize', measure); root.style.removeProperty('--top-height') }
  }, [shown])
  return header
}

function App ({ session, api, planId, token }: { session: PlanSession, api: Api, planId: string, token: string | null }) {
  const plan = useDocPlan(session)
  const [status, setStatus] = useState<SyncStatus>(session.status())
  const [peers, setPeers] = useState<Peer[]>([])
  const [me, setMe] = useState<Me | null>(() => remembered(storageKey('me', planId)))
  const [health, setHealth] = useState<Health | null>(() => remembered(storageKey('health', planId)))
  const [slips, setSlips] = useState<Slip[] | null>(() => remembered(storageKey('slips', planId)))
  const [issues, setIssues] = useState<PlanIssue[]>([])
  const [history, setHistory] = useState<HistoryEntry[]>([])
  const [deleted, setDeleted] = useState<Deleted[] | null>(null)
  const [dismissed, setDismissed] = useState<ReadonlySet<string>>(() => new Set(remembered<string[]>(storageKey('dismissed-conflicts', planId)) ?? []))
  const [notice, setNotice] = useState<string | null>(null)
  const [ended, setEnded] = useState<LinkEnd | null>(session.ended)
  // Nothing is remembered for a link that ended (an answer may arrive after the copy went).
  const keep = (kind: string, value: unknown) => { if (session.ended === null) remember(storageKey(kind, planId), value) }
  const [move, setMove] = useState<{ move: DateMove, resolve: (r: string | null) => void, n: number } | null>(null)
  const moves = useRef(0)
  // Moves made on this device that the server's date-change record does not show yet (offline,
  // or not stored yet): shown in "Date changes" as not yet saved.
  const [pending, setPending] = useState<PendingMove[]>(() => remembered(storageKey('pending-moves', planId)) ?? [])
  const addPending = (m: PendingMove) => setPending(list => { const next = [...list, m]; keep('pending-moves', next); return next })
  useEffect(() => {
    if (slips === null) return
    setPending(list => {
      const next = list.filter(p => !slips.some(s => s.to === p.to && s.reason === p.reason && (p.subject === 'Go-live') === (s.subject === 'go_live')))
      if (next.length !== list.length) keep('pending-moves', next)
      return next
    })
  }, [slips])
  const [sharing, setSharing] = useState(false)
  const [view, setView] = useState<ViewChoice>(rememberedView)
  // The copy on this device shows once the server has not refused the link: `/me` answered, or
  // failed otherwise (offline), or a socket opened — or 3 s passed (a network that hangs). So a
  // link revoked while the page was closed never shows its copy again, not even for a moment.
  const [checked, setChecked] = useState(!navigator.onLine)
  const today = todayOnDevice()

  useEffect(() => {
    session.on('status', setStatus)
    session.on('peers', setPeers)
    // Anything that changed between the first render and these subscriptions.
    setStatus(session.status())
    setPeers(session.peers())
    session.on('refused', reason => setNotice(`Not saved: ${reason}`))
    session.on('ended', setEnded)
    setEnded(session.ended)
  }, [session])

  useEffect(() => {
    api.me().then(value => { setMe(value); keep('me', value); setChecked(true) }).catch(error => {
      const end = error instanceof ApiFailure ? endOfRefusal(token === null, error.status, error.code) : null
      if (end !== null) session.end(end)
      else setChecked(true)
    })
    const wait = setTimeout(() => setChecked(true), 3000)
    return () => clearTimeout(wait)
  }, [api])

  useEffect(() => {
    if (status === 'syncing' || status === 'saved' || status === 'live') setChecked(true)
  }, [status])

  useEffect(() => {
    if (me === null) return
    session.setIdentity(me.label, me.side)
    session.setReadOnly(!me.canEdit)
  }, [me])

  // Health and slips are derived on the server: fetch them when the plan changes (the server
  // stores slips within ~100 ms of relaying a move, so ask again shortly after).
  useEffect(() => {
    if (status === 'offline' || status === 'revoked') return
    let stale = false
    const load = () => {
      api.health(today).then(h => { if (!stale) { setHealth(h); keep('health', h) } }).catch(() => {})
      api.slips().then(s => { if (!stale) { setSlips(s); keep('slips', s) } }).catch(() => {})
      api.issues().then(i => { if (!stale) setIssues(i) }).catch(() => {})
      // The conflicts on record are in the history. "Recently deleted" is asked for only when
      // the recent history has a deletion (most plans never delete: no request for them).
      api.history().then(h => {
        if (stale) return
        setHistory(h)
        if (!h.some(e => e.changes.some(c => c.kind === 'deleted'))) { setDeleted([]); return }
        api.deleted().then(d => { if (!stale) setDeleted(d) }).catch(() => {})
      }).catch(() => {})
    }
    const first = setTimeout(load, 250)
    const again = setTimeout(load, 1500)
    return () => { stale = true; clearTimeout(first); clearTimeout(again) }
  }, [plan, status === 'offline'])

  const readOnly = me === null ? true : !me.canEdit || status === 'revoked'
  const [internal, judgments] = useInternal(planId, token, me?.side === 'seller', ended !== null, reason => setNotice(`Not saved: ${reason}`))
  const undo = useUndo(session, !readOnly && view === 'edit')
  const allConflicts = useMemo(() => conflictsOf(history), [history])
  const conflicts: Conflict[] = useMemo(() => activeConflicts(allConflicts, session.doc, dismissed), [allConflicts, plan, dismissed])
  const dismissConflict = (c: Conflict) => setDismissed(previous => {
    const next = new Set(previous).add(c.key)
    keep('dismissed-conflicts', [...next])
    return next
  })
  const reloadDeleted = () => { api.deleted().then(setDeleted).catch(() => {}) }
  const context: PageContext = useMemo(() => ({
    doc: session.doc,
    session,
    plan,
    readOnly,
    peers,
    slips: slips ?? [],
    today,
    internal,
    judgments,
    conflicts,
    dismissConflict,
    askReason: m => new Promise(resolve => setMove({ move: m, resolve, n: ++moves.current }))
  }), [plan, readOnly, peers, slips, today, internal, judgments, conflicts])

  const header = useStickyHeight(checked && ended === null)

  if (ended !== null) return <LinkPage problem={ended} />
  if (!checked) return <main class='fatal' aria-busy='true' data-testid='opening'><p>Opening the plan…</p></main>
  const goLiveIn = daysBetween(today, plan.meta.goLive)
  // The seller team: for members, the admin and seller links (never a buyer); not while offline.
  const team = me !== null && (me.kind === 'member' || me.kind === 'admin' || me.side === 'seller')
  // Viewers always read; editors read when they chose to.
  const reading = readOnly || view === 'read'
  return (
    <Page.Provider value={context}>
      <a class='skip' href='#steps'>Skip to the plan steps</a>
      <header class='top' ref={header}>
        <div class='title-block'>
          {reading
            ? <h1>{plan.meta.title ?? 'Loading the plan…'}</h1>
            // The H1 reads as the plan's title: no label text inside it, so its name is the
            // field's value; the field itself is named "Plan title".
            : <h1><ProseField label='' ariaLabel='Plan title' hideLabel wrap doc={session.doc} locate={edit.rootLocate(session.doc, 'meta')} name='title' field='meta.title' class='title-input' /></h1>}
          <p class='orgs'>{plan.meta.buyerOrg ?? 'Buyer'} <span aria-hidden='true'>×</span><span class='visually-hidden'>and</span> {plan.meta.sellerOrg ?? 'Seller'}
            {plan.meta.goLive !== null && <> · go-live <strong>{formatDate(plan.meta.goLive)}</strong>{goLiveIn !== null && ` (${relativeDays(goLiveIn)})`}</>}
          </p>
        </div>
        <div class='top-right'>
          {/* Who and how it is saved on one line, what to do on another: on a phone each is one
              row, so the Read/Edit switch does not add a third. */}
          <div class='top-who'>
            <StatusPill status={status} />
            <Presence peers={peers} plan={plan} />
            {me !== null && <div class='me' data-testid='me' title={`You: ${me.label}${me.side !== null ? ` · ${me.side}` : ''}${!me.canEdit ? ' · view only' : ''}`}>You: {me.label}{me.side !== null ? ` · ${me.side}` : ''}{!me.canEdit && ' · view only'}</div>}
          </div>
          <div class='top-actions'>
            {me !== null && me.canEdit && status !== 'revoked' && <ViewSwitch view={view} onChange={setView} />}
            {!reading && (
              <div class='undo-redo' role='group' aria-label='Undo'>
                <button type='button' onClick={undo.undo} disabled={!undo.can.undo} title='Undo your last edit (Ctrl+Z)'>Undo</button>
                <button type='button' onClick={undo.redo} disabled={!undo.can.redo} title='Redo (Ctrl+Shift+Z)'>Redo</button>
              </div>
            )}
            {reading && <button type='button' onClick={() => window.print()} title='Opens your browser’s print dialog: choose “Save as PDF”'><span class='wide-only'>Download </span>PDF</button>}
            <ExportMenu api={api} me={me} title={plan.meta.title ?? 'plan'} />
            <a class='button' href={planPath(planId, token, true)} data-testid='audit-link'>Audit</a>
            {me !== null && (me.canMintSides ?? []).length > 0 && <button type='button' class='primary' onClick={() => setSharing(true)}>Share</button>}
          </div>
        </div>
      </header>
      <nav class='toc' aria-label='Sections'>
        <a href='#why'>Why</a><a href='#timeline'>Timeline</a><a href='#steps'>Steps</a><a href='#people'>People</a>
        <a href='#criteria'>What matters</a><a href='#risks'>Risks</a><a href='#success'>Success</a><a href='#changes'>Date changes</a>
        {internal !== null && <a href='#internal'>Internal</a>}
        {team && <a href='#team'>Team</a>}
      </nav>
      <main>
        {readOnly && me !== null && status !== 'revoked' && <p class='banner' role='note'>You can view this plan. Ask the seller for an edit link to make changes.</p>}
        {notice !== null && <p class='banner warn' role='alert'>{notice} <button type='button' class='link' onClick={() => setNotice(null)}>Dismiss</button></p>}
        {reading
          ? <><ReadView health={health} slipsLoaded={slips !== null} /><InternalSection reading />{team && <SellerTeam api={api} me={me} />}</>
          : (
            <>
              <HealthCard health={health} issues={issues} />
              <WhySection />
              <TimelineSection />
              <StepsSection />
              <PeopleSection />
              <CriteriaSection />
              <RisksSection />
              <SuccessSection />
              <InternalSection />
              {team && <SellerTeam api={api} me={me} />}
              <DeletedSection deleted={deleted} api={api} onChanged={reloadDeleted} />
              <SlipsSection loaded={slips !== null} pending={pending} />
            </>
            )}
      </main>
      {move !== null && (
        <ReasonDialog
          key={move.n} move={move.move} onDone={(reason, alsoMoved) => {
            const { subject, from, to, alsoMove } = move.move
            if (reason !== null) {
              const at = new Date().toISOString()
              addPending({ subject, from, to, reason, at })
              if (alsoMoved && alsoMove !== undefined && to !== null) {
                alsoMove.move(to, reason)
                if (alsoMove.from !== to) addPending({ subject: alsoMove.subject, from: alsoMove.from, to, reason, at })
              }
            }
            move.resolve(reason)
            setMove(null)
          }}
        />
      )}
      {sharing && (
        <Modal class='share-dialog' labelledBy='share-title' onClose={() => setSharing(false)}>
          <ShareManager api={api} sides={me?.canMintSides ?? []} canList={me?.canManageShares === true} onClose={() => setSharing(false)} />
        </Modal>
      )}
    </Page.Provider>
  )
}

/** The page instead of a plan: a link that ended (revoked, expired, not valid) or was never
 * whole. It shows nothing of the plan. */
function LinkPage ({ problem }: { problem: LinkEnd | LinkProblem }) {
  const words = LINK_END_WORDS[problem]
  return (
    <main class='fatal' data-testid='link-page' data-problem={problem}>
      <h1>{words.title}</h1>
      <p>{words.detail}</p>
      {problem === 'no_token' && <p class='muted'>On the seller team? <a href={`/?next=${encodeURIComponent(location.pathname)}`}>Sign in</a> to open it with your account.</p>}
      {problem === 'signed_out' && <p><a class='button primary' href={`/?next=${encodeURIComponent(location.pathname)}`} data-testid='sign-in-again'>Sign in again</a></p>}
      {problem === 'no_access' && <p><a href='/'>Your plans</a></p>}
    </main>
  )
}

function start (): void {
  const root = document.getElementById('app')
  if (root === null) return
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('/sw.js').catch(() => { /* offline reloads just won't work */ })
  }
  const route = parseRoute(location.pathname, location.hash)
  if (route.page !== 'plan') {
    ;(async () => {
      if (route.page === 'signin') { render(<SignInLinkPage token={route.token} />, root); return }
      if (route.page === 'audit') {
        // A member's audit page (no token): the session's CSRF token for marking a review. Asked
        // whatever the signed-in hint says: the hint may be gone while the cookie is not, and
        // without a token the page needs a session anyway (signed out, the 401 here is the
        // same answer the page's own `/me` then gets).
        if (route.token === null) await currentSession().catch(() => null)
        render(<AuditPage planId={route.planId} token={route.token} />, root)
        return
      }
      if (route.page === 'unknown') { render(<LinkPage problem='no_plan' />, root); return }
      const signedIn = await currentSession().catch(() => null)
      const next = new URLSearchParams(location.search).get('next')
      if (signedIn === null) { render(<SignInPage next={route.page === 'home' ? localNext(next) : location.pathname} />, root); return }
      // Back to where the sign-in started (`/?next=/p/…`).
      if (route.page === 'home' && next !== null && localNext(next) !== '/') { location.replace(localNext(next)); return }
      render(route.page === 'home' ? <HomePage session={signedIn} /> : <PipelinePage session={signedIn} />, root)
    })()
    return
  }
  let session: PlanSession | null = null
  let opened = ''
  const open = async () => {
    const link = parseShareLink(location.pathname, location.hash)
    // In-page anchors (`#steps`) change the fragment too: only a whole link replaces a plan.
    if (typeof link === 'string' && session !== null) return
    const key = typeof link === 'string' ? link : `${link.planId}#${link.token}`
    if (key === opened) return
    opened = key
    // A new link replaces the plan shown (or the page saying what was wrong with the last one).
    render(null, root)
    const previous = session
    session = null
    previous?.destroy()
    if (link === 'no_token') {
      // No token: a signed-in member's plan (the session cookie), else the page saying the link
      // is missing its key, as before.
      const member = maybeSignedIn() ? await currentSession().catch(() => null) : null
      if (opened !== key) return
      if (member === null) { render(<LinkPage problem={link} />, root); return }
      const route = parseRoute(location.pathname, '')
      if (route.page !== 'plan') return
      const planId = route.planId
      const api = new Api(planId, null)
      try {
        await api.me()
      } catch (error) {
        if (error instanceof ApiFailure && [401, 403, 404].includes(error.status)) { render(<NoAccessPage session={member} />, root); return }
      }
      if (opened !== key) return
      session = new PlanSession(planId, null)
      render(<App session={session} api={api} planId={planId} token={null} />, root)
      void session.start()
      ;(window as unknown as { mapline: unknown }).mapline = { session }
      return
    }
    if (typeof link === 'string') {
      render(<LinkPage problem={link} />, root)
      return
    }
    // An ended link's copy is being deleted: let that finish before the database opens again.
    await previous?.forgotten
    if (opened !== key) return
    session = new PlanSession(link.planId, link.token)
    const api = new Api(link.planId, link.token)
    render(<App session={session} api={api} planId={link.planId} token={link.token} />, root)
    void session.start()
    ;(window as unknown as { mapline: unknown }).mapline = { session }
  }
  // A link pasted into the address bar of this tab changes only the fragment: no reload.
  addEventListener('hashchange', () => { void open() })
  void open()
}

start()
