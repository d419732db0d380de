// The projection with real Yjs clients: slips with attribution, offline edits attributed on
// arrival, the plan as it was, viewers that cannot move dates, templates worked back from
// go-live, and a rebuilt history identical to the stored one.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import {
  startServer, tempData, createPlan, mintShare, client, synced, destroy, waitFor, metric, api, binary
} from './lib/harness.js'

const milestone = (c, id) => c.map('milestones').get(id)

/** Moves a due date the way a well-behaved client does: date and reason in one transaction. */
function moveDue (c, id, due, reason) {
  c.doc.transact(() => {
    milestone(c, id).set('due', due)
    milestone(c, id).set('slipReason', reason)
  })
}

function rebuildHistory (dataFile, ...args) {
  return spawnSync(binary, ['rebuild-history', '--data', dataFile, ...args], { encoding: 'utf8' })
}

/** The plan's slips once at least `count` are stored (history lands a commit after the update). */
async function slipsOnceThere (server, plan, count, query = '') {
  let answer
  await waitFor(async () => {
    answer = await api(server, 'GET', `/api/plans/${plan.id}/slips${query}`, { token: plan.buyer })
    return answer.status !== 200 || answer.body.slips.length >= count
  }, { what: `${count} slip(s)` })
  return answer
}

async function templatePlan (server) {
  const plan = await createPlan(server, { template: 'enterprise' })
  const label = side => plan.shares.find(s => s.side === side).label
  return { ...plan, buyerLabel: label('buyer'), sellerLabel: label('seller') }
}

test('a buyer and a seller each move a date: exactly those two slips, attributed', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await templatePlan(server)
  const buyer = client(server, plan.id, plan.buyer)
  const seller = client(server, plan.id, plan.seller)
  await Promise.all([synced(buyer), synced(seller)])
  const securityDue = milestone(buyer, 'ms-security-review').get('due')
  const trainingDue = milestone(seller, 'ms-training').get('due')

  moveDue(buyer, 'ms-security-review', '2027-02-01', 'Security team is out until late January')
  moveDue(seller, 'ms-training', '2027-03-22', 'Trainer availability')
  await waitFor(() => milestone(seller, 'ms-security-review').get('due') === '2027-02-01')
  await waitFor(() => milestone(buyer, 'ms-training').get('due') === '2027-03-22')

  // History is stored with the commit after the one that made the moves durable.
  const { status, body } = await slipsOnceThere(server, plan, 2)
  assert.equal(status, 200)
  const slips = Object.fromEntries(body.slips.map(s => [s.milestoneId, s]))
  assert.equal(body.slips.length, 2)
  const days = (from, to) => Math.round((Date.parse(to) - Date.parse(from)) / 86400000)
  assert.deepEqual(
    { ...slips['ms-security-review'], at: undefined, seq: undefined, clientIds: undefined },
    {
      subject: 'milestone',
      milestoneId: 'ms-security-review',
      title: 'Security and privacy review signed off',
      from: securityDue,
      to: '2027-02-01',
      days: days(securityDue, '2027-02-01'),
      reason: 'Security team is out until late January',
      kept: true,
      who: { kind: 'share', shareId: plan.shares.find(s => s.side === 'buyer').id, label: plan.buyerLabel, side: 'buyer' },
      at: undefined,
      seq: undefined,
      clientIds: undefined
    }
  )
  assert.deepEqual(slips['ms-security-review'].clientIds, [buyer.doc.clientID])
  assert.equal(slips['ms-training'].who.side, 'seller')
  assert.equal(slips['ms-training'].who.label, plan.sellerLabel)
  assert.equal(slips['ms-training'].from, trainingDue)
  assert.equal(slips['ms-training'].days, days(trainingDue, '2027-03-22'))
  assert.equal(slips['ms-training'].reason, 'Trainer availability')

  // Filters: by side, by milestone, by time.
  const bySide = await api(server, 'GET', `/api/plans/${plan.id}/slips?side=seller`, { token: plan.buyer })
  assert.deepEqual(bySide.body.slips.map(s => s.milestoneId), ['ms-training'])
  const byMilestone = await api(server, 'GET', `/api/plans/${plan.id}/slips?milestone=ms-security-review`)
  assert.deepEqual(byMilestone.body.slips.map(s => s.milestoneId), ['ms-security-review'])
  const future = await api(server, 'GET', `/api/plans/${plan.id}/slips?since=2100-01-01`)
  assert.deepEqual(future.body.slips, [])

  // The change audit names the same people and both fields of each move.
  const history = await api(server, 'GET', `/api/plans/${plan.id}/history?limit=2`, { token: plan.seller })
  assert.equal(history.status, 200)
  assert.equal(history.body.entries.length, 2)
  for (const entry of history.body.entries) {
    assert.deepEqual(entry.changes.map(c => c.field).sort(), ['due', 'slipReason'])
    assert.equal(entry.slips.length, 1)
  }
  const older = await api(server, 'GET', `/api/plans/${plan.id}/history?before=${history.body.nextBefore}`)
  assert.ok(older.body.entries.every(e => e.seq < history.body.nextBefore))
  assert.equal(older.body.entries.at(-1).who.kind, 'system', 'the plan was created by the server')
  destroy(buyer, seller)
  await server.stop()
  data.cleanup()
})

test('an offline edit merged later is attributed to the connection that delivered it, when it arrived', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await templatePlan(server)
  const champion = client(server, plan.id, plan.buyer)
  const seller = client(server, plan.id, plan.seller)
  await Promise.all([synced(champion), synced(seller)])
  champion.provider.disconnect()
  moveDue(champion, 'ms-procurement', '2027-03-01', 'Procurement freeze until March')
  const beforeReconnect = Date.now()
  champion.provider.connect()
  await waitFor(() => milestone(seller, 'ms-procurement').get('due') === '2027-03-01', { what: 'the merged edit' })
  const { body } = await slipsOnceThere(server, plan, 1)
  assert.equal(body.slips.length, 1)
  assert.equal(body.slips[0].reason, 'Procurement freeze until March')
  assert.equal(body.slips[0].who.label, plan.buyerLabel)
  assert.ok(Date.parse(body.slips[0].at) >= beforeReconnect - 5, 'arrival time, not edit time')
  destroy(champion, seller)
  await server.stop()
  data.cleanup()
})

test('?at= returns the plan as it was before a move; the plan now has the new date', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await templatePlan(server)
  const buyer = client(server, plan.id, plan.buyer)
  const observer = client(server, plan.id, plan.seller)
  await Promise.all([synced(buyer), synced(observer)])
  const oldDue = milestone(buyer, 'ms-signature').get('due')
  const before = await api(server, 'GET', `/api/plans/${plan.id}`, { token: plan.buyer })
  assert.equal(before.status, 200)
  // One millisecond back: the move cannot have arrived by then, even in the same millisecond.
  const timeBefore = new Date(Date.now() - 1).toISOString()
  moveDue(buyer, 'ms-signature', '2027-03-10', 'Signatory travelling')
  await waitFor(() => milestone(observer, 'ms-signature').get('due') === '2027-03-10')

  const dueIn = body => body.plan.milestones.find(m => m.id === 'ms-signature').due
  const now = await api(server, 'GET', `/api/plans/${plan.id}`, { token: plan.buyer })
  assert.equal(dueIn(now.body), '2027-03-10')
  assert.ok(now.body.seq > before.body.seq)
  const bySeq = await api(server, 'GET', `/api/plans/${plan.id}?at=${before.body.seq}`, { token: plan.buyer })
  assert.equal(bySeq.status, 200)
  assert.equal(dueIn(bySeq.body), oldDue)
  const byTime = await api(server, 'GET', `/api/plans/${plan.id}?at=${encodeURIComponent(timeBefore)}`)
  assert.equal(dueIn(byTime.body), oldDue)
  assert.equal(byTime.body.seq, before.body.seq)
  const beforeCreation = await api(server, 'GET', `/api/plans/${plan.id}?at=2000-01-01T00:00:00Z`)
  assert.equal(beforeCreation.status, 404)
  assert.equal(beforeCreation.body.error.code, 'not_yet_created')
  for (const bad of ['yesterday', '-3', '2027-13-01']) {
    const r = await api(server, 'GET', `/api/plans/${plan.id}?at=${bad}`)
    assert.equal(r.status, 400, bad)
    assert.equal(r.body.error.code, 'bad_query')
  }
  destroy(buyer, observer)
  await server.stop()
  data.cleanup()
})

test('a viewer cannot cause a slip', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await templatePlan(server)
  const viewerToken = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'CFO' })
  const viewer = client(server, plan.id, viewerToken)
  await synced(viewer)
  const oldDue = milestone(viewer, 'ms-signature').get('due')
  const refused = await metric(server, 'mapline_updates_refused_total')
  moveDue(viewer, 'ms-signature', '2027-01-05', 'I would like it sooner')
  await waitFor(async () => await metric(server, 'mapline_updates_refused_total') > refused, { what: 'the refusal' })
  const slips = await api(server, 'GET', `/api/plans/${plan.id}/slips`, { token: viewerToken })
  assert.equal(slips.status, 200, 'a viewer may read the slips')
  assert.deepEqual(slips.body.slips, [])
  const now = await api(server, 'GET', `/api/plans/${plan.id}`, { token: viewerToken })
  assert.equal(now.body.plan.milestones.find(m => m.id === 'ms-signature').due, oldDue)
  destroy(viewer)
  await server.stop()
  data.cleanup()
})

test('a plan from a template has due dates that end on go-live and respect every dependency', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const templates = await api(server, 'GET', '/api/templates', { token: null })
  assert.equal(templates.status, 200)
  assert.deepEqual(templates.body.templates.map(t => t.id), ['enterprise', 'mid-market', 'renewal-expansion'])
  // Go-live far enough ahead that nothing is overdue today, whenever the test runs.
  const today = new Date().toISOString().slice(0, 10)
  const goLive = new Date(Date.now() + 200 * 86400000).toISOString().slice(0, 10)
  for (const template of templates.body.templates) {
    const plan = await createPlan(server, { template: template.id, goLive })
    const { body } = await api(server, 'GET', `/api/plans/${plan.id}`, { token: plan.seller })
    const milestones = body.plan.milestones
    assert.equal(milestones.length, template.milestones.length)
    assert.deepEqual(body.plan.issues, [])
    assert.equal(milestones.map(m => m.due).sort().at(-1), goLive, `${template.id} ends on go-live`)
    const byId = Object.fromEntries(milestones.map(m => [m.id, m]))
    for (const m of milestones) {
      assert.ok(m.due <= goLive)
      for (const dep of m.dependsOn) assert.ok(byId[dep].due <= m.due, `${template.id}: ${m.id} after ${dep}`)
    }
    const health = await api(server, 'GET', `/api/plans/${plan.id}/health?today=${today}`, { token: plan.buyer })
    assert.equal(health.status, 200)
    assert.deepEqual(health.body.health.impossible, [])
    assert.equal(health.body.health.criticalPath.slackDays, 0)
    assert.equal(health.body.health.verdict, 'at_risk', 'the last step is due on go-live day: no slack')
  }
  const unknown = await api(server, 'POST', '/api/plans', {
    body: { title: 'X', buyerOrg: 'B', sellerOrg: 'S', goLive, template: 'smb' }
  })
  assert.equal(unknown.status, 422)
  assert.match(unknown.body.error.message, /template/)
  await server.stop()
  data.cleanup()
})

test('health and the pipeline view flag an overdue, impossible schedule', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await templatePlan(server)
  const seller = client(server, plan.id, plan.seller)
  const observer = client(server, plan.id, plan.buyer)
  await Promise.all([synced(seller), synced(observer)])
  // Signature before legal is done: impossible. Move it and watch the health change.
  moveDue(seller, 'ms-signature', '2027-02-01', 'Customer wants to sign early')
  await waitFor(() => milestone(observer, 'ms-signature').get('due') === '2027-02-01')
  await slipsOnceThere(server, plan, 1)
  const { body } = await api(server, 'GET', `/api/plans/${plan.id}/health?today=2027-02-10`, { token: plan.buyer })
  const health = body.health
  assert.equal(health.verdict, 'off_track')
  assert.ok(health.impossible.some(i => i.milestone.id === 'ms-signature' && i.dependsOn.id === 'ms-legal-agreed'))
  assert.ok(health.overdue.some(o => o.id === 'ms-signature' && o.daysLate === 9))
  assert.equal(health.slipsBySide.seller.count, 1)
  const pipeline = await api(server, 'GET', '/api/plans?today=2027-02-10')
  assert.equal(pipeline.status, 200)
  const row = pipeline.body.plans.find(p => p.id === plan.id)
  assert.equal(row.health, 'off_track')
  assert.match(row.healthWords, /^Off track: \d+ steps overdue/)
  assert.equal(row.slips.seller, 1)
  const forbidden = await api(server, 'GET', '/api/plans', { token: plan.seller })
  assert.equal(forbidden.status, 403)
  destroy(seller, observer)
  await server.stop()
  data.cleanup()
})

test('a share reads only its own plan; bad queries are refused', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const a = await createPlan(server)
  const b = await createPlan(server)
  for (const path of ['', '/slips', '/history', '/health']) {
    const own = await api(server, 'GET', `/api/plans/${a.id}${path}`, { token: a.buyer })
    assert.equal(own.status, 200, `own plan ${path}`)
    const other = await api(server, 'GET', `/api/plans/${b.id}${path}`, { token: a.buyer })
    assert.equal(other.status, 403, `other plan ${path}`)
    assert.equal(other.body.error.code, 'wrong_plan')
    const none = await api(server, 'GET', `/api/plans/${a.id}${path}`, { token: null })
    assert.equal(none.status, 401)
    const missing = await api(server, 'GET', `/api/plans/0190b6a0-0000-7000-8000-000000000000${path}`)
    assert.equal(missing.status, 404)
  }
  const cases = [
    [`/api/plans/${a.id}/history?limit=0`, 'bad_query'],
    [`/api/plans/${a.id}/history?limit=100000`, 'bad_query'],
    [`/api/plans/${a.id}/history?before=soon`, 'bad_query'],
    [`/api/plans/${a.id}/slips?side=both`, 'bad_query'],
    [`/api/plans/${a.id}/slips?since=whenever`, 'bad_query'],
    [`/api/plans/${a.id}/health?today=31-12-2026`, 'bad_query']
  ]
  for (const [path, code] of cases) {
    const r = await api(server, 'GET', path)
    assert.equal(r.status, 400, path)
    assert.equal(r.body.error.code, code, path)
  }
  await server.stop()
  data.cleanup()
})

test('rebuild-history reproduces the stored history exactly, also after kill -9 mid-stream', async () => {
  const data = tempData()
  let server = await startServer({ dataFile: data.file })
  const plan = await templatePlan(server)
  let buyer = client(server, plan.id, plan.buyer)
  let seller = client(server, plan.id, plan.seller)
  await Promise.all([synced(buyer), synced(seller)])
  const ids = [...buyer.map('milestones').keys()].sort()
  let moves = 0
  // Two writers move dates and the server is killed while their updates are in flight.
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 20; i++) {
      const id = ids[(round * 20 + i) % ids.length]
      const day = String(1 + ((round * 20 + i) % 27)).padStart(2, '0')
      moveDue(i % 2 ? buyer : seller, id, `2027-0${1 + round}-${day}`, `round ${round} move ${i}`)
      moves++
    }
    await server.kill9()
    server = await startServer({ dataFile: data.file })
    // The clients keep their documents and reconnect to the new server, uploading whatever
    // the crash lost.
    destroy(buyer, seller)
    buyer = client(server, plan.id, plan.buyer, { doc: buyer.doc })
    seller = client(server, plan.id, plan.seller, { doc: seller.doc })
    await Promise.all([synced(buyer), synced(seller)])
  }
  // Every move the two clients made is now on the server; converge and check the slips.
  await waitFor(() => ids.every(id => milestone(buyer, id).get('due') === milestone(seller, id).get('due')))
  const opened = await api(server, 'GET', `/api/plans/${plan.id}`)
  assert.equal(opened.status, 200)
  // Moves that reached the server together (an offline backlog) merge into one update, so
  // count per milestone: the last kept slip of every moved milestone lands on its date now
  // (the two writers move some steps at once; a move that lost is on record as not kept).
  const moved = [...new Set(Array.from({ length: moves }, (_, k) => ids[k % ids.length]))]
  const lastSlips = body => Object.fromEntries(body.slips.filter(slip => slip.kept).map(slip => [slip.milestoneId, slip]))
  let slips
  await waitFor(async () => {
    slips = await api(server, 'GET', `/api/plans/${plan.id}/slips`)
    const last = lastSlips(slips.body)
    return moved.every(id => last[id]?.to === milestone(buyer, id).get('due'))
  }, { what: 'every move in the slip history' })
  for (const slip of slips.body.slips) assert.equal(slip.who.kind, 'share')
  destroy(buyer, seller)
  assert.equal((await server.stop()).code, 0)

  const check = rebuildHistory(data.file, '--check', '--json')
  assert.equal(check.status, 0, check.stdout + check.stderr)
  const reports = check.stdout.trim().split('\n').map(line => JSON.parse(line))
  assert.equal(reports.length, 1)
  assert.deepEqual(
    { missing: reports[0].missing, extra: reports[0].extra, differing: reports[0].differing },
    { missing: [], extra: [], differing: [] }
  )
  // Every update with a slip, plus the plan's creation, is a history entry.
  assert.ok(reports[0].entries >= new Set(slips.body.slips.map(s => s.seq)).size + 1)
  // A rewrite gives the same records again.
  const rewrite = rebuildHistory(data.file)
  assert.equal(rewrite.status, 0, rewrite.stderr)
  assert.equal(rebuildHistory(data.file, '--check').status, 0)
  data.cleanup()
})

test('rebuild-history refuses a missing data file and a file the server holds open', async () => {
  const data = tempData()
  const missing = rebuildHistory(data.file + '.nothing')
  assert.equal(missing.status, 2, 'an error is 2; 1 means differences found')
  assert.match(missing.stderr, /^error: no data file/)
  const server = await startServer({ dataFile: data.file })
  const busy = rebuildHistory(data.file, '--check')
  assert.equal(busy.status, 2)
  assert.match(busy.stderr, /server still running/)
  await server.stop()
  data.cleanup()
})

