// A real OpenID provider for the tests: `oidc-provider` (a certified OpenID Connect
// implementation) in this process, on loopback at a random port, with its development login
// and consent forms (devInteractions) and a small table of test users.
//
// The issuer's address is known before Mapline starts and Mapline's before the provider is
// configured: `startIdp()` listens at once and answers 503 until `idp.configure({ redirectUri })`
// mounts the provider (Mapline's discovery retries meanwhile, which its tests use).
//
// Also exports a sign-in driven over plain HTTP (`signInOverHttp`: redirects followed by hand
// with a cookie jar per origin, the provider's forms parsed and submitted) for the tests and for
// the lead's end-to-end Chromium test, which can reuse `startIdp` as it is.
import http from 'node:http'
import { generateKeyPairSync, createSign, randomBytes } from 'node:crypto'
import Provider from 'oidc-provider'
import { waitFor } from './harness.js'

export const CLIENT_ID = 'mapline-test'
export const CLIENT_SECRET = 'mapline-test-secret-0123456789abcdef'
/** Registered with Mapline's redirect URI too, for tests about tokens issued to someone else. */
export const OTHER_CLIENT_ID = 'other-app'
export const OTHER_CLIENT_SECRET = 'other-app-secret-0123456789abcdef'

/** Test users by login (any password works in the development login form). */
export const USERS = {
  'ana@example.com': { email: 'ana@example.com', email_verified: true, name: 'Ana Seller' },
  'ben@example.com': { email: 'ben@example.com', email_verified: false, name: 'Ben Unverified' },
  'eve@elsewhere.example': { email: 'eve@elsewhere.example', email_verified: true, name: 'Eve Outsider' },
  // Its email starts with the Kelvin sign (U+212A), which lowercases to an ASCII `k`.
  kelvin: { email: '\u212Aim@example.com', email_verified: true, name: 'Not Kim' },
  // A profile name with control characters, far too long.
  'noisy@example.com': { email: 'noisy@example.com', email_verified: true, name: 'Noisy\u0007\u001b[31m ' + 'N'.repeat(500) },
  'dora@example.com': { email: 'dora@example.com', email_verified: true, name: 'Dora Leaving' },
  'sam@example.com': { email: 'sam@example.com', email_verified: true, name: 'Sam Twice' }
}

function base64url (value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
}

/** An RS256 JWT of `payload` signed with `privateKey` (a KeyObject), with `kid`. */
export function signJwt (payload, privateKey, kid) {
  const input = `${base64url({ alg: 'RS256', typ: 'JWT', kid })}.${base64url(payload)}`
  const signature = createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url')
  return `${input}.${signature}`
}

export function decodeJwt (jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString())
}

/**
 * Starts the IdP's listener. Returns { issuer, configure({ redirectUri }), provider, signingKey,
 * tokenHooks, settings, stop() }.
 * - `settings.idTokenTtl`: seconds an ID token lives (default 600).
 * - `tokenHooks`: functions `async (body) => void` run on every token endpoint answer after the
 *   provider made it and before it is sent (a test may hold it or rewrite `body.id_token`).
 */
export async function startIdp () {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const kid = `test-${randomBytes(4).toString('hex')}`
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' }
  const settings = { idTokenTtl: 600 }
  const tokenHooks = []
  let callback = null
  const server = http.createServer((req, res) => {
    if (callback === null) {
      res.writeHead(503, { 'content-type': 'text/plain' })
      res.end('the test IdP is not configured yet')
      return
    }
    callback(req, res)
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  const issuer = `http://127.0.0.1:${server.address().port}`
  const idp = {
    issuer,
    settings,
    tokenHooks,
    signingKey: { privateKey, kid },
    provider: null,
    /** Mounts the provider with Mapline's callback as the clients' redirect URI. */
    configure ({ redirectUri }) {
      const provider = new Provider(issuer, {
        clients: [
          {
            client_id: CLIENT_ID,
            client_secret: CLIENT_SECRET,
            redirect_uris: [redirectUri],
            grant_types: ['authorization_code'],
            response_types: ['code'],
            token_endpoint_auth_method: 'client_secret_basic'
          },
          {
            client_id: OTHER_CLIENT_ID,
            client_secret: OTHER_CLIENT_SECRET,
            redirect_uris: [redirectUri],
            grant_types: ['authorization_code'],
            response_types: ['code'],
            token_endpoint_auth_method: 'client_secret_basic'
          }
        ],
        jwks: { keys: [jwk] },
        claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
        features: { devInteractions: { enabled: true } },
        pkce: { required: () => true },
        ttl: { IdToken: () => settings.idTokenTtl },
        cookies: { keys: [randomBytes(16).toString('hex')] },
        async findAccount (_ctx, id) {
          const user = USERS[id]
          if (!user) return undefined
          return { accountId: id, claims: async () => ({ sub: id, ...user }) }
        }
      })
      // Test-only hooks on the token endpoint's answer.
      provider.use(async (ctx, next) => {
        await next()
        if (ctx.path === '/token' && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
          for (const hook of tokenHooks) await hook(ctx.body)
        }
      })
      // Quiet: the provider logs every refused request through its events otherwise.
      provider.on('server_error', (_ctx, error) => { console.error('IdP server error', error) })
      idp.provider = provider
      callback = provider.callback()
    },
    stop () {
      server.closeAllConnections()
      return new Promise(resolve => server.close(resolve))
    }
  }
  return idp
}

/** A cookie jar per origin, good enough for the provider's and Mapline's cookies. */
export class CookieJar {
  constructor () { this.byOrigin = new Map() }
  store (url, response) {
    const origin = new URL(url).origin
    const jar = this.byOrigin.get(origin) ?? new Map()
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';')
      const at = pair.indexOf('=')
      const name = pair.slice(0, at).trim()
      const value = pair.slice(at + 1).trim()
      if (value === '' || /max-age=0|expires=Thu, 01 Jan 1970/i.test(line)) jar.delete(name)
      else jar.set(name, value)
    }
    this.byOrigin.set(origin, jar)
  }

  header (url) {
    const jar = this.byOrigin.get(new URL(url).origin)
    return jar ? [...jar].map(([k, v]) => `${k}=${v}`).join('; ') : ''
  }
}

/** One request with the jar's cookies, no redirect followed; stores the answer's cookies. */
export async function request (jar, url, { method = 'GET', form = null } = {}) {
  const headers = { cookie: jar.header(url) }
  let body
  if (form !== null) {
    headers['content-type'] = 'application/x-www-form-urlencoded'
    body = new URLSearchParams(form).toString()
  }
  const response = await fetch(url, { method, headers, body, redirect: 'manual' })
  jar.store(url, response)
  return response
}

/** The first form of an HTML page: its action (absolute) and its inputs' values. */
export function parseForm (html, pageUrl) {
  const form = html.match(/<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/)
  if (!form) return null
  const decode = s => s.replace(/&amp;/g, '&').replace(/&#x2F;/gi, '/').replace(/&#x3D;/gi, '=').replace(/&quot;/g, '"')
  const fields = {}
  for (const input of form[2].matchAll(/<input([^>]*)>/g)) {
    const name = input[1].match(/name="([^"]*)"/)?.[1]
    if (name) fields[name] = decode(input[1].match(/value="([^"]*)"/)?.[1] ?? '')
  }
  return { action: new URL(decode(form[1]), pageUrl).toString(), fields }
}

/**
 * Walks from `startUrl` (usually Mapline's `/auth/oidc/login`) through the provider — its login
 * form as `login`, then its consent form — until a redirect reaches `stopAt` (Mapline's
 * callback), and returns that callback URL without requesting it. `alter(url)` may rewrite the
 * authorization request URL before it is sent to the provider.
 * `abort: true` cancels at the login form (the provider answers `error=access_denied`).
 */
export async function walkToCallback (jar, startUrl, { login, stopAt, alter = url => url, abort = false }) {
  let url = startUrl
  let response = await request(jar, url)
  for (let step = 0; step < 20; step++) {
    if (response.status >= 300 && response.status < 400) {
      let next = new URL(response.headers.get('location'), url).toString()
      if (next.startsWith(stopAt)) return next
      if (url === startUrl) next = alter(next)
      url = next
      response = await request(jar, url)
      continue
    }
    const html = await response.text()
    if (response.status !== 200) throw new Error(`${url} answered ${response.status}: ${html.slice(0, 500)}`)
    const form = parseForm(html, url)
    if (!form) throw new Error(`no form at ${url}: ${html.slice(0, 500)}`)
    if (form.fields.prompt === 'login') {
      if (abort) {
        // The development forms' "Cancel": `GET /interaction/:uid/abort`.
        url = `${new URL(form.action).origin}${new URL(form.action).pathname.replace(/\/$/, '')}/abort`
        response = await request(jar, url)
        continue
      }
      form.fields.login = login
      form.fields.password = 'any password'
    }
    url = form.action
    response = await request(jar, url, { method: 'POST', form: form.fields })
  }
  throw new Error('too many steps before the callback')
}

/**
 * In a browser page (playwright): starts Mapline's sign-in, fills the provider's login form as
 * `login`, accepts its consent form, and resolves once the page is back on Mapline at `next`.
 */
export async function signInWithBrowser (page, { maplineUrl, login, next = '/' }) {
  await page.goto(`${maplineUrl}/auth/oidc/login?next=${encodeURIComponent(next)}`)
  await page.locator('input[name=login]').fill(login)
  await page.locator('input[name=password]').fill('any password')
  await page.locator('button[type=submit]').click()
  // The provider's consent form (asked on each client's first sign-in for an account).
  const consent = page.locator('form input[name=prompt][value=consent]')
  await Promise.race([
    consent.waitFor({ state: 'attached', timeout: 15000 }).catch(() => {}),
    page.waitForURL(url => url.toString().startsWith(maplineUrl), { timeout: 15000 }).catch(() => {})
  ])
  if (!page.url().startsWith(maplineUrl) && await consent.count() > 0) {
    await page.locator('button[type=submit]').click()
  }
  await page.waitForURL(`${maplineUrl}${next}`, { timeout: 15000 })
}

/** Waits until Mapline's `/auth/oidc/login` redirects (its discovery of the IdP succeeded). */
export async function untilDiscovered (mapline) {
  await waitFor(async () => {
    const response = await fetch(`${mapline.url}/auth/oidc/login`, { redirect: 'manual' })
    return response.status === 303
  }, { timeout: 20000, what: "Mapline's discovery of the IdP" })
}
