// Schema version 2 (docs/schema.md) with real Yjs clients: a v1 document is migrated exactly
// once, also across kill -9; text typed apart merges; two moves of one date made apart leave a
// conflict on record and a slip not kept; moving go-live never touches "why this date".
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { copyFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { spawnSync } from 'node:child_process'
import {
  binary, repoRoot, startServer, tempData, createPlan, api, mintShare, client, synced, destroy,
  waitFor, rawSocket, updateFrame, Y
} from './lib/harness.js'

const V1_PLAN = '01900000-0000-7000-8000-000000000001'

/** A fresh copy of the committed v1 data file. */
function v1Data () {
  const data = tempData()
  mkdirSync(dirname(data.file), { recursive: true })
  copyFileSync(join(repoRoot, 'tests', 'fixtures', 'v1-plan.redb'), data.file)
  return data
}

async function history (server, planId) {
  const { status, body } = await api(server, 'GET', `/api/plans/${planId}/history?limit=500`)
  assert.equal(status, 200)
  return body.entries
}

const migrations = entries => entries.filter(e => e.who.kind === 'system' &&
  e.changes.some(c => c.entity === 'meta' && c.field === 'schemaVersion' && c.new === 2))

function rebuildCheck (file) {
  const run = spawnSync(binary, ['rebuild-history', '--data', file, '--check'], { encoding: 'utf8' })
  assert.equal(run.status, 0, `rebuild-history --check: ${run.stdout}${run.stderr}`)
}

test('a v1 document is migrated once when it loads: texts, version 2, judgments in the internal document', async () => {
  const data = v1Data()
  let server = await startServer({ dataFile: data.file })
  try {
    // Two openers at once share one load, so one migration.
    const seller = await mintShare(server, V1_PLAN, { side: 'seller', role: 'editor', label: 'Sam (AE)' })
    const [a, b] = [client(server, V1_PLAN, seller), client(server, V1_PLAN, seller)]
    await Promise.all([synced(a), synced(b)])
    const meta = a.map('meta')
    assert.equal(meta.get('schemaVersion'), 2)
    assert.ok(meta.get('title') instanceof Y.Text, 'the title is a Y.Text')
    assert.equal(meta.get('title').toString(), 'Northwind rollout (v1)')
    assert.equal(meta.get('goLive'), '2027-04-01', 'dates stay plain values')
    const cfo = a.map('stakeholders').get('st-v1-cfo')
    assert.ok(cfo.get('notes') instanceof Y.Text)
    assert.equal(cfo.get('power'), undefined)
    assert.equal(cfo.get('engagement'), undefined)
    const internal = client(server, `${V1_PLAN}/internal`, seller)
    await synced(internal)
    const judged = internal.map('stakeholders').get('st-v1-cfo')
    assert.equal(judged.get('power'), 'blocker')
    assert.equal(judged.get('engagement'), 'dark')
    // A client setting a judgment again on the migrated person: its write names the v1 value
    // it replaces, not the person, and is refused all the same.
    const stale = new Y.Doc()
    Y.applyUpdate(stale, Y.encodeStateAsUpdate(a.doc))
    const sv = Y.encodeStateVector(stale)
    stale.getMap('stakeholders').get('st-v1-cfo').set('power', 'decider')
    const raw = rawSocket(server, V1_PLAN, seller)
    await raw.opened
    raw.ws.send(updateFrame(Y.encodeStateAsUpdate(stale, sv)))
    assert.equal((await raw.closed).code, 4422)
    destroy(a, b, internal)

    // (History is stored within about 100 ms of the update.)
    let entries
    await waitFor(async () => migrations(entries = await history(server, V1_PLAN)).length > 0, { what: 'the migration in the history' })
    assert.equal(migrations(entries).length, 1)
    const text = JSON.stringify(entries)
    assert.ok(!text.includes('blocker') && !text.includes('"dark"'), 'no judgment in the history')
    const seq = entries[0].seq

    // Loading it again (after a restart) migrates nothing more.
    await server.stop()
    rebuildCheck(data.file)
    server = await startServer({ dataFile: data.file })
    const again = client(server, V1_PLAN, seller)
    await synced(again)
    destroy(again)
    const later = await history(server, V1_PLAN)
    assert.equal(migrations(later).length, 1)
    assert.equal(later[0].seq, seq, 'nothing was stored again')
  } finally {
    await server.stop()
    data.cleanup()
  }
})

test('kill -9 while the migration is stored: it happens exactly once, and history rebuilds identically', async () => {
  const data = v1Data()
  try {
    // Each round opens the plan and kills the server a little later than the last (event-loop
    // turns, not time): some rounds die before the migration, some during, some after.
    for (let round = 0; round < 10; round++) {
      const server = await startServer({ dataFile: data.file })
      const opening = api(server, 'GET', `/api/plans/${V1_PLAN}`).catch(() => null)
      for (let turn = 0; turn < round * 3; turn++) await new Promise(resolve => setImmediate(resolve))
      await server.kill9()
      await opening
    }
    const server = await startServer({ dataFile: data.file })
    const { status, body } = await api(server, 'GET', `/api/plans/${V1_PLAN}`)
    assert.equal(status, 200)
    assert.equal(body.plan.meta.title, 'Northwind rollout (v1)', 'no text doubled by a repeated migration')
    const c = client(server, V1_PLAN, (await mintShare(server, V1_PLAN, { side: 'seller', role: 'editor' })))
    await synced(c)
    assert.equal(c.map('meta').get('title').toString(), 'Northwind rollout (v1)')
    destroy(c)
    let entries
    await waitFor(async () => migrations(entries = await history(server, V1_PLAN)).length > 0, { what: 'the migration in the history' })
    assert.equal(migrations(entries).length, 1)
    await server.stop()
    rebuildCheck(data.file)
  } finally {
    data.cleanup()
  }
})

/** Runs `edit` on a client while it is offline, then brings it back and waits for it. */
async function offline (c, edit) {
  c.provider.disconnect()
  edit()
  return () => { c.provider.connect(); return synced(c) }
}

test('text typed apart merges: both notes in both documents, the plan and the one-pager', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  try {
    const plan = await createPlan(server)
    const buyer = await mintShare(server, plan.id, { side: 'buyer', role: 'editor', label: 'Dev (champion)' })
    const s = client(server, plan.id, plan.seller)
    const b = client(server, plan.id, buyer)
    await Promise.all([synced(s), synced(b)])
    s.doc.transact(() => {
      const step = new Y.Map()
      step.set('title', new Y.Text('Security review'))
      step.set('notes', new Y.Text('Scope agreed.'))
      step.set('dependsOn', new Y.Array())
      s.map('milestones').set('m1', step)
    })
    s.doc.transact(() => s.map('meta').set('objective', new Y.Text('Onboarding in five days.')))
    await waitFor(() => b.map('milestones').get('m1')?.get('notes')?.toString() === 'Scope agreed.' &&
      b.map('meta').get('objective')?.toString() === 'Onboarding in five days.')
    const back = await offline(b, () => {
      b.map('milestones').get('m1').get('notes').insert(0, 'Buyer: pen test booked. ')
      b.map('meta').get('objective').insert(0, 'Buyer wants: ')
    })
    s.map('milestones').get('m1').get('notes').insert('Scope agreed.'.length, ' Seller: questionnaire sent.')
    s.map('meta').get('objective').insert('Onboarding in five days.'.length, ' Seller adds: by March.')
    await back()
    const both = n => n.includes('Buyer: pen test booked.') && n.includes('Seller: questionnaire sent.')
    await waitFor(() => both(s.map('milestones').get('m1').get('notes').toString()), { what: 'both texts at the seller' })
    await waitFor(() => both(b.map('milestones').get('m1').get('notes').toString()), { what: 'both texts at the buyer' })
    const projected = await api(server, 'GET', `/api/plans/${plan.id}`)
    assert.ok(both(projected.body.plan.milestones.find(m => m.id === 'm1').notes))
    const csv = await api(server, 'GET', `/api/plans/${plan.id}/export.csv`)
    assert.ok(both(csv.body), 'both notes in the CSV export')
    const md = await api(server, 'GET', `/api/plans/${plan.id}/export.md`)
    assert.ok(md.body.includes('Buyer wants: Onboarding in five days. Seller adds: by March.'), 'both objectives in the one-pager')
    const conflicts = (await history(server, plan.id)).flatMap(e => e.changes).filter(c => c.kind === 'conflict')
    assert.deepEqual(conflicts, [], 'merged text is no conflict')
    destroy(s, b)
  } finally {
    await server.stop()
    data.cleanup()
  }
})

test('two moves of one date made apart: one conflict naming both values and people, the lost move a slip not kept', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  try {
    const plan = await createPlan(server)
    const sellerToken = await mintShare(server, plan.id, { side: 'seller', role: 'editor', label: 'Sam (AE)' })
    const buyerToken = await mintShare(server, plan.id, { side: 'buyer', role: 'editor', label: 'Dev (champion)' })
    const s = client(server, plan.id, sellerToken)
    const b = client(server, plan.id, buyerToken)
    await Promise.all([synced(s), synced(b)])
    s.doc.transact(() => {
      const step = new Y.Map()
      step.set('title', new Y.Text('Contract signed'))
      step.set('due', '2027-03-05')
      step.set('dependsOn', new Y.Array())
      s.map('milestones').set('m1', step)
    })
    await waitFor(() => b.map('milestones').get('m1')?.get('due') === '2027-03-05')
    const move = (c, due, reason) => c.doc.transact(() => {
      const step = c.map('milestones').get('m1')
      step.set('due', due)
      step.set('slipReason', reason)
    })
    const back = await offline(b, () => move(b, '2027-03-12', 'Legal is out a week'))
    move(s, '2027-03-19', 'Board meeting moved')
    await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}/slips`)).body.slips.length === 1)
    await back()
    await waitFor(() => s.map('milestones').get('m1').get('due') === b.map('milestones').get('m1').get('due'))
    const kept = s.map('milestones').get('m1').get('due')
    const lost = kept === '2027-03-19' ? '2027-03-12' : '2027-03-19'
    let conflict
    await waitFor(async () => {
      const changes = (await history(server, plan.id)).flatMap(e => e.changes)
      conflict = changes.find(c => c.kind === 'conflict' && c.field === 'due')
      return conflict !== undefined
    }, { what: 'the conflict in the history' })
    assert.equal(conflict.entityId, 'm1')
    assert.equal(conflict.kept.value, kept)
    assert.equal(conflict.lost.value, lost)
    const labels = [conflict.kept.who.label, conflict.lost.who.label].sort()
    assert.deepEqual(labels, ['Dev (champion)', 'Sam (AE)'])
    assert.ok(conflict.kept.at && conflict.lost.at)
    const conflicts = (await history(server, plan.id)).flatMap(e => e.changes)
      .filter(c => c.kind === 'conflict' && c.field === 'due')
    assert.equal(conflicts.length, 1, 'exactly one conflict for the one lost move')
    const { body } = await api(server, 'GET', `/api/plans/${plan.id}/slips`)
    const notKept = body.slips.filter(slip => !slip.kept)
    assert.equal(notKept.length, 1)
    assert.equal(notKept[0].to, lost)
    assert.equal(body.slips.filter(slip => slip.kept && slip.to === kept).length, 1)
    destroy(s, b)
  } finally {
    await server.stop()
    data.cleanup()
  }
})

test('moving go-live writes its own slip reason and never touches why the date matters', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  try {
    const plan = await createPlan(server)
    const s = client(server, plan.id, plan.seller)
    await synced(s)
    s.doc.transact(() => s.map('meta').set('goLiveReason', new Y.Text('Fiscal year starts in April')))
    s.doc.transact(() => {
      s.map('meta').set('goLive', '2027-04-15')
      s.map('meta').set('goLiveSlipReason', 'Board meeting moved')
    })
    let slip
    await waitFor(async () => {
      slip = (await api(server, 'GET', `/api/plans/${plan.id}/slips?milestone=goLive`)).body.slips[0]
      return slip !== undefined
    })
    assert.equal(slip.reason, 'Board meeting moved')
    const { body } = await api(server, 'GET', `/api/plans/${plan.id}`)
    assert.equal(body.plan.meta.goLiveReason, 'Fiscal year starts in April')
    destroy(s)
  } finally {
    await server.stop()
    data.cleanup()
  }
})

test('a judgment written into a shared stakeholder is refused with 4422 and reaches nobody', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  try {
    const plan = await createPlan(server)
    const s = client(server, plan.id, plan.seller)
    const b = client(server, plan.id, plan.buyer)
    await Promise.all([synced(s), synced(b)])
    s.doc.transact(() => {
      const person = new Y.Map()
      person.set('name', 'Casey Fromm')
      s.map('stakeholders').set('st-1', person)
    })
    await waitFor(() => b.map('stakeholders').get('st-1') !== undefined)
    // A v1-shaped client: the same state, then `power` on the shared person.
    const stale = new Y.Doc()
    Y.applyUpdate(stale, Y.encodeStateAsUpdate(s.doc))
    const before = Y.encodeStateVector(stale)
    stale.getMap('stakeholders').get('st-1').set('power', 'blocker')
    const raw = rawSocket(server, plan.id, plan.seller)
    await raw.opened
    raw.ws.send(updateFrame(Y.encodeStateAsUpdate(stale, before)))
    const closed = await raw.closed
    assert.equal(closed.code, 4422)
    assert.match(closed.reason, /internal document/)
    // The others are undisturbed, and nothing of it was stored or relayed.
    s.doc.transact(() => s.map('meta').set('barrier', 1))
    await waitFor(() => b.map('meta').get('barrier') === 1)
    assert.equal(b.map('stakeholders').get('st-1').get('power'), undefined)
    const { body } = await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)
    assert.ok(!JSON.stringify(body).includes('blocker'))
    destroy(s, b)
  } finally {
    await server.stop()
    data.cleanup()
  }
})
