// What a share link holds: `/p/{planId}#token=…`. The token rides in the fragment, which the
// browser never sends to the server (nor in `Referer`).

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export interface ShareLink {
  planId: string
  token: string
}

export type LinkProblem = 'no_plan' | 'no_token'

/** Reads the plan id from the path and the token from the fragment. */
export function parseShareLink (pathname: string, hash: string): ShareLink | LinkProblem {
  const match = /^\/p\/([^/]+)\/?$/.exec(pathname)
  if (match === null || !UUID.test(match[1])) return 'no_plan'
  const params = new URLSearchParams(hash.replace(/^#/, ''))
  const token = params.get('token')?.trim() ?? ''
  if (token === '') return 'no_token'
  return { planId: match[1].toLowerCase(), token }
}

/** An absolute link from the server's (possibly relative) share URL. */
export function absoluteLink (url: string, origin: string): string {
  return /^https?:\/\//.test(url) ? url : origin.replace(/\/$/, '') + url
}

/** Why a link no longer opens its plan: what the page says instead of the plan. A member's
 * plan (no token, the session cookie) ends differently: `signed_out` (the session was signed
 * out, revoked or expired) or `no_access` (taken off the plan). */
export type LinkEnd = 'revoked' | 'expired' | 'invalid' | 'signed_out' | 'no_access'

/** From a 4401 close: the server's reason says "expired" for an expired link (docs/protocol.md). */
export function linkEndOfClose (reason: string): LinkEnd {
  return /expired/i.test(reason) ? 'expired' : 'revoked'
}

/** From the API's error code on a 401/403/404 (docs/api.md): `share_revoked`, `share_expired`,
 * and anything else (`invalid_token`, `missing_token`, `wrong_plan`, `plan_not_found`). */
export function linkEndOfError (code: string): LinkEnd {
  return code === 'share_revoked' ? 'revoked' : code === 'share_expired' ? 'expired' : 'invalid'
}

/** The API codes that mean the link itself does not open the plan (docs/api.md). Anything else
 * (a proxy's 404, a server error) says nothing about the link, and must not wipe the copy. */
const LINK_REFUSALS = new Set(['share_revoked', 'share_expired', 'invalid_token', 'missing_token', 'wrong_plan', 'plan_not_found'])

/** Whether an API answer (status and error code) says this link no longer opens its plan. */
export function refusesLink (status: number, code: string): boolean {
  return [401, 403, 404].includes(status) && LINK_REFUSALS.has(code)
}

/** The API codes that mean a member's session no longer signs them in (docs/api.md). */
const SESSION_ENDS = new Set(['session_revoked', 'session_expired', 'not_signed_in'])

/**
 * How the plan page's credential ended, from an API refusal (status and error code), or null
 * when the answer says nothing about it (a proxy's 404, a server error: keep the copy). A share
 * link (`member` false) ends as `refusesLink` says; a member's session (`member` true) ends
 * `signed_out` on a 401 about the session, and `no_access` when the member is not (or no
 * longer) on the plan.
 */
export function endOfRefusal (member: boolean, status: number, code: string): LinkEnd | null {
  if (!member) return refusesLink(status, code) ? linkEndOfError(code) : null
  if (status === 401 && SESSION_ENDS.has(code)) return 'signed_out'
  if ((status === 403 && code === 'not_a_plan_member') || (status === 404 && code === 'plan_not_found')) return 'no_access'
  return null
}

/** From a 4401 close: a member's socket closes so when their session ends (docs/api.md). */
export function endOfClose (member: boolean, reason: string): LinkEnd {
  return member ? 'signed_out' : linkEndOfClose(reason)
}

/** The words of the page shown for an ended link, and for a link that never had a token. */
export const LINK_END_WORDS: Record<LinkEnd | LinkProblem, { title: string, detail: string }> = {
  revoked: { title: 'This link was revoked', detail: 'Ask the person who sent it for a new one.' },
  expired: { title: 'This link has expired', detail: 'Ask the person who sent it for a new one.' },
  invalid: { title: 'This link is not valid', detail: 'Check that you opened the whole link you were sent, or ask the person who sent it for a new one.' },
  signed_out: { title: 'You were signed out', detail: 'Your session ended: you (or an admin) signed out, perhaps in another browser, or it expired. The copy of this plan on this device was removed. Sign in again to keep working on it.' },
  no_access: { title: 'You no longer have access to this plan', detail: 'You were taken off this plan, so its copy on this device was removed. Ask the plan’s owner to add you again.' },
  no_token: { title: 'This link is missing its access key', detail: 'The part after #token= is missing. Open (or paste) the full link you were sent.' },
  no_plan: { title: 'Mapline', detail: 'Open a plan from the link you were sent: it looks like /p/…#token=….' }
}
