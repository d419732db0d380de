// The plan's sections, each editable where the link allows.

import type { ComponentChildren } from 'preact'
import { useState } from 'preact/hooks'
import { usePage, type PageContext, type PendingMove } from './context'
import { DateField, ProseField, SelectField, TextField } from './fields'
import * as edit from '../edits'
import { byWorkstream, ownerName, slipSummary, type Entry, type Milestone } from '../plan-view'
import {
  ENGAGEMENTS, LEVELS, MILESTONE_SIDES, POWERS, PRIORITIES, RISK_KINDS, RISK_STATUSES, ROLES, SIDES,
  STATUSES, WORKSTREAMS, wordFor, type Collection
} from '../schema'
import { daysBetween, formatDate, isDate, relativeDays, signedDays, timeAgo } from '../dates'
import { milestoneStates, type MilestoneState } from '../timeline'
import { personWithSide } from '../audit'
import { ConflictBanners } from './history'

export function Section ({ id, title, intro, children }: { id: string, title: string, intro?: string, children: ComponentChildren }) {
  return (
    <section id={id} aria-labelledby={`${id}-title`} class='section'>
      <h2 id={`${id}-title`}>{title}</h2>
      {intro !== undefined && <p class='intro'>{intro}</p>}
      {children}
    </section>
  )
}

function EntryActions ({ collection, entry, siblings, noun }: { collection: Collection, entry: Entry, siblings: Entry[], noun: string }) {
  const { doc, readOnly } = usePage()
  if (readOnly) return null
  const name = entry.text.title ?? entry.text.name ?? entry.text.text ?? noun
  return (
    <div class='entry-actions'>
      <button type='button' class='icon' aria-label={`Move ${name} up`} onClick={() => edit.moveEntry(doc, collection, entry.id, siblings, -1)}>↑</button>
      <button type='button' class='icon' aria-label={`Move ${name} down`} onClick={() => edit.moveEntry(doc, collection, entry.id, siblings, 1)}>↓</button>
      <button
        type='button'
        class='icon danger'
        aria-label={`Remove ${name}`}
        onClick={() => { if (confirm(`Remove “${name}” from the plan?`)) edit.deleteEntry(doc, collection, entry.id) }}
      >✕
      </button>
    </div>
  )
}

type Bound = { field: string, value: string | null, onCommit: (value: string) => void }

/** The props that bind a field to one field of a collection entry: its presence key, its
 * value, and the write. */
function binder (doc: PageContext['doc'], collection: Collection, entry: Entry): (field: string) => Bound {
  return field => ({
    field: `${collection}.${entry.id}.${field}`,
    value: entry.text[field] ?? null,
    onCommit: value => edit.setEntryField(doc, collection, entry.id, field, value)
  })
}

type ProseBound = { doc: PageContext['doc'], locate: edit.Locate, name: string, field: string }

/** The props that bind a prose field (a `Y.Text`) of a collection entry. */
function proseBinder (doc: PageContext['doc'], collection: Collection, entry: Entry): (field: string) => ProseBound {
  const locate = edit.entryLocate(doc, collection, entry.id)
  return field => ({ doc, locate, name: field, field: `${collection}.${entry.id}.${field}` })
}

/** The props that bind a prose field of `meta` or `success`. */
function rootProse (doc: PageContext['doc'], root: 'meta' | 'success', field: string): ProseBound {
  return { doc, locate: edit.rootLocate(doc, root), name: field, field: `${root}.${field}` }
}

/** A collection shown as cards, each with its own fields, reorder and remove; plus "Add". */
function CardList ({ collection, entries, noun, addLabel, newEntry, cardClass, card }: {
  collection: Collection
  entries: Entry[]
  noun: string
  addLabel: string
  newEntry: Record<string, string>
  cardClass?: (entry: Entry) => string
  card: (b: (field: string) => Bound, name: string, entry: Entry, p: (field: string) => ProseBound) => ComponentChildren
}) {
  const { doc } = usePage()
  return (
    <>
      <ul class='cards'>
        {entries.map(entry => (
          <li class={`card ${cardClass?.(entry) ?? ''}`} key={entry.id}>
            {card(binder(doc, collection, entry), entry.text.name ?? entry.text.text ?? noun, entry, proseBinder(doc, collection, entry))}
            <EntryActions collection={collection} entry={entry} siblings={entries} noun={noun} />
          </li>
        ))}
      </ul>
      <AddButton label={addLabel} onAdd={() => edit.addEntry(doc, collection, newEntry, entries)} />
    </>
  )
}

function AddButton ({ label, onAdd }: { label: string, onAdd: () => void }) {
  const { readOnly } = usePage()
  if (readOnly) return null
  return <button type='button' class='add' onClick={onAdd}>+ {label}</button>
}

/** Objective, go-live and why, cost of inaction, success metrics. */
export function WhySection () {
  const { doc, plan, today } = usePage()
  const meta = plan.meta
  const setMeta = (field: string) => (value: string) => edit.setRootField(doc, 'meta', field, value)
  const countdown = daysBetween(today, meta.goLive)
  const step = goLiveStep(plan)
  const stepTitle = step?.text.title ?? 'Go live'
  return (
    <Section id='why' title="Why we're doing this" intro='The outcome in the buyer’s words, the date it matters by, and what waiting costs.'>
      <div class='grid two'>
        <ProseField label='Objective' {...rootProse(doc, 'meta', 'objective')} multiline placeholder='What the buyer wants to achieve' />
        <div class='golive'>
          <DateField
            label='Go-live date'
            field='meta.goLive'
            subject='Go-live'
            value={meta.goLive}
            onSet={setMeta('goLive')}
            onMove={(to, reason) => edit.moveGoLive(doc, to, reason)}
            alsoMove={step === undefined
              ? undefined
              : {
                  subject: stepTitle,
                  from: isDate(step.text.due) ? step.text.due : null,
                  words: `Also move the go-live step “${stepTitle}”${isDate(step.text.due) ? ` (due ${formatDate(step.text.due)})` : ''}`,
                  checked: step.text.due === meta.goLive || !isDate(step.text.due),
                  move: (to, reason) => { if (step.text.due !== to) edit.moveDue(doc, step.id, to, reason) }
                }}
          >
            {countdown !== null && <span class='hint'>{relativeDays(countdown)}</span>}
          </DateField>
          <ProseField label='Why this date' {...rootProse(doc, 'meta', 'goLiveReason')} multiline placeholder='The business reason behind go-live' />
        </div>
        <ProseField label='Cost of doing nothing' {...rootProse(doc, 'meta', 'costOfInaction')} multiline placeholder='What each month of delay costs' />
      </div>
      <ConflictBanners entity='meta' entityId={null} subject='Go-live' />
      <h3>How we'll measure it</h3>
      <div class='rows' role='list' aria-label='Success metrics'>
        {plan.objectives.map(o => { const b = binder(doc, 'objectives', o); const p = proseBinder(doc, 'objectives', o); return (
          <div class='row metric' role='listitem' key={o.id}>
            <ProseField label='Goal' hideLabel {...p('text')} placeholder='Goal' />
            <ProseField label='Metric' hideLabel {...p('metric')} placeholder='Metric' />
            <div class='from-to'>
              <TextField label='Today' hideLabel {...b('baseline')} placeholder='Today' />
              <span aria-hidden='true'>→</span>
              <TextField label='Target' hideLabel {...b('target')} placeholder='Target' />
            </div>
            <EntryActions collection='objectives' entry={o} siblings={plan.objectives} noun='metric' />
          </div>
        ) })}
      </div>
      <AddButton label='Add a metric' onAdd={() => edit.addEntry(doc, 'objectives', { text: 'New goal' }, plan.objectives)} />
    </Section>
  )
}

/** The step that is the go-live itself: the templates' `ms-go-live` (due on go-live, 0 days
 * before it), else a step titled "Go live" / "Go-live". */
export function goLiveStep (plan: PageContext['plan']): Milestone | undefined {
  return plan.milestones.find(m => m.id === 'ms-go-live') ??
    plan.milestones.find(m => /^\s*go[\s-]?live\s*$/i.test(m.text.title ?? ''))
}

/** What moving `m` to `to` puts out of order: a step that waits for it and would now be due
 * before it, or a step it waits for that would now be due after it. */
export function dependencyWarnings (plan: PageContext['plan'], m: Milestone, to: string | null): string[] {
  if (!isDate(to)) return []
  const warnings: string[] = []
  for (const other of plan.milestones) {
    if (other.id === m.id || !isDate(other.text.due)) continue
    const name = other.text.title ?? 'Untitled step'
    if (other.dependsOn.includes(m.id) && other.text.due < to) {
      warnings.push(`${name} waits for this step and is due ${formatDate(other.text.due)}; moving this to ${formatDate(to)} puts it after.`)
    } else if (m.dependsOn.includes(other.id) && other.text.due > to) {
      warnings.push(`This step waits for ${name}, which is due ${formatDate(other.text.due)}; moving this to ${formatDate(to)} puts it before.`)
    }
  }
  return warnings
}

const STATE_WORDS: Record<MilestoneState, string> = {
  done: 'Done', cancelled: 'Cancelled', overdue: 'Overdue', at_risk: 'At risk', open: 'On track', undated: 'No date yet'
}

function MilestoneRow ({ m, siblings, states }: { m: Milestone, siblings: Milestone[], states: Map<string, MilestoneState> }) {
  const { doc, plan, slips, readOnly } = usePage()
  const b = binder(doc, 'milestones', m)
  const p = proseBinder(doc, 'milestones', m)
  const set = (field: string) => b(field).onCommit
  const title = m.text.title ?? 'Untitled step'
  const state = states.get(m.id) ?? 'open'
  const moved = slipSummary(slips, m.id)
  const others = plan.milestones.filter(x => x.id !== m.id && !m.dependsOn.includes(x.id))
  const owners = plan.stakeholders.filter(s => s.text.name !== null)
  return (
    <li class={`milestone state-${state}`} data-milestone={m.id}>
      <div class='milestone-head'>
        <ProseField label='Step' ariaLabel={`Step: ${title}`} hideLabel {...p('title')} class='title-field' />
        <span class={`badge state-${state}`}>{STATE_WORDS[state]}</span>
        {moved.count > 0 && (
          <span class='badge moved' data-testid='moved' title='How often and how far this date moved'>
            moved {moved.count}× ({signedDays(moved.days)})
          </span>
        )}
      </div>
      <div class='milestone-fields'>
        <SelectField label='Side' ariaLabel={`Side for ${title}`} {...b('side')} options={MILESTONE_SIDES} />
        <label class='field'>
          <span class='field-label'>Owner</span>
          <input
            aria-label={`Owner of ${title}`}
            list='stakeholder-names'
            value={ownerName(plan, m.text.owner)}
            readOnly={readOnly}
            onChange={e => {
              const text = (e.currentTarget as HTMLInputElement).value.trim()
              const person = owners.find(s => s.text.name === text)
              set('owner')(person?.id ?? text)
            }}
          />
        </label>
        <DateField
          label='Due' ariaLabel={`Due date of ${title}`}
          field={`milestones.${m.id}.due`}
          subject={title}
          value={m.text.due}
          onSet={set('due')}
          onMove={(to, reason) => edit.moveDue(doc, m.id, to, reason)}
          warn={to => dependencyWarnings(plan, m, to)}
        />
        <SelectField label='Status' ariaLabel={`Status of ${title}`} {...b('status')} options={STATUSES} empty='Not started' />
      </div>
      <ConflictBanners entity='milestones' entityId={m.id} subject={title} />
      <div class='deps' aria-label={`What ${title} waits for`}>
        <span class='field-label'>Waits for</span>
        {m.dependsOn.length === 0 && <span class='muted'>nothing</span>}
        {m.dependsOn.map(d => {
          const dep = plan.milestones.find(x => x.id === d)
          const depTitle = dep?.text.title ?? d
          return (
            <span class='chip' key={d}>
              {depTitle}
              {!readOnly && <button type='button' class='icon' aria-label={`${title} no longer waits for ${depTitle}`} onClick={() => edit.removeDependency(doc, m.id, d)}>✕</button>}
            </span>
          )
        })}
        {!readOnly && others.length > 0 && (
          <select aria-label={`Add a step ${title} waits for`} value='' onChange={e => { const v = (e.currentTarget as HTMLSelectElement).value; if (v !== '') edit.addDependency(doc, m.id, v) }}>
            <option value=''>+ waits for…</option>
            {others.map(o => <option key={o.id} value={o.id}>{o.text.title ?? o.id}</option>)}
          </select>
        )}
      </div>
      <ProseField label='Notes' ariaLabel={`Notes on ${title}`} {...p('notes')} multiline placeholder='Notes' />
      {m.text.slipReason && <p class='slip-reason'><strong>Last date change:</strong> {m.text.slipReason}</p>}
      <EntryActions collection='milestones' entry={m} siblings={siblings} noun='step' />
    </li>
  )
}

export function StepsSection () {
  const { doc, plan, today, readOnly } = usePage()
  const states = milestoneStates(plan, today)
  const groups = byWorkstream(plan.milestones, WORKSTREAMS.map(([v]) => v))
  const [workstream, setWorkstream] = useState('')
  return (
    <Section id='steps' title='Plan steps' intro='Every step from here to go-live, who owns it, and when it is due. Steps wait for the ones they depend on.'>
      <datalist id='stakeholder-names'>
        {plan.stakeholders.map(s => <option key={s.id} value={s.text.name ?? ''} />)}
      </datalist>
      {groups.map(([name, milestones]) => (
        <div class='workstream' key={name}>
          <h3>{wordFor(WORKSTREAMS, name)}</h3>
          <ul class='milestones'>
            {milestones.map(m => <MilestoneRow key={m.id} m={m} siblings={plan.milestones} states={states} />)}
          </ul>
          <AddButton
            label={`Add a step to ${wordFor(WORKSTREAMS, name)}`}
            onAdd={() => edit.addEntry(doc, 'milestones', { title: 'New step', workstream: name, status: 'not_started' }, plan.milestones, milestones[milestones.length - 1]?.id)}
          />
        </div>
      ))}
      {!readOnly && (
        <form class='inline-form' onSubmit={e => {
          e.preventDefault()
          const name = workstream.trim()
          if (name === '') return
          const known = WORKSTREAMS.find(([, words]) => words.toLowerCase() === name.toLowerCase())
          edit.addEntry(doc, 'milestones', { title: 'New step', workstream: known?.[0] ?? name, status: 'not_started' }, plan.milestones)
          setWorkstream('')
        }}
        >
          <label class='field'>
            <span class='field-label'>New workstream</span>
            <input aria-label='New workstream' value={workstream} onInput={e => setWorkstream((e.currentTarget as HTMLInputElement).value)} placeholder='e.g. Data migration' />
          </label>
          <button type='submit'>Add workstream</button>
        </form>
      )}
    </Section>
  )
}

/** The seller's judgments of a person, from the internal document: shown to sellers only (a
 * buyer's page never opens that document). */
function Judgments ({ id, name }: { id: string, name: string }) {
  const { internal, judgments } = usePage()
  if (internal === null) return null
  const mine = judgments.get(id)
  return (
    <div class='judgments' data-testid='judgments'>
      <p class='field-label'>Seller only: not shown to the buyer</p>
      <div class='grid two'>
        <SelectField label='Say in the decision' ariaLabel={`Say in the decision of ${name}`} field={`internal.${id}.power`} value={mine?.power ?? null} options={POWERS} onCommit={v => internal.setJudgment(id, 'power', v)} />
        <SelectField label='Engagement' ariaLabel={`Engagement of ${name}`} field={`internal.${id}.engagement`} value={mine?.engagement ?? null} options={ENGAGEMENTS} onCommit={v => internal.setJudgment(id, 'engagement', v)} />
      </div>
      <ProseField label='Private notes' ariaLabel={`Private notes on ${name}`} doc={internal.doc} locate={internal.locate(id)} name='notes' field={`internal.${id}.notes`} multiline />
    </div>
  )
}

export function PeopleSection () {
  const { plan } = usePage()
  return (
    <Section id='people' title="Who's involved" intro='Everyone who touches the decision, on both sides.'>
      <CardList
        collection='stakeholders' entries={plan.stakeholders} noun='person' addLabel='Add a person'
        newEntry={{ name: 'New person' }}
        card={(b, name, entry, p) => (
          <>
            <TextField label='Name' {...b('name')} />
            <ProseField label='Job title' ariaLabel={`Job title of ${name}`} {...p('title')} />
            <div class='grid two'>
              <SelectField label='Side' ariaLabel={`Side of ${name}`} {...b('side')} options={SIDES} />
              <SelectField label='Role' ariaLabel={`Role of ${name}`} {...b('role')} options={ROLES} />
            </div>
            <ProseField label='Notes' ariaLabel={`Notes on ${name}`} {...p('notes')} multiline />
            <Judgments id={entry.id} name={name} />
          </>
        )}
      />
    </Section>
  )
}

export function CriteriaSection () {
  const { plan } = usePage()
  return (
    <Section id='criteria' title='What matters in the decision' intro='What the buying team said matters, in their own words.'>
      <CardList
        collection='criteria' entries={plan.criteria} noun='criterion' addLabel='Add a criterion'
        newEntry={{ text: 'New criterion', priority: 'should' }}
        card={(b, name, _entry, p) => (
          <>
            <ProseField label='Criterion' {...p('text')} />
            <ProseField label='In their words' ariaLabel={`In their words (${name})`} {...p('quote')} multiline class='quote' />
            <div class='grid two'>
              <TextField label='Said where' ariaLabel={`Said where (${name})`} {...b('source')} />
              <SelectField label='Priority' ariaLabel={`Priority of ${name}`} {...b('priority')} options={PRIORITIES} />
            </div>
          </>
        )}
      />
    </Section>
  )
}

export function RisksSection () {
  const { plan } = usePage()
  return (
    <Section id='risks' title='Risks and open questions' intro='What could stop or delay this, and what we are doing about it.'>
      <CardList
        collection='risks' entries={plan.risks} noun='risk' addLabel='Add a risk'
        newEntry={{ text: 'New risk', status: 'open' }}
        cardClass={r => `risk risk-${r.text.status ?? 'open'}`}
        card={(b, name, r, p) => (
          <>
            <ProseField label='Risk' {...p('text')} multiline />
            <div class='grid four'>
              <SelectField label='Kind' ariaLabel={`Kind of ${name}`} {...b('kind')} options={RISK_KINDS} />
              <SelectField label='Likelihood' ariaLabel={`Likelihood of ${name}`} {...b('likelihood')} options={LEVELS} />
              <SelectField label='Impact' ariaLabel={`Impact of ${name}`} {...b('impact')} options={LEVELS} />
              <SelectField label='Status' ariaLabel={`Status of ${name}`} {...b('status')} options={RISK_STATUSES} />
            </div>
            <TextField label='Owner' ariaLabel={`Owner of ${name}`} {...b('owner')} value={ownerName(plan, r.text.owner)} />
            <ProseField label="What we're doing" ariaLabel={`What we're doing about ${name}`} {...p('mitigation')} multiline />
          </>
        )}
      />
    </Section>
  )
}

export function SuccessSection () {
  const { doc } = usePage()
  return (
    <Section id='success' title='What success looks like' intro='The outcome both teams are aiming for, beyond the signature.'>
      <div class='grid two'>
        <ProseField label='Success definition' {...rootProse(doc, 'success', 'definition')} multiline />
        <ProseField label='How we will know' {...rootProse(doc, 'success', 'metrics')} multiline />
      </div>
    </Section>
  )
}

export function SlipsSection ({ loaded, pending = [] }: { loaded: boolean, pending?: PendingMove[] }) {
  const { slips } = usePage()
  const newest = [...slips].reverse()
  const waiting = [...pending].reverse()
  return (
    <Section id='changes' title='Date changes' intro='Every moved date, who moved it, and why. This record cannot be edited.'>
      {!loaded && <p class='muted'>The date-change history needs a connection.</p>}
      {loaded && newest.length === 0 && waiting.length === 0 && <p class='muted'>No date has moved yet.</p>}
      <ol class='slips' aria-label='Date changes, newest first'>
        {waiting.map(p => (
          <li key={`pending-${p.at}-${p.subject}`} class='slip pending' data-testid='pending-slip'>
            <div>
              <strong>{p.subject}</strong>
              {': '}{p.from === null ? '' : `${formatDate(p.from)} → `}{p.to === null ? 'no date' : formatDate(p.to)}{' '}
              {p.from !== null && p.to !== null && <span class={`badge ${p.to > p.from ? 'later' : 'earlier'}`}>{signedDays(daysBetween(p.from, p.to))}</span>}{' '}
              <span class='badge pending'>Not saved yet</span>
            </div>
            <div class='muted'><q>{p.reason}</q> — you, on this device; it is saved when the plan syncs</div>
          </li>
        ))}
        {newest.map(s => (
          <li key={`${s.seq}-${s.milestoneId ?? 'go_live'}`} class='slip' data-testid='slip'>
            <div>
              <strong>{s.subject === 'go_live' ? 'Go-live' : (s.title ?? s.milestoneId)}</strong>
              {': '}{formatDate(s.from)} → {s.to === null ? 'no date' : formatDate(s.to)}{' '}
              <span class={`badge ${s.days !== null && s.days > 0 ? 'later' : 'earlier'}`}>{signedDays(s.days)}</span>
            </div>
            <div class='muted'>
              {s.reason !== null ? <q>{s.reason}</q> : <em>no reason given</em>} — {personWithSide(s.who)}, <time dateTime={s.at} title={s.at}>{timeAgo(s.at)}</time>
            </div>
          </li>
        ))}
      </ol>
    </Section>
  )
}
