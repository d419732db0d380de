// The read view: the plan as a document a CFO reads, prints or saves as PDF. Nothing in it is a
// form field; every value is text. Viewer links always get it; editors switch to it (see main).

import { usePage } from './context'
import { Section, SlipsSection } from './sections'
import type { Health } from '../api'
import { byWorkstream, ownerName, type Milestone } from '../plan-view'
import {
  ENGAGEMENTS, LEVELS, MILESTONE_SIDES, POWERS, PRIORITIES, RISK_KINDS, RISK_STATUSES, ROLES, SIDES,
  STATUSES, WORKSTREAMS, wordFor
} from '../schema'
import { dayNumber, daysBetween, formatDate, relativeDays } from '../dates'
import { count, healthSentences } from '../health-words'
import { milestoneStates, type MilestoneState } from '../timeline'
import '../read.css'

const STATE_WORDS: Record<MilestoneState, string> = {
  done: 'done', cancelled: 'cancelled', overdue: 'overdue', at_risk: 'at risk', open: 'on track', undated: 'no date yet'
}

function Summary () {
  const { plan, today } = usePage()
  const meta = plan.meta
  const countdown = daysBetween(today, meta.goLive)
  return (
    <Section id='why' title="Why we're doing this">
      <dl class='read-facts'>
        <dt>Go-live</dt>
        <dd data-testid='read-golive'>{meta.goLive === null ? 'Not set yet' : `${formatDate(meta.goLive)}${countdown !== null ? ` (${relativeDays(countdown)})` : ''}`}</dd>
        <dt>Why this date</dt>
        <dd class='read-text'>{meta.goLiveReason ?? '—'}</dd>
        <dt>Objective</dt>
        <dd class='read-text'>{meta.objective ?? '—'}</dd>
        <dt>Cost of doing nothing</dt>
        <dd class='read-text'>{meta.costOfInaction ?? '—'}</dd>
      </dl>
      {plan.objectives.length > 0 && (
        <table class='read-table'>
          <caption>How we'll measure it</caption>
          <thead><tr><th scope='col'>Goal</th><th scope='col'>Metric</th><th scope='col'>Today</th><th scope='col'>Target</th></tr></thead>
          <tbody>
            {plan.objectives.map(o => (
              <tr key={o.id}>
                <td data-label='Goal'>{o.text.text ?? ''}</td><td data-label='Metric'>{o.text.metric ?? ''}</td>
                <td data-label='Today'>{o.text.baseline ?? ''}</td><td data-label='Target'>{o.text.target ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  )
}

function HealthWords ({ health }: { health: Health | null }) {
  return (
    <Section id='health' title='How the plan is doing'>
      {health === null
        ? <p class='muted'>How the plan is doing needs a connection.</p>
        : <div class={`read-health verdict-${health.verdict}`} data-testid='read-health'>{healthSentences(health).map((s, i) => <p key={i}>{s}</p>)}</div>}
    </Section>
  )
}

/** The dated steps and go-live in date order, each with its date, title and state. */
function Timeline ({ states }: { states: Map<string, MilestoneState> }) {
  const { plan, today } = usePage()
  const dated = plan.milestones
    .filter(m => dayNumber(m.text.due) !== null)
    .map(m => ({ key: m.id, day: dayNumber(m.text.due) ?? 0, date: m.text.due, title: m.text.title ?? 'Untitled step', state: STATE_WORDS[states.get(m.id) ?? 'open'], goLive: false }))
  const goLive = dayNumber(plan.meta.goLive)
  if (goLive !== null) dated.push({ key: 'go-live', day: goLive, date: plan.meta.goLive, title: 'Go-live', state: '', goLive: true })
  const now = dayNumber(today)
  if (now !== null) dated.push({ key: 'today', day: now, date: today, title: 'Today', state: '', goLive: false })
  dated.sort((a, b) => a.day - b.day || (a.key === 'today' ? -1 : b.key === 'today' ? 1 : 0))
  const undated = plan.milestones.length - plan.milestones.filter(m => dayNumber(m.text.due) !== null).length
  return (
    <Section id='timeline' title='Timeline'>
      <ol class='read-timeline' aria-label='Dated steps in order, with today and go-live'>
        {dated.map(d => (
          <li key={d.key} class={d.goLive ? 'golive-point' : d.key === 'today' ? 'today-point' : `state-${d.state.replace(/ /g, '_')}`}>
            <time dateTime={d.date ?? undefined}>{formatDate(d.date)}</time>
            <span class='read-timeline-title'>{d.goLive || d.key === 'today' ? <strong>{d.title}</strong> : d.title}</span>
            {d.state !== '' && <span class='read-timeline-state'>{d.state}</span>}
          </li>
        ))}
      </ol>
      {undated > 0 && <p class='muted'>{count(undated, 'step')} without a date yet (listed under Plan steps).</p>}
    </Section>
  )
}

function stepStatus (m: Milestone, state: MilestoneState): string {
  const status = wordFor(STATUSES, m.text.status ?? 'not_started')
  return state === 'overdue' || state === 'at_risk' ? `${status} (${STATE_WORDS[state]})` : status
}

function Steps ({ states }: { states: Map<string, MilestoneState> }) {
  const { plan } = usePage()
  const groups = byWorkstream(plan.milestones, WORKSTREAMS.map(([v]) => v))
  return (
    <Section id='steps' title='Plan steps'>
      {groups.length === 0 && <p class='muted'>No steps yet.</p>}
      {groups.map(([name, milestones]) => (
        <table class='read-table steps-table' key={name}>
          <caption>{wordFor(WORKSTREAMS, name)}</caption>
          <thead><tr><th scope='col'>Step</th><th scope='col'>Side</th><th scope='col'>Owner</th><th scope='col'>Due</th><th scope='col'>Status</th><th scope='col'>Waits for</th></tr></thead>
          <tbody>
            {milestones.map(m => {
              const state = states.get(m.id) ?? 'open'
              const waits = m.dependsOn.map(d => plan.milestones.find(x => x.id === d)?.text.title ?? d)
              return (
                <tr key={m.id} data-step={m.id} class={`state-${state}`}>
                  <th scope='row' data-label='Step'>{m.text.title ?? 'Untitled step'}</th>
                  <td data-label='Side'>{wordFor(MILESTONE_SIDES, m.text.side)}</td>
                  <td data-label='Owner'>{ownerName(plan, m.text.owner)}</td>
                  <td data-label='Due'>{m.text.due === null ? 'no date' : formatDate(m.text.due)}</td>
                  <td data-label='Status'>{stepStatus(m, state)}</td>
                  <td data-label='Waits for'>{waits.length === 0 ? '—' : waits.join('; ')}</td>
                </tr>
              )
            })}
          </tbody>
        </table>
      ))}
    </Section>
  )
}

function People () {
  const { plan, internal, judgments } = usePage()
  // The seller's judgments: only in a seller's view (a buyer's page never has them).
  const seller = internal !== null
  return (
    <Section id='people' title="Who's involved">
      {plan.stakeholders.length === 0
        ? <p class='muted'>No one listed yet.</p>
        : (
          <table class='read-table'>
            <thead><tr><th scope='col'>Name</th><th scope='col'>Job title</th><th scope='col'>Side</th><th scope='col'>Role</th>{seller && <><th scope='col'>Say in the decision</th><th scope='col'>Engagement</th></>}</tr></thead>
            <tbody>
              {plan.stakeholders.map(s => (
                <tr key={s.id}>
                  <th scope='row' data-label='Name'>{s.text.name ?? ''}</th>
                  <td data-label='Job title'>{s.text.title ?? ''}</td>
                  <td data-label='Side'>{wordFor(SIDES, s.text.side)}</td>
                  <td data-label='Role'>{wordFor(ROLES, s.text.role)}</td>
                  {seller && <td data-label='Say'>{wordFor(POWERS, judgments.get(s.id)?.power ?? null)}</td>}
                  {seller && <td data-label='Engagement'>{wordFor(ENGAGEMENTS, judgments.get(s.id)?.engagement ?? null)}</td>}
                </tr>
              ))}
            </tbody>
          </table>
          )}
    </Section>
  )
}

function Criteria () {
  const { plan } = usePage()
  return (
    <Section id='criteria' title='What matters in the decision'>
      {plan.criteria.length === 0 && <p class='muted'>Nothing recorded yet.</p>}
      <ul class='read-list'>
        {plan.criteria.map(c => (
          <li key={c.id}>
            <strong>{c.text.text ?? ''}</strong>
            {c.text.priority != null && <span class='muted'> · {wordFor(PRIORITIES, c.text.priority)}</span>}
            {c.text.quote != null && c.text.quote !== '' && (
              <blockquote class='read-quote'>
                <p>“{c.text.quote}”</p>
                {c.text.source != null && c.text.source !== '' && <footer>— {c.text.source}</footer>}
              </blockquote>
            )}
          </li>
        ))}
      </ul>
    </Section>
  )
}

function Risks () {
  const { plan } = usePage()
  return (
    <Section id='risks' title='Risks and open questions'>
      {plan.risks.length === 0 && <p class='muted'>No risk recorded.</p>}
      <ul class='read-list'>
        {plan.risks.map(r => {
          const facts = [
            wordFor(RISK_KINDS, r.text.kind),
            r.text.likelihood != null ? `likelihood ${wordFor(LEVELS, r.text.likelihood).toLowerCase()}` : '',
            r.text.impact != null ? `impact ${wordFor(LEVELS, r.text.impact).toLowerCase()}` : '',
            wordFor(RISK_STATUSES, r.text.status ?? 'open'),
            r.text.owner != null ? `owner ${ownerName(plan, r.text.owner)}` : ''
          ].filter(f => f !== '')
          return (
            <li key={r.id}>
              <strong class='read-text'>{r.text.text ?? ''}</strong> <span class='muted'>({facts.join(', ')})</span>
              {r.text.mitigation != null && r.text.mitigation !== '' && <p class='read-text'>What we're doing: {r.text.mitigation}</p>}
            </li>
          )
        })}
      </ul>
    </Section>
  )
}

function Success () {
  const { plan } = usePage()
  return (
    <Section id='success' title='What success looks like'>
      <dl class='read-facts'>
        <dt>Success</dt><dd class='read-text'>{plan.success.definition ?? '—'}</dd>
        <dt>How we will know</dt><dd class='read-text'>{plan.success.metrics ?? '—'}</dd>
      </dl>
    </Section>
  )
}

export function ReadView ({ health, slipsLoaded }: { health: Health | null, slipsLoaded: boolean }) {
  const { plan, today } = usePage()
  const states = milestoneStates(plan, today)
  return (
    <div class='read-view' data-testid='read-view'>
      <Summary />
      <HealthWords health={health} />
      <Timeline states={states} />
      <Steps states={states} />
      <People />
      <Criteria />
      <Risks />
      <Success />
      <SlipsSection loaded={slipsLoaded} />
    </div>
  )
}
