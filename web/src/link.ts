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
