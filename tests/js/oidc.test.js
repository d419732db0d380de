// Signing in with the company IdP: the real binary against a real OpenID provider
// (`oidc-provider`, in this process on loopback), driven over HTTP with a cookie jar and through
// its login and consent forms — once in Chromium. Every refusal is a page with a stable code.
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import http from 'node:http'
import { startServer, tempData, waitFor, within, binary, freePort, api } from './lib/harness.js'
import { launch } from './lib/browser.js'
import {
  startIdp, CookieJar, request, walkToCallback, untilDiscovered, signJwt, decodeJwt, signInWithBrowser,
  CLIENT_ID, CLIENT_SECRET, OTHER_CLIENT_ID
} from './lib/oidc-provider.js'

/** The code in a refusal page (`<p id="error-code">…</p>`) and its words. */
async function refusal (response) {
  const html = await response.text()
  return {
    status: response.status,
    code: html.match(/<p id="error-code">([^<]*)<\/p>/)?.[1] ?? null,
    message: html.match(/<p id="error-message">([^<]*)<\/p>/)?.[1] ?? null,
    linksHome: html.includes('<a href="/">'),
    contentType: response.headers.get('content-type')
  }
}

function oidcArgs (idp, { domains = 'example.com', loginsPerMinute = 0 } = {}) {
  return {
    args: ['--oidc-issuer', idp.issuer, '--oidc-client-id', CLIENT_ID, '--oidc-allowed-domains', domains,
      '--oidc-logins-per-address-per-minute', String(loginsPerMinute)],
    env: { MAPLINE_OIDC_CLIENT_SECRET: CLIENT_SECRET }
  }
}

/** Mapline with OIDC on a port chosen up front: OIDC needs --public-url, which names it. */
async function startOidcServer (idp, dataFile, options) {
  const port = await freePort()
  const { args, env } = oidcArgs(idp, options)
  return startServer({
    dataFile, args: [...args, '--public-url', `http://127.0.0.1:${port}`], env, addr: `127.0.0.1:${port}`
  })
}

/** A GET from a chosen loopback source address (127.0.0.2 is another client). */
function getFrom (localAddress, url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { localAddress }, res => {
      let body = ''
      res.on('data', chunk => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode, body }))
    })
    req.on('error', reject)
  })
}

describe('OIDC sign-in against a real OpenID provider', () => {
  let idp, mapline, data, callbackUrl
  let configured = null
  /** Mounts the provider (once) and waits until Mapline has discovered it. */
  const ready = () => {
    configured ??= (async () => {
      idp.configure({ redirectUri: callbackUrl })
      await untilDiscovered(mapline)
    })()
    return configured
  }
  /** Starts a sign-in as `login` and returns { jar, callback } with the callback not yet sent. */
  async function toCallback (login, options = {}) {
    await ready()
    const jar = new CookieJar()
    const next = options.next ?? '/p/after-sign-in'
    const callback = await walkToCallback(jar, `${mapline.url}/auth/oidc/login?next=${encodeURIComponent(next)}`,
      { login, stopAt: callbackUrl, ...options })
    return { jar, callback }
  }
  /** Replaces the ID token the provider answers with, once. */
  function rewriteNextIdToken (rewrite) {
    const hook = async body => {
      idp.tokenHooks.splice(idp.tokenHooks.indexOf(hook), 1)
      body.id_token = rewrite(body.id_token)
    }
    idp.tokenHooks.push(hook)
  }

  before(async () => {
    data = tempData()
    idp = await startIdp()
    mapline = await startOidcServer(idp, data.file)
    callbackUrl = `${mapline.url}/auth/oidc/callback`
  })

  after(async () => {
    await mapline?.stop()
    await idp?.stop()
    data?.cleanup()
    // The client secret came through the environment and is never logged.
    const { stdout, stderr } = mapline.output()
    assert.ok(!stdout.includes(CLIENT_SECRET) && !stderr.includes(CLIENT_SECRET), 'the client secret was logged')
  })

  test('while the IdP does not answer, login is a clear 503 page and the rest of the server serves; discovery retries until it answers', async () => {
    const page = await refusal(await fetch(`${mapline.url}/auth/oidc/login`, { redirect: 'manual' }))
    assert.equal(page.status, 503)
    assert.equal(page.code, 'oidc_unavailable')
    assert.match(page.contentType, /^text\/html/)
    assert.ok(page.linksHome)
    assert.equal((await fetch(`${mapline.url}/healthz`)).status, 200)
    const config = await (await fetch(`${mapline.url}/api/auth/config`)).json()
    assert.deepEqual(config, { oidc: true, signInLinks: true })
    await waitFor(() => mapline.output().stderr.includes('OIDC discovery failed'), { what: 'the retry log line' })
    await ready()
    assert.match(mapline.output().stderr, /OIDC provider discovered/)
  })

  test('login sends the browser to the IdP with the code flow, PKCE S256, state and nonce', async () => {
    await ready()
    const response = await fetch(`${mapline.url}/auth/oidc/login`, { redirect: 'manual' })
    assert.equal(response.status, 303)
    const to = new URL(response.headers.get('location'))
    assert.equal(to.origin, idp.issuer)
    const q = to.searchParams
    assert.equal(q.get('response_type'), 'code')
    assert.equal(q.get('client_id'), CLIENT_ID)
    assert.equal(q.get('code_challenge_method'), 'S256')
    assert.match(q.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/)
    assert.ok(q.get('state')?.length >= 16, 'state')
    assert.ok(q.get('nonce')?.length >= 16, 'nonce')
    assert.deepEqual(q.get('scope').split(' ').sort(), ['email', 'openid', 'profile'])
    assert.equal(q.get('redirect_uri'), callbackUrl)
  })

  test('a verified member of an allowed domain signs in: 303 to next with the session cookie', async () => {
    let idToken = null
    const hook = async body => { idp.tokenHooks.splice(idp.tokenHooks.indexOf(hook), 1); idToken = decodeJwt(body.id_token) }
    idp.tokenHooks.push(hook)
    const { jar, callback } = await toCallback('ana@example.com', { next: '/p/after-sign-in?x=1' })
    const response = await request(jar, callback)
    // oidc-provider puts scope claims in userinfo, not the ID token, when it also issues an
    // access token (as Okta does): Mapline read the email from userinfo.
    assert.equal(idToken?.aud, CLIENT_ID)
    assert.equal(idToken.email, undefined)
    assert.equal(response.status, 303, await response.clone().text())
    assert.equal(response.headers.get('location'), '/p/after-sign-in?x=1')
    const cookie = response.headers.get('set-cookie')
    assert.match(cookie, /^mapline_session=[^;]+;/)
    assert.match(cookie, /HttpOnly/i)
    assert.match(cookie, /SameSite=Lax/i)
    // The cookie is a real session of a real member: the IdP's verified email, a new rep of an
    // allowed domain, named from the IdP's profile.
    const sessionCookie = cookie.split(';')[0]
    const who = await fetch(`${mapline.url}/api/session`, { headers: { cookie: sessionCookie } })
    assert.equal(who.status, 200)
    const session = await who.json()
    assert.equal(session.member.email, 'ana@example.com')
    assert.equal(session.member.role, 'rep')
    assert.ok(session.csrfToken)
    // Signed out everywhere (a revoked session): the same cookie is refused from then on.
    const out = await fetch(`${mapline.url}/api/auth/logout-everywhere`, {
      method: 'POST', headers: { cookie: sessionCookie, origin: mapline.url, 'x-csrf-token': session.csrfToken }
    })
    assert.equal(out.status, 200)
    const after = await fetch(`${mapline.url}/api/session`, { headers: { cookie: sessionCookie } })
    assert.equal(after.status, 401)
    assert.equal((await after.json()).error.code, 'session_revoked')
  })

  test('next is followed only when it is a local path', async () => {
    for (const next of ['//evil.example/x', 'https://evil.example/', '/\\evil.example']) {
      const { jar, callback } = await toCallback('ana@example.com', { next })
      const response = await request(jar, callback)
      assert.equal(response.status, 303, next)
      assert.equal(response.headers.get('location'), '/', next)
    }
  })

  test('a wrong or missing state is refused, and does not use up the real sign-in', async () => {
    const { jar, callback } = await toCallback('ana@example.com')
    const wrong = new URL(callback)
    wrong.searchParams.set('state', randomBytes(16).toString('base64url'))
    const page = await refusal(await request(jar, wrong.toString()))
    assert.equal(page.status, 400)
    assert.equal(page.code, 'state_unknown')
    assert.ok(page.linksHome)
    const missing = new URL(callback)
    missing.searchParams.delete('state')
    const pageMissing = await refusal(await request(jar, missing.toString()))
    assert.equal(pageMissing.status, 400)
    assert.equal(pageMissing.code, 'state_missing')
    const real = await request(jar, callback)
    assert.equal(real.status, 303)
  })

  test('an answer naming another issuer (RFC 9207 iss) is refused and uses up the sign-in', async () => {
    const { jar, callback } = await toCallback('ana@example.com')
    assert.equal(new URL(callback).searchParams.get('iss'), idp.issuer)
    const mixedUp = new URL(callback)
    mixedUp.searchParams.set('iss', 'https://idp.elsewhere.example')
    const page = await refusal(await request(jar, mixedUp.toString()))
    assert.equal(page.status, 400)
    assert.equal(page.code, 'idp_error')
    assert.match(page.message, /another identity provider/)
    assert.equal((await refusal(await request(jar, callback))).code, 'state_unknown')
  })

  test('a callback URL opened in another browser than the one that started the sign-in is refused (login CSRF)', async () => {
    // Someone starts a sign-in as themselves and sends the callback URL to a colleague.
    const { callback } = await toCallback('ana@example.com')
    const otherBrowser = new CookieJar()
    const response = await request(otherBrowser, callback)
    assert.equal(response.headers.get('set-cookie'), null)
    const page = await refusal(response)
    assert.equal(page.status, 400)
    assert.equal(page.code, 'state_other_browser')
  })

  test('two sign-ins started in one browser (two tabs) both finish', async () => {
    await ready()
    const jar = new CookieJar()
    const start = `${mapline.url}/auth/oidc/login`
    const first = await walkToCallback(jar, `${start}?next=/one`, { login: 'ana@example.com', stopAt: callbackUrl })
    const second = await walkToCallback(jar, `${start}?next=/two`, { login: 'ana@example.com', stopAt: callbackUrl })
    assert.equal((await request(jar, second)).headers.get('location'), '/two')
    assert.equal((await request(jar, first)).headers.get('location'), '/one')
  })

  test('a replayed callback (same code and state) is refused and sets no cookie', async () => {
    const { jar, callback } = await toCallback('ana@example.com')
    const first = await request(jar, callback)
    assert.equal(first.status, 303)
    const again = await request(jar, callback)
    assert.equal(again.headers.get('set-cookie'), null)
    const page = await refusal(again)
    assert.equal(page.status, 400)
    assert.equal(page.code, 'state_unknown')
  })

  test('the IdP saying access_denied is shown as such', async () => {
    const { jar, callback } = await toCallback('ana@example.com', { abort: true })
    assert.equal(new URL(callback).searchParams.get('error'), 'access_denied')
    const response = await request(jar, callback)
    assert.equal(response.headers.get('set-cookie'), null)
    const page = await refusal(response)
    assert.equal(page.status, 400)
    assert.equal(page.code, 'idp_error')
    assert.match(page.message, /access_denied/)
  })

  test('the IdP\'s error words are shown only for a sign-in this browser started', async () => {
    await ready()
    const words = 'Call 555-0100 to restore your account'
    const lure = `${callbackUrl}?error=access_denied&error_description=${encodeURIComponent(words)}`
    // No state at all, an unknown state, and a real state from another browser: generic words.
    const { callback } = await toCallback('ana@example.com')
    const realState = new URL(callback).searchParams.get('state')
    for (const url of [lure, `${lure}&state=made-up`, `${lure}&state=${realState}`]) {
      const page = await refusal(await fetch(url, { redirect: 'manual' }))
      assert.equal(page.status, 400, url)
      assert.equal(page.code, 'idp_error', url)
      assert.doesNotMatch(page.message, /555|access_denied/, url)
      assert.match(page.message, /did not sign you in/)
    }
  })

  test('a non-ASCII email (the Kelvin sign folds to k) is refused before it can match a member', async () => {
    await ready()
    const kim = await api(mapline, 'POST', '/api/members', { body: { email: 'kim@example.com', name: 'Kim', role: 'admin' } })
    assert.equal(kim.status, 201)
    const { jar, callback } = await toCallback('kelvin')
    const response = await request(jar, callback)
    assert.equal(response.headers.get('set-cookie'), null)
    const page = await refusal(response)
    assert.equal(page.status, 403)
    assert.equal(page.code, 'email_invalid')
    const members = await api(mapline, 'GET', '/api/members')
    assert.equal(members.body.members.filter(m => /im@example\.com$/.test(m.email)).length, 1, 'no new member either')
  })

  test('the IdP\'s profile name is checked: control characters out, cut to 200 characters', async () => {
    const { jar, callback } = await toCallback('noisy@example.com')
    const response = await request(jar, callback)
    assert.equal(response.status, 303)
    const cookie = response.headers.get('set-cookie').split(';')[0]
    const session = await (await fetch(`${mapline.url}/api/session`, { headers: { cookie } })).json()
    const name = session.member.name
    assert.equal([...name].length, 200)
    assert.ok(name.startsWith('Noisy[31m N'), name.slice(0, 20))
    assert.doesNotMatch(name, /\p{Cc}/u)
  })

  test('signing in again from a browser with a session ends that session', async () => {
    const first = await toCallback('sam@example.com')
    const firstCookie = (await request(first.jar, first.callback)).headers.get('set-cookie').split(';')[0]
    assert.equal((await fetch(`${mapline.url}/api/session`, { headers: { cookie: firstCookie } })).status, 200)
    const second = await toCallback('sam@example.com')
    second.jar.byOrigin.get(new URL(mapline.url).origin).set('mapline_session', firstCookie.split('=')[1])
    const response = await request(second.jar, second.callback)
    assert.equal(response.status, 303)
    const secondCookie = response.headers.get('set-cookie').split(';')[0]
    assert.notEqual(secondCookie, firstCookie)
    const old = await fetch(`${mapline.url}/api/session`, { headers: { cookie: firstCookie } })
    assert.equal(old.status, 401)
    assert.equal((await old.json()).error.code, 'session_revoked')
    assert.equal((await fetch(`${mapline.url}/api/session`, { headers: { cookie: secondCookie } })).status, 200)
  })

  test('a disabled member cannot sign in with the IdP', async () => {
    const first = await toCallback('dora@example.com')
    const cookie = (await request(first.jar, first.callback)).headers.get('set-cookie').split(';')[0]
    const session = await (await fetch(`${mapline.url}/api/session`, { headers: { cookie } })).json()
    const disabled = await api(mapline, 'POST', `/api/members/${session.member.id}/disable`)
    assert.equal(disabled.status, 200, JSON.stringify(disabled.body))
    assert.equal(disabled.body.revoked, 1)
    assert.equal((await fetch(`${mapline.url}/api/session`, { headers: { cookie } })).status, 401)
    const again = await toCallback('dora@example.com')
    const response = await request(again.jar, again.callback)
    assert.equal(response.headers.get('set-cookie'), null)
    const page = await refusal(response)
    assert.equal(page.status, 403)
    assert.equal(page.code, 'member_disabled')
  })

  test('logins started per client address are limited, so one address cannot push out the others', async () => {
    await ready()
    const limitedData = tempData()
    const limited = await startOidcServer(idp, limitedData.file, { loginsPerMinute: 3 })
    try {
      await untilDiscovered(limited) // the first login of 127.0.0.1 this minute
      const login = `${limited.url}/auth/oidc/login`
      for (let i = 0; i < 2; i++) {
        assert.equal((await fetch(login, { redirect: 'manual' })).status, 303)
      }
      const page = await refusal(await fetch(login, { redirect: 'manual' }))
      assert.equal(page.status, 429)
      assert.equal(page.code, 'too_many_sign_ins')
      assert.ok(page.linksHome)
      // Another address still starts its sign-in.
      const other = await getFrom('127.0.0.2', login)
      assert.equal(other.status, 303, other.body)
    } finally {
      await limited.stop()
      limitedData.cleanup()
    }
  })

  test('an ID token that has expired by the time Mapline checks it is refused', async () => {
    await ready()
    idp.settings.idTokenTtl = 1
    // The provider mints the token, then its answer is held until the token's exp has passed.
    const hook = async body => {
      idp.tokenHooks.splice(idp.tokenHooks.indexOf(hook), 1)
      const { exp } = decodeJwt(body.id_token)
      await waitFor(() => Date.now() >= exp * 1000, { timeout: 5000, what: 'the ID token to expire' })
    }
    idp.tokenHooks.push(hook)
    try {
      const { jar, callback } = await toCallback('ana@example.com')
      const response = await request(jar, callback)
      assert.equal(response.headers.get('set-cookie'), null)
      const page = await refusal(response)
      assert.equal(page.status, 403)
      assert.equal(page.code, 'id_token_invalid')
      assert.match(page.message, /\(expired\)/)
    } finally {
      idp.settings.idTokenTtl = 600
    }
  })

  test('an ID token for another audience, signed with the IdP\'s own key, is refused', async () => {
    for (const aud of [OTHER_CLIENT_ID, [CLIENT_ID, OTHER_CLIENT_ID]]) {
      rewriteNextIdToken(jwt => signJwt({ ...decodeJwt(jwt), aud, azp: CLIENT_ID }, idp.signingKey.privateKey, idp.signingKey.kid))
      const { jar, callback } = await toCallback('ana@example.com')
      const response = await request(jar, callback)
      assert.equal(response.headers.get('set-cookie'), null, JSON.stringify(aud))
      const page = await refusal(response)
      assert.equal(page.status, 403)
      assert.equal(page.code, 'id_token_invalid')
      assert.match(page.message, /\(audience\)/, JSON.stringify(aud))
    }
  })

  test('ID tokens with a bad signature, another issuer or another nonce are refused, each named', async () => {
    const { privateKey: stranger } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const cases = [
      ['signature', jwt => signJwt(decodeJwt(jwt), stranger, idp.signingKey.kid)],
      ['issuer', jwt => signJwt({ ...decodeJwt(jwt), iss: 'http://127.0.0.1:1' }, idp.signingKey.privateKey, idp.signingKey.kid)],
      ['nonce', jwt => signJwt({ ...decodeJwt(jwt), nonce: 'another-nonce' }, idp.signingKey.privateKey, idp.signingKey.kid)]
    ]
    for (const [reason, rewrite] of cases) {
      rewriteNextIdToken(rewrite)
      const { jar, callback } = await toCallback('ana@example.com')
      const page = await refusal(await request(jar, callback))
      assert.equal(page.status, 403, reason)
      assert.equal(page.code, 'id_token_invalid', reason)
      assert.match(page.message, new RegExp(`\\(${reason}\\)`), reason)
    }
  })

  test('a code the IdP issued to another client is not redeemed', async () => {
    // The authorization request is sent as the other client (same redirect URI): the provider
    // issues it a code, which Mapline cannot exchange with its own credentials.
    const { jar, callback } = await toCallback('ana@example.com', {
      alter: url => { const u = new URL(url); u.searchParams.set('client_id', OTHER_CLIENT_ID); return u.toString() }
    })
    const page = await refusal(await request(jar, callback))
    assert.equal(page.status, 502)
    assert.equal(page.code, 'code_exchange_failed')
    assert.match(page.message, /invalid_grant/)
  })

  test('an email outside the allowed domains is refused', async () => {
    const { jar, callback } = await toCallback('eve@elsewhere.example')
    const response = await request(jar, callback)
    assert.equal(response.headers.get('set-cookie'), null)
    const page = await refusal(response)
    assert.equal(page.status, 403)
    assert.equal(page.code, 'domain_not_allowed')
    assert.match(page.message, /eve@elsewhere\.example/)
  })

  test('an email the IdP has not verified is refused', async () => {
    const { jar, callback } = await toCallback('ben@example.com')
    const response = await request(jar, callback)
    assert.equal(response.headers.get('set-cookie'), null)
    const page = await refusal(response)
    assert.equal(page.status, 403)
    assert.equal(page.code, 'email_not_verified')
  })

  test('in Chromium: the provider\'s login form, then back on Mapline with the session cookie', async () => {
    await ready()
    const browser = await launch()
    try {
      const context = await browser.newContext()
      const page = await context.newPage()
      await signInWithBrowser(page, { maplineUrl: mapline.url, login: 'ana@example.com', next: '/healthz' })
      const cookies = await context.cookies(mapline.url)
      const session = cookies.find(c => c.name === 'mapline_session')
      assert.ok(session, `no session cookie in ${JSON.stringify(cookies)}`)
      assert.equal(session.httpOnly, true)
      assert.equal(session.sameSite, 'Lax')
      assert.equal(session.path, '/')
    } finally {
      await browser.close()
    }
  })
})

describe('OIDC configuration', () => {
  test('without OIDC the config says so and login is a clear page', async () => {
    const data = tempData()
    const server = await startServer({ dataFile: data.file })
    try {
      const config = await (await fetch(`${server.url}/api/auth/config`)).json()
      assert.deepEqual(config, { oidc: false, signInLinks: true })
      const page = await refusal(await fetch(`${server.url}/auth/oidc/login`, { redirect: 'manual' }))
      assert.equal(page.status, 404)
      assert.equal(page.code, 'oidc_unavailable')
    } finally {
      await server.stop()
      data.cleanup()
    }
  })

  /** Runs `mapline serve` with `args` and resolves { code, stderr } once it exits. */
  function serveExits (args, env = {}) {
    const data = tempData()
    const proc = spawn(binary, ['serve', '--addr', '127.0.0.1:0', '--data', data.file, ...args],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    proc.stderr.on('data', chunk => { stderr += chunk })
    return within(new Promise(resolve => proc.on('exit', code => { data.cleanup(); resolve({ code, stderr }) })),
      { what: 'mapline serve to refuse its configuration' })
  }

  test('issuer, client id and secret come all three or not at all', async () => {
    const { code, stderr } = await serveExits(['--oidc-issuer', 'https://idp.example.com', '--oidc-client-id', 'x'])
    assert.equal(code, 2)
    assert.match(stderr, /--oidc-client-secret/)
  })

  test('OIDC without --public-url does not start: the redirect URI and Secure come from it', async () => {
    const { code, stderr } = await serveExits(['--oidc-issuer', 'https://idp.example.com', '--oidc-client-id', 'x'],
      { MAPLINE_OIDC_CLIENT_SECRET: 'shh-secret-value' })
    assert.equal(code, 2)
    assert.match(stderr, /OIDC needs --public-url/)
    assert.ok(!stderr.includes('shh-secret-value'))
  })

  test('a plain-http issuer is refused unless it is on loopback', async () => {
    const { code, stderr } = await serveExits(['--oidc-issuer', 'http://idp.example.com', '--oidc-client-id', 'x'],
      { MAPLINE_OIDC_CLIENT_SECRET: 'shh-secret-value' })
    assert.equal(code, 2)
    assert.match(stderr, /must be https/)
    assert.ok(!stderr.includes('shh-secret-value'))
  })
})
