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
    ['share token on an admin route', 'GET', '/api/plans', { token: plan.seller }, 403, 'admin_only'],
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
