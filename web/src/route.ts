// Which page an address opens. The plan page keeps its share-link form (`/p/{id}#token=…`);
// without a token it is a signed-in member's plan. The workspace pages (issue 15): `/` (home or
// sign-in), `/signin#token=…` (a single-use sign-in link), `/pipeline`, `/p/{id}/audit`.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export type Route =
  | { page: 'home' }
  | { page: 'signin', token: string | null }
  | { page: 'pipeline' }
  | { page: 'plan', planId: string, token: string | null }
  | { page: 'audit', planId: string, token: string | null }
  | { page: 'unknown' }

function tokenOf (hash: string): string | null {
  const token = new URLSearchParams(hash.replace(/^#/, '')).get('token')?.trim() ?? ''
  return token === '' ? null : token
}

export function parseRoute (pathname: string, hash: string): Route {
  const path = pathname.replace(/\/+$/, '') || '/'
  if (path === '/') return { page: 'home' }
  if (path === '/signin') return { page: 'signin', token: tokenOf(hash) }
  if (path === '/pipeline') return { page: 'pipeline' }
  const plan = /^\/p\/([^/]+)(\/audit)?$/.exec(path)
  if (plan !== null && UUID.test(plan[1])) {
    const planId = plan[1].toLowerCase()
    return { page: plan[2] === undefined ? 'plan' : 'audit', planId, token: tokenOf(hash) }
  }
  return { page: 'unknown' }
}

/** The address of a plan's page (or its audit page) for the same credential: with the share
 * link's token in the fragment, or none for a member. */
export function planPath (planId: string, token: string | null, audit = false): string {
  return `/p/${planId}${audit ? '/audit' : ''}${token === null ? '' : `#token=${encodeURIComponent(token)}`}`
}

/** `next` of a sign-in: a local path only, else `/`. What `location.replace` is given must stay
 * on this origin however a browser reads it: a browser drops tabs and newlines from an address
 * (`/\t/evil.example` is `//evil.example`, another host) and reads `\` as `/`, so any control
 * character or backslash is refused, and the rest must resolve to this origin. Answers the
 * path, query and fragment of that address. */
export function localNext (next: string | null, origin: string = globalThis.location?.origin ?? 'http://localhost'): string {
  if (next === null || !next.startsWith('/') || next.startsWith('//') || next.includes('\\')) return '/'
  if (/[\u0000-\u001f\u007f]/.test(next)) return '/'
  let url: URL
  try { url = new URL(next, origin) } catch { return '/' }
  if (url.origin !== new URL(origin).origin) return '/'
  return `${url.pathname}${url.search}${url.hash}`
}
