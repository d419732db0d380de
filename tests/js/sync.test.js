// Real Yjs clients against the real binary: the collaboration behaviours users rely on.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import {
  startServer, tempData, createPlan, mintShare, client, synced, destroy, waitFor, api,
  upgradeStatus, rawSocket, metric, canonical, Y
} from './lib/harness.js'

let data, server
before(async () => { data = tempData(); server = await startServer({ dataFile: data.file }) })
after(async () => { await server.stop(); data.cleanup() })

test('a new plan document holds its meta fields, in schema v2 (the title is a Y.Text)', async () => {
  const plan = await createPlan(server, { title: 'Security rollout', goLive: '2027-06-30' })
  const a = client(server, plan.id, plan.seller)
  await synced(a)
  const meta = a.map('meta')
  await waitFor(() => meta.get('title')?.toString() === 'Security rollout', { what: 'meta.title' })
  assert.ok(meta.get('title') instanceof Y.Text)
  assert.equal(meta.get('schemaVersion'), 2)
  assert.equal(meta.get('goLive'), '2027-06-30')
  assert.equal(meta.get('buyerOrg'), 'Northwind')
  destroy(a)
})

test('two clients editing one plan at once converge', async () => {
  const plan = await createPlan(server)
  const seller = client(server, plan.id, plan.seller)
  const buyer = client(server, plan.id, plan.buyer)
  await Promise.all([synced(seller), synced(buyer)])
  // Concurrent edits: the same milestone's fields and different milestones, on both sides.
  const ms = new Y.Map()
  seller.map('milestones').set('ms-1', ms)
  ms.set('title', 'Security review')
  for (let i = 0; i < 20; i++) {
    seller.map('milestones').set(`s-${i}`, new Y.Map([['title', `seller ${i}`]]))
    buyer.map('milestones').set(`b-${i}`, new Y.Map([['title', `buyer ${i}`]]))
  }
  buyer.map('meta').set('goLiveReason', 'Board commitment')
  seller.map('meta').set('goLiveReason', 'Fiscal year start')
  const state = c => canonical(c.doc)
  await waitFor(() => seller.map('milestones').size === 41 && state(seller) === state(buyer), { what: 'convergence' })
  assert.ok(['Board commitment', 'Fiscal year start'].includes(buyer.map('meta').get('goLiveReason')))
  destroy(seller, buyer)
})

test('an edit made while disconnected merges on reconnect', async () => {
  const plan = await createPlan(server)
  const seller = client(server, plan.id, plan.seller)
  const buyer = client(server, plan.id, plan.buyer)
  await Promise.all([synced(seller), synced(buyer)])
  buyer.provider.disconnect()
  await waitFor(() => !buyer.provider.wsconnected, { what: 'disconnect' })
  // (A new plan's prose fields are empty texts: docs/schema.md.)
  buyer.map('meta').get('objective').insert(0, 'Cut ramp time to 45 days') // offline edit
  seller.map('meta').get('costOfInaction').insert(0, '$1.2M per quarter') // meanwhile online
  const text = (c, field) => c.map('meta').get(field).toString()
  await waitFor(() => text(seller, 'costOfInaction') !== '')
  assert.equal(text(seller, 'objective'), '', 'offline edit must not leak before reconnect')
  buyer.provider.connect()
  await waitFor(() => text(seller, 'objective') === 'Cut ramp time to 45 days', { what: 'offline edit at seller' })
  await waitFor(() => text(buyer, 'costOfInaction') === '$1.2M per quarter', { what: 'online edit at buyer' })
  destroy(seller, buyer)
})

test('a late joiner receives the full state', async () => {
  const plan = await createPlan(server)
  const early = client(server, plan.id, plan.seller)
  await synced(early)
  for (let i = 0; i < 50; i++) early.map('stakeholders').set(`st-${i}`, new Y.Map([['name', `Person ${i}`]]))
  const late = client(server, plan.id, plan.buyer)
  await synced(late)
  await waitFor(() => late.map('stakeholders').size === 50, { what: 'all 50 stakeholders at the late joiner' })
  assert.equal(late.map('stakeholders').get('st-49').get('name'), 'Person 49')
  destroy(early, late)
})

test('awareness is relayed and removed when its client disconnects', async () => {
  const plan = await createPlan(server)
  const a = client(server, plan.id, plan.seller)
  const b = client(server, plan.id, plan.buyer)
  await Promise.all([synced(a), synced(b)])
  a.provider.awareness.setLocalStateField('user', { name: 'June', side: 'seller' })
  const aId = a.doc.clientID
  await waitFor(() => b.provider.awareness.getStates().get(aId)?.user?.name === 'June', { what: 'presence at b' })
  // a's socket closes abruptly (no awareness goodbye from the client): the server must remove it.
  a.provider.shouldConnect = false
  a.provider.ws.terminate()
  await waitFor(() => !b.provider.awareness.getStates().has(aId), { what: 'presence removed at b' })
  destroy(a, b)
})

test('a viewer receives everything but its edits are refused and never stored', async () => {
  const plan = await createPlan(server)
  const viewerToken = await mintShare(server, plan.id, { role: 'viewer', label: 'CFO' })
  const editor = client(server, plan.id, plan.seller)
  await synced(editor)
  editor.map('meta').set('objective', 'from the editor')
  const viewer = client(server, plan.id, viewerToken, { params: { acks: '1' } })
  const refusals = []
  viewer.provider.messageHandlers[101] = (_enc, decoder) => { refusals.push(decoding.readVarString(decoder)) }
  await synced(viewer)
  await waitFor(() => viewer.map('meta').get('objective') === 'from the editor', { what: 'viewer receives edits' })
  const refusedBefore = await metric(server, 'mapline_updates_refused_total')
  viewer.map('meta').set('objective', 'viewer tampering')
  await waitFor(() => refusals.length === 1, { what: 'refusal notice' })
  assert.match(refusals[0], /read-only/)
  assert.equal(await metric(server, 'mapline_updates_refused_total'), refusedBefore + 1)
  // The connection stays usable: it still receives the editor's next change.
  editor.map('meta').set('costOfInaction', 'still flowing')
  await waitFor(() => viewer.map('meta').get('costOfInaction') === 'still flowing', { what: 'viewer still receives' })
  assert.equal(editor.map('meta').get('objective'), 'from the editor')
  // A newcomer gets the stored state: the viewer's edit is not in it.
  const fresh = client(server, plan.id, plan.buyer)
  await synced(fresh)
  await waitFor(() => fresh.map('meta').get('costOfInaction') === 'still flowing')
  assert.equal(fresh.map('meta').get('objective'), 'from the editor')
  destroy(editor, viewer, fresh)
})

test('a wrong token and an unknown plan are refused before the upgrade, creating nothing', async () => {
  const plan = await createPlan(server)
  const other = await createPlan(server)
  const unknown = '01900000-0000-7000-8000-00000000beef'
  const plansBefore = (await api(server, 'GET', '/api/plans')).body.plans.length
  const loadsBefore = await metric(server, 'mapline_room_loads_total')
  const cases = [
    [`${server.wsUrl}/${plan.id}`, 401, 'missing_token'],
    [`${server.wsUrl}/${plan.id}?token=s_wrong`, 401, 'invalid_token'],
    [`${server.wsUrl}/${plan.id}?token=${plan.seller.slice(0, -2)}xx`, 401, 'invalid_token'],
    [`${server.wsUrl}/${plan.id}?token=${other.buyer}`, 403, 'wrong_plan'],
    [`${server.wsUrl}/${unknown}?token=s_wrong`, 401, 'invalid_token'],
    [`${server.wsUrl}/${unknown}?token=test-admin-token-0123456789abcdef`, 404, 'plan_not_found'],
    [`${server.wsUrl}/not-a-uuid?token=test-admin-token-0123456789abcdef`, 404, 'plan_not_found']
  ]
  for (const [url, status, code] of cases) {
    const got = await upgradeStatus(url)
    assert.equal(got.status, status, url)
    assert.equal(got.body.error.code, code, url)
  }
  assert.equal(await metric(server, 'mapline_room_loads_total'), loadsBefore, 'no refused request loaded a plan')
  // Bearer header works where the query parameter does, and is checked the same way.
  assert.equal((await upgradeStatus(`${server.wsUrl}/${plan.id}`, { authorization: `Bearer ${plan.buyer}` })).status, 101)
  assert.equal((await upgradeStatus(`${server.wsUrl}/${plan.id}`, { authorization: 'Bearer nope' })).status, 401)
  assert.equal((await api(server, 'GET', '/api/plans')).body.plans.length, plansBefore)
})

test('durability acknowledgements count the sender\'s updates once they are stored', async () => {
  const plan = await createPlan(server)
  const c = client(server, plan.id, plan.seller, { params: { acks: '1' } })
  const acks = []
  c.provider.messageHandlers[100] = (_enc, decoder) => {
    const count = decoding.readVarUint(decoder)
    const sv = Y.decodeStateVector(decoding.readVarUint8Array(decoder))
    acks.push({ count, sv })
  }
  await synced(c)
  // The client's own sync step 2 (its answer to the server's step 1) is acknowledged first.
  await waitFor(() => acks.length >= 1, { what: 'the acknowledgement of the initial sync' })
  const persistedBefore = await metric(server, 'mapline_updates_persisted_total')
  const sentBefore = acks.length ? acks[acks.length - 1].count : 0
  for (let i = 0; i < 5; i++) c.map('meta').set('title', `v${i}`)
  await waitFor(() => acks.length && acks[acks.length - 1].count === sentBefore + 5, { what: '5 more acknowledged' })
  // The acknowledged state vector covers the client's own edits: "all changes saved".
  const local = Y.encodeStateVector(c.doc)
  assert.equal(acks[acks.length - 1].sv.get(c.doc.clientID), Y.decodeStateVector(local).get(c.doc.clientID))
  assert.ok(await metric(server, 'mapline_updates_persisted_total') >= persistedBefore + 5)
  // Clients that did not ask get no Mapline messages (y-websocket would log them as unknown).
  const plain = rawSocket(server, plan.id, plan.buyer)
  await plain.opened
  const update = Y.encodeStateAsUpdate(c.doc)
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, 0); encoding.writeVarUint(enc, 2); encoding.writeVarUint8Array(enc, update)
  plain.ws.send(encoding.toUint8Array(enc))
  c.map('meta').set('title', 'after plain client')
  await waitFor(() => acks[acks.length - 1].count === sentBefore + 6)
  await waitFor(() => plain.messages.some(m => m[0] === 0 && m[1] === 2), { what: 'relayed update at the plain client' })
  assert.ok(plain.messages.every(m => m[0] === 0 || m[0] === 1), 'only sync and awareness messages')
  plain.ws.close()
  destroy(c)
})

test('25 fresh plans each opened by 4 clients at the same instant all converge, each loaded once', async () => {
  const loadsBefore = await metric(server, 'mapline_room_loads_total')
  const plans = await Promise.all(Array.from({ length: 25 }, () => createPlan(server)))
  const clients = plans.flatMap(plan => [plan.seller, plan.buyer, plan.seller, plan.buyer]
    .map(token => ({ plan, c: client(server, plan.id, token) })))
  await Promise.all(clients.map(({ c }) => synced(c, 20000)))
  clients.forEach(({ c }, i) => c.map('milestones').set(`m-${i}`, new Y.Map([['title', `from client ${i}`]])))
  const state = c => canonical(c.doc)
  await waitFor(() => clients.every(({ c }) => c.map('milestones').size === 4), { timeout: 20000, what: 'every client to see 4 milestones' })
  for (const plan of plans) {
    const docs = clients.filter(x => x.plan === plan).map(x => state(x.c))
    assert.equal(new Set(docs).size, 1, `plan ${plan.id} diverged`)
  }
  assert.equal(await metric(server, 'mapline_room_loads_total'), loadsBefore + 25, 'each plan loaded exactly once')
  destroy(...clients.map(x => x.c))
})
