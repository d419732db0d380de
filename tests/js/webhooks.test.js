// Webhooks: signed deliveries of plan events to a local receiver, a persistent outbox that
// delivers what happened while the receiver was down — across a server restart — and a
// delivery log per subscription. The receiver listens on 127.0.0.1, so these servers run with
// --webhooks-allow-private (ssrf.test.js shows that the default refuses it).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { createHmac } from 'node:crypto'
import { startServer, tempData, createPlan, api, client, synced, destroy, waitFor } from './lib/harness.js'

const OWN_NETWORK = ['--webhooks-allow-private']

/** A receiver on a fixed port that records every request; `stop()` and `start()` again. */
function receiver (port = 0) {
  const got = []
  let server
  const start = () => new Promise(resolve => {
    server = http.createServer((req, res) => {
      let body = ''
      req.on('data', c => { body += c })
      req.on('end', () => { got.push({ headers: req.headers, body, json: JSON.parse(body) }); res.writeHead(204).end() })
    })
    server.listen(port, '127.0.0.1', () => { port = server.address().port; resolve() })
  })
  const stop = () => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) })
  return { got, start, stop, url: () => `http://127.0.0.1:${port}/hook`, events: name => got.filter(g => g.json.event === name) }
}

function verify (secret, delivery) {
  const [t, v1] = delivery.headers['mapline-signature'].split(',').map(p => p.split('=')[1])
  const expected = createHmac('sha256', secret).update(`${t}.${delivery.body}`).digest('hex')
  return v1 === expected && Math.abs(Date.now() / 1000 - Number(t)) < 300
}

test('slips, completions, go-live moves, overdue steps and revoked links are delivered, signed', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file, args: OWN_NETWORK })
  const hook = receiver()
  await hook.start()
  try {
    const plan = await createPlan(server, { template: 'mid-market', goLive: '2027-06-01' })
    const other = await createPlan(server)
    const made = await api(server, 'POST', '/api/webhooks', { body: { url: hook.url() } })
    assert.equal(made.status, 201)
    assert.match(made.body.secret, /^whsec_/)
    const elsewhere = await api(server, 'POST', '/api/webhooks', { body: { url: hook.url(), planId: other.id, events: ['milestone.slipped'] } })
    assert.equal(elsewhere.status, 201)

    const seller = client(server, plan.id, plan.seller)
    await synced(seller)
    const steps = seller.map('milestones')
    seller.doc.transact(() => { steps.get('ms-signature').set('due', '2027-05-25'); steps.get('ms-signature').set('slipReason', 'Legal review') })
    await waitFor(() => hook.events('milestone.slipped').length === 1, { what: 'milestone.slipped' })
    const slipped = hook.events('milestone.slipped')[0]
    assert.ok(verify(made.body.secret, slipped), 'the signature checks out with the secret')
    assert.equal(slipped.headers['mapline-event'], 'milestone.slipped')
    assert.equal(slipped.json.planId, plan.id)
    assert.deepEqual(
      [slipped.json.data.milestoneId, slipped.json.data.to, slipped.json.data.reason, slipped.json.data.who.label, slipped.json.data.side],
      ['ms-signature', '2027-05-25', 'Legal review', 'Mapline team', 'seller'])
    assert.equal(typeof slipped.json.data.days, 'number')

    steps.get('ms-trial').set('status', 'done')
    await waitFor(() => hook.events('milestone.completed').length === 1, { what: 'milestone.completed' })
    assert.equal(hook.events('milestone.completed')[0].json.data.milestoneId, 'ms-trial')

    seller.doc.transact(() => { seller.map('meta').set('goLive', '2027-06-15'); seller.map('meta').set('goLiveSlipReason', 'Board moved') })
    await waitFor(() => hook.events('plan.golive_changed').length === 1, { what: 'plan.golive_changed' })
    assert.deepEqual([hook.events('plan.golive_changed')[0].json.data.to, hook.events('plan.golive_changed')[0].json.data.days], ['2027-06-15', 14])

    // Revoking the buyer's link takes the link their champion minted with it along: one event each.
    const revoked = plan.shares[1]
    const minted = (await api(server, 'POST', `/api/plans/${plan.id}/shares`, { token: revoked.token, body: { side: 'buyer', role: 'viewer', label: 'CFO' } })).body
    await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${revoked.id}`)
    await waitFor(() => hook.events('share.revoked').length === 2, { what: 'share.revoked for the link and the one minted with it' })
    const byShare = Object.fromEntries(hook.events('share.revoked').map(e => [e.json.data.shareId, e.json.data]))
    assert.deepEqual(Object.keys(byShare).sort(), [revoked.id, minted.id].sort())
    assert.equal(byShare[revoked.id].revokedWith, undefined)
    assert.deepEqual([byShare[minted.id].label, byShare[minted.id].revokedWith], ['CFO', revoked.id])

    // Overdue: once per step and due date, however often the plan changes afterwards.
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)
    steps.get('ms-kickoff').set('due', yesterday)
    await waitFor(() => hook.events('milestone.overdue').length === 1, { timeout: 15000, what: 'milestone.overdue' })
    assert.deepEqual([hook.events('milestone.overdue')[0].json.data.milestoneId, hook.events('milestone.overdue')[0].json.data.daysLate], ['ms-kickoff', 1])
    steps.get('ms-kickoff').set('notes', 'still waiting')
    steps.get('ms-order-form').set('due', yesterday)
    await waitFor(() => hook.events('milestone.overdue').some(e => e.json.data.milestoneId === 'ms-order-form'), { timeout: 15000, what: 'the second overdue step' })
    assert.equal(hook.events('milestone.overdue').filter(e => e.json.data.milestoneId === 'ms-kickoff').length, 1, 'once')
    destroy(seller)

    // The subscription for the other plan got nothing; the log of this one shows deliveries.
    assert.deepEqual((await api(server, 'GET', `/api/webhooks/${elsewhere.body.id}/deliveries`)).body.deliveries, [])
    // The receiver has each request before the server records its answer: wait for the record.
    const log = await waitFor(async () => {
      const log = (await api(server, 'GET', `/api/webhooks/${made.body.id}/deliveries`)).body.deliveries
      return log.length === hook.got.length && log
    }, { what: 'every delivery in the log' })
    assert.ok(log.length >= 6 && log.every(d => d.outcome === 'delivered' && d.status === 204))
    assert.ok(hook.got.every(g => verify(made.body.secret, g)), 'every delivery is signed')
  } finally {
    await hook.stop()
    await server.stop()
    data.cleanup()
  }
})

test('a receiver that is down gets everything once it is back, even across a server restart', async () => {
  const data = tempData()
  let server = await startServer({ dataFile: data.file, args: OWN_NETWORK })
  const hook = receiver()
  await hook.start()
  const url = hook.url()
  await hook.stop()
  try {
    const plan = await createPlan(server, { template: 'mid-market' })
    const made = await api(server, 'POST', '/api/webhooks', { body: { url, events: ['milestone.slipped'] } })
    const seller = client(server, plan.id, plan.seller)
    await synced(seller)
    const step = seller.map('milestones').get('ms-signature')
    seller.doc.transact(() => { step.set('due', '2027-03-20'); step.set('slipReason', 'while the receiver was down') })
    // Tried and failed: the log says so, and the delivery waits in the outbox.
    await waitFor(async () => (await api(server, 'GET', `/api/webhooks/${made.body.id}/deliveries`)).body.deliveries
      .some(d => d.outcome === 'retrying' && d.error), { what: 'a failed attempt in the log' })
    destroy(seller)
    await server.kill9()
    server = await startServer({ dataFile: data.file, args: OWN_NETWORK })
    await hook.start()
    await waitFor(() => hook.events('milestone.slipped').length === 1, { timeout: 30000, what: 'the delivery after the restart' })
    assert.equal(hook.events('milestone.slipped')[0].json.data.reason, 'while the receiver was down')
    assert.ok(verify(made.body.secret, hook.got[0]))
    const log = await waitFor(async () => {
      const log = (await api(server, 'GET', `/api/webhooks/${made.body.id}/deliveries`)).body.deliveries
      return log.at(-1)?.outcome !== 'retrying' && log
    }, { what: 'the delivery in the log' })
    assert.equal(log.at(-1).outcome, 'delivered')
    assert.ok(log.filter(d => d.outcome === 'retrying').length >= 1)
    assert.equal(hook.events('milestone.slipped').length, 1, 'delivered once')
  } finally {
    await hook.stop().catch(() => {})
    await server.stop()
    data.cleanup()
  }
})

test('subscriptions: who may manage them, and every bad request', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  try {
    const plan = await createPlan(server)
    const cases = [
      ['a share token', 'POST', '/api/webhooks', { body: { url: 'http://x' }, token: plan.seller }, 403, 'admin_only'],
      ['not a URL', 'POST', '/api/webhooks', { body: { url: 'ftp://x' } }, 422, 'invalid_field'],
      ['an unknown event', 'POST', '/api/webhooks', { body: { url: 'http://x', events: ['deal.won'] } }, 422, 'invalid_field'],
      ['an unknown plan', 'POST', '/api/webhooks', { body: { url: 'http://x', planId: '01900000-0000-7000-8000-000000000000' } }, 404, 'plan_not_found'],
      ['invalid JSON', 'POST', '/api/webhooks', { raw: '{', headers: { 'content-type': 'application/json' } }, 400, 'invalid_json'],
      ['delete an unknown one', 'DELETE', '/api/webhooks/01900000-0000-7000-8000-000000000000', {}, 404, 'webhook_not_found'],
      ['the log of an unknown one', 'GET', '/api/webhooks/nope/deliveries', {}, 404, 'webhook_not_found'],
      ['list with a share token', 'GET', '/api/webhooks', { token: plan.buyer }, 403, 'admin_only']
    ]
    for (const [name, method, path, options, status, code] of cases) {
      const got = await api(server, method, path, options)
      assert.deepEqual([got.status, got.body?.error?.code], [status, code], name)
    }
    const made = await api(server, 'POST', '/api/webhooks', { body: { url: 'https://example.invalid/hook' } })
    const listed = (await api(server, 'GET', '/api/webhooks')).body.webhooks
    assert.deepEqual(listed.map(h => [h.id, h.secret]), [[made.body.id, undefined]], 'secrets are never listed')
    assert.equal((await api(server, 'DELETE', `/api/webhooks/${made.body.id}`)).status, 204)
    assert.deepEqual((await api(server, 'GET', '/api/webhooks')).body.webhooks, [])
  } finally {
    await server.stop()
    data.cleanup()
  }
})
