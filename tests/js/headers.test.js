// Security headers on every kind of answer, and a deliberate CORS answer (none): the real binary
// serving the built web client, asked over real sockets.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startServer, tempData, createPlan, ADMIN_TOKEN } from './lib/harness.js'
import { webRoot } from './lib/browser.js'

let data, server, plan
before(async () => {
  data = tempData()
  server = await startServer({ dataFile: data.file, web: webRoot })
  plan = await createPlan(server)
})
after(async () => { await server.stop(); data.cleanup() })

/** A request with exactly these headers (fetch would add or forbid some); { status, headers, text }. */
function ask (target, path, { method = 'GET', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const url = new URL(target.url + path)
    const req = request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers }, res => {
      let text = ''
      res.on('data', chunk => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }))
    })
    req.on('error', reject)
    req.end()
  })
}

const bearer = token => ({ authorization: `Bearer ${token}` })

/** A CSP header as { directive: [sources] }. */
function policy (header) {
  assert.ok(header, 'a Content-Security-Policy header')
  return Object.fromEntries(header.split(';').map(d => d.trim()).filter(Boolean).map(d => {
    const [name, ...sources] = d.split(/\s+/)
    return [name, sources]
  }))
}

function everyAnswersHeaders (answer, what) {
  assert.equal(answer.headers['x-content-type-options'], 'nosniff', `${what}: nosniff`)
  assert.equal(answer.headers['referrer-policy'], 'no-referrer', `${what}: no referrer`)
}

function noStore (answer, what) {
  assert.equal(answer.headers['cache-control'], 'no-store', `${what}: not stored`)
}

test('the page (at / and /p/{id}) carries a strict Content-Security-Policy and the common headers', async () => {
  for (const path of ['/', `/p/${plan.id}`]) {
    const page = await ask(server, path)
    assert.equal(page.status, 200)
    assert.match(page.headers['content-type'], /^text\/html/)
    everyAnswersHeaders(page, path)
    const csp = policy(page.headers['content-security-policy'])
    assert.deepEqual(csp['default-src'], ["'self'"])
    assert.deepEqual(csp['script-src'], ["'self'"], 'no inline or eval script')
    assert.deepEqual(csp['style-src'], ["'self'"], 'no inline style')
    assert.deepEqual(csp['img-src'], ["'self'", 'data:'])
    assert.deepEqual(csp['connect-src'], ["'self'"]) // same-origin ws: and wss: included (CSP 3)
    assert.deepEqual(csp['object-src'], ["'none'"])
    assert.deepEqual(csp['base-uri'], ["'none'"])
    assert.deepEqual(csp['form-action'], ["'self'"])
    assert.deepEqual(csp['frame-ancestors'], ["'none'"])
    // The page needs nothing inline: its only scripts are files.
    assert.doesNotMatch(page.text, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline <script>')
    assert.doesNotMatch(page.text, /<style|\sstyle=/, 'no inline style')
  }
})

test('static assets and the service worker carry the common headers and stay cacheable', async () => {
  const index = readFileSync(join(webRoot, 'index.html'), 'utf8')
  const assets = [...index.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map(m => m[1])
  assert.ok(assets.length >= 2, 'the build has a script and a stylesheet')
  for (const path of [...assets, '/sw.js']) {
    const file = await ask(server, path)
    assert.equal(file.status, 200, path)
    everyAnswersHeaders(file, path)
    assert.equal(file.headers['content-security-policy'], undefined, `${path}: a policy is for documents`)
    assert.notEqual(file.headers['cache-control'], 'no-store', `${path}: cacheable`)
  }
})

test('API answers with plan data are not stored, errors included', async () => {
  const shareToken = plan.seller
  const answers = {
    plan: await ask(server, `/api/plans/${plan.id}`, { headers: bearer(shareToken) }),
    me: await ask(server, `/api/plans/${plan.id}/me`, { headers: bearer(shareToken) }),
    history: await ask(server, `/api/plans/${plan.id}/history`, { headers: bearer(shareToken) }),
    slips: await ask(server, `/api/plans/${plan.id}/slips`, { headers: bearer(shareToken) }),
    health: await ask(server, `/api/plans/${plan.id}/health`, { headers: bearer(shareToken) }),
    shares: await ask(server, `/api/plans/${plan.id}/shares`, { headers: bearer(shareToken) }),
    exportJson: await ask(server, `/api/plans/${plan.id}/export.json`, { headers: bearer(shareToken) }),
    exportMd: await ask(server, `/api/plans/${plan.id}/export.md`, { headers: bearer(shareToken) }),
    exportCsv: await ask(server, `/api/plans/${plan.id}/export.csv`, { headers: bearer(shareToken) }),
    // The feed opens with the link's feed token (calendarUrl of /me), not with the share token.
    calendar: await ask(server, JSON.parse((await ask(server, `/api/plans/${plan.id}/me`, { headers: bearer(shareToken) })).text).calendarUrl),
    pipeline: await ask(server, '/api/plans', { headers: bearer(ADMIN_TOKEN) })
  }
  for (const [what, answer] of Object.entries(answers)) {
    assert.equal(answer.status, 200, `${what}: ${answer.text}`)
    everyAnswersHeaders(answer, what)
    noStore(answer, what)
    assert.equal(answer.headers['content-security-policy'], undefined, `${what}: not a document`)
  }
  const refused = await ask(server, `/api/plans/${plan.id}`)
  assert.equal(refused.status, 401)
  assert.equal(JSON.parse(refused.text).error.code, 'missing_token')
  assert.match(refused.headers['content-type'], /^application\/json/)
  everyAnswersHeaders(refused, '401')
  noStore(refused, '401')
  const bad = await ask(server, `/api/plans/${plan.id}`, { headers: bearer('s_nope') })
  assert.equal(bad.status, 401)
  noStore(bad, 'bad token')
  const unknown = await ask(server, '/api/nothing-here')
  assert.equal(unknown.status, 404)
  everyAnswersHeaders(unknown, 'unknown API route')
  noStore(unknown, 'unknown API route')
})

test('/healthz and /metrics carry the common headers and are not stored', async () => {
  for (const path of ['/healthz', '/metrics']) {
    const answer = await ask(server, path)
    assert.equal(answer.status, 200)
    everyAnswersHeaders(answer, path)
    noStore(answer, path)
  }
})

test('no other origin is let in: no CORS headers on answers or preflights', async () => {
  const origin = { origin: 'https://evil.example' }
  const read = await ask(server, `/api/plans/${plan.id}`, { headers: { ...origin, ...bearer(plan.seller) } })
  assert.equal(read.status, 200)
  const preflight = await ask(server, `/api/plans/${plan.id}`, {
    method: 'OPTIONS',
    headers: { ...origin, 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization' }
  })
  assert.notEqual(preflight.status, 204)
  assert.ok(preflight.status >= 400, `preflight answered ${preflight.status}`)
  everyAnswersHeaders(preflight, 'preflight')
  for (const answer of [read, preflight]) {
    const cors = Object.keys(answer.headers).filter(name => name.startsWith('access-control-'))
    assert.deepEqual(cors, [], 'no Access-Control-* header')
  }
})

test('without a web client, the placeholder page has its own policy that allows no script', async () => {
  const own = tempData()
  const bare = await startServer({ dataFile: own.file })
  try {
    const page = await ask(bare, '/')
    assert.equal(page.status, 200)
    everyAnswersHeaders(page, 'placeholder')
    const csp = policy(page.headers['content-security-policy'])
    assert.deepEqual(csp['default-src'], ["'none'"])
    assert.equal(csp['script-src'], undefined, 'scripts fall back to none')
    assert.deepEqual(csp['frame-ancestors'], ["'none'"])
  } finally {
    await bare.stop()
    own.cleanup()
  }
})
