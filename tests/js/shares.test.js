// Share-link management: sellers mint, list (with last use) and revoke their plan's links;
// a revocation takes effect at once and closes the link's open sockets; `/me` says who a
// link is. Real binary, real sockets, real y-websocket clients.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, tempData, createPlan, api, client, synced, destroy, rawSocket, waitFor, upgradeStatus, metric
} from './lib/harness.js'

let data, server
before(async () => { data = tempData(); server = await startServer({ dataFile: data.file }) })
after(async () => { await server.stop(); data.cleanup() })

const mint = (plan, token, body) => api(server, 'POST', `/api/plans/${plan.id}/shares`, { token, body })

test('a seller editor mints a link for the CFO; it works at once and shows in the list', async () => {
  const plan = await createPlan(server)
  const made = await mint(plan, plan.seller, { side: 'buyer', role: 'viewer', label: 'Ana Ruiz (CFO)' })
  assert.equal(made.status, 201)
  assert.equal(made.body.url, `/p/${plan.id}#token=${made.body.token}`)

  const me = await api(server, 'GET', `/api/plans/${plan.id}/me`, { token: made.body.token })
  assert.equal(me.status, 200)
  assert.deepEqual(
    [me.body.kind, me.body.label, me.body.side, me.body.role, me.body.canEdit, me.body.canManageShares],
    ['share', 'Ana Ruiz (CFO)', 'buyer', 'viewer', false, false])

  const listed = await api(server, 'GET', `/api/plans/${plan.id}/shares`, { token: plan.seller })
  assert.equal(listed.status, 200)
  const cfo = listed.body.shares.find(s => s.id === made.body.id)
  assert.deepEqual([cfo.label, cfo.side, cfo.role, cfo.status, cfo.opens, cfo.lastSeenAt], ['Ana Ruiz (CFO)', 'buyer', 'viewer', 'active', 0, null])
  assert.equal(listed.body.shares.length, 3, 'the two default links and the new one')
  for (const share of listed.body.shares) assert.equal(share.token, undefined, 'tokens are never listed')
})

test('opening the plan records when each link was last seen', async () => {
  const plan = await createPlan(server)
  const startedAt = Date.now()
  const buyer = client(server, plan.id, plan.buyer)
  await synced(buyer)
  const seen = await waitFor(async () => {
    const { body } = await api(server, 'GET', `/api/plans/${plan.id}/shares`)
    const share = body.shares.find(s => s.side === 'buyer')
    return share.opens === 1 && share
  }, { what: 'the buyer link to be recorded as seen' })
  assert.ok(Date.parse(seen.lastSeenAt) >= startedAt - 1000)
  assert.equal(seen.firstSeenAt, seen.lastSeenAt)
  const seller = (await api(server, 'GET', `/api/plans/${plan.id}/shares`)).body.shares.find(s => s.side === 'seller')
  assert.equal(seller.opens, 0, 'the seller link was not used')
  destroy(buyer)
})

test('revoking a link closes its open sockets with 4401 and refuses it from then on; others stay', async () => {
  const plan = await createPlan(server)
  const made = await mint(plan, plan.seller, { side: 'buyer', role: 'editor', label: 'Dev Patel' })
  const revokedSocket = rawSocket(server, plan.id, made.body.token)
  await revokedSocket.opened
  const seller = client(server, plan.id, plan.seller)
  await synced(seller)
  // Wait until the server has registered the socket (its visit is recorded after that).
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}/shares`)).body.shares
    .find(s => s.id === made.body.id).opens === 1, { what: 'the socket to be registered' })

  const revoked = await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${made.body.id}`, { token: plan.seller })
  assert.equal(revoked.status, 200)
  assert.equal(revoked.body.status, 'revoked')
  assert.equal(revoked.body.closedConnections, 1)
  assert.deepEqual(await revokedSocket.closed, { code: 4401, reason: 'this share link was revoked' })

  const again = await api(server, 'GET', `/api/plans/${plan.id}`, { token: made.body.token })
  assert.deepEqual([again.status, again.body.error.code], [401, 'share_revoked'])
  const upgrade = await upgradeStatus(`${server.wsUrl}/${plan.id}?token=${made.body.token}`)
  assert.deepEqual([upgrade.status, upgrade.body.error.code], [401, 'share_revoked'])

  // The seller, connected all along, still edits and is still heard.
  seller.map('meta').set('objective', 'still here')
  const check = client(server, plan.id, plan.buyer)
  await waitFor(() => check.map('meta').get('objective') === 'still here', { what: 'the seller edit to arrive' })
  const listed = (await api(server, 'GET', `/api/plans/${plan.id}/shares`)).body.shares.find(s => s.id === made.body.id)
  assert.equal(listed.status, 'revoked')
  // Revoking twice answers the same record.
  const twice = await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${made.body.id}`)
  assert.deepEqual([twice.status, twice.body.revokedAt], [200, revoked.body.revokedAt])
  destroy(seller, check)
})

test('who may manage links, and every bad request around them', async () => {
  const plan = await createPlan(server)
  const other = await createPlan(server)
  const viewer = (await mint(plan, undefined, { side: 'seller', role: 'viewer', label: 'Seller observer' })).body.token
  const target = (await mint(plan, plan.seller, { side: 'buyer', role: 'viewer', label: 'x' })).body.id
  const body = { side: 'buyer', role: 'editor', label: 'x' }
  const cases = [
    ['buyer editor mints a seller link', 'POST', `/api/plans/${plan.id}/shares`, { token: plan.buyer, body: { ...body, side: 'seller' } }, 403, 'buyer_links_only'],
    ['seller viewer mints', 'POST', `/api/plans/${plan.id}/shares`, { token: viewer, body }, 403, 'editors_only'],
    ['buyer lists', 'GET', `/api/plans/${plan.id}/shares`, { token: plan.buyer }, 403, 'sellers_only'],
    ['buyer revokes', 'DELETE', `/api/plans/${plan.id}/shares/${target}`, { token: plan.buyer }, 403, 'sellers_only'],
    ['seller of another plan lists', 'GET', `/api/plans/${plan.id}/shares`, { token: other.seller }, 403, 'wrong_plan'],
    ['seller of another plan revokes', 'DELETE', `/api/plans/${plan.id}/shares/${target}`, { token: other.seller }, 403, 'wrong_plan'],
    ['revoke a share of another plan', 'DELETE', `/api/plans/${other.id}/shares/${target}`, { token: other.seller }, 404, 'share_not_found'],
    ['revoke an unknown share', 'DELETE', `/api/plans/${plan.id}/shares/01900000-0000-7000-8000-000000000000`, {}, 404, 'share_not_found'],
    ['revoke a malformed share id', 'DELETE', `/api/plans/${plan.id}/shares/not-an-id`, {}, 404, 'share_not_found'],
    ['me without a token', 'GET', `/api/plans/${plan.id}/me`, { token: null }, 401, 'missing_token'],
    ['me for another plan', 'GET', `/api/plans/${other.id}/me`, { token: plan.buyer }, 403, 'wrong_plan'],
    ['me for an unknown plan', 'GET', '/api/plans/01900000-0000-7000-8000-000000000000/me', {}, 404, 'plan_not_found'],
    ['invalid JSON', 'POST', `/api/plans/${plan.id}/shares`, { token: plan.seller, raw: '{"side":', headers: { 'content-type': 'application/json' } }, 400, 'invalid_json'],
    ['oversized label', 'POST', `/api/plans/${plan.id}/shares`, { token: plan.seller, body: { ...body, label: 'x'.repeat(201) } }, 422, 'invalid_field']
  ]
  for (const [name, method, path, options, status, code] of cases) {
    const got = await api(server, method, path, options)
    assert.equal(got.status, status, `${name}: status (${JSON.stringify(got.body)})`)
    assert.equal(got.body?.error?.code, code, `${name}: code`)
  }
  const listed = (await api(server, 'GET', `/api/plans/${plan.id}/shares`)).body.shares
  assert.equal(listed.length, 4, 'no refused request minted a link')
  assert.ok(listed.every(s => s.status === 'active'), 'no refused request revoked a link')
})

test('a buyer champion mints a buyer link for their CFO, but cannot list or revoke links', async () => {
  const plan = await createPlan(server)
  const me = await api(server, 'GET', `/api/plans/${plan.id}/me`, { token: plan.buyer })
  assert.deepEqual([me.body.canManageShares, me.body.canMintSides], [false, ['buyer']])
  const made = await mint(plan, plan.buyer, { side: 'buyer', role: 'viewer', label: 'CFO' })
  assert.equal(made.status, 201)
  const cfo = await api(server, 'GET', `/api/plans/${plan.id}/me`, { token: made.body.token })
  assert.deepEqual([cfo.body.side, cfo.body.role, cfo.body.canMintSides], ['buyer', 'viewer', []])
  const listed = (await api(server, 'GET', `/api/plans/${plan.id}/shares`, { token: plan.seller })).body.shares
  assert.ok(listed.some(s => s.id === made.body.id), 'the seller sees the link the buyer made')
})

test('an admin is told it is the admin', async () => {
  const plan = await createPlan(server)
  const me = await api(server, 'GET', `/api/plans/${plan.id}/me`)
  assert.deepEqual([me.body.kind, me.body.canEdit, me.body.canManageShares], ['admin', true, true])
})

test('failed token attempts are limited per client address; other addresses and good requests without a token are not', async () => {
  const { request } = await import('node:http')
  const own = tempData()
  const limited = await startServer({ dataFile: own.file, authFailuresPerMinute: 5 })
  // Loopback has every 127.x address, so two clients can come from two addresses.
  const get = (path, token, localAddress) => new Promise((resolve, reject) => {
    const url = new URL(limited.url + path)
    const req = request({ host: url.hostname, port: url.port, path: url.pathname + url.search, localAddress, headers: token ? { authorization: `Bearer ${token}` } : {} }, res => {
      let text = ''
      res.on('data', chunk => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'], body: text ? JSON.parse(text) : null }))
    })
    req.on('error', reject)
    req.end()
  })
  try {
    const plan = await createPlan(limited)
    for (let i = 0; i < 5; i++) {
      const refused = await get(`/api/plans/${plan.id}`, 's_guess' + i, '127.0.0.2')
      assert.deepEqual([refused.status, refused.body.error.code], [401, 'invalid_token'])
    }
    const limitedAnswer = await get(`/api/plans/${plan.id}`, 's_guess5', '127.0.0.2')
    assert.deepEqual([limitedAnswer.status, limitedAnswer.body.error.code], [429, 'too_many_attempts'])
    assert.ok(Number(limitedAnswer.retryAfter) >= 1 && Number(limitedAnswer.retryAfter) <= 60)
    // While limited, even a good token from that address waits; the WebSocket upgrade too.
    assert.equal((await get(`/api/plans/${plan.id}`, plan.buyer, '127.0.0.2')).status, 429)
    const upgrade = await get(`/sync/${plan.id}?token=${plan.buyer}`, null, '127.0.0.2')
    assert.equal(upgrade.status, 429)
    // Requests without a credential are not limited, and another address is not affected.
    assert.equal((await get('/healthz', null, '127.0.0.2')).status, 200)
    assert.equal((await get(`/api/plans/${plan.id}`, plan.buyer, '127.0.0.3')).status, 200)
    assert.equal(await metric(limited, 'mapline_auth_refused_total'), 3)
  } finally {
    await limited.stop()
    own.cleanup()
  }
})

test('admin-token rotate replaces the stored admin credential; the old one stops working', async () => {
  const { spawnSync } = await import('node:child_process')
  const { binary } = await import('./lib/harness.js')
  const own = tempData()
  const env = { ...process.env, MAPLINE_ADMIN_TOKEN: '' }
  let running = await startServer({ dataFile: own.file, adminToken: null, env })
  try {
    const first = await waitFor(() => running.output().stdout.match(/Admin token \(shown only now; keep it\): (\S+)/)?.[1])
    assert.equal((await api(running, 'GET', '/api/plans', { token: first })).status, 200)
    const busy = spawnSync(binary, ['admin-token', 'rotate', '--data', own.file], { encoding: 'utf8', env })
    assert.equal(busy.status, 2)
    assert.match(busy.stderr, /server still running/)
    await running.stop()

    const rotated = spawnSync(binary, ['admin-token', 'rotate', '--data', own.file], { encoding: 'utf8', env })
    assert.equal(rotated.status, 0, rotated.stderr)
    const second = rotated.stdout.match(/New admin token \(shown only now; keep it\): (\S+)/)[1]
    assert.notEqual(second, first)

    running = await startServer({ dataFile: own.file, adminToken: null, env })
    assert.doesNotMatch(running.output().stdout, /Admin token/, 'not generated or printed again')
    assert.deepEqual([(await api(running, 'GET', '/api/plans', { token: first })).status], [401])
    assert.equal((await api(running, 'GET', '/api/plans', { token: second })).status, 200)
    const missing = spawnSync(binary, ['admin-token', 'rotate', '--data', own.file + '.none'], { encoding: 'utf8', env })
    assert.deepEqual([missing.status, missing.stderr.trim()], [2, `error: no data file at ${own.file}.none`])
  } finally {
    await running.stop()
    own.cleanup()
  }
})
