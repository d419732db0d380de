// Share-link management: sellers mint, list (with last use) and revoke their plan's links;
// a revocation takes effect at once and closes the link's open sockets; `/me` says who a
// link is. Real binary, real sockets, real y-websocket clients.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, tempData, createPlan, api, client, synced, destroy, rawSocket, waitFor, upgradeStatus, metric, Y
} from './lib/harness.js'
import { WebsocketProvider } from 'y-websocket'

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

/**
 * Requests from a chosen loopback address (Linux routes all of 127/8 to lo, so two clients can
 * come from two addresses). `get` answers { status, retryAfter, body }; `upgrade` the status of a
 * WebSocket upgrade (101 when accepted); `syncingClient` a real y-websocket client.
 */
async function fromAddress (server, localAddress) {
  const { request } = await import('node:http')
  const { default: WebSocket } = await import('ws')
  const get = (path, token) => new Promise((resolve, reject) => {
    const url = new URL(server.url + path)
    const req = request({ host: url.hostname, port: url.port, path: url.pathname + url.search, localAddress, headers: token ? { authorization: `Bearer ${token}` } : {} }, res => {
      let text = ''
      res.on('data', chunk => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode, retryAfter: res.headers['retry-after'], body: text ? JSON.parse(text) : null }))
    })
    req.on('error', reject)
    req.end()
  })
  const upgrade = (planId, token) => new Promise((resolve, reject) => {
    const ws = new WebSocket(`${server.wsUrl}/${planId}?token=${encodeURIComponent(token)}`, { localAddress })
    ws.once('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', chunk => { text += chunk })
      res.on('end', () => { resolve({ status: res.statusCode, body: text ? JSON.parse(text) : null }); ws.terminate() })
    })
    ws.once('open', () => { resolve({ status: 101 }); ws.close() })
    ws.once('error', reject)
  })
  class FromAddress extends WebSocket {
    constructor (url, protocols) { super(url, protocols, { localAddress }) }
  }
  const syncingClient = (planId, token) => {
    const doc = new Y.Doc()
    const provider = new WebsocketProvider(server.wsUrl, planId, doc, { WebSocketPolyfill: FromAddress, params: { token }, disableBc: true, maxBackoffTime: 200 })
    return { doc, provider, map: name => doc.getMap(name) }
  }
  return { get, upgrade, syncingClient }
}

test('a token that keeps failing is limited from its address; the address\'s other tokens and requests without one are not', async () => {
  const own = tempData()
  const limited = await startServer({ dataFile: own.file, authFailuresPerMinute: 5 })
  try {
    const plan = await createPlan(limited)
    const office = await fromAddress(limited, '127.0.0.2')
    for (let i = 0; i < 5; i++) {
      const refused = await office.get(`/api/plans/${plan.id}`, 's_guess')
      assert.deepEqual([refused.status, refused.body.error.code], [401, 'invalid_token'])
    }
    const limitedAnswer = await office.get(`/api/plans/${plan.id}`, 's_guess')
    assert.deepEqual([limitedAnswer.status, limitedAnswer.body.error.code], [429, 'too_many_attempts'])
    assert.match(limitedAnswer.body.error.message, /with this token/)
    assert.ok(Number(limitedAnswer.retryAfter) >= 1 && Number(limitedAnswer.retryAfter) <= 60)
    // The same token in the WebSocket upgrade's query is the same attempt.
    assert.equal((await office.upgrade(plan.id, 's_guess')).status, 429)
    // A good token from that address still works, and so do requests without a token.
    assert.equal((await office.get(`/api/plans/${plan.id}`, plan.buyer)).status, 200)
    assert.equal((await office.upgrade(plan.id, plan.buyer)).status, 101)
    assert.equal((await office.get('/healthz')).status, 200)
    // Another address is not affected even by the failing token.
    const elsewhere = await fromAddress(limited, '127.0.0.3')
    assert.deepEqual([(await elsewhere.get(`/api/plans/${plan.id}`, 's_guess')).status], [401])
    assert.equal(await metric(limited, 'mapline_auth_refused_total'), 2)
  } finally {
    await limited.stop()
    own.cleanup()
  }
})

test('two stale tabs on a revoked link are limited; a colleague behind the same address keeps reading and syncing', async () => {
  const own = tempData()
  const limited = await startServer({ dataFile: own.file, authFailuresPerMinute: 5 })
  let colleague
  try {
    const plan = await createPlan(limited)
    const made = await api(limited, 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'buyer', role: 'viewer', label: 'Old link' } })
    assert.equal(made.status, 201)
    const revoked = await api(limited, 'DELETE', `/api/plans/${plan.id}/shares/${made.body.id}`)
    assert.equal(revoked.status, 200)
    const office = await fromAddress(limited, '127.0.0.2')
    // Two tabs retry the revoked link in turns (as y-websocket does, by upgrade) while a
    // colleague's valid link is used from the same address between every retry.
    const stale = []
    for (let round = 0; round < 20; round++) {
      for (let tab = 0; tab < 2; tab++) stale.push((await office.upgrade(plan.id, made.body.token)).status)
      assert.equal((await office.get(`/api/plans/${plan.id}`, plan.buyer)).status, 200, `round ${round}: the colleague's link reads`)
    }
    assert.deepEqual(stale, [...Array(5).fill(401), ...Array(35).fill(429)])
    assert.equal((await office.upgrade(plan.id, plan.buyer)).status, 101)
    colleague = office.syncingClient(plan.id, plan.buyer)
    await synced(colleague)
    assert.equal(colleague.map('meta').get('title')?.toString(), 'Rollout')
  } finally {
    if (colleague) destroy(colleague)
    await limited.stop()
    own.cleanup()
  }
})

test('a sweep of many distinct bad tokens from one address is limited for the whole address', async () => {
  const own = tempData()
  // Per address: 10 times the per-token limit unless set.
  const byDefault = await startServer({ dataFile: own.file, authFailuresPerMinute: 3 })
  try {
    const plan = await createPlan(byDefault)
    const sweeper = await fromAddress(byDefault, '127.0.0.4')
    for (let i = 0; i < 30; i++) {
      const guess = await sweeper.get(`/api/plans/${plan.id}`, `s_guess${i}`)
      assert.deepEqual([guess.status, guess.body.error.code], [401, 'invalid_token'], `guess ${i}`)
    }
    const stopped = await sweeper.get(`/api/plans/${plan.id}`, 's_guess30')
    assert.deepEqual([stopped.status, stopped.body.error.code], [429, 'too_many_attempts'])
    assert.match(stopped.body.error.message, /from this address/)
    // The whole address waits now, even with a good token, the upgrade included.
    assert.equal((await sweeper.get(`/api/plans/${plan.id}`, plan.buyer)).status, 429)
    assert.equal((await sweeper.upgrade(plan.id, plan.buyer)).status, 429)
    assert.equal((await (await fromAddress(byDefault, '127.0.0.5')).get(`/api/plans/${plan.id}`, plan.buyer)).status, 200)
  } finally {
    await byDefault.stop()
  }
  const set = await startServer({ dataFile: own.file, authFailuresPerMinute: 3, args: ['--auth-failures-per-address-per-minute', '4'] })
  try {
    const { id } = (await api(set, 'GET', '/api/plans')).body.plans[0]
    const sweeper = await fromAddress(set, '127.0.0.4')
    const statuses = []
    for (let i = 0; i < 5; i++) statuses.push((await sweeper.get(`/api/plans/${id}`, `s_guess${i}`)).status)
    assert.deepEqual(statuses, [401, 401, 401, 401, 429])
  } finally {
    await set.stop()
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
