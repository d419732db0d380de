// The seller's internal document (/sync/{planId}/internal): seller links and the admin only.
// A buyer link gets 403 there, and no other route, document, history or metric carries its
// contents. It is durable like the plan, and apart from the plan's log and history.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import {
  ADMIN_TOKEN, binary, startServer, tempData, createPlan, api, mintShare, client, synced, destroy,
  waitFor, upgradeStatus, Y
} from './lib/harness.js'

let data, server
before(async () => { data = tempData(); server = await startServer({ dataFile: data.file }) })
after(async () => { await server.stop(); data.cleanup() })

const SECRET = 'Commit: 120k ARR, champion weak on budget (MEDDICC E: unknown)'

function internal (planId, token, options) {
  return client(server, `${planId}/internal`, token, options)
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

  // The buyer's copy of the plan holds nothing of it either.
  const buyer = client(server, plan.id, plan.buyer)
  await synced(buyer)
  const everything = JSON.stringify(buyer.doc.toJSON())
  assert.ok(!everything.includes('120k'), everything.slice(0, 200))
  // And the internal edits are no part of the plan's history.
  const history = await api(server, 'GET', `/api/plans/${plan.id}/history`)
  assert.equal(history.body.entries.length, 1, 'only the plan\'s creation')
  destroy(seller, buyer)
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
