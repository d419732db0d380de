// The HTTP API: plans and share links, and a clear JSON error for every bad request.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, tempData, createPlan, api, ADMIN_TOKEN } from './lib/harness.js'

let data, server
before(async () => { data = tempData(); server = await startServer({ dataFile: data.file }) })
after(async () => { await server.stop(); data.cleanup() })

const uuidV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

test('creating a plan answers 201 with its id and a seller and a buyer editor link', async () => {
  const { status, body } = await api(server, 'POST', '/api/plans', {
    body: { title: 'Rollout', buyerOrg: 'Northwind', sellerOrg: 'Mapline', goLive: '2027-04-01' }
  })
  assert.equal(status, 201)
  assert.match(body.id, uuidV7)
  assert.deepEqual(body.shares.map(s => [s.side, s.role]), [['seller', 'editor'], ['buyer', 'editor']])
  for (const share of body.shares) {
    assert.match(share.id, uuidV7)
    assert.ok(share.token.length >= 43, 'a 256-bit token')
    assert.equal(share.url, `/p/${body.id}#token=${share.token}`)
    assert.ok(share.label.length > 0)
  }
  const list = await api(server, 'GET', '/api/plans')
  assert.equal(list.status, 200)
  const listed = list.body.plans.find(p => p.id === body.id)
  assert.deepEqual([listed.title, listed.buyerOrg, listed.sellerOrg, listed.goLive], ['Rollout', 'Northwind', 'Mapline', '2027-04-01'])
})

test('minting a share answers 201 with the same share object', async () => {
  const plan = await createPlan(server)
  const expiresAt = new Date(Date.now() + 86400000).toISOString()
  const { status, body } = await api(server, 'POST', `/api/plans/${plan.id}/shares`, {
    body: { side: 'buyer', role: 'viewer', label: 'Maria (CFO)', expiresAt }
  })
  assert.equal(status, 201)
  assert.equal(body.side, 'buyer')
  assert.equal(body.role, 'viewer')
  assert.equal(body.label, 'Maria (CFO)')
  assert.equal(Date.parse(body.expiresAt), Date.parse(expiresAt))
  assert.equal(body.url, `/p/${plan.id}#token=${body.token}`)
})

test('with --public-url, share links are absolute', async () => {
  const other = tempData()
  const s = await startServer({ dataFile: other.file, args: ['--public-url', 'https://plans.example.com/'] })
  try {
    const plan = await createPlan(s)
    assert.equal(plan.shares[0].url, `https://plans.example.com/p/${plan.id}#token=${plan.shares[0].token}`)
  } finally { await s.stop(); other.cleanup() }
})

test('every bad request gets its status and a JSON error', async () => {
  const plan = await createPlan(server)
  const good = { title: 'T', buyerOrg: 'B', sellerOrg: 'S', goLive: '2027-04-01' }
  const cases = [
    ['missing token', 'POST', '/api/plans', { body: good, token: null }, 401, 'missing_token'],
    ['wrong token', 'GET', '/api/plans', { token: 'not-a-token' }, 401, 'invalid_token'],
    ['share token on an admin route', 'GET', '/api/webhooks', { token: plan.seller }, 403, 'admin_only'],
    ['share token on the pipeline', 'GET', '/api/plans', { token: plan.seller }, 403, 'members_only'],
    ['share token creating plans', 'POST', '/api/plans', { body: good, token: plan.buyer }, 403, 'admin_only'],
    ['buyer token minting a seller share', 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'seller', role: 'editor', label: 'x' }, token: plan.buyer }, 403, 'buyer_links_only'],
    ['invalid JSON', 'POST', '/api/plans', { raw: '{"title":', headers: { 'content-type': 'application/json' } }, 400, 'invalid_json'],
    ['not JSON at all', 'POST', '/api/plans', { raw: 'title=x' }, 415, 'unsupported_media_type'],
    ['missing field', 'POST', '/api/plans', { body: { title: 'T' } }, 422, 'invalid_body'],
    ['wrong field type', 'POST', '/api/plans', { body: { ...good, title: 7 } }, 422, 'invalid_body'],
    ['empty title', 'POST', '/api/plans', { body: { ...good, title: '  ' } }, 422, 'invalid_field'],
    ['bad go-live date', 'POST', '/api/plans', { body: { ...good, goLive: '2027-02-30' } }, 422, 'invalid_field'],
    ['existing id', 'POST', '/api/plans', { body: { ...good, id: plan.id } }, 409, 'plan_exists'],
    ['oversized body', 'POST', '/api/plans', { body: { ...good, title: 'x'.repeat(70 * 1024) } }, 413, 'body_too_large'],
    ['unknown plan for a share', 'POST', '/api/plans/01900000-0000-7000-8000-000000000000/shares', { body: { side: 'buyer', role: 'editor', label: 'x' } }, 404, 'plan_not_found'],
    ['malformed plan id', 'POST', '/api/plans/nope/shares', { body: { side: 'buyer', role: 'editor', label: 'x' } }, 404, 'plan_not_found'],
    ['unknown side', 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'partner', role: 'editor', label: 'x' } }, 422, 'invalid_body'],
    ['unknown role', 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'buyer', role: 'owner', label: 'x' } }, 422, 'invalid_body'],
    ['empty label', 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'buyer', role: 'editor', label: '' } }, 422, 'invalid_field'],
    ['expiry in the past', 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'buyer', role: 'editor', label: 'x', expiresAt: '2020-01-01T00:00:00Z' } }, 422, 'invalid_field'],
    ['expiry not a time', 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'buyer', role: 'editor', label: 'x', expiresAt: 'tomorrow' } }, 422, 'invalid_field'],
    ['unknown API route', 'GET', '/api/nothing', {}, 404, 'not_found'],
    ['wrong method', 'DELETE', '/api/plans', {}, 405, 'method_not_allowed'],
    ['sync without a WebSocket upgrade', 'GET', `/sync/${plan.id}`, { token: plan.seller }, 426, 'upgrade_required']
  ]
  const before = (await api(server, 'GET', '/api/plans')).body.plans.length
  for (const [name, method, path, options, status, code] of cases) {
    const got = await api(server, method, path, options)
    assert.equal(got.status, status, `${name}: status`)
    assert.equal(got.body?.error?.code, code, `${name}: code (${JSON.stringify(got.body)})`)
    assert.equal(typeof got.body.error.message, 'string', `${name}: message`)
  }
  assert.equal((await api(server, 'GET', '/api/plans')).body.plans.length, before, 'no bad request created a plan')
})

test('health and metrics answer without credentials', async () => {
  const health = await api(server, 'GET', '/healthz', { token: null })
  assert.deepEqual([health.status, health.body], [200, { status: 'ok' }])
  const text = await (await fetch(server.url + '/metrics')).text()
  for (const name of ['mapline_connections_open', 'mapline_rooms_in_memory', 'mapline_updates_received_total',
    'mapline_updates_persisted_total', 'mapline_updates_broadcast_total', 'mapline_updates_refused_total',
    'mapline_commit_batch_size_bucket', 'mapline_commit_seconds_bucket', 'mapline_stored_bytes']) {
    assert.match(text, new RegExp(`^${name}`, 'm'), name)
  }
  assert.ok(Number(text.match(/^mapline_stored_bytes (\d+)/m)[1]) > 0)
})

test('the admin token printed at first start is the one that works, and is not printed again', async () => {
  const fresh = tempData()
  const spawnArgs = ['serve', '--addr', '127.0.0.1:0', '--data', fresh.file]
  const { spawn } = await import('node:child_process')
  const { binary } = await import('./lib/harness.js')
  const run = () => new Promise((resolve, reject) => {
    const env = { ...process.env }
    delete env.MAPLINE_ADMIN_TOKEN
    const proc = spawn(binary, spawnArgs, { env })
    let out = ''
    proc.stdout.on('data', chunk => {
      out += chunk
      if (/listening on/.test(out)) resolve({ proc, out, url: out.match(/listening on (http:\/\/[\d.:]+)/)[1] })
    })
    proc.on('exit', code => reject(new Error(`exited ${code}`)))
  })
  const first = await run()
  const token = first.out.match(/Admin token[^:]*: (\S+)/)?.[1]
  assert.ok(token, 'first start prints a token')
  assert.equal((await api({ url: first.url }, 'GET', '/api/plans', { token })).status, 200)
  assert.notEqual(token, ADMIN_TOKEN)
  first.proc.kill('SIGTERM'); await new Promise(resolve => first.proc.on('exit', resolve))
  const second = await run()
  assert.doesNotMatch(second.out, /Admin token/)
  assert.equal((await api({ url: second.url }, 'GET', '/api/plans', { token })).status, 200, 'the stored hash still accepts it')
  second.proc.kill('SIGTERM'); await new Promise(resolve => second.proc.on('exit', resolve))
  fresh.cleanup()
})

test('every route answers malformed and oversized bodies with a JSON error, never 2xx or 500, creating nothing', async () => {
  const plan = await createPlan(server)
  const share = plan.shares[1].id
  const routes = [
    ['/api/plans', 'body'], [`/api/plans/${plan.id}/shares`, 'body'],
    [`/api/plans/${plan.id}`, 'get'], [`/api/plans/${plan.id}/slips`, 'get'], [`/api/plans/${plan.id}/history`, 'get'],
    [`/api/plans/${plan.id}/health`, 'get'], [`/api/plans/${plan.id}/me`, 'get'], ['/api/templates', 'get'],
    ['/api/admin/backup', 'get'], ['/healthz', 'get'], ['/metrics', 'get'], [`/sync/${plan.id}`, 'get'],
    [`/sync/${plan.id}/internal`, 'get'], [`/api/plans/${plan.id}/shares/${share}`, 'delete']
  ]
  const bodies = [
    ['invalid JSON', '{"title": ', 'application/json', { body: [400, 'invalid_json'] }],
    ['JSON of the wrong shape', '[1, 2, 3]', 'application/json', { body: [422, 'invalid_body'] }],
    ['an oversized body', JSON.stringify({ title: 'x'.repeat(100 * 1024) }), 'application/json', { body: [413, 'body_too_large'] }],
    ['not JSON', 'title=x', 'text/plain', { body: [415, 'unsupported_media_type'] }],
    ['binary garbage', Buffer.from([0xff, 0x00, 0xfe, 0x7b]), 'application/json', { body: [400, 'invalid_json'] }]
  ]
  const plansBefore = (await api(server, 'GET', '/api/plans')).body.plans.length
  const sharesBefore = (await api(server, 'GET', `/api/plans/${plan.id}/shares`)).body.shares.length
  for (const [route, kind] of routes) {
    for (const [what, raw, type, expected] of bodies) {
      const got = await api(server, 'POST', route, { raw, headers: { 'content-type': type } })
      const [status, code] = kind === 'body' ? expected.body : [405, 'method_not_allowed']
      assert.equal(got.status, status, `POST ${route} with ${what}: ${JSON.stringify(got.body).slice(0, 120)}`)
      assert.equal(got.body?.error?.code, code, `POST ${route} with ${what}`)
      if (code === 'body_too_large') assert.match(got.body.error.message, /65536 bytes \(64 KiB\)/, `POST ${route} names its limit`)
    }
  }
  assert.equal((await api(server, 'GET', '/api/plans')).body.plans.length, plansBefore, 'no plan was created')
  const shares = (await api(server, 'GET', `/api/plans/${plan.id}/shares`)).body.shares
  assert.equal(shares.length, sharesBefore, 'no link was minted')
  assert.ok(shares.every(s => s.status === 'active'), 'no link was revoked')
})

test('path traversal against the web client\'s files reaches nothing outside web/dist', async () => {
  const { join } = await import('node:path')
  const { repoRoot, tempData: temp } = await import('./lib/harness.js')
  const { existsSync } = await import('node:fs')
  const web = join(repoRoot, 'web', 'dist')
  assert.ok(existsSync(join(web, 'index.html')), 'web/dist is built (./scripts/test.sh builds it)')
  const own = temp()
  const withWeb = await startServer({ dataFile: own.file, web })
  const http = await import('node:http')
  // Raw requests: fetch would normalise the dots away before sending them.
  const raw = path => new Promise((resolve, reject) => {
    const url = new URL(withWeb.url)
    const req = http.request({ host: url.hostname, port: url.port, path, method: 'GET' }, res => {
      let text = ''
      res.on('data', c => { text += c })
      res.on('end', () => resolve({ status: res.statusCode, text }))
    })
    req.on('error', reject)
    req.end()
  })
  try {
    const attempts = ['/../../Cargo.toml', '/..%2f..%2fCargo.toml', '/%2e%2e/%2e%2e/Cargo.toml', '/assets/../../../Cargo.toml',
      '/assets/..%2F..%2F..%2FCargo.toml', '/p/../../../etc/passwd', '/..\\..\\Cargo.toml', '/%2e%2e%5c%2e%2e%5cCargo.toml',
      '/....//....//Cargo.toml', '/assets/%00../../Cargo.toml', '//etc/passwd']
    for (const path of attempts) {
      const got = await raw(path)
      assert.ok(got.status < 500, `${path}: ${got.status}`)
      assert.ok(!got.text.includes('[workspace]') && !got.text.includes('root:x:0'), `${path} leaked a file (${got.status})`)
    }
    // The real files are still served.
    assert.equal((await raw('/sw.js')).status, 200)
    assert.match((await raw('/')).text, /<div id="app">/)
  } finally {
    await withWeb.stop()
    own.cleanup()
  }
})
