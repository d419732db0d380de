// "Internal — seller only": the seller's forecast of the deal and qualification notes, from the
// internal document (internal.ts), which a buyer link never opens. The judgments of each person
// stay with the person (People).

import { useEffect, useState } from 'preact/hooks'
import { usePage } from './context'
import { Section } from './sections'
import { ProseField, SelectField, TextField } from './fields'
import { FORECAST_CATEGORIES, INTERNAL_QUALIFICATION, wordFor } from '../schema'
import { formatAmount, parseAmount, type Forecast, type InternalSession } from '../internal'
import { datePattern, formatDate, parseDate } from '../dates'

function useForecast (internal: InternalSession): Forecast {
  const [forecast, setForecast] = useState(() => internal.forecast())
  useEffect(() => {
    const changed = () => setForecast(internal.forecast())
    internal.doc.on('update', changed)
    changed()
    return () => internal.doc.off('update', changed)
  }, [internal])
  return forecast
}

function Fields ({ internal }: { internal: InternalSession }) {
  const forecast = useForecast(internal)
  const [problem, setProblem] = useState<string | null>(null)
  // Shown and read back with the same (the browser's) separators: de-DE shows 250.000 and reads
  // it as 250000, not 250.
  const amount = forecast.amount === null ? null : formatAmount(forecast.amount)
  const example = formatAmount(120000)
  return (
    <>
      <div class='row internal-forecast' data-testid='forecast'>
        <SelectField label='Forecast category' field='internal.forecast.category' value={forecast.category} options={FORECAST_CATEGORIES} onCommit={v => internal.setForecast('category', v === '' ? null : v)} />
        <TextField
          label='Amount' field='internal.forecast.amount' value={amount} placeholder={`e.g. ${example}`} onCommit={text => {
            if (text === '') { setProblem(null); internal.setForecast('amount', null); return }
            const n = parseAmount(text)
            if (n === null) { setProblem(`The amount must be a number, e.g. ${example}.`); return }
            setProblem(null)
            internal.setForecast('amount', n)
          }}
        />
        <TextField
          label='Expected close date' field='internal.forecast.closeDate' value={forecast.closeDate === null ? null : formatDate(forecast.closeDate)} placeholder={datePattern()} onCommit={text => {
            if (text === '') { setProblem(null); internal.setForecast('closeDate', null); return }
            const iso = parseDate(text)
            if (iso === null) { setProblem(`The close date must be a date, e.g. ${datePattern()}.`); return }
            setProblem(null)
            internal.setForecast('closeDate', iso)
          }}
        />
      </div>
      {problem !== null && <p class='banner warn' role='alert'>{problem}</p>}
      <ProseField label='Qualification notes' doc={internal.doc} locate={internal.qualification()} name='text' field='internal.qualification' multiline placeholder='Budget, authority, need, timing, competition…' />
    </>
  )
}

/** The same as text, for the read view (no form field). */
function Words ({ internal }: { internal: InternalSession }) {
  const forecast = useForecast(internal)
  const notes = internal.doc.getText(INTERNAL_QUALIFICATION).toString()
  return (
    <dl class='internal-words' data-testid='forecast'>
      <dt>Forecast category</dt><dd>{forecast.category === null ? 'not set' : wordFor(FORECAST_CATEGORIES, forecast.category)}</dd>
      <dt>Amount</dt><dd>{forecast.amount === null ? 'not set' : formatAmount(forecast.amount)}</dd>
      <dt>Expected close date</dt><dd>{forecast.closeDate === null ? 'not set' : formatDate(forecast.closeDate)}</dd>
      <dt>Qualification notes</dt><dd class='prose'>{notes === '' ? 'none yet' : notes}</dd>
    </dl>
  )
}

/** Shown only where the internal document is open (seller links and members); as text when
 * `reading` (the read view has no form field). */
export function InternalSection ({ reading = false }: { reading?: boolean }) {
  const { internal } = usePage()
  if (internal === null) return null
  // Never printed: a PDF of the plan is what a seller sends the buyer.
  return (
    <div class='seller-only'>
    <Section id='internal' title='Internal — seller only' intro='Your forecast and qualification notes. Buyers never see this section, nor your judgments of their people.'>
      {reading ? <Words internal={internal} /> : <Fields internal={internal} />}
    </Section>
    </div>
  )
}
