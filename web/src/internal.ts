// The seller's internal document (`/sync/{planId}/internal`, docs/schema.md): seller links and
// the admin only. The page opens it beside the plan for a seller link, with the same token and
// the same durability acknowledgements, to show and edit the seller's judgments of each
// stakeholder (`power`, `engagement`, private `notes`), the forecast (`forecast`: category,
// amount, expected close date) and the qualification notes (`qualification`, a root `Y.Text`).
// A buyer link never opens it. A signed-in member (no token) opens it with the session cookie.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as decoding from 'lib0/decoding'
import { INTERNAL_FORECAST, INTERNAL_QUALIFICATION, INTERNAL_STAKEHOLDERS } from './schema'
import { isDate } from './dates'
import { LOCAL, type Locate } from './edits'
import { textOf } from './plan-view'

const MESSAGE_DURABLE = 100
const MESSAGE_REFUSED = 101

/** The seller's judgments of one stakeholder (null: not set). */
export interface Judgment {
  power: string | null
  engagement: string | null
  notes: string | null
}

/** The seller's forecast of the deal (null: not set, or not of the right shape). */
export interface Forecast {
  category: string | null
  amount: number | null
  closeDate: string | null
}

/** The forecast as the internal document holds it: anything of the wrong shape reads as unset. */
export function readForecast (map: Y.Map<unknown>): Forecast {
  const category = map.get('category')
  const amount = map.get('amount')
  const closeDate = map.get('closeDate')
  return {
    category: typeof category === 'string' && category !== '' ? category : null,
    amount: typeof amount === 'number' && Number.isFinite(amount) ? amount : null,
    closeDate: isDate(closeDate) ? closeDate : null
  }
}

/** The separators of a locale's numbers (`undefined`: the browser's): group and decimal. */
function separators (locale?: string): { group: string, decimal: string } {
  const parts = new Intl.NumberFormat(locale).formatToParts(12345.6)
  return {
    group: parts.find(p => p.type === 'group')?.value ?? ',',
    decimal: parts.find(p => p.type === 'decimal')?.value ?? '.'
  }
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** An amount as the page shows it: the locale's decimal point and grouping, at most two decimals
 * ("250,000" in en-US, "250.000" in de-DE). `parseAmount` with the same locale reads it back. */
export function formatAmount (amount: number, locale?: string): string {
  return amount.toLocaleString(locale, { maximumFractionDigits: 2 })
}

/** An amount as typed, read with the locale's separators (`undefined`: the browser's): en-US
 * "250,000", "250000.50", "$ 1 200"; de-DE "250.000", "1.234,5". Grouping must be in threes
 * where it is used, so a decimal point of another locale ("250000.50" in de-DE) is refused
 * rather than read as a thousands separator. A non-negative number, or null. */
export function parseAmount (text: string, locale?: string): number | null {
  const { group, decimal } = separators(locale)
  // Spaces of every kind (some locales group with a narrow no-break space) and currency signs.
  const cleaned = text.replace(/[\s\u00a0\u202f$€£]/g, '')
  const g = group.trim() === '' ? null : escape(group)
  const d = escape(decimal)
  const whole = g === null ? '\\d+' : `(?:\\d{1,3}(?:${g}\\d{3})+|\\d+)`
  const match = new RegExp(`^(${whole})(?:${d}(\\d{1,2}))?$`).exec(cleaned)
  if (match === null) return null
  const digits = g === null ? match[1] : match[1].split(group).join('')
  return Number(`${digits}${match[2] === undefined ? '' : `.${match[2]}`}`)
}

export class InternalSession {
  readonly doc = new Y.Doc()
  readonly provider: WebsocketProvider
  private refusedListeners: Array<(reason: string) => void> = []

  constructor (readonly planId: string, token: string | null, origin: string = location.origin) {
    const wsOrigin = origin.replace(/^http/, 'ws')
    this.provider = new WebsocketProvider(`${wsOrigin}/sync`, `${planId}/internal`, this.doc, {
      params: token === null ? { acks: '1' } : { token, acks: '1' },
      connect: false,
      disableBc: true,
      maxBackoffTime: 5000
    })
    // The server's acknowledgements (docs/protocol.md): the plan's status pill speaks for the
    // page; here they only must not be taken for unknown messages.
    this.provider.messageHandlers[MESSAGE_DURABLE] = (_encoder, decoder) => {
      decoding.readVarUint(decoder)
      decoding.readVarUint8Array(decoder)
    }
    this.provider.messageHandlers[MESSAGE_REFUSED] = (_encoder, decoder) => {
      const reason = decoding.readVarString(decoder)
      for (const listener of this.refusedListeners) listener(reason)
    }
    // A link the server closes for good (4401) is ended by the plan's session: stop retrying.
    this.provider.on('connection-close', event => { if (event?.code === 4401 || event?.code === 4403) this.provider.disconnect() })
    addEventListener('online', this.goOnline)
    addEventListener('offline', this.goOffline)
  }

  start (): void {
    if (navigator.onLine) this.provider.connect()
  }

  onRefused (listener: (reason: string) => void): void {
    this.refusedListeners.push(listener)
  }

  private readonly goOnline = (): void => { this.provider.connect() }
  private readonly goOffline = (): void => { this.provider.disconnect() }

  private root (): Y.Map<unknown> {
    return this.doc.getMap<unknown>(INTERNAL_STAKEHOLDERS)
  }

  /** Every stakeholder's judgments, by stakeholder id. */
  judgments (): Map<string, Judgment> {
    const out = new Map<string, Judgment>()
    for (const [id, value] of this.root().entries()) {
      if (!(value instanceof Y.Map)) continue
      out.set(id, { power: textOf(value.get('power')), engagement: textOf(value.get('engagement')), notes: textOf(value.get('notes')) })
    }
    return out
  }

  forecast (): Forecast {
    return readForecast(this.doc.getMap<unknown>(INTERNAL_FORECAST))
  }

  /** Sets (or, with null, clears) one field of the forecast. */
  setForecast (field: keyof Forecast, value: string | number | null): void {
    this.doc.transact(() => {
      const map = this.doc.getMap<unknown>(INTERNAL_FORECAST)
      if (value === null || value === '') map.delete(field)
      else if (map.get(field) !== value) map.set(field, value)
    }, LOCAL)
  }

  /** The qualification notes: a root `Y.Text`, given to the prose field as a map holding it
   * under `text` (the field only reads it with `get`, and never replaces a `Y.Text`). */
  qualification (): Locate {
    const text = this.doc.getText(INTERNAL_QUALIFICATION)
    const holder = { get: (name: string) => name === 'text' ? text : undefined }
    return () => holder as unknown as Y.Map<unknown>
  }

  /** Where a stakeholder's judgments live; `create` makes the entry on its first write. */
  locate (stakeholderId: string): Locate {
    return create => {
      const root = this.root()
      const entry = root.get(stakeholderId)
      if (entry instanceof Y.Map) return entry
      if (!create) return null
      const fresh = new Y.Map<unknown>()
      root.set(stakeholderId, fresh)
      return fresh
    }
  }

  /** Sets (or, with an empty value, clears) `power` or `engagement` of a stakeholder. */
  setJudgment (stakeholderId: string, field: 'power' | 'engagement', value: string): void {
    this.doc.transact(() => {
      const entry = this.locate(stakeholderId)(value !== '')
      if (entry === null) return
      if (value === '') entry.delete(field)
      else if (entry.get(field) !== value) entry.set(field, value)
    }, LOCAL)
  }

  destroy (): void {
    removeEventListener('online', this.goOnline)
    removeEventListener('offline', this.goOffline)
    this.provider.destroy()
  }
}
