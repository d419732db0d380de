// Nothing deleted is gone: GET /api/plans/{id}/deleted names what was deleted, by whom, with its
// last state; POST /api/plans/{id}/restore puts it back through the room and the writer like a
// client's update (durable, relayed to every open client, a `created` change in history).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import {
  startServer, tempData, createPlan, api, mintShare, client, synced, destroy, waitFor, Y
} from './lib/harness.js'

let data, server
before(async () => { data = tempData(); server = await startServer({ dataFile: data.file }) })
after(async () => { await server.stop(); data.cleanup() })

const NOTE = 'Trial with five reps from the Berlin team'

/** Deletes a milestone as the page does: the entry and its id in every `dependsOn`, one transaction. */
function deleteStep (c, id) {
  const steps = c.map('milestones')
  c.doc.transact(() => {
    steps.delete(id)
    for (const [, step] of steps) {
      const deps = step.get('dependsOn')
      if (!(deps instanceof Y.Array)) continue
      const at = deps.toArray().indexOf(id)
      if (at >= 0) deps.delete(at, 1)
    }
  })
}

const depsOf = (c, id) => c.map('milestones').get(id)?.get('dependsOn')?.toArray()

test('a buyer deletes a seller\'s step another waits for; /deleted names it and who; restore brings it back everywhere', async () => {
  const plan = await createPlan(server, { template: 'mid-market', goLive: '2027-06-01' })
  const seller = client(server, plan.id, plan.seller)
  const buyer = client(server, plan.id, plan.buyer)
  await Promise.all([synced(seller), synced(buyer)])
  assert.deepEqual(depsOf(buyer, 'ms-business-case'), ['ms-trial'])
  seller.map('milestones').get('ms-trial').set('notes', new Y.Text(NOTE))
  await waitFor(() => buyer.map('milestones').get('ms-trial')?.get('notes')?.toString() === NOTE, { what: 'the buyer to see the note' })

  deleteStep(buyer, 'ms-trial')
  await waitFor(() => !seller.map('milestones').has('ms-trial') && depsOf(seller, 'ms-business-case').length === 0, { what: 'the seller to see it gone' })

  let deleted
  await waitFor(async () => {
    deleted = (await api(server, 'GET', `/api/plans/${plan.id}/deleted`, { token: plan.seller })).body.deleted
    return deleted.length === 1
  }, { what: '/deleted to name the step' })
  const [gone] = deleted
  assert.deepEqual([gone.collection, gone.id, gone.who.kind, gone.who.side, gone.who.label], ['milestones', 'ms-trial', 'share', 'buyer', 'Northwind team'])
  assert.equal(gone.entry.title, 'Hands-on trial with the team')
  assert.equal(gone.entry.notes, NOTE)
  assert.deepEqual(gone.entry.dependsOn, ['ms-kickoff'])
  assert.deepEqual(gone.dependents, ['ms-business-case'])
  assert.ok(Number.isInteger(gone.seq) && typeof gone.at === 'string')
  // Any link of the plan reads it, a viewer too.
  const viewer = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'CFO' })
  assert.deepEqual((await api(server, 'GET', `/api/plans/${plan.id}/deleted`, { token: viewer })).body.deleted, deleted)

  const restored = await api(server, 'POST', `/api/plans/${plan.id}/restore`, { token: plan.seller, body: { collection: 'milestones', id: 'ms-trial' } })
  assert.equal(restored.status, 200, JSON.stringify(restored.body))
  assert.ok(Number.isInteger(restored.body.seq))
  // Durable when answered: the plan's projection already holds it.
  const now = await api(server, 'GET', `/api/plans/${plan.id}`, { token: plan.buyer })
  assert.ok(now.body.seq >= restored.body.seq)
  assert.deepEqual(now.body.plan.milestones.find(m => m.id === 'ms-trial')?.dependsOn, ['ms-kickoff'])
  for (const [who, c] of [['seller', seller], ['buyer', buyer]]) {
    await waitFor(() => c.map('milestones').get('ms-trial')?.get('notes')?.toString() === NOTE &&
      depsOf(c, 'ms-business-case')?.includes('ms-trial'), { what: `the ${who}'s client to see it back` })
    const step = c.map('milestones').get('ms-trial')
    assert.ok(step.get('title') instanceof Y.Text, 'prose comes back as Y.Text')
    assert.equal(step.get('title').toString(), 'Hands-on trial with the team')
    assert.deepEqual([step.get('side'), step.get('due'), step.get('status')], ['seller', '2027-04-27', 'not_started'])
    assert.deepEqual(depsOf(c, 'ms-trial'), ['ms-kickoff'])
  }
  // History: the restore is a `created` change attributed to the link that asked for it.
  let entry
  await waitFor(async () => {
    const history = await api(server, 'GET', `/api/plans/${plan.id}/history`)
    entry = history.body.entries.find(e => e.seq === restored.body.seq)
    return entry !== undefined
  }, { what: 'the restore in history' })
  assert.deepEqual([entry.who.side, entry.who.label], ['seller', 'Mapline team'])
  assert.ok(entry.changes.some(c => c.kind === 'created' && c.entity === 'milestones' && c.entityId === 'ms-trial'), JSON.stringify(entry.changes))
  assert.deepEqual((await api(server, 'GET', `/api/plans/${plan.id}/deleted`)).body.deleted, [], 'back, so no longer deleted')

  // A fresh client loads it from the store.
  const fresh = client(server, plan.id, plan.buyer)
  await synced(fresh)
  assert.equal(fresh.map('milestones').get('ms-trial').get('notes').toString(), NOTE)
  destroy(seller, buyer, fresh)
})

test('restore refuses viewers (403), what is not deleted (404), bad JSON (400), and a second restore (404), touching nothing', async () => {
  const plan = await createPlan(server, { template: 'mid-market', goLive: '2027-06-01' })
  const viewer = await mintShare(server, plan.id, { side: 'seller', role: 'viewer', label: 'SE observer' })
  const buyer = client(server, plan.id, plan.buyer)
  await synced(buyer)
  buyer.map('risks').set('rk-1', new Y.Map([['text', new Y.Text('Budget freeze')], ['status', 'open']]))
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}`)).body.plan.risks.length === 1)
  buyer.map('risks').delete('rk-1')
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}/deleted`)).body.deleted.length === 1, { what: 'the risk in /deleted' })
  const seqBefore = (await api(server, 'GET', `/api/plans/${plan.id}`)).body.seq
  const restore = (token, body, raw) => api(server, 'POST', `/api/plans/${plan.id}/restore`, { token, body, raw, headers: raw ? { 'content-type': 'application/json' } : {} })

  const forbidden = await restore(viewer, { collection: 'risks', id: 'rk-1' })
  assert.deepEqual([forbidden.status, forbidden.body.error.code], [403, 'editors_only'])
  const unknown = await restore(plan.buyer, { collection: 'risks', id: 'rk-nope' })
  assert.deepEqual([unknown.status, unknown.body.error.code], [404, 'not_deleted'])
  const exists = await restore(plan.buyer, { collection: 'milestones', id: 'ms-kickoff' })
  assert.deepEqual([exists.status, exists.body.error.code], [404, 'not_deleted'])
  const badJson = await restore(plan.buyer, undefined, '{"collection": "risks", ')
  assert.deepEqual([badJson.status, badJson.body.error.code], [400, 'invalid_json'])
  const badShape = await restore(plan.buyer, { collection: 'risks' })
  assert.deepEqual([badShape.status, badShape.body.error.code], [422, 'invalid_body'])
  const badCollection = await restore(plan.buyer, { collection: 'meta', id: 'rk-1' })
  assert.deepEqual([badCollection.status, badCollection.body.error.code], [422, 'invalid_field'])
  const otherPlan = await createPlan(server)
  const wrongPlan = await restore(otherPlan.seller, { collection: 'risks', id: 'rk-1' })
  assert.equal(wrongPlan.status, 403)
  assert.equal((await api(server, 'GET', `/api/plans/${plan.id}`)).body.seq, seqBefore, 'no refused restore wrote anything')

  // Two people restore it at the same moment: one restore is stored, the other finds it back.
  const [one, two] = await Promise.all([
    restore(plan.buyer, { collection: 'risks', id: 'rk-1' }),
    restore(plan.seller, { collection: 'risks', id: 'rk-1' })
  ])
  assert.deepEqual([one.status, two.status].sort(), [200, 404])
  const first = one.status === 200 ? one : two
  await waitFor(() => buyer.map('risks').get('rk-1')?.get('text')?.toString() === 'Budget freeze', { what: 'the risk back' })
  const second = await restore(plan.buyer, { collection: 'risks', id: 'rk-1' })
  assert.deepEqual([second.status, second.body.error.code], [404, 'not_deleted'])
  assert.equal((await api(server, 'GET', `/api/plans/${plan.id}`)).body.seq, first.body.seq, 'the second restore wrote nothing')
  destroy(buyer)
})
