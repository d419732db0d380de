// Calendar dates as the schema writes them (`YYYY-MM-DD`), computed in UTC so that a plan reads
// the same in every time zone.

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const DAY_MS = 86_400_000

/** Days since 1970-01-01 for a valid `YYYY-MM-DD`, or `null` for anything else. */
export function dayNumber (text: unknown): number | null {
  if (typeof text !== 'string') return null
  const m = ISO_DATE.exec(text)
  if (m === null) return null
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])]
  const ms = Date.UTC(year, month - 1, day)
  const back = new Date(ms)
  if (back.getUTCFullYear() !== year || back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day) return null
  return Math.round(ms / DAY_MS)
}

/** The `YYYY-MM-DD` of a day number. */
export function isoDate (days: number): string {
  return new Date(days * DAY_MS).toISOString().slice(0, 10)
}

/** Whether the text is a real calendar date in the schema's format. */
export function isDate (text: unknown): text is string {
  return dayNumber(text) !== null
}

/** Today's date on this device, as the schema writes dates. */
export function today (now: Date = new Date()): string {
  const local = new Date(now.getTime() - now.getTimezoneOffset() * 60_000)
  return local.toISOString().slice(0, 10)
}

/** Signed days from `from` to `to` (later is positive), or `null` unless both are dates. */
export function daysBetween (from: unknown, to: unknown): number | null {
  const a = dayNumber(from)
  const b = dayNumber(to)
  return a === null || b === null ? null : b - a
}

// Dates are shown in the browser's locale, numerically — the same format the date fields take
// and show (`04/15/2027` in en-US, `15/04/2027` in en-GB), so a date reads one way everywhere on
// the page. Exports keep ISO (`YYYY-MM-DD`).
const LONG = { year: 'numeric', month: '2-digit', day: '2-digit', timeZone: 'UTC' } as const
const SHORT = { month: '2-digit', day: '2-digit', timeZone: 'UTC' } as const
const formats = new Map<string, Intl.DateTimeFormat>()
/** One formatter per locale and shape (a page formats hundreds of dates per render). */
function formatter (locale: string | undefined, shape: 'long' | 'short'): Intl.DateTimeFormat {
  const key = `${locale ?? ''}|${shape}`
  let format = formats.get(key)
  if (format === undefined) {
    format = new Intl.DateTimeFormat(locale, shape === 'long' ? LONG : SHORT)
    formats.set(key, format)
  }
  return format
}

/** "04/15/2027" in en-US, "15/04/2027" in en-GB (or the raw text when it is not a date, so
 * nothing is hidden). `locale` defaults to the browser's. */
export function formatDate (text: unknown, locale?: string): string {
  const n = dayNumber(text)
  if (n === null) return typeof text === 'string' ? text : ''
  return formatter(locale, 'long').format(new Date(n * DAY_MS))
}

/** "04/15" in en-US, "15/04" in en-GB — for axes and compact lists. */
export function formatShortDate (text: unknown, locale?: string): string {
  const n = dayNumber(text)
  if (n === null) return ''
  return formatter(locale, 'short').format(new Date(n * DAY_MS))
}

/** The order and separators of the locale's numeric date, e.g. `MM/DD/YYYY` (en-US),
 * `DD/MM/YYYY` (en-GB), `DD.MM.YYYY` (de): the pattern a date is typed in. */
export function datePattern (locale?: string): string {
  const words: Partial<Record<string, string>> = { day: 'DD', month: 'MM', year: 'YYYY' }
  return formatter(locale, 'long').formatToParts(new Date(Date.UTC(2027, 3, 15)))
    .map(p => p.type === 'literal' ? p.value : words[p.type] ?? '').join('')
}

/**
 * The `YYYY-MM-DD` of a date typed in the locale's order (`4/15/2027` in en-US, `15.4.27` in
 * de; any separators; a two-digit year is 20xx), or typed as ISO (`2027-04-15`, as exports
 * write it). `null` for anything that is not a real date.
 */
export function parseDate (text: string, locale?: string): string | null {
  const numbers = text.trim().split(/[^0-9]+/).filter(n => n !== '')
  if (numbers.length !== 3) return null
  let order: string[]
  if (numbers[0].length === 4) order = ['year', 'month', 'day']
  else {
    order = formatter(locale, 'long').formatToParts(new Date(Date.UTC(2027, 3, 15)))
      .map(p => p.type).filter(t => t === 'day' || t === 'month' || t === 'year')
  }
  const value: Record<string, number> = {}
  order.forEach((part, i) => { value[part] = Number(numbers[i]) })
  const yearText = numbers[order.indexOf('year')]
  if (yearText.length === 2) value.year += 2000
  else if (yearText.length !== 4) return null
  const iso = `${String(value.year).padStart(4, '0')}-${String(value.month).padStart(2, '0')}-${String(value.day).padStart(2, '0')}`
  return isDate(iso) ? iso : null
}

/** "1 milestone", "3 milestones". */
export function count (n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

/** "in 3 days", "today", "5 days ago". */
export function relativeDays (days: number): string {
  if (days === 0) return 'today'
  if (days === 1) return 'tomorrow'
  if (days === -1) return 'yesterday'
  return days > 0 ? `in ${days} days` : `${-days} days ago`
}

/** "17 days later", "1 day earlier" for a moved date. */
export function signedDays (days: number | null): string {
  if (days === null) return 'date cleared'
  const n = Math.abs(days)
  const unit = n === 1 ? 'day' : 'days'
  if (days === 0) return 'same day'
  return days > 0 ? `${n} ${unit} later` : `${n} ${unit} earlier`
}

/** "5 minutes ago" for an RFC 3339 time; "never" for none. */
export function timeAgo (iso: string | null | undefined, now: number = Date.now()): string {
  if (iso == null) return 'never'
  const then = Date.parse(iso)
  if (Number.isNaN(then)) return iso
  const seconds = Math.max(0, Math.round((now - then) / 1000))
  if (seconds < 60) return 'just now'
  const minutes = Math.round(seconds / 60)
  if (minutes < 60) return `${minutes} min ago`
  const hours = Math.round(minutes / 60)
  if (hours < 24) return `${hours} h ago`
  const days = Math.round(hours / 24)
  return days === 1 ? 'yesterday' : `${days} days ago`
}
