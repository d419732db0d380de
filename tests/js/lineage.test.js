// Share-link lineage: a link minted with a share link is bounded by it (its parent). It expires
// no later than the parent, and revoking a link revokes every link minted through it,
// transitively, closing all their sockets at once. Links minted with the admin credential, and
// the plan's default links, have no parent. Real binary, real sockets.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, tempData, createPlan, api, rawSocket, upgradeStatus, waitFor } from './lib/harness.js'

let data, server
before(async () => { data = tempData(); server = await startServer({ dataFile: data.file }) })
after(async () => { await server.stop(); data.cleanup() })

const mint = (srv, plan, token, body) => api(srv, 'POST', `/api/plans/${plan.id}/shares`, { token, body })
const listed = async (srv, plan) => (await api(srv, 'GET', `/api/plans/${plan.id}/shares`)).body.shares
const hours = n => new Date(Date.now() + n * 3600_000).toISOString()

/** Resolves with the promise's value, or fails after `ms` (a deadline, not a delay). */
function within (promise, what, ms = 10000) {
  let timer
  const deadline = new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms) })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

/** Opens a raw sync socket and waits until the server has registered it (its visit recorded). */
async function openSocket (srv, plan, share) {
  const socket = rawSocket(srv, plan.id, share.token)
  await socket.opened
  await waitFor(async () => (await listed(srv, plan)).find(s => s.id === share.id).opens >= 1,
    { what: `the socket of ${share.label} to be registered` })
  return socket
}

/** Admin → seller link A → A mints B (buyer editor) → B mints C; D is an unrelated admin link. */
async function lineage (srv) {
  const plan = await createPlan(srv)
  const a = (await mint(srv, plan, undefined, { side: 'seller', role: 'editor', label: 'Sam Seller (AE)' })).body
  const b = (await mint(srv, plan, a.token, { side: 'buyer', role: 'editor', label: 'Dev Patel (champion)' })).body
  const c = (await mint(srv, plan, b.token, { side: 'buyer', role: 'editor', label: 'Ana Ruiz (CFO)' })).body
  const d = (await mint(srv, plan, undefined, { side: 'buyer', role: 'editor', label: 'Lee Kim (IT)' })).body
  for (const share of [a, b, c, d]) assert.ok(share.token, JSON.stringify(share))
  return { plan, a, b, c, d }
}

test('a minted link expires no later than the link it was minted with', async () => {
  const plan = await createPlan(server)
  const parent = await mint(server, plan, undefined, { side: 'buyer', role: 'editor', label: 'Dev Patel (champion)', expiresAt: hours(1) })
  assert.equal(parent.status, 201)
  assert.equal(parent.body.parentId, undefined, 'minted with the admin credential: no parent')
  const expiry = parent.body.expiresAt

  const cases = [
    ['no expiry asked', undefined, expiry],
    ['a later expiry asked', hours(2), expiry]
  ]
  for (const [name, asked, expected] of cases) {
    const child = await mint(server, plan, parent.body.token, { side: 'buyer', role: 'editor', label: `Child: ${name}`, expiresAt: asked })
    assert.equal(child.status, 201, name)
    assert.equal(child.body.expiresAt, expected, `${name}: capped at the parent's expiry, and the answer says so`)
    assert.equal(child.body.parentId, parent.body.id, name)
    const me = await api(server, 'GET', `/api/plans/${plan.id}/me`, { token: child.body.token })
    assert.equal(Date.parse(me.body.expiresAt), Date.parse(expiry), `${name}: stored capped`)
  }
  const earlier = hours(0.5)
  const sooner = await mint(server, plan, parent.body.token, { side: 'buyer', role: 'viewer', label: 'Child: earlier', expiresAt: earlier })
  assert.equal(Date.parse(sooner.body.expiresAt), Date.parse(earlier), 'an earlier expiry is kept')

  // A grandchild is bounded by the whole chain.
  const editorChild = (await mint(server, plan, parent.body.token, { side: 'buyer', role: 'editor', label: 'Editor child' })).body
  const grandchild = await mint(server, plan, editorChild.token, { side: 'buyer', role: 'viewer', label: 'Grandchild', expiresAt: hours(5) })
  assert.equal(grandchild.body.expiresAt, expiry)

  const list = await listed(server, plan)
  const child = list.find(s => s.label === 'Child: no expiry asked')
  assert.deepEqual([child.parentId, child.mintedBy], [parent.body.id, 'Dev Patel (champion)'])
  assert.deepEqual(list.find(s => s.label === 'Grandchild').mintedBy, 'Editor child')
})

test('the reported escape is closed: revoking the link revokes what it minted, for HTTP and sync', async () => {
  const plan = await createPlan(server)
  const parent = (await mint(server, plan, undefined, { side: 'buyer', role: 'editor', label: 'Dev Patel', expiresAt: hours(1) })).body
  const minted = await mint(server, plan, parent.token, { side: 'buyer', role: 'editor', label: 'Escape attempt' })
  assert.equal(minted.status, 201)
  assert.equal(minted.body.expiresAt, parent.expiresAt, 'not expiresAt: null')
  assert.equal((await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${parent.id}`)).status, 200)
  const read = await api(server, 'GET', `/api/plans/${plan.id}`, { token: minted.body.token })
  assert.deepEqual([read.status, read.body.error?.code], [401, 'share_revoked'])
  const sync = await upgradeStatus(`${server.wsUrl}/${plan.id}?token=${minted.body.token}`)
  assert.deepEqual([sync.status, sync.body?.error?.code], [401, 'share_revoked'])
})

test('revoking a link revokes everything minted through it, transitively, and closes their sockets with 4401', async () => {
  const { plan, a, b, c, d } = await lineage(server)
  const list = await listed(server, plan)
  const row = id => list.find(s => s.id === id)
  assert.deepEqual([row(a.id).parentId, row(a.id).mintedBy], [null, null])
  assert.deepEqual([row(b.id).parentId, row(b.id).mintedBy], [a.id, 'Sam Seller (AE)'])
  assert.deepEqual([row(c.id).parentId, row(c.id).mintedBy], [b.id, 'Dev Patel (champion)'])
  assert.deepEqual([row(d.id).parentId, row(d.id).mintedBy], [null, null])

  const preview = await api(server, 'GET', `/api/plans/${plan.id}/shares/${a.id}/revocation`, { token: plan.seller })
  assert.equal(preview.status, 200)
  assert.deepEqual(preview.body.shares.map(s => [s.label, s.depth, s.mintedBy, s.status]), [
    ['Sam Seller (AE)', 0, null, 'active'],
    ['Dev Patel (champion)', 1, 'Sam Seller (AE)', 'active'],
    ['Ana Ruiz (CFO)', 2, 'Dev Patel (champion)', 'active']
  ])
  assert.ok((await listed(server, plan)).every(s => s.status === 'active'), 'the preview revokes nothing')

  const [socketB, socketC, socketD] = [await openSocket(server, plan, b), await openSocket(server, plan, c), await openSocket(server, plan, d)]
  const revoked = await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${a.id}`, { token: plan.seller })
  assert.equal(revoked.status, 200)
  assert.equal(revoked.body.closedConnections, 2)
  assert.deepEqual(revoked.body.revoked.map(s => s.id), [a.id, b.id, c.id])
  const expected = { code: 4401, reason: 'this share link was revoked' }
  assert.deepEqual(await within(socketB.closed, 'B\'s socket to close'), expected)
  assert.deepEqual(await within(socketC.closed, 'C\'s socket to close'), expected)

  for (const share of [a, b, c]) {
    const read = await api(server, 'GET', `/api/plans/${plan.id}`, { token: share.token })
    assert.deepEqual([read.status, read.body.error?.code], [401, 'share_revoked'], share.label)
    const sync = await upgradeStatus(`${server.wsUrl}/${plan.id}?token=${share.token}`)
    assert.deepEqual([sync.status, sync.body?.error?.code], [401, 'share_revoked'], share.label)
  }
  // The unrelated link and the plan's default links are untouched; D's socket is still open.
  assert.equal(socketD.ws.readyState, socketD.ws.OPEN)
  for (const token of [d.token, plan.buyer, plan.seller]) {
    assert.equal((await api(server, 'GET', `/api/plans/${plan.id}`, { token })).status, 200)
  }
  const after = await listed(server, plan)
  assert.deepEqual(after.filter(s => s.status === 'revoked').map(s => s.id).sort(), [a.id, b.id, c.id].sort())
  // All three carry the same revocation time.
  assert.equal(new Set(after.filter(s => s.status === 'revoked').map(s => s.revokedAt)).size, 1)
  socketD.ws.close()
})

test('revoking a minted link leaves the link that minted it working (lineage goes down, never up)', async () => {
  const plan = await createPlan(server)
  // Minted with the plan's default seller link, which has no parent (made before any minting).
  const child = (await mint(server, plan, plan.seller, { side: 'buyer', role: 'viewer', label: 'Ana Ruiz (CFO)' })).body
  assert.equal(child.parentId, plan.shares.find(s => s.side === 'seller').id)
  const preview = await api(server, 'GET', `/api/plans/${plan.id}/shares/${child.id}/revocation`, { token: plan.seller })
  assert.deepEqual(preview.body.shares.map(s => s.id), [child.id])
  assert.equal((await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${child.id}`, { token: plan.seller })).status, 200)
  for (const token of [plan.seller, plan.buyer]) {
    assert.equal((await api(server, 'GET', `/api/plans/${plan.id}`, { token })).status, 200)
  }
  assert.equal((await api(server, 'GET', `/api/plans/${plan.id}`, { token: child.token })).status, 401)
})

test('a cascaded revocation is durable: after a crash and restart the descendants stay refused', async () => {
  const own = tempData()
  let running = await startServer({ dataFile: own.file })
  try {
    const { plan, a, b, c, d } = await lineage(running)
    assert.equal((await api(running, 'DELETE', `/api/plans/${plan.id}/shares/${a.id}`)).status, 200)
    await running.kill9()
    running = await startServer({ dataFile: own.file })
    for (const share of [a, b, c]) {
      const read = await api(running, 'GET', `/api/plans/${plan.id}`, { token: share.token })
      assert.deepEqual([read.status, read.body.error?.code], [401, 'share_revoked'], share.label)
    }
    assert.equal((await api(running, 'GET', `/api/plans/${plan.id}`, { token: d.token })).status, 200)
  } finally {
    await running.stop()
    own.cleanup()
  }
})

test('a minted link\'s socket closes when its parent expires', async () => {
  const plan = await createPlan(server)
  const parent = (await mint(server, plan, undefined, { side: 'buyer', role: 'editor', label: 'Short visit', expiresAt: new Date(Date.now() + 3000).toISOString() })).body
  const child = (await mint(server, plan, parent.token, { side: 'buyer', role: 'viewer', label: 'Their colleague' })).body
  assert.equal(child.expiresAt, parent.expiresAt)
  const socket = rawSocket(server, plan.id, child.token)
  await socket.opened
  assert.deepEqual(await within(socket.closed, 'the child socket to close at the parent\'s expiry', 15000),
    { code: 4401, reason: 'this share link has expired' })
  const read = await api(server, 'GET', `/api/plans/${plan.id}`, { token: child.token })
  assert.deepEqual([read.status, read.body.error?.code], [401, 'share_expired'])
})

test('the revocation preview: who may ask, and unknown or foreign links', async () => {
  const { plan, a, b } = await lineage(server)
  const other = await createPlan(server)
  const foreign = other.shares[0].id
  const viewer = (await mint(server, plan, undefined, { side: 'seller', role: 'viewer', label: 'Seller observer' })).body.token
  const preview = id => `/api/plans/${plan.id}/shares/${id}/revocation`
  const cases = [
    ['unknown share', preview('01900000-0000-7000-8000-000000000000'), {}, 404, 'share_not_found'],
    ['another plan\'s share', preview(foreign), {}, 404, 'share_not_found'],
    ['malformed share id', preview('not-an-id'), {}, 404, 'share_not_found'],
    ['unknown plan', `/api/plans/01900000-0000-7000-8000-000000000000/shares/${a.id}/revocation`, {}, 404, 'plan_not_found'],
    ['seller viewer', preview(a.id), { token: viewer }, 403, 'sellers_only'],
    ['buyer editor', preview(a.id), { token: b.token }, 403, 'sellers_only'],
    ['buyer default link', preview(a.id), { token: plan.buyer }, 403, 'sellers_only'],
    ['seller of another plan', preview(a.id), { token: other.seller }, 403, 'wrong_plan'],
    ['no token', preview(a.id), { token: null }, 401, 'missing_token']
  ]
  for (const [name, path, options, status, code] of cases) {
    const got = await api(server, 'GET', path, options)
    assert.equal(got.status, status, `${name}: status (${JSON.stringify(got.body)})`)
    assert.equal(got.body?.error?.code, code, `${name}: code`)
  }
  const shares = await listed(server, plan)
  assert.ok(shares.every(s => s.status === 'active'), 'nothing was revoked')
  assert.equal(shares.length, 7, 'two default links, A, B, C, D, the viewer: nothing minted')
})
