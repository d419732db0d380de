// The audit page (`/p/{id}/audit`, a member; `/p/{id}/audit#token=…`, any share link, read
// only): every change and who made it, the plan at any moment of its log, changes between two
// moments and since my last review, slip analytics, and the server's integrity check with the
// audit export. Parts the server does not offer (an older server answers 404) say so.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { Section } from './sections'
import { Api, ApiFailure, HISTORY_CHUNK, notAvailable, type HistoryChange, type ListedShare, type HistoryEntry, type Me, type ProjectedPlan, type Review, type Slip, type Verification } from '../api'
import { accessEvents, accessPeople, between, changeKind, filterAccess, filterFeed, KIND_WORDS, mergeFeed, NO_FILTER, people, personName, positions, sinceReview, slipAnalytics, steps, valueText, type AccessEvent, type ChangeKind, type FeedFilter, type FeedItem } from '../audit'
import { formatDate, signedDays } from '../dates'
import { planPath } from '../route'
import { wordFor, MILESTONE_SIDES, STATUSES } from '../schema'

type Maybe<T> = T | 'unavailable' | null

const FIELD_WORDS: Record<string, string> = { due: 'due date', goLive: 'go-live', slipReason: 'reason for the move', goLiveSlipReason: 'reason go-live moved', status: 'status', title: 'title' }
const ENTITY_WORDS: Record<string, string> = { meta: 'Plan', success: 'Success', milestones: 'Step', stakeholders: 'Person', criteria: 'Criterion', risks: 'Risk', objectives: 'Metric', shares: 'Link', members: 'Member' }

function when (at: string): string {
  const d = new Date(at)
  return Number.isNaN(d.getTime()) ? at : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' })
}

function shown (field: string | null, value: unknown): string {
  if ((field === 'due' || field === 'goLive' || field === 'closeDate') && typeof value === 'string') return formatDate(value)
  if (field === 'status' && typeof value === 'string') return wordFor(STATUSES, value)
  return valueText(value)
}

/** One change in words: "Step “Security review”: due date 01/15/2027 → 02/01/2027". */
function changeWords (c: HistoryChange, titles: Map<string, string>): string {
  const entity = ENTITY_WORDS[c.entity] ?? c.entity
  const name = c.entityId == null ? entity : `${entity} “${titles.get(c.entityId) ?? c.entityId}”`
  const field = c.field === null ? '' : FIELD_WORDS[c.field] ?? c.field
  if (c.kind === 'created') return `${name} added`
  if (c.kind === 'deleted') return `${name} removed`
  if (c.kind === 'conflict') return `${name}: ${field} — two people changed it at once; kept ${shown(c.field, (c.kept as { value?: unknown } | undefined)?.value)}, lost ${shown(c.field, (c.lost as { value?: unknown } | undefined)?.value)}`
  return `${name}: ${field} ${shown(c.field, c.old)} → ${shown(c.field, c.new)}`
}

function Entry ({ e, titles }: { e: HistoryEntry, titles: Map<string, string> }) {
  return (
    <li data-testid='feed-entry' data-seq={e.seq}>
      <p class='feed-who'><strong>{personName(e.who)}</strong>{e.who.side !== undefined && <span class='badge'>{e.who.side}</span>}{' '}
        <span class='muted'><time dateTime={e.at}>{when(e.at)}</time> · change {e.seq}</span>
      </p>
      <ul>
        {e.changes.map((c, i) => <li key={i} data-testid='feed-change' data-kind={changeKind(c)}>{changeWords(c, titles)}</li>)}
      </ul>
    </li>
  )
}

/** A link's lifecycle, from the link list: marked so, as it is not one of the plan's changes. */
function Access ({ event }: { event: AccessEvent }) {
  return (
    <li class='feed-access' data-testid='access-event' data-share={event.shareId} data-action={event.action} data-kind='access'>
      <p class='feed-who'><strong>{event.words}</strong>{' '}
        <span class='muted'><time dateTime={event.at}>{when(event.at)}</time> · from the link list, not the change log</span>
      </p>
    </li>
  )
}

function Feed ({ items, titles, testid, empty, limit = 200 }: { items: FeedItem[], titles: Map<string, string>, testid: string, empty: string, limit?: number }) {
  const [shownCount, setShownCount] = useState(limit)
  if (items.length === 0) return <p class='muted' data-testid={`${testid}-empty`}>{empty}</p>
  return (
    <>
      <ol class='feed' data-testid={testid}>
        {items.slice(0, shownCount).map(item => item.type === 'change'
          ? <Entry key={`c${item.entry.seq}`} e={item.entry} titles={titles} />
          : <Access key={`a${item.event.key}`} event={item.event} />)}
      </ol>
      {items.length > shownCount && <button type='button' onClick={() => setShownCount(n => n + limit)}>Show {Math.min(limit, items.length - shownCount)} more of {items.length - shownCount}</button>}
    </>
  )
}

/** History entries only (newest first) as feed items. */
const changesOnly = (entries: HistoryEntry[]): FeedItem[] => entries.map(entry => ({ type: 'change', at: entry.at, entry }))

function Choice ({ label, value, options, onChange }: { label: string, value: string, options: Array<[string, string]>, onChange: (value: string) => void }) {
  return (
    <label class='field'>
      <span class='field-label'>{label}</span>
      <select aria-label={label} value={value} onChange={e => onChange((e.currentTarget as HTMLSelectElement).value)}>
        {options.map(([v, words]) => <option key={v} value={v}>{words}</option>)}
      </select>
    </label>
  )
}

/** The read view of the plan at one moment: title, go-live and every step. */
function PlanAt ({ plan, at, live }: { plan: ProjectedPlan, at: number | null, live: boolean }) {
  const meta = plan.plan.meta
  return (
    <div class='plan-at' data-testid='audit-plan' data-at={at ?? ''} data-live={String(live)}>
      <p><strong>{meta.title ?? 'Untitled plan'}</strong> — {meta.buyerOrg ?? 'Buyer'} × {meta.sellerOrg ?? 'Seller'}
        {meta.goLive !== null && <> · go-live <strong data-testid='audit-golive' data-date={meta.goLive}>{formatDate(meta.goLive)}</strong></>}
      </p>
      <table class='audit-table'>
        <caption class='visually-hidden'>Steps {live ? 'now' : `as of change ${at ?? ''}`}</caption>
        <thead><tr><th scope='col'>Step</th><th scope='col'>Side</th><th scope='col'>Owner</th><th scope='col'>Due</th><th scope='col'>Status</th></tr></thead>
        <tbody>
          {plan.plan.milestones.map(m => (
            <tr key={m.id} data-testid='audit-step' data-id={m.id} data-due={m.due ?? ''} data-status={m.status}>
              <th scope='row'>{m.title ?? m.id}</th><td>{m.side === null ? '—' : wordFor(MILESTONE_SIDES, m.side)}</td><td>{m.owner?.name ?? '—'}</td><td>{m.due === null ? '—' : formatDate(m.due)}</td><td>{wordFor(STATUSES, m.status)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

function SlipAnalytics ({ slips }: { slips: Slip[] }) {
  const a = useMemo(() => slipAnalytics(slips), [slips])
  return (
    <Section id='slip-analytics' title='Slip analytics' intro='Every moved date that held: which steps slip, which side moved them, how go-live drifted, and moves nobody explained. Moves lost to someone else’s move of the same date are listed apart.'>
      <p data-testid='slips-total' data-count={a.total} data-lost={a.lost.length}>{a.total === 0 ? 'No date has moved.' : `${a.total} date ${a.total === 1 ? 'move' : 'moves'} in all.`}{a.lost.length > 0 && ` Not counted: ${a.lost.length} ${a.lost.length === 1 ? 'move' : 'moves'} that did not hold (below).`}</p>
      <ul class='counts' aria-label='Moves by side'>
        <li data-testid='slips-side' data-side='buyer' data-count={a.perSide.buyer}><strong>{a.perSide.buyer}</strong> by the buyer</li>
        <li data-testid='slips-side' data-side='seller' data-count={a.perSide.seller}><strong>{a.perSide.seller}</strong> by the seller</li>
        {a.perSide.other > 0 && <li data-testid='slips-side' data-side='other' data-count={a.perSide.other}><strong>{a.perSide.other}</strong> by the admin or the server</li>}
      </ul>
      {a.perStep.length > 0 && (
        <table class='audit-table'>
          <caption>Moves per step</caption>
          <thead><tr><th scope='col'>Step</th><th scope='col'>Moves</th><th scope='col'>Days moved in all</th></tr></thead>
          <tbody>{a.perStep.map(s => <tr key={s.milestoneId} data-testid='slips-step' data-id={s.milestoneId} data-count={s.count}><th scope='row'>{s.title}</th><td>{s.count}</td><td>{s.days}</td></tr>)}</tbody>
        </table>
      )}
      <h3>Go-live over time</h3>
      {a.drift.length === 0
        ? <p class='muted'>Go-live has not moved.</p>
        : <ol data-testid='golive-drift'>{a.drift.map(d => <li key={d.seq} data-testid='drift-point' data-seq={d.seq}><time dateTime={d.at}>{when(d.at)}</time>: go-live {d.goLive === null ? 'cleared' : formatDate(d.goLive)}{d.driftDays !== null && ` (${d.driftDays === 0 ? 'back to the first date' : `${signedDays(d.driftDays)} than the first date`})`}</li>)}</ol>}
      <h3>Moves without a reason</h3>
      {a.withoutReason.length === 0
        ? <p class='muted'>Every move has a reason.</p>
        : <ul>{a.withoutReason.map(s => <li key={s.seq} data-testid='slip-no-reason' data-seq={s.seq}>{s.subject === 'go_live' ? 'Go-live' : s.title ?? s.milestoneId}: {s.from === null ? 'no date' : formatDate(s.from)} → {s.to === null ? 'no date' : formatDate(s.to)}, by {personName(s.who)}, <time dateTime={s.at}>{when(s.at)}</time></li>)}</ul>}
      <h3>Moves that did not hold</h3>
      {a.lost.length === 0
        ? <p class='muted' data-testid='slips-lost-none'>Every move held.</p>
        : (
          <>
            <p class='muted'>Two people moved the same date while apart, and the other move was kept: these are on record, but moved nothing.</p>
            <ul data-testid='slips-lost'>{a.lost.map(s => <li key={s.seq} data-testid='slip-lost' data-seq={s.seq}>{s.subject === 'go_live' ? 'Go-live' : s.title ?? s.milestoneId}: {s.from === null ? 'no date' : formatDate(s.from)} → {s.to === null ? 'no date' : formatDate(s.to)} wanted, by {personName(s.who)}, <time dateTime={s.at}>{when(s.at)}</time></li>)}</ul>
          </>
          )}
    </Section>
  )
}

function Integrity ({ api, verification, title }: { api: Api, verification: Maybe<Verification>, title: string }) {
  const [message, setMessage] = useState<string | null>(null)
  const download = async () => {
    try {
      const blob = await api.download('audit.json')
      const url = URL.createObjectURL(blob)
      const link = document.createElement('a')
      link.href = url
      link.download = `${title.replace(/[^\p{L}\p{N}]+/gu, '-').replace(/^-|-$/g, '').toLowerCase() || 'plan'}-audit.json`
      link.click()
      setTimeout(() => URL.revokeObjectURL(url), 10_000)
      setMessage('Downloaded. Keep it: its hash chain proves what the plan said and when.')
    } catch (error) {
      setMessage(error instanceof ApiFailure && error.status === 404 ? 'The audit export is not available on this server.' : 'The download needs a connection.')
    }
  }
  return (
    <Section id='integrity' title='Integrity' intro='Every change is chained to the one before by its hash: the server checks the chain, and the audit export lets anyone check it again later.'>
      {verification === null && <p class='muted'>Checking…</p>}
      {verification === 'unavailable' && <p class='muted' data-testid='verify-unavailable'>The integrity check is not available on this server.</p>}
      {verification !== null && verification !== 'unavailable' && (
        <div data-testid='verify' data-ok={String(verification.ok)}>
          <p class={verification.ok ? '' : 'banner warn'}>{verification.ok ? `The chain of all ${verification.entries} changes checks out.` : `The chain does not check out: ${verification.problems.length} ${verification.problems.length === 1 ? 'problem' : 'problems'}.`}</p>
          <p>Head hash: <code data-testid='head-hash'>{verification.head ?? 'none yet'}</code></p>
        </div>
      )}
      <button type='button' onClick={() => { void download() }}>Download the audit export (JSON)</button>
      {message !== null && <p class='muted' role='status' data-testid='export-message'>{message}</p>}
    </Section>
  )
}

function ReviewSection ({ api, review, entries, titles, onMarked }: { api: Api, review: Maybe<Review>, entries: HistoryEntry[], titles: Map<string, string>, onMarked: (r: Review) => void }) {
  const [message, setMessage] = useState<string | null>(null)
  const mark = async () => {
    // Up to the newest change this page shows: a change that reached the server after the page
    // loaded was never seen, so it stays for the next review.
    const shown = entries.length === 0 ? undefined : Math.max(...entries.map(e => e.seq))
    try { onMarked(await api.markReviewed(shown)); setMessage('Marked: the next review starts here.') } catch (error) {
      setMessage(notAvailable(error) ? 'Review marks are not available on this server.' : error instanceof ApiFailure && error.status === 403 ? 'This link cannot mark reviews.' : 'Marking needs a connection.')
    }
  }
  return (
    <Section id='review' title='Since my last review' intro='What changed after you last marked the plan reviewed: the weekly deal review starts here.'>
      {review === null && <p class='muted'>Loading…</p>}
      {review === 'unavailable' && <p class='muted' data-testid='review-unavailable'>Review marks are not available on this server.</p>}
      {review !== null && review !== 'unavailable' && (
        <>
          <p data-testid='last-review' data-seq={review.seq ?? ''}>{review.seq === null ? 'You have not marked a review yet: everything is new.' : `Last reviewed ${review.at === undefined ? '' : when(review.at)} (change ${review.seq}).`}</p>
          <Feed items={changesOnly(sinceReview(entries, review.seq))} titles={titles} testid='since-review' empty='Nothing changed since your last review.' />
          <button type='button' class='primary' onClick={() => { void mark() }}>Mark reviewed</button>
        </>
      )}
      {message !== null && <p class='muted' role='status'>{message}</p>}
    </Section>
  )
}

/** Where the access events come from, and why a buyer sees none. */
function AccessNote ({ links }: { links: ListedShare[] | 'sellers_only' | 'unavailable' | null }) {
  if (links === 'sellers_only') return <p class='muted' data-testid='access-note' data-links='sellers_only'>Access (links made and revoked) is shown to the seller’s team only: this link cannot list the plan’s links.</p>
  if (links === 'unavailable') return <p class='muted' data-testid='access-note' data-links='unavailable'>The plan’s links could not be listed, so access is not shown.</p>
  if (links === null) return null
  return <p class='muted' data-testid='access-note' data-links='listed'>Access events (links made, revoked, expired) come from the plan’s link list, not its change log: they are not in the hash chain, and who revoked a link is not on record.</p>
}

export function AuditPage ({ planId, token }: { planId: string, token: string | null }) {
  const api = useMemo(() => new Api(planId, token), [planId, token])
  const [me, setMe] = useState<Me | null>(null)
  const [problem, setProblem] = useState<string | null>(null)
  const [entries, setEntries] = useState<HistoryEntry[] | null>(null)
  // Where older history goes on from: null when every entry on record is loaded.
  const [older, setOlder] = useState<number | null>(null)
  const [loadingOlder, setLoadingOlder] = useState(false)
  // How many entries are loaded: "Now" reloads as many, so older ones loaded stay.
  const loaded = useRef(HISTORY_CHUNK)
  const [slips, setSlips] = useState<Slip[] | null>(null)
  const [live, setLive] = useState<ProjectedPlan | null>(null)
  const [at, setAt] = useState<{ position: number, plan: ProjectedPlan | null } | null>(null)
  const [filter, setFilter] = useState<FeedFilter>(NO_FILTER)
  const [review, setReview] = useState<Maybe<Review>>(null)
  const [verification, setVerification] = useState<Maybe<Verification>>(null)
  const [range, setRange] = useState<{ from: number, to: number } | null>(null)
  // The link list, for access events: `sellers_only` for a link that may not list links.
  const [links, setLinks] = useState<ListedShare[] | 'sellers_only' | 'unavailable' | null>(null)
  const asked = useRef(0)

  const loadLive = async () => {
    const [history, slipList, plan] = await Promise.all([api.historyFrom(null, loaded.current), api.slips(), api.plan()])
    setEntries(history.entries)
    setOlder(history.nextBefore)
    setSlips(slipList)
    setLive(plan)
  }
  const loadLinks = (who: Me) => {
    if (!who.canManageShares) { setLinks('sellers_only'); return }
    api.shares().then(setLinks).catch(error => setLinks(error instanceof ApiFailure && error.status === 403 ? 'sellers_only' : 'unavailable'))
  }
  useEffect(() => {
    api.me().then(who => { setMe(who); loadLinks(who) }).then(loadLive).catch(error => {
      if (error instanceof ApiFailure && [401, 403, 404].includes(error.status)) {
        setProblem(token === null ? 'Sign in with an account that may see this plan, or open the link you were sent.' : 'This link does not open this plan’s audit (revoked, expired or not valid).')
      } else setProblem('The audit needs a connection to the server.')
    })
    api.verify().then(setVerification).catch(error => setVerification(notAvailable(error) ? 'unavailable' : null))
    api.lastReview().then(setReview).catch(error => setReview(notAvailable(error) ? 'unavailable' : null))
  }, [api])

  const pos = useMemo(() => positions(entries ?? []), [entries])
  const titles = useMemo(() => {
    const map = new Map(steps(entries ?? []).map(s => [s.id, s.title] as [string, string]))
    for (const m of live?.plan.milestones ?? []) if (m.title !== null) map.set(m.id, m.title)
    return map
  }, [entries, live])
  useEffect(() => {
    if (range === null && pos.length > 0) setRange({ from: pos[0], to: pos[pos.length - 1] })
  }, [pos])

  const moveTo = (index: number) => {
    const position = pos[index]
    if (position === undefined) return
    const n = ++asked.current
    setAt({ position, plan: null })
    api.plan(position).then(plan => { if (asked.current === n) setAt({ position, plan }) }).catch(() => { if (asked.current === n) setProblem('The plan at that moment could not be loaded.') })
  }
  const loadOlder = () => {
    if (older === null) return
    setLoadingOlder(true)
    api.historyFrom(older, HISTORY_CHUNK).then(page => {
      setEntries(list => {
        const known = new Set((list ?? []).map(e => e.seq))
        const merged = [...(list ?? []), ...page.entries.filter(e => !known.has(e.seq))]
        loaded.current = Math.max(HISTORY_CHUNK, merged.length)
        return merged
      })
      setOlder(page.nextBefore)
    }).catch(() => setProblem('Older changes need a connection to the server.')).finally(() => setLoadingOlder(false))
  }
  const now = () => {
    asked.current++
    setAt(null)
    loadLive().catch(() => setProblem('The audit needs a connection to the server.'))
    if (me !== null) loadLinks(me)
  }

  if (problem !== null && me === null) {
    return <main class='fatal' data-testid='audit-problem'><h1>The audit is not available</h1><p>{problem}</p><p><a href='/'>Go to Mapline</a></p></main>
  }
  if (me === null || entries === null || slips === null || live === null) return <main class='fatal' aria-busy='true' data-testid='opening'><p>Opening the audit…</p></main>
  const title = live.plan.meta.title ?? 'Untitled plan'
  const feed = filterFeed(entries, filter)
  const events = Array.isArray(links) ? accessEvents(links) : []
  const shownEvents = filterAccess(events, filter)
  const items = mergeFeed(feed, shownEvents)
  const index = at === null ? pos.length - 1 : pos.indexOf(at.position)
  const person = [...people(entries)]
  for (const p of Array.isArray(links) ? accessPeople(links) : []) if (!person.some(q => q.key === p.key)) person.push(p)
  person.sort((a, b) => a.name.localeCompare(b.name) || a.key.localeCompare(b.key))
  const stepList = steps(entries).map(s => ({ ...s, title: titles.get(s.id) ?? s.title }))
  const positionWords = (p: number) => {
    const e = entries.find(x => x.seq === p)
    return `Change ${p}${e === undefined ? '' : ` — ${when(e.at)}, ${personName(e.who)}`}`
  }
  return (
    <>
      <a class='skip' href='#feed'>Skip to the activity</a>
      <header class='top'>
        <div class='title-block'>
          <h1>Audit: {title}</h1>
          <p class='orgs'>{live.plan.meta.buyerOrg ?? 'Buyer'} × {live.plan.meta.sellerOrg ?? 'Seller'} · {older === null ? `${entries.length} ${entries.length === 1 ? 'change' : 'changes'} on record` : `the newest ${entries.length} changes loaded, older ones not yet`} · {me.canEdit ? 'you may edit this plan' : 'read only'}</p>
        </div>
        <div class='top-actions'><a class='button' href={planPath(planId, token)}>Back to the plan</a></div>
      </header>
      <nav class='toc' aria-label='Sections'>
        <a href='#moment'>At any moment</a><a href='#feed'>Activity</a><a href='#between'>Between two moments</a><a href='#review'>Since my review</a><a href='#slip-analytics'>Slips</a><a href='#integrity'>Integrity</a>
      </nav>
      <main data-testid='audit-page'>
        {problem !== null && <p class='banner warn' role='alert'>{problem}</p>}
        <Section id='moment' title='The plan at any moment' intro='Move along the log to see the plan as it was after each change.'>
          {pos.length === 0
            ? <p class='muted'>Nothing is on record yet.</p>
            : (
              <div class='slider'>
                <label class='field'>
                  <span class='field-label'>Moment</span>
                  <input type='range' min={0} max={pos.length - 1} step={1} value={index} aria-valuetext={positionWords(pos[index])} data-testid='moment-slider' onInput={e => moveTo(Number((e.currentTarget as HTMLInputElement).value))} />
                </label>
                <p aria-live='polite' data-testid='moment-words'>{at === null ? 'Now: the live plan.' : `As of ${positionWords(at.position)}.`}</p>
                <button type='button' onClick={now} disabled={at === null} data-testid='moment-now'>Now</button>
              </div>
              )}
          {at === null ? <PlanAt plan={live} at={null} live /> : at.plan === null ? <p class='muted'>Loading…</p> : <PlanAt plan={at.plan} at={at.position} live={false} />}
        </Section>
        <Section id='feed' title='Activity' intro='Every change on record: what, who, which side and when — conflicts and deletions included.'>
          <div class='row filters' role='group' aria-label='Filter the activity'>
            <Choice label='Person' value={filter.person} options={[['', 'Everyone'], ...person.map(p => [p.key, p.name] as [string, string])]} onChange={v => setFilter({ ...filter, person: v })} />
            <Choice label='Side' value={filter.side} options={[['', 'Both sides'], ['buyer', 'Buyer'], ['seller', 'Seller']]} onChange={v => setFilter({ ...filter, side: v as FeedFilter['side'] })} />
            <Choice label='Kind' value={filter.kind} options={[['', 'Every kind'], ...(Object.entries(KIND_WORDS) as Array<[ChangeKind, string]>)]} onChange={v => setFilter({ ...filter, kind: v as FeedFilter['kind'] })} />
            <Choice label='Step' value={filter.step} options={[['', 'Every step'], ...stepList.map(s => [s.id, s.title] as [string, string])]} onChange={v => setFilter({ ...filter, step: v })} />
          </div>
          <p class='muted' role='status' data-testid='feed-count'>{feed.length} of {entries.length} {older === null ? '' : 'loaded '}changes shown{events.length > 0 && `, and ${shownEvents.length} of ${events.length} link events`}.</p>
          {older !== null && (
            <p class='banner' data-testid='history-truncated' data-loaded={entries.length} data-next-before={older}>
              Only the newest {entries.length} changes are loaded: older changes are on record but not shown here, nor in the moments, filters and review below.{' '}
              <button type='button' onClick={loadOlder} disabled={loadingOlder} data-testid='load-older'>{loadingOlder ? 'Loading…' : `Load older changes (up to ${HISTORY_CHUNK.toLocaleString()} more)`}</button>
            </p>
          )}
          <AccessNote links={links} />
          <Feed key={JSON.stringify(filter)} items={items} titles={titles} testid='feed' empty='No change matches these filters.' />
        </Section>
        <Section id='between' title='Changes between two moments' intro='Everything after the first moment, up to and including the second.'>
          {range !== null && (
            <>
              <div class='row filters'>
                <Choice label='From' value={String(range.from)} options={pos.map(p => [String(p), positionWords(p)])} onChange={v => setRange({ ...range, from: Number(v) })} />
                <Choice label='To' value={String(range.to)} options={pos.map(p => [String(p), positionWords(p)])} onChange={v => setRange({ ...range, to: Number(v) })} />
              </div>
              <Feed key={`${range.from}-${range.to}`} items={changesOnly(between(entries, range.from, range.to))} titles={titles} testid='between' empty='Nothing changed between these two moments.' />
            </>
          )}
        </Section>
        <ReviewSection api={api} review={review} entries={entries} titles={titles} onMarked={setReview} />
        <SlipAnalytics slips={slips} />
        <Integrity api={api} verification={verification} title={title} />
      </main>
    </>
  )
}

