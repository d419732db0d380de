// The JSON API (docs/api.md), called with the share link's token — or, for a signed-in member
// (no token), with the session cookie: `credentials: "same-origin"`, and on every write the
// session's CSRF token (`X-CSRF-Token`, from `GET /api/session`).

export class ApiFailure extends Error {
  constructor (readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}

let csrfToken: string | null = null

/** The signed-in member's CSRF token (`GET /api/session`), sent with every cookie write. */
export function setCsrfToken (token: string | null): void {
  csrfToken = token
}

/** What a request carries: the share link's bearer token, or (`null`) the member's cookie. */
export function credentialOf (token: string | null, method: string): { headers: Record<string, string>, credentials: RequestCredentials } {
  if (token !== null) return { headers: { authorization: `Bearer ${token}` }, credentials: 'same-origin' }
  const headers: Record<string, string> = {}
  if (!['GET', 'HEAD', 'OPTIONS'].includes(method) && csrfToken !== null) headers['x-csrf-token'] = csrfToken
  return { headers, credentials: 'same-origin' }
}

/** Whether an answer says the server has no such route yet (an older server): the page then
 * says "not available" instead of failing. */
export function notAvailable (error: unknown): boolean {
  return error instanceof ApiFailure && error.status === 404 && (error.code === 'not_found' || error.code === 'http_error')
}

export interface Member { id: string, email: string, name: string, role: 'rep' | 'manager' | 'admin' }

export interface Me {
  planId: string
  kind: 'share' | 'admin' | 'member'
  member?: Member
  shareId?: string
  label: string
  side: 'buyer' | 'seller' | null
  role: 'editor' | 'viewer'
  canEdit: boolean
  canManageShares: boolean
  /** Which sides' links this person may make (buyer editors: buyer links only). */
  canMintSides: Array<'buyer' | 'seller'>
  expiresAt?: string | null
  /** The link's read-only calendar feed (relative unless the server has a public URL); `null`
   * for the admin; missing in a `/me` remembered from before feeds existed. */
  calendarUrl?: string | null
}

export interface Who {
  kind: 'share' | 'admin' | 'system' | 'member'
  shareId?: string
  label?: string
  side?: 'buyer' | 'seller'
  memberId?: string
  name?: string
  email?: string
}

export interface Slip {
  seq: number
  subject: 'milestone' | 'go_live'
  milestoneId?: string
  title?: string | null
  from: string | null
  to: string | null
  days: number | null
  reason: string | null
  who: Who
  at: string
  /** `false`: a move that did not hold (lost to a concurrent move of the same date); missing
   * from older servers, where every move counts. */
  kept?: boolean
}

/** One change of a history entry (docs/api.md); a `conflict` names the kept and the lost value. */
export interface HistoryChange {
  entity: string
  entityId?: string | null
  field: string | null
  kind: 'created' | 'updated' | 'deleted' | 'conflict' | string
  old?: unknown
  new?: unknown
  kept?: unknown
  lost?: unknown
}

export interface HistoryEntry { seq: number, at: string, who: Who, changes: HistoryChange[] }

/** `GET /api/plans/{id}` (the projection; `asOf` with `?at=`). */
export interface ProjectedPlan {
  id: string
  seq: number
  asOf?: string
  plan: {
    meta: Record<string, unknown> & { title: string | null, buyerOrg: string | null, sellerOrg: string | null, goLive: string | null }
    milestones: Array<{ id: string, title: string | null, side: string | null, owner: { stakeholderId?: string, name?: string } | null, due: string | null, status: string, slipReason: string | null }>
    stakeholders: Array<{ id: string, name: string | null, side: string | null }>
    issues: PlanIssue[]
    [key: string]: unknown
  }
}

/** `GET /api/plans/{id}/verify`. */
export interface Verification { ok: boolean, entries: number, head: string | null, problems: unknown[] }

/** `GET /api/plans/{id}/reviews/last` (`seq: null`: never reviewed). */
export interface Review { seq: number | null, at?: string }

/** An entry deleted and not back (`GET /api/plans/{id}/deleted`). */
export interface Deleted {
  collection: string
  id: string
  seq: number
  at: string
  who: Who | null
  /** Its fields as JSON, as they were when it was deleted. */
  entry: Record<string, unknown>
}

export interface NextUp { id: string, title: string | null, due: string | null, owner: string | null }

export interface Health {
  verdict: 'on_track' | 'at_risk' | 'off_track'
  reasons: string[]
  overdue: Array<{ id: string, title: string | null, due: string, daysLate: number }>
  dueSoon: Array<{ id: string, title: string | null, due: string }>
  blocked: Array<{ id: string, title: string | null }>
  impossible: Array<{ id: string, title: string | null }>
  criticalPath: { milestones: NextUp[], slackDays: number | null } | null
  goLiveDriftDays: number | null
  nextUp: { buyer: NextUp | null, seller: NextUp | null }
  daysSinceLastUpdate: number | null
  stalled: boolean
}

export interface PlanIssue { kind: string, path?: string, value?: unknown, milestone?: string }

export interface ListedShare {
  id: string
  side: 'buyer' | 'seller'
  role: 'editor' | 'viewer'
  label: string
  createdAt: string | null
  expiresAt: string | null
  revokedAt: string | null
  status: 'active' | 'expired' | 'revoked'
  firstSeenAt: string | null
  lastSeenAt: string | null
  opens: number
  /** The link this one was minted with (null: made by the admin, a plan's first links, or before lineage was recorded). */
  parentId: string | null
  /** That link's label, e.g. "Dev Patel (champion)"; or the name of the member who made it. */
  mintedBy: string | null
  /** The member who made it (a signed-in seller), else null; missing from older servers. */
  mintedByMember?: string | null
}

/** One link a revocation takes along: the link itself (depth 0) and every link minted through it. */
export interface RevokedLink {
  id: string
  side: 'buyer' | 'seller'
  role: 'editor' | 'viewer'
  label: string
  parentId: string | null
  mintedBy: string | null
  depth: number
  status: 'active' | 'expired' | 'revoked'
  revokedAt: string | null
}

export interface NewShare { id: string, side: string, role: string, label: string, token: string, url: string, expiresAt?: string, parentId?: string }

/** One of a plan's seller team (`GET /api/plans/{id}/members`). */
export interface PlanMember { member: Member, role: 'owner' | 'seller', addedAt: string | null }

/** How many history entries the audit page loads at once (and then on each "Load older"). */
export const HISTORY_CHUNK = 10_000

/** History entries newest first, and where older ones go on from (null: none older). */
export interface HistoryPages { entries: HistoryEntry[], nextBefore: number | null }

export class Api {
  /** `token` null: the signed-in member's session cookie. */
  constructor (private readonly planId: string, private readonly token: string | null, private readonly base = '') {}

  private async call<T> (method: string, path: string, body?: unknown): Promise<T> {
    const { headers, credentials } = credentialOf(this.token, method)
    if (body !== undefined) headers['content-type'] = 'application/json'
    const response = await fetch(`${this.base}/api/plans/${this.planId}${path}`, {
      method,
      headers,
      credentials,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store'
    })
    const text = await response.text()
    let json: unknown = null
    try { json = JSON.parse(text) } catch { /* not JSON: reported below */ }
    if (!response.ok) {
      const error = (json as { error?: { code?: string, message?: string } } | null)?.error
      throw new ApiFailure(response.status, error?.code ?? 'http_error', error?.message ?? `the server answered ${response.status}`)
    }
    return json as T
  }

  me (): Promise<Me> { return this.call('GET', '/me') }
  async health (today: string): Promise<Health> { return (await this.call<{ health: Health }>('GET', `/health?today=${today}`)).health }
  async slips (): Promise<Slip[]> { return (await this.call<{ slips: Slip[] }>('GET', '/slips')).slips }
  async issues (): Promise<PlanIssue[]> { return (await this.call<{ plan: { issues: PlanIssue[] } }>('GET', '')).plan.issues }
  /** The newest history entries (the conflicts on record are in them). */
  async history (limit = 200): Promise<HistoryEntry[]> { return (await this.call<{ entries: HistoryEntry[] }>('GET', `/history?limit=${limit}`)).entries }
  /** History entries, newest first, page by page from `before` (null: the newest) until `max`
   * are loaded or there are no more. `nextBefore` is null when nothing older is on record, else
   * where to go on from (`historyFrom(nextBefore)`). */
  async historyFrom (before: number | null = null, max = HISTORY_CHUNK): Promise<HistoryPages> {
    const entries: HistoryEntry[] = []
    let from = before
    for (;;) {
      const page: { entries: HistoryEntry[], nextBefore: number | null } = await this.call('GET', `/history?limit=500${from === null ? '' : `&before=${from}`}`)
      entries.push(...page.entries)
      const next = page.nextBefore ?? null
      if (next === null || page.entries.length === 0) return { entries, nextBefore: null }
      if (entries.length >= max) return { entries, nextBefore: next }
      from = next
    }
  }
  /** The plan now, or (`at`: a log position) as it was then. */
  plan (at?: number): Promise<ProjectedPlan> { return this.call('GET', at === undefined ? '' : `?at=${at}`) }
  verify (): Promise<Verification> { return this.call('GET', '/verify') }
  lastReview (): Promise<Review> { return this.call('GET', '/reviews/last') }
  /** Marks the plan reviewed up to `seq` (the newest change the page showed), not up to whatever
   * reached the server since; without `seq` (nothing shown), up to the server's head. An older
   * server ignores the body and marks its head. */
  markReviewed (seq?: number): Promise<Review> { return this.call('POST', '/reviews', seq === undefined ? {} : { seq }) }
  async deleted (): Promise<Deleted[]> { return (await this.call<{ deleted: Deleted[] }>('GET', '/deleted')).deleted }
  /** Brings a deleted entry back; it then arrives over sync. */
  restore (collection: string, id: string): Promise<{ seq: number }> { return this.call('POST', '/restore', { collection, id }) }
  async shares (): Promise<ListedShare[]> { return (await this.call<{ shares: ListedShare[] }>('GET', '/shares')).shares }
  /** A file of the plan as the server renders it (`export.md`, `export.csv`, `export.json`). */
  async download (file: string): Promise<Blob> {
    const { headers, credentials } = credentialOf(this.token, 'GET')
    const response = await fetch(`${this.base}/api/plans/${this.planId}/${file}`, { headers, credentials, cache: 'no-store' })
    if (!response.ok) throw new ApiFailure(response.status, 'http_error', `the server answered ${response.status}`)
    return await response.blob()
  }

  /** The address a calendar subscribes to: the link's read-only feed from `/me`, never this
   * link's own token (a calendar service keeps the URL; anyone who sees it could edit). */
  subscriptionUrl (calendarUrl: string, origin: string): string {
    return subscriptionUrl(calendarUrl, new URL(`${this.base}/`, origin).href)
  }

  createShare (body: { side: string, role: string, label: string, expiresAt?: string }): Promise<NewShare> { return this.call('POST', '/shares', body) }
  /** What revoking a link would revoke: the link and every link minted through it. */
  async revocation (id: string): Promise<RevokedLink[]> { return (await this.call<{ shares: RevokedLink[] }>('GET', `/shares/${id}/revocation`)).shares }
  revokeShare (id: string): Promise<unknown> { return this.call('DELETE', `/shares/${id}`) }
  /** The plan's owner and seller members (the seller side only). */
  async members (): Promise<PlanMember[]> { return (await this.call<{ members: PlanMember[] }>('GET', '/members')).members }
  /** Adds a colleague (an existing member) by email, as a seller member. */
  addMember (email: string): Promise<{ member: Member, role: 'owner' | 'seller' }> { return this.call('POST', '/members', { email }) }
  removeMember (memberId: string): Promise<unknown> { return this.call('DELETE', `/members/${encodeURIComponent(memberId)}`) }
}

/** `calendarUrl` of `/me` as a calendar subscription: absolute, with `webcal` for `http`
 * (`webcals` for `https`). */
export function subscriptionUrl (calendarUrl: string, origin: string): string {
  const url = new URL(calendarUrl, origin)
  return url.href.replace(/^http/, 'webcal')
}
