// The seller's judgments of the buyer's people (power, engagement, private notes) live in the
// internal document (docs/schema.md). A buyer link finds none of them in any route, export,
// calendar feed or webhook delivery; a seller link and the admin get them merged into each
// stakeholder of GET /api/plans/{id} and of export.json. An import (v1 or v2 export) moves them
// into the new plan's internal document.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { copyFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import {
  ADMIN_TOKEN, repoRoot, startServer, tempData, api, mintShare, client, synced, destroy, waitFor, Y
} from './lib/harness.js'

let data, server, hook
before(async () => {
  data = tempData()
  server = await startServer({ dataFile: data.file, args: ['--webhooks-allow-private'] })
  hook = await receiver()
})
after(async () => { await hook.stop(); await server.stop(); data.cleanup() })

/** A webhook receiver on 127.0.0.1 that keeps every delivery's raw body. */
function receiver () {
  const bodies = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', c => { body += c })
    req.on('end', () => { bodies.push(body); res.writeHead(204).end() })
  })
  return new Promise(resolve => server.listen(0, '127.0.0.1', () => resolve({
    bodies,
    url: `http://127.0.0.1:${server.address().port}/hook`,
    stop: () => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) })
  })))
}

// Judgment values that appear nowhere else in the plan (no title, note or enumeration has them).
const POWER = 'blocker'
const ENGAGEMENT = 'dark'
const PRIVATE_NOTE = 'sealed-note-7f3a: ask her boss first'
const IMPORTED_NOTE = 'imported-note-41c9'
const JUDGMENT_VALUES = [POWER, ENGAGEMENT, 'sealed-note', IMPORTED_NOTE, 'privateNotes', '"power"', '"engagement"']

/** A v1 export as an older server wrote it: the judgments were shared stakeholder fields. */
function v1Export () {
  return {
    format: 'mapline.plan.v1',
    plan: {
      meta: { title: 'Judged rollout', buyerOrg: 'Northwind', sellerOrg: 'Mapline', goLive: '2027-04-01', goLiveReason: 'Fiscal year' },
      stakeholders: [
        { id: 'st-lena', name: 'Lena Fischer', title: 'IT Security Lead', side: 'buyer', role: 'security', power: POWER, engagement: ENGAGEMENT, notes: 'Runs the questionnaire', order: 'a0' },
        { id: 'st-dev', name: 'Dev Patel', title: 'Enablement', side: 'buyer', role: 'champion', power: 'influencer', engagement: 'engaged', order: 'a1' }
      ],
      milestones: [
        { id: 'ms-a', title: 'Security review', workstream: 'security_compliance', side: 'buyer', due: '2027-02-01', status: 'not_started', owner: { stakeholderId: 'st-lena', name: 'Lena Fischer' }, dependsOn: [] },
        { id: 'ms-b', title: 'Signature', workstream: 'legal_procurement', side: 'joint', due: '2027-03-01', status: 'not_started', dependsOn: ['ms-a'] }
      ]
    }
  }
}

/** Imports the v1 export as admin; returns { id, seller, buyer }. */
async function importV1 () {
  const { status, body } = await api(server, 'POST', '/api/plans/import', { body: v1Export() })
  assert.equal(status, 201, JSON.stringify(body))
  const token = side => body.shares.find(s => s.side === side).token
  return { id: body.id, seller: token('seller'), buyer: token('buyer') }
}

/** The raw body of a GET, as text (whatever its content type). */
async function rawGet (path, token) {
  const response = await fetch(server.url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} })
  return { status: response.status, text: await response.text() }
}

function leaks (text) {
  return JUDGMENT_VALUES.filter(value => text.includes(value))
}

test('a buyer link finds no judgment in any route, export, calendar feed or webhook delivery', async () => {
  const hookMade = await api(server, 'POST', '/api/webhooks', { body: { url: hook.url } })
  assert.equal(hookMade.status, 201)
  const plan = await importV1()
  const buyerViewer = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'CFO' })
  // The seller adds a private note through the internal document, as the page does.
  const internal = client(server, `${plan.id}/internal`, plan.seller)
  await synced(internal)
  const lena = internal.map('stakeholders').get('st-lena')
  assert.ok(lena instanceof Y.Map, 'the import put the judgments into the internal document')
  assert.equal(lena.get('power'), POWER)
  internal.doc.transact(() => lena.set('notes', new Y.Text(PRIVATE_NOTE)))
  await waitFor(async () => {
    const got = await api(server, 'GET', `/api/plans/${plan.id}`, { token: plan.seller })
    return got.body.plan.stakeholders[0].privateNotes === PRIVATE_NOTE
  }, { what: 'the private note to be durable' })
  // Events for the webhooks: a slip and a completion, made by the buyer.
  const buyer = client(server, plan.id, plan.buyer)
  await synced(buyer)
  const steps = buyer.map('milestones')
  buyer.doc.transact(() => { steps.get('ms-a').set('due', '2027-02-08'); steps.get('ms-a').set('slipReason', 'Queue') })
  steps.get('ms-b').set('status', 'done')
  await waitFor(() => hook.bodies.some(b => b.includes('milestone.completed')) && hook.bodies.some(b => b.includes('milestone.slipped')), { what: 'the webhook deliveries' })
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}/slips`)).body.slips.length === 1, { what: 'the slip to be stored' })

  const today = new Date().toISOString().slice(0, 10)
  const routes = [
    `/api/plans/${plan.id}`, `/api/plans/${plan.id}?at=1`, `/api/plans/${plan.id}?at=2`, `/api/plans/${plan.id}?at=${today}`,
    `/api/plans/${plan.id}/slips`, `/api/plans/${plan.id}/history`, `/api/plans/${plan.id}/health`,
    `/api/plans/${plan.id}/me`, `/api/plans/${plan.id}/deleted`, `/api/plans/${plan.id}/shares`,
    `/api/plans/${plan.id}/export.json`, `/api/plans/${plan.id}/export.md`, `/api/plans/${plan.id}/export.csv`
  ]
  for (const token of [plan.buyer, buyerViewer]) {
    for (const route of routes) {
      const { status, text } = await rawGet(route, token)
      assert.ok(status < 500, `${route}: ${status}`)
      assert.deepEqual(leaks(text), [], `${route} (${status}) leaks: ${text.slice(0, 300)}`)
    }
    const me = await api(server, 'GET', `/api/plans/${plan.id}/me`, { token })
    const feed = await rawGet(new URL(me.body.calendarUrl, server.url).pathname + new URL(me.body.calendarUrl, server.url).search)
    assert.equal(feed.status, 200)
    assert.deepEqual(leaks(feed.text), [], `calendar leaks: ${feed.text.slice(0, 300)}`)
  }
  // The buyer's plan has no judgment keys at all (absent, not null), and still its people.
  const seen = await api(server, 'GET', `/api/plans/${plan.id}`, { token: plan.buyer })
  assert.deepEqual(seen.body.plan.stakeholders.map(s => s.name), ['Lena Fischer', 'Dev Patel'])
  for (const s of seen.body.plan.stakeholders) {
    for (const key of ['power', 'engagement', 'privateNotes']) assert.equal(key in s, false, `${key} in ${JSON.stringify(s)}`)
  }
  assert.equal(seen.body.plan.meta.schemaVersion, 2)
  assert.equal(seen.body.plan.stakeholders[0].notes, 'Runs the questionnaire', 'the shared notes stay shared')
  for (const body of hook.bodies) assert.deepEqual(leaks(body), [], `a webhook delivery leaks: ${body}`)
  destroy(internal, buyer)
})

test('a seller link and the admin get the judgments merged into each stakeholder and into export.json', async () => {
  const plan = await importV1()
  const sellerViewer = await mintShare(server, plan.id, { side: 'seller', role: 'viewer', label: 'SE' })
  for (const token of [plan.seller, sellerViewer, ADMIN_TOKEN]) {
    const got = await api(server, 'GET', `/api/plans/${plan.id}`, { token })
    assert.equal(got.status, 200)
    const [lena, dev] = got.body.plan.stakeholders
    assert.deepEqual([lena.power, lena.engagement, lena.privateNotes], [POWER, ENGAGEMENT, null])
    assert.deepEqual([dev.power, dev.engagement], ['influencer', 'engaged'])
    const exported = await api(server, 'GET', `/api/plans/${plan.id}/export.json`, { token })
    assert.equal(exported.body.format, 'mapline.plan.v2')
    assert.equal(exported.body.plan.stakeholders[0].power, POWER)
  }
  // What the seller sees is never in the buyer's export, and markdown/CSV carry it for nobody.
  for (const format of ['md', 'csv']) {
    const { text } = await rawGet(`/api/plans/${plan.id}/export.${format}`, plan.seller)
    assert.deepEqual(leaks(text), [], `export.${format} for the seller`)
  }
  const buyerExport = await api(server, 'GET', `/api/plans/${plan.id}/export.json`, { token: plan.buyer })
  assert.equal(buyerExport.body.format, 'mapline.plan.v2')
  assert.deepEqual(leaks(JSON.stringify(buyerExport.body)), [])
})

test('a seller\'s v2 export imports with its judgments (private notes too) sealed in the internal document', async () => {
  const plan = await importV1()
  const internal = client(server, `${plan.id}/internal`, plan.seller)
  await synced(internal)
  internal.map('stakeholders').get('st-dev').set('notes', new Y.Text(IMPORTED_NOTE))
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}`, { token: plan.seller })).body.plan.stakeholders[1].privateNotes === IMPORTED_NOTE)
  destroy(internal)
  const exported = await api(server, 'GET', `/api/plans/${plan.id}/export.json`, { token: plan.seller })
  const imported = await api(server, 'POST', '/api/plans/import', { body: exported.body })
  assert.equal(imported.status, 201, JSON.stringify(imported.body))
  const token = side => imported.body.shares.find(s => s.side === side).token
  const asSeller = await api(server, 'GET', `/api/plans/${imported.body.id}`, { token: token('seller') })
  assert.deepEqual(asSeller.body.plan.stakeholders.map(s => [s.id, s.power, s.engagement, s.privateNotes]), [
    ['st-lena', POWER, ENGAGEMENT, null], ['st-dev', 'influencer', 'engaged', IMPORTED_NOTE]])
  // The new plan's document itself holds none of it: a buyer's Yjs client sees no judgment.
  const buyer = client(server, imported.body.id, token('buyer'))
  await synced(buyer)
  const state = Buffer.from(Y.encodeStateAsUpdate(buyer.doc)).toString('utf8')
  assert.deepEqual(leaks(state), [], 'the plan document carries no judgment')
  assert.ok(state.includes('Lena Fischer'))
  // Prose is Y.Text in the imported plan.
  assert.ok(buyer.map('stakeholders').get('st-lena').get('title') instanceof Y.Text)
  assert.ok(buyer.map('meta').get('title') instanceof Y.Text)
  assert.equal(buyer.map('meta').get('schemaVersion'), 2)
  destroy(buyer)
  // An unknown export format is refused, naming the two it reads.
  const refused = await api(server, 'POST', '/api/plans/import', { body: { ...v1Export(), format: 'mapline.plan.v9' } })
  assert.equal(refused.status, 422)
  assert.match(refused.body.error.message, /mapline\.plan\.v1, mapline\.plan\.v2/)
})

test('judgments a v1 document held in the shared stakeholders never reach a buyer, not even at a v1 position', async () => {
  // The committed v1 data file (tests/fixtures/v1-plan.redb): its first update wrote
  // "blocker"/"dark" on a shared stakeholder, as v1 clients did; the server migrates it on load.
  const v1 = tempData()
  mkdirSync(dirname(v1.file), { recursive: true })
  copyFileSync(join(repoRoot, 'tests', 'fixtures', 'v1-plan.redb'), v1.file)
  const old = await startServer({ dataFile: v1.file })
  try {
    const id = '01900000-0000-7000-8000-000000000001'
    const buyerToken = await mintShare(old, id, { side: 'buyer', role: 'viewer', label: 'CFO' })
    for (const route of [`/api/plans/${id}`, `/api/plans/${id}?at=1`, `/api/plans/${id}/history`, `/api/plans/${id}/slips`,
      `/api/plans/${id}/export.md`, `/api/plans/${id}/export.csv`, `/api/plans/${id}/export.json`]) {
      const response = await fetch(old.url + route, { headers: { authorization: `Bearer ${buyerToken}` } })
      const text = await response.text()
      assert.equal(response.status, 200, route)
      assert.deepEqual(leaks(text), [], `${route}: ${text.slice(0, 300)}`)
    }
    const at = await api(old, 'GET', `/api/plans/${id}?at=1`, { token: buyerToken })
    assert.deepEqual(at.body.plan.stakeholders.map(s => s.name).sort(), ['Casey Fromm', 'Dana Chu'])
  } finally {
    await old.stop()
    v1.cleanup()
  }
})
