// The seller team's pages (issue 15): sign in, the sign-in link, home (my plans, create a plan
// from a template, invite the buyer's people) and the pipeline for managers.

import { useEffect, useMemo, useState } from 'preact/hooks'
import { Api, ApiFailure, notAvailable, setCsrfToken, type NewShare } from '../api'
import { authConfig, createPlan, listPlans, signInProblem, signInWithLink, signOut, signOutEverywhere, templates, type AuthConfig, type Session, type Template } from '../workspace'
import { ALL_PLANS, buyerActivityWords, driftWords, filterPlans, HEALTH_WORDS, inviteEmail, inviteLabel, mailto, healthCellWords, pipelineTotals, sortPlans, type PlanFilter, type SortKey, type Summary } from '../home'
import { datePattern, formatDate, parseDate, today } from '../dates'
import { absoluteLink } from '../link'
import { localNext, planPath } from '../route'

function TopBar ({ session, title, detail }: { session: Session, title: string, detail?: string }) {
  const [message, setMessage] = useState<string | null>(null)
  const manager = session.member.role === 'manager' || session.member.role === 'admin'
  const out = async (everywhere: boolean) => {
    try {
      if (everywhere) await signOutEverywhere()
      else await signOut()
      location.assign('/')
    } catch { setMessage('Signing out needs a connection.') }
  }
  return (
    <header class='top workspace-top'>
      <div class='title-block'>
        <h1>{title}</h1>
        {detail !== undefined && <p class='orgs'>{detail}</p>}
      </div>
      <nav class='top-actions' aria-label='Workspace'>
        <a class='button' href='/'>My plans</a>
        {manager && <a class='button' href='/pipeline' data-testid='pipeline-link'>Pipeline</a>}
        <span class='me' data-testid='me'>{session.member.name} · {session.member.role}</span>
        <button type='button' onClick={() => { void out(false) }}>Sign out</button>
        <button type='button' class='link' onClick={() => { void out(true) }} title='Ends your sessions in every browser'>Sign out everywhere</button>
        {message !== null && <span role='alert'>{message}</span>}
      </nav>
    </header>
  )
}

export function SignInPage ({ next }: { next: string }) {
  const [config, setConfig] = useState<AuthConfig | null>(null)
  useEffect(() => { void authConfig().then(setConfig) }, [])
  return (
    <main class='fatal signin' data-testid='signin-page'>
      <h1>Mapline</h1>
      {config?.oidc === true && (
        <p><a class='button primary' href={`/auth/oidc/login?next=${encodeURIComponent(localNext(next) === '/' ? '/' : `/?next=${encodeURIComponent(localNext(next))}`)}`} data-testid='oidc-sign-in'>Sign in with your company account</a></p>
      )}
      <h2>Open the link you were sent</h2>
      <p>Buyers: open the plan link you were sent (it ends in <code>#token=…</code>) — no account is needed.</p>
      <p>Seller team{config?.oidc === true ? ' without a company account' : ''}: ask your Mapline admin for a sign-in link and open it in this browser.</p>
    </main>
  )
}

export function SignInLinkPage ({ token }: { token: string | null }) {
  const [problem, setProblem] = useState<{ code: string, words: string } | null>(token === null ? { code: 'no_token', words: 'This sign-in link is missing its key: open the whole link you were sent.' } : null)
  useEffect(() => {
    if (token === null) return
    // The token is single-use; keep it out of the address bar (and history) from now on.
    history.replaceState(null, '', '/signin')
    signInWithLink(token).then(() => location.replace('/')).catch(error => {
      const code = error instanceof ApiFailure ? error.code : 'offline'
      setProblem({ code, words: signInProblem(code) })
    })
  }, [token])
  if (problem === null) return <main class='fatal' aria-busy='true' data-testid='signing-in'><p>Signing you in…</p></main>
  return (
    <main class='fatal' data-testid='signin-problem' data-code={problem.code}>
      <h1>You are not signed in</h1>
      <p>{problem.words}</p>
      <p><a href='/'>Go to Mapline</a></p>
    </main>
  )
}

export function NoAccessPage ({ session }: { session: Session }) {
  return (
    <main class='fatal' data-testid='no-access'>
      <h1>You do not have access to this plan</h1>
      <p>You are signed in as {session.member.name} ({session.member.email}). Ask the plan’s owner to add you, or open the link you were sent.</p>
      <p><a href='/'>Your plans</a></p>
    </main>
  )
}

interface Column { key: string, label: string, sort?: SortKey, cell: (s: Summary) => preact.ComponentChildren }

function PlanTable ({ plans, columns, caption, sort, onSort, testid }: { plans: Summary[], columns: Column[], caption: string, sort: { key: SortKey, desc: boolean }, onSort: (key: SortKey) => void, testid: string }) {
  return (
    <div class='table-wrap'>
      <table class='plans-table' data-testid={testid}>
        <caption>{caption}</caption>
        <thead>
          <tr>{columns.map(c => (
            <th scope='col' key={c.key} aria-sort={c.sort !== undefined && sort.key === c.sort ? (sort.desc ? 'descending' : 'ascending') : undefined}>
              {c.sort === undefined ? c.label : <button type='button' class='link' onClick={() => onSort(c.sort as SortKey)}>{c.label}{sort.key === c.sort ? (sort.desc ? ' ▼' : ' ▲') : ''}</button>}
            </th>
          ))}
          </tr>
        </thead>
        <tbody>
          {plans.map(s => <tr key={s.id} data-testid='plan-row' data-id={s.id} data-health={s.health}>{columns.map((c, i) => i === 0 ? <th scope='row' key={c.key} data-col={c.key}>{c.cell(s)}</th> : <td key={c.key} data-col={c.key}>{c.cell(s)}</td>)}</tr>)}
        </tbody>
      </table>
    </div>
  )
}

const COLUMNS: Record<string, Column> = {
  title: { key: 'title', label: 'Plan', sort: 'title', cell: s => <a href={planPath(s.id, null)}>{s.title ?? 'Untitled plan'}</a> },
  buyer: { key: 'buyer', label: 'Buyer', sort: 'buyer', cell: s => s.buyerOrg ?? '—' },
  owner: { key: 'owner', label: 'Owner', cell: s => s.owner?.name ?? '—' },
  goLive: { key: 'goLive', label: 'Go-live', sort: 'goLive', cell: s => s.goLive === null ? '—' : formatDate(s.goLive) },
  health: { key: 'health', label: 'Health', sort: 'health', cell: s => <strong class={`health-word health-${s.health}`} data-health={s.health}>{healthCellWords(s)}</strong> },
  overdue: { key: 'overdue', label: 'Overdue / at risk', sort: 'overdue', cell: s => `${s.overdue} / ${s.atRisk}` },
  slips14: { key: 'slips14', label: 'Slips (14 days)', sort: 'slips', cell: s => String(s.slips.last14Days) },
  slipsBySide: { key: 'slipsBySide', label: 'Slips buyer / seller', cell: s => `${s.slips.buyer} / ${s.slips.seller}` },
  drift: { key: 'drift', label: 'Go-live drift', sort: 'drift', cell: s => driftWords(s.goLiveDriftDays) },
  quiet: { key: 'quiet', label: 'Buyer activity', sort: 'quiet', cell: s => buyerActivityWords(s) },
  noOwner: { key: 'noOwner', label: 'Open steps without a buyer owner', cell: s => String(s.openStepsWithoutBuyerOwner) },
  audit: { key: 'audit', label: 'Audit', cell: s => <a href={planPath(s.id, null, true)} aria-label={`Audit of ${s.title ?? 'the plan'}`}>Audit</a> }
}

function usePlans (mine: boolean): { plans: Summary[] | null, problem: string | null } {
  const [plans, setPlans] = useState<Summary[] | null>(null)
  const [problem, setProblem] = useState<string | null>(null)
  useEffect(() => {
    listPlans(today(), mine).then(setPlans).catch(error => {
      setProblem(notAvailable(error) ? 'The list of plans is not available on this server.' : error instanceof ApiFailure && error.status === 403 ? 'Your role cannot see this list.' : 'The list of plans needs a connection.')
    })
  }, [mine])
  return { plans, problem }
}

function Filters ({ filter, onChange, pipeline }: { filter: PlanFilter, onChange: (f: PlanFilter) => void, pipeline: boolean }) {
  return (
    <div class='row filters' role='group' aria-label='Filter the plans'>
      <label class='field'><span class='field-label'>Find</span>
        <input type='search' value={filter.text} placeholder='Plan, buyer or owner' onInput={e => onChange({ ...filter, text: (e.currentTarget as HTMLInputElement).value })} />
      </label>
      <label class='field'><span class='field-label'>Health</span>
        <select value={filter.health} onChange={e => onChange({ ...filter, health: (e.currentTarget as HTMLSelectElement).value as PlanFilter['health'] })}>
          <option value=''>Any</option>
          {Object.entries(HEALTH_WORDS).map(([v, words]) => <option key={v} value={v}>{words}</option>)}
        </select>
      </label>
      {pipeline && (
        <>
          <label class='check'><input type='checkbox' checked={filter.quietOnly} onChange={e => onChange({ ...filter, quietOnly: (e.currentTarget as HTMLInputElement).checked })} /> Buyer gone quiet</label>
          <label class='check'><input type='checkbox' checked={filter.noBuyerOwnerOnly} onChange={e => onChange({ ...filter, noBuyerOwnerOnly: (e.currentTarget as HTMLInputElement).checked })} /> Steps without a buyer owner</label>
        </>
      )}
    </div>
  )
}

function useSort (initial: SortKey): [{ key: SortKey, desc: boolean }, (key: SortKey) => void] {
  const [sort, setSort] = useState({ key: initial, desc: false })
  return [sort, key => setSort(s => ({ key, desc: s.key === key ? !s.desc : false }))]
}

function Invite ({ planId, planTitle, goLive, sellerOrg, session }: { planId: string, planTitle: string, goLive: string | null, sellerOrg: string | null, session: Session }) {
  const api = useMemo(() => new Api(planId, null), [planId])
  const [name, setName] = useState('')
  const [email, setEmail] = useState('')
  const [role, setRole] = useState<'editor' | 'viewer'>('editor')
  const [invited, setInvited] = useState<Array<{ share: NewShare, name: string, email: string, role: 'editor' | 'viewer' }>>([])
  const [message, setMessage] = useState<string | null>(null)
  const send = async (e: Event) => {
    e.preventDefault()
    if (name.trim() === '') return
    try {
      const share = await api.createShare({ side: 'buyer', role, label: inviteLabel(name, email) })
      setInvited(list => [...list, { share, name: name.trim(), email: email.trim(), role }])
      setName(''); setEmail(''); setMessage(null)
    } catch (error) {
      setMessage(error instanceof ApiFailure && error.code === 'csrf' ? 'Your session needs a reload: reload the page and try again.' : error instanceof ApiFailure ? `The link was not made: ${error.message}` : 'Making a link needs a connection.')
    }
  }
  const copy = async (text: string, what: string) => {
    try { await navigator.clipboard.writeText(text); setMessage(`${what} copied.`) } catch { setMessage(`Copy did not work here: select the ${what.toLowerCase()} above and copy it.`) }
  }
  return (
    <section class='section' aria-labelledby='invite-title' data-testid='invite'>
      <h2 id='invite-title'>Invite the buyer’s people</h2>
      <p class='intro'>One link per person, so the plan’s history says who changed what. Send it yourself: copy the link, or an email text.</p>
      <form class='row invite-form' onSubmit={e => { void send(e) }}>
        <label class='field'><span class='field-label'>Name</span><input required value={name} onInput={e => setName((e.currentTarget as HTMLInputElement).value)} /></label>
        <label class='field'><span class='field-label'>Email</span><input type='email' value={email} onInput={e => setEmail((e.currentTarget as HTMLInputElement).value)} /></label>
        <label class='field'><span class='field-label'>They may</span>
          <select value={role} onChange={e => setRole((e.currentTarget as HTMLSelectElement).value as 'editor' | 'viewer')}>
            <option value='editor'>Edit</option>
            <option value='viewer'>View only</option>
          </select>
        </label>
        <button type='submit' class='primary'>Make their link</button>
      </form>
      {invited.length > 0 && (
        <ul class='invited' aria-label='Invited'>
          {invited.map(i => {
            const url = absoluteLink(i.share.url, location.origin)
            const mail = inviteEmail({ name: i.name, email: i.email, role: i.role, url, planTitle, goLive, from: session.member.name, sellerOrg })
            return (
              <li key={i.share.id} data-testid='invited' data-share={i.share.id}>
                <p><strong>{i.name}</strong>{i.email !== '' && ` (${i.email})`} — {i.role === 'editor' ? 'may edit' : 'may view'}</p>
                <input readOnly value={url} aria-label={`Link for ${i.name}`} data-testid='invite-url' onFocus={e => (e.currentTarget as HTMLInputElement).select()} />
                <div class='buttons'>
                  <button type='button' onClick={() => { void copy(url, 'Link') }}>Copy link</button>
                  <button type='button' onClick={() => { void copy(`${mail.subject}\n\n${mail.body}`, 'Email text') }}>Copy email text</button>
                  {i.email !== '' && <a class='button' href={mailto(i.email, mail)}>Open in my email</a>}
                </div>
              </li>
            )
          })}
        </ul>
      )}
      {message !== null && <p class='muted' role='status'>{message}</p>}
      <p><a class='button' href={planPath(planId, null)} data-testid='open-plan'>Open the plan</a></p>
    </section>
  )
}

function CreatePlan ({ session, onCreated }: { session: Session, onCreated: (plan: { id: string, title: string, goLive: string, sellerOrg: string }) => void }) {
  const [list, setList] = useState<Template[] | null>(null)
  const [template, setTemplate] = useState('enterprise')
  const [goLive, setGoLive] = useState('')
  const [title, setTitle] = useState('')
  const [buyerOrg, setBuyerOrg] = useState('')
  const [sellerOrg, setSellerOrg] = useState('')
  const [problem, setProblem] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  useEffect(() => { templates().then(setList).catch(() => setProblem('The templates need a connection.')) }, [])
  const submit = async (e: Event) => {
    e.preventDefault()
    const date = parseDate(goLive)
    if (date === null) { setProblem(`The go-live date must be a date, e.g. ${datePattern()}.`); return }
    setBusy(true)
    try {
      const created = await createPlan({ title: title.trim(), buyerOrg: buyerOrg.trim(), sellerOrg: sellerOrg.trim(), goLive: date, template })
      onCreated({ id: created.id, title: title.trim(), goLive: date, sellerOrg: sellerOrg.trim() })
    } catch (error) {
      setProblem(error instanceof ApiFailure ? (error.status === 403 || error.status === 401 ? 'Your session cannot create plans on this server.' : error.message) : 'Creating a plan needs a connection.')
    } finally { setBusy(false) }
  }
  const chosen = list?.find(t => t.id === template)
  return (
    <section class='section' aria-labelledby='create-title' data-testid='create-plan'>
      <h2 id='create-title'>Create a plan</h2>
      <p class='intro'>Start from a template: its steps are worked back from the go-live date the buyer named. You, {session.member.name}, will own the plan.</p>
      <form class='create-form' onSubmit={e => { void submit(e) }}>
        <label class='field'><span class='field-label'>Template</span>
          <select value={template} onChange={e => setTemplate((e.currentTarget as HTMLSelectElement).value)}>
            {(list ?? []).map(t => <option key={t.id} value={t.id}>{TEMPLATE_WORDS[t.id] ?? t.id}</option>)}
          </select>
        </label>
        {chosen?.description !== undefined && <p class='muted'>{chosen.description} {chosen.milestones.length} steps.</p>}
        <label class='field'><span class='field-label'>Go-live date ({datePattern()})</span><input required value={goLive} placeholder={datePattern()} onInput={e => setGoLive((e.currentTarget as HTMLInputElement).value)} /></label>
        <label class='field'><span class='field-label'>Title</span><input required value={title} placeholder='e.g. Northwind rollout' onInput={e => setTitle((e.currentTarget as HTMLInputElement).value)} /></label>
        <label class='field'><span class='field-label'>Buyer organisation</span><input required value={buyerOrg} onInput={e => setBuyerOrg((e.currentTarget as HTMLInputElement).value)} /></label>
        <label class='field'><span class='field-label'>Seller organisation</span><input required value={sellerOrg} onInput={e => setSellerOrg((e.currentTarget as HTMLInputElement).value)} /></label>
        {problem !== null && <p class='banner warn' role='alert'>{problem}</p>}
        <button type='submit' class='primary' disabled={busy || list === null}>Create the plan</button>
      </form>
    </section>
  )
}

const TEMPLATE_WORDS: Record<string, string> = { enterprise: 'Enterprise (four months)', 'mid-market': 'Mid-market (six weeks)', 'renewal-expansion': 'Renewal and expansion' }

export function HomePage ({ session }: { session: Session }) {
  setCsrfToken(session.csrfToken)
  const { plans, problem } = usePlans(true)
  const [filter, setFilter] = useState<PlanFilter>(ALL_PLANS)
  const [sort, onSort] = useSort('goLive')
  const [creating, setCreating] = useState(false)
  const [created, setCreated] = useState<{ id: string, title: string, goLive: string, sellerOrg: string } | null>(null)
  const rows = plans === null ? [] : sortPlans(filterPlans(plans, filter), sort.key, sort.desc)
  return (
    <>
      <TopBar session={session} title='My plans' detail={`Signed in as ${session.member.name} (${session.member.email})`} />
      <main data-testid='home'>
        {created !== null
          ? <Invite planId={created.id} planTitle={created.title} goLive={created.goLive} sellerOrg={created.sellerOrg} session={session} />
          : creating
            ? <CreatePlan session={session} onCreated={setCreated} />
            : <p><button type='button' class='primary' onClick={() => setCreating(true)}>Create a plan</button></p>}
        <section class='section' aria-labelledby='plans-title'>
          <h2 id='plans-title'>Plans you own or work on</h2>
          {problem !== null && <p class='muted' data-testid='plans-problem'>{problem}</p>}
          {plans !== null && plans.length === 0 && <p class='muted' data-testid='no-plans'>No plans yet: create one.</p>}
          {plans !== null && plans.length > 0 && (
            <>
              <Filters filter={filter} onChange={setFilter} pipeline={false} />
              <PlanTable testid='my-plans' caption={`${rows.length} of ${plans.length} plans`} plans={rows} sort={sort} onSort={onSort}
                columns={[COLUMNS.title, COLUMNS.buyer, COLUMNS.goLive, COLUMNS.health, COLUMNS.overdue, COLUMNS.slips14, COLUMNS.slipsBySide, COLUMNS.quiet]} />
            </>
          )}
        </section>
      </main>
    </>
  )
}

export function PipelinePage ({ session }: { session: Session }) {
  setCsrfToken(session.csrfToken)
  const manager = session.member.role === 'manager' || session.member.role === 'admin'
  const { plans, problem } = usePlans(false)
  const [filter, setFilter] = useState<PlanFilter>(ALL_PLANS)
  const [sort, onSort] = useSort('health')
  const rows = plans === null ? [] : sortPlans(filterPlans(plans, filter), sort.key, sort.desc)
  const totals = pipelineTotals(rows)
  return (
    <>
      <TopBar session={session} title='Pipeline' detail='Every plan: health, go-live drift, slips by side, quiet buyers.' />
      <main data-testid='pipeline'>
        {!manager && <p class='banner' role='note'>The pipeline is for managers: you see the plans you work on.</p>}
        {problem !== null && <p class='muted' data-testid='plans-problem'>{problem}</p>}
        {plans !== null && (
          <section class='section' aria-labelledby='pipeline-title'>
            <h2 id='pipeline-title'>Plans</h2>
            <p data-testid='pipeline-totals'>{totals.plans} plans · {totals.offTrack} off track · {totals.atRisk} at risk · {totals.quiet} with a quiet buyer · {totals.noBuyerOwner} with steps no buyer owns · slips: {totals.slipsBuyer} by buyers, {totals.slipsSeller} by sellers</p>
            <p><a class='button' href={`/api/plans.csv?today=${today()}`} download='pipeline.csv'>Download CSV</a></p>
            <Filters filter={filter} onChange={setFilter} pipeline />
            <PlanTable testid='pipeline-table' caption={`${rows.length} of ${plans.length} plans`} plans={rows} sort={sort} onSort={onSort}
              columns={[COLUMNS.title, COLUMNS.owner, COLUMNS.health, COLUMNS.goLive, COLUMNS.drift, COLUMNS.slipsBySide, COLUMNS.quiet, COLUMNS.noOwner, COLUMNS.audit]} />
          </section>
        )}
      </main>
    </>
  )
}
