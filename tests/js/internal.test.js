// The seller's internal document (/sync/{planId}/internal): seller links and the admin only.
// A buyer link gets 403 there, and no other route, document, history or metric carries its
// contents. It is durable like the plan, and apart from the plan's log and history.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import {
  ADMIN_TOKEN, binary, startServer, tempData, createPlan, api, mintShare, client, synced, destroy,
  waitFor, upgradeStatus, rawSocket, Y
} from './lib/harness.js'

let data, server
before(async () => { data = tempData(); server = await startServer({ dataFile: data.file }) })
after(async () => { await server.stop(); data.cleanup() })

const SECRET = 'Commit: 120k ARR, champion weak on budget (MEDDICC E: unknown)'
const MARKER = 'internal-marker-5be1d0'
/** A root of the internal document that the plan document has no use for. */
const INTERNAL_ROOT = 'dealDesk'

function internal (planId, token, options) {
  return client(server, `${planId}/internal`, token, options)
}

/**
 * What a buyer's socket on the plan document receives, taken apart without a y-websocket
 * client: every frame, and a document with every sync step 2 and update applied (whatever
 * roots they write, accessed or not). `barrier` is written to the plan's `meta` by a seller
 * once the buyer has synced; everything relayed before it has arrived when it arrives.
 */
async function buyerReceives (planId, token, barrier) {
  const raw = rawSocket(server, planId, token)
  await raw.opened
  const doc = new Y.Doc()
  let applied = 0
  let step2 = false
  const apply = () => {
    for (; applied < raw.messages.length; applied++) {
      const decoder = decoding.createDecoder(raw.messages[applied])
      if (decoding.readVarUint(decoder) !== 0) continue
      const kind = decoding.readVarUint(decoder)
      if (kind === 1 || kind === 2) Y.applyUpdate(doc, decoding.readVarUint8Array(decoder))
      if (kind === 1) step2 = true
    }
  }
  const step1 = encoding.createEncoder()
  encoding.writeVarUint(step1, 0); encoding.writeVarUint(step1, 0)
  encoding.writeVarUint8Array(step1, Y.encodeStateVector(new Y.Doc()))
  raw.ws.send(encoding.toUint8Array(step1))
  await waitFor(() => { apply(); return step2 }, { what: 'the buyer\'s sync step 2' })
  await barrier()
  await waitFor(() => { apply(); return doc.getMap('meta').get('barrier') !== undefined }, { what: 'the barrier to reach the buyer' })
  raw.ws.close()
  return { frames: raw.messages, doc }
}

/**
 * Where any of `markers` shows in what a socket received: the raw frames, the document's
 * encoded state (text searched as latin1 and UTF-8), and a walk of every root in `doc.share`,
 * those no code here ever accessed included (which `doc.toJSON()` leaves out).
 */
function findMarkers ({ frames, doc }, markers) {
  const found = []
  const search = (where, text) => {
    for (const marker of markers) if (text.includes(marker)) found.push(`${where}: ${marker}`)
  }
  const bytes = Buffer.concat(frames.map(f => Buffer.from(f)))
  search('frames', bytes.toString('latin1')); search('frames', bytes.toString('utf8'))
  const state = Buffer.from(Y.encodeStateAsUpdate(doc))
  search('state', state.toString('latin1')); search('state', state.toString('utf8'))
  const contents = type => {
    const items = [...type._map.values()]
    for (let item = type._start; item !== null; item = item.right) items.push(item)
    return items.filter(item => !item.deleted).flatMap(item => item.content.getContent()
      .map(value => value instanceof Y.AbstractType ? contents(value) : JSON.stringify(value)))
      .concat([...type._map.keys()]).join('\n')
  }
  for (const [name, type] of doc.share) search(`root ${name}`, `${name}\n${contents(type)}`)
  return found
}

test('seller links and the admin share the internal document; a seller viewer reads but cannot write', async () => {
  const plan = await createPlan(server)
  const sellerViewer = await mintShare(server, plan.id, { side: 'seller', role: 'viewer', label: 'SE observer' })
  const seller = internal(plan.id, plan.seller)
  const admin = internal(plan.id, ADMIN_TOKEN)
  const observer = internal(plan.id, sellerViewer)
  await Promise.all([synced(seller), synced(admin), synced(observer)])
  seller.map('forecast').set('category', 'commit')
  seller.map('qualification').set('notes', SECRET)
  await waitFor(() => admin.map('qualification').get('notes') === SECRET, { what: 'the admin to see the note' })
  await waitFor(() => observer.map('forecast').get('category') === 'commit', { what: 'the seller viewer to see it' })
  observer.map('forecast').set('category', 'pipeline')
  const fresh = internal(plan.id, plan.seller)
  await synced(fresh)
  await waitFor(() => fresh.map('qualification').get('notes') === SECRET)
  assert.equal(fresh.map('forecast').get('category'), 'commit', 'the viewer\'s write was refused')
  // The plan document is another document: nothing of the internal one is in it.
  const planDoc = client(server, plan.id, plan.seller)
  await synced(planDoc)
  assert.equal(planDoc.doc.share.has('qualification'), false)
  assert.equal(planDoc.doc.share.has('forecast'), false)
  destroy(seller, admin, observer, fresh, planDoc)
})

test('a buyer link gets 403 at the internal document, and no route, document or metric shows its contents', async () => {
  const plan = await createPlan(server)
  const buyerViewer = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'CFO' })
  const seller = internal(plan.id, plan.seller)
  await synced(seller)
  seller.map('qualification').set('notes', SECRET)
  seller.map('forecast').set('category', 'commit')
  // Make sure it is stored and relayed before looking for it elsewhere.
  const check = internal(plan.id, ADMIN_TOKEN)
  await waitFor(() => check.map('qualification').get('notes') === SECRET)
  destroy(check)

  for (const token of [plan.buyer, buyerViewer]) {
    const refused = await upgradeStatus(`${server.wsUrl}/${plan.id}/internal?token=${token}`)
    assert.deepEqual([refused.status, refused.body.error.code], [403, 'sellers_only'])
    const withHeader = await upgradeStatus(`${server.wsUrl}/${plan.id}/internal`, { authorization: `Bearer ${token}` })
    assert.equal(withHeader.status, 403)
  }
  // Another plan's seller is refused too.
  const other = await createPlan(server)
  assert.equal((await upgradeStatus(`${server.wsUrl}/${plan.id}/internal?token=${other.seller}`)).status, 403)

  // Every route a buyer can call: none carries the note or the forecast.
  const today = new Date().toISOString().slice(0, 10)
  const routes = [
    `/api/plans/${plan.id}`, `/api/plans/${plan.id}?at=1`, `/api/plans/${plan.id}?at=${today}`,
    `/api/plans/${plan.id}/slips`, `/api/plans/${plan.id}/history`, `/api/plans/${plan.id}/health`,
    `/api/plans/${plan.id}/me`, `/api/plans/${plan.id}/shares`, '/api/plans', '/api/templates',
    '/api/admin/backup', `/api/plans/${plan.id}/internal`
  ]
  for (const route of routes) {
    const { status, body } = await api(server, 'GET', route, { token: plan.buyer })
    const text = JSON.stringify(body)
    assert.ok(!text.includes('120k') && !text.includes('qualification') && !text.includes('commit'), `${route} (${status}) leaks: ${text.slice(0, 200)}`)
  }
  const metrics = await (await fetch(`${server.url}/metrics`)).text()
  assert.ok(!metrics.includes('120k') && !metrics.includes(plan.id), 'metrics name no plan and no content')

  // Nothing a buyer's socket on the plan receives carries it either: not in any frame, not in
  // the encoded state, not in any root (one the client never asked for included), also while
  // the seller keeps writing to the internal document.
  const planSeller = client(server, plan.id, plan.seller)
  await synced(planSeller)
  const received = await buyerReceives(plan.id, plan.buyer, async () => {
    seller.map(INTERNAL_ROOT).set('marker', MARKER)
    const confirm = internal(plan.id, ADMIN_TOKEN)
    await waitFor(() => confirm.map(INTERNAL_ROOT).get('marker') === MARKER, { what: 'the internal write to be relayed' })
    destroy(confirm)
    planSeller.map('meta').set('barrier', 'after the internal write')
  })
  assert.ok(received.doc.share.size > 0 && received.frames.length > 0, 'the buyer received the plan')
  assert.deepEqual(findMarkers(received, [SECRET, '120k', MARKER]), [])
  // And the internal edits are no part of the plan's history (the barrier is).
  // (History is stored up to 100 ms after an update is relayed: wait for the barrier's entry.)
  let history
  await waitFor(async () => {
    history = await api(server, 'GET', `/api/plans/${plan.id}/history`)
    return history.body.entries.some(e => e.changes.some(c => c.field === 'barrier'))
  }, { what: 'the barrier in history' })
  assert.equal(history.body.entries.length, 2, 'the plan\'s creation and the barrier')
  destroy(seller, planSeller)
})

test('positive control: the buyer check sees content written into a root no client reads', async () => {
  // Internal content written (here by the admin, on purpose) into a new root of the PLAN
  // document is what a leak would look like; the check above must catch it.
  const plan = await createPlan(server)
  const admin = client(server, plan.id, ADMIN_TOKEN)
  await synced(admin)
  admin.map('leak').set('notes', SECRET)
  const received = await buyerReceives(plan.id, plan.buyer, async () => {
    admin.map('meta').set('barrier', 'after the leak')
  })
  const found = findMarkers(received, [SECRET])
  for (const where of ['frames', 'state', 'root leak']) {
    assert.ok(found.includes(`${where}: ${SECRET}`), `${where} in ${JSON.stringify(found)}`)
  }
  destroy(admin)
})

test('the internal document survives kill -9, and the data file verifies', async () => {
  const own = tempData()
  let running = await startServer({ dataFile: own.file })
  const plan = await createPlan(running)
  const seller = client(running, `${plan.id}/internal`, plan.seller)
  await synced(seller)
  for (let i = 0; i < 300; i++) seller.map('notes').set(`n${i}`, new Y.Map([['text', `note ${i}`]]))
  const observer = client(running, `${plan.id}/internal`, ADMIN_TOKEN)
  await waitFor(() => observer.map('notes').size === 300, { what: 'all notes shown' })
  destroy(seller, observer)
  await running.kill9()
  running = await startServer({ dataFile: own.file })
  const after = client(running, `${plan.id}/internal`, plan.seller)
  await synced(after)
  assert.equal(after.map('notes').size, 300)
  destroy(after)
  await running.stop()
  const verify = spawnSync(binary, ['verify', '--data', own.file], { encoding: 'utf8' })
  assert.equal(verify.status, 0, verify.stdout + verify.stderr)
  own.cleanup()
})
