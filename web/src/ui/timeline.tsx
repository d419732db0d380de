// The timeline: milestones on a date axis to go-live, one row per workstream.

import { useEffect, useRef, useState } from 'preact/hooks'
import { usePage } from './context'
import { layoutTimeline } from '../timeline'
import { WORKSTREAMS, wordFor } from '../schema'
import { formatDate } from '../dates'
import { Section } from './sections'

const STATE_LABEL: Record<string, string> = {
  done: 'done', cancelled: 'cancelled', overdue: 'overdue', at_risk: 'at risk', open: 'on track', undated: 'no date'
}

export function TimelineSection () {
  const { plan, today } = usePage()
  const box = useRef<HTMLDivElement>(null)
  const [width, setWidth] = useState(900)
  useEffect(() => {
    const element = box.current
    if (element === null) return
    const observer = new ResizeObserver(() => setWidth(Math.max(320, element.clientWidth)))
    observer.observe(element)
    return () => observer.disconnect()
  }, [])
  const layout = layoutTimeline(plan, today, width, WORKSTREAMS.map(([v]) => v))
  const focus = (id: string) => {
    const row = document.querySelector(`[data-milestone="${CSS.escape(id)}"]`)
    row?.scrollIntoView({ behavior: 'smooth', block: 'center' })
    row?.querySelector<HTMLElement>('input, select, textarea')?.focus({ preventScroll: true })
  }
  return (
    <Section id='timeline' title='Timeline' intro='Every dated step up to go-live. Red is overdue, amber is at risk; lines show what waits for what.'>
      <div class='timeline' ref={box}>
        {/* A group, not an img: an img's children are presentational, so the points' names
            would not reach a screen reader. */}
        <svg width={layout.width} height={layout.height} role='group' aria-label={`Timeline of ${layout.points.length} steps up to go-live on ${formatDate(plan.meta.goLive)}`}>
          <defs>
            <marker id='arrow' viewBox='0 0 6 6' refX='5' refY='3' markerWidth='6' markerHeight='6' orient='auto'>
              <path d='M0,0 L6,3 L0,6 z' class='arrow' />
            </marker>
          </defs>
          {layout.rows.map(r => (
            <g key={r.workstream}>
              <line x1={0} x2={layout.width} y1={r.y} y2={r.y} class='row-line' />
              <text x={4} y={r.y - 12} class='row-label'>{wordFor(WORKSTREAMS, r.workstream)}</text>
            </g>
          ))}
          {layout.ticks.map(t => (
            <g key={t.x}>
              <line x1={t.x} x2={t.x} y1={16} y2={layout.height} class='tick' />
              <text x={t.x + 3} y={12} class='tick-label'>{t.label}</text>
            </g>
          ))}
          {layout.links.map(l => {
            const mid = (l.x1 + l.x2) / 2
            return (
              <path key={`${l.from}-${l.to}`} d={`M${l.x1},${l.y1} C${mid},${l.y1} ${mid},${l.y2} ${l.x2},${l.y2}`} class={l.backwards ? 'link backwards' : 'link'} marker-end='url(#arrow)' />
            )
          })}
          {layout.today !== null && (
            <g><line x1={layout.today} x2={layout.today} y1={16} y2={layout.height} class='today' /><text x={layout.today + 3} y={layout.height - 4} class='today-label'>today</text></g>
          )}
          {layout.goLive !== null && (
            <g><line x1={layout.goLive} x2={layout.goLive} y1={16} y2={layout.height} class='golive-line' /><text x={layout.goLive - 4} y={layout.height - 4} class='golive-label' text-anchor='end'>go-live</text></g>
          )}
          {layout.points.map(p => (
            <g key={p.id} class={`point state-${p.state}`} tabIndex={0} role='button'
              aria-label={`${p.title}, due ${formatDate(p.due)}, ${STATE_LABEL[p.state]}`}
              onClick={() => focus(p.id)} onKeyDown={(e: KeyboardEvent) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); focus(p.id) } }}
            >
              <title>{`${p.title} — ${formatDate(p.due)} (${STATE_LABEL[p.state]})`}</title>
              {p.state === 'done' ? <rect x={p.x - 6} y={p.y - 6} width={12} height={12} rx={2} /> : <circle cx={p.x} cy={p.y} r={7} />}
            </g>
          ))}
        </svg>
        {layout.points.length === 0 && <p class='muted'>No step has a date yet.</p>}
      </div>
      <ul class='legend' aria-label='Legend'>
        <li><span class='dot state-overdue' /> overdue</li>
        <li><span class='dot state-at_risk' /> at risk (due within a week, blocked, or waiting on a later step)</li>
        <li><span class='dot state-open' /> on track</li>
        <li><span class='dot state-done square' /> done</li>
      </ul>
    </Section>
  )
}
