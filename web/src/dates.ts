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

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** "3 Feb 2027" (or the raw text when it is not a date, so nothing is hidden). */
export function formatDate (text: unknown): string {
  const n = dayNumber(text)
  if (n === null) return typeof text === 'string' ? text : ''
  const d = new Date(n * DAY_MS)
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`
}

/** "3 Feb" — for axes and compact lists. */
export function formatShortDate (text: unknown): string {
  const n = dayNumber(text)
  if (n === null) return ''
  const d = new Date(n * DAY_MS)
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`
}

/** "in 3 days", "today", "5 days ago". */
export function relativeDays (days: number): string {
  if (days === 0) return 'today'
  if (days === 1) return 'tomorrow'
  if (days === -1) return 'yesterday'
  return days > 0 ? `in ${days} days` : `${-days} days ago`
}

/** "+17 days", "−3 days" for a moved date. */
export function signedDays (days: number | null): string {
  if (days === null) return 'date cleared'
  const n = Math.abs(days)
  const unit = n === 1 ? 'day' : 'days'
  if (days === 0) return 'same day'
  return days > 0 ? `+${n} ${unit} later` : `${n} ${unit} earlier`
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
