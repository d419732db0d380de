// The workspace API (docs/api.md, issue 15): the member's session, sign-in, the plan list,
// templates and creating a plan. Called with the session cookie; writes carry the CSRF token.

import { ApiFailure, credentialOf, setCsrfToken, type Me, type Member, type NewShare, type PlanMember } from './api'
import type { Summary } from './home'

export interface Session { member: Member, csrfToken: string, expiresAt?: string }
export interface AuthConfig { oidc: boolean, signInLinks: boolean }
export interface TemplateStep { key: string, title: string, workstream: string, side: string, daysBeforeGoLive: number, dependsOn: string[] }
export interface Template { id: string, description?: string, milestones: TemplateStep[] }
export interface CreatedPlan { id: string, shares: NewShare[] }

async function call<T> (method: string, path: string, body?: unknown): Promise<T> {
  const { headers, credentials } = credentialOf(null, method)
  if (body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(path, { method, headers, credentials, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' })
  const text = await response.text()
  let json: unknown = null
  try { json = JSON.parse(text) } catch { /* not JSON: reported below */ }
  if (!response.ok) {
    const error = (json as { error?: { code?: string, message?: string } } | null)?.error
    throw new ApiFailure(response.status, error?.code ?? 'http_error', error?.message ?? `the server answered ${response.status}`)
  }
  return json as T
}

/**
 * Whether this browser signed in here and has not signed out: a hint only (the session cookie is
 * HttpOnly, so the page cannot see it). The plan page asks `GET /api/session` only with the hint,
 * so that a share-link address without its token costs no refused request (a browser logs a
 * refused request as a console error). Every sign-in passes through `/` or `/signin`, which set it.
 */
const SIGNED_IN = 'mapline:signed-in'
export function maybeSignedIn (): boolean {
  try { return localStorage.getItem(SIGNED_IN) === '1' } catch { return false }
}
function hint (signedIn: boolean): void {
  try { if (signedIn) localStorage.setItem(SIGNED_IN, '1'); else localStorage.removeItem(SIGNED_IN) } catch { /* storage off: no hint */ }
}

/** The signed-in member, or null (not signed in, or a server without sessions). Keeps the
 * session's CSRF token for the writes that follow. */
export async function currentSession (): Promise<Session | null> {
  try {
    const session = await call<Session>('GET', '/api/session')
    if (typeof session?.member?.id !== 'string') { hint(false); return null }
    setCsrfToken(session.csrfToken)
    hint(true)
    return session
  } catch (error) {
    if (error instanceof ApiFailure && (error.status === 401 || error.status === 404)) { hint(false); return null }
    throw error
  }
}

/** How people sign in here; a server without the endpoint has sign-in links only. */
export async function authConfig (): Promise<AuthConfig> {
  try { return await call<AuthConfig>('GET', '/api/auth/config') } catch { return { oidc: false, signInLinks: true } }
}

export async function signInWithLink (token: string): Promise<Session> {
  const session = await call<Session>('POST', '/api/auth/sign-in-link', { token })
  setCsrfToken(session.csrfToken)
  hint(true)
  return session
}

export async function signOut (): Promise<void> {
  await call('POST', '/api/auth/logout', {})
  setCsrfToken(null)
  hint(false)
}

/** Ends every session of this member (every browser); answers how many. */
export async function signOutEverywhere (): Promise<number> {
  const { revoked } = await call<{ revoked: number }>('POST', '/api/auth/logout-everywhere', {})
  setCsrfToken(null)
  hint(false)
  return revoked
}

export async function listPlans (today: string, mine: boolean): Promise<Summary[]> {
  return (await call<{ plans: Summary[] }>('GET', `/api/plans?today=${today}${mine ? '&mine=1' : ''}`)).plans
}

export async function templates (): Promise<Template[]> {
  return (await call<{ templates: Template[] }>('GET', '/api/templates')).templates
}

export function createPlan (body: { title: string, buyerOrg: string, sellerOrg: string, goLive: string, template: string }): Promise<CreatedPlan> {
  return call('POST', '/api/plans', body)
}

/** Words for a sign-in link the server refused. */
export function signInProblem (code: string): string {
  switch (code) {
    case 'sign_in_link_used': return 'This sign-in link was already used. Each link signs in once: ask for a new one.'
    case 'sign_in_link_expired': return 'This sign-in link has expired. Ask for a new one.'
    case 'sign_in_link_invalid': return 'This sign-in link is not valid. Check that you opened the whole link, or ask for a new one.'
    case 'not_found': return 'This server does not offer sign-in links.'
    default: return 'Signing in did not work. Check your connection and try again.'
  }
}

/** Whether this person may add and remove a plan's colleagues (docs/api.md): the plan's owner,
 * managers and admins, and the admin credential; never a share link. */
export function canManageTeam (me: Me, members: PlanMember[]): boolean {
  if (me.kind === 'admin') return true
  if (me.kind !== 'member' || me.member === undefined) return false
  if (me.member.role === 'manager' || me.member.role === 'admin') return true
  return members.some(m => m.role === 'owner' && m.member.id === me.member?.id)
}

/** Words for a refused change to the plan's seller team. */
export function teamProblem (code: string, email = ''): string {
  switch (code) {
    case 'member_not_found': return email === ''
      ? 'That person is not on this plan any more: the list is up to date now.'
      : `No one on the seller team has the email ${email}. Ask your Mapline admin to invite them first, then add them here.`
    case 'invalid_email': return 'That is not an email address.'
    case 'owner_only': return 'Only the plan’s owner, a manager or an admin can add or remove colleagues.'
    case 'owner_not_removable': return 'The plan’s owner stays on the plan.'
    case 'csrf': return 'Your session needs a reload: reload the page and try again.'
    case 'session_revoked': case 'session_expired': case 'not_signed_in': return 'You were signed out: sign in again and try again.'
    case 'offline': return 'Changing the team needs a connection.'
    default: return 'The team could not be changed. Try again.'
  }
}
