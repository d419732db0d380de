// The calendar feed (GET /api/plans/{id}/calendar.ics), parsed with a real iCalendar parser
// (ical.js): one event per dated milestone and one for go-live, stable UIDs, and a SEQUENCE
// that grows when a date moves, so a subscribed calendar moves the event instead of adding one.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import ICAL from 'ical.js'
import { startServer, tempData, createPlan, api, mintShare, client, synced, destroy, waitFor, Y } from './lib/harness.js'

let data, server
before(async () => { data = tempData(); server = await startServer({ dataFile: data.file }) })
after(async () => { await server.stop(); data.cleanup() })

async function feed (planId, token, query = '') {
  const response = await fetch(`${server.url}/api/plans/${planId}/calendar.ics?token=${encodeURIComponent(token)}${query}`)
  const text = await response.text()
  return { status: response.status, type: response.headers.get('content-type'), text }
}

function events (text) {
  const calendar = new ICAL.Component(ICAL.parse(text))
  return calendar.getAllSubcomponents('vevent').map(v => {
    const event = new ICAL.Event(v)
    return {
      uid: event.uid,
      sequence: event.sequence,
      summary: event.summary,
      start: event.startDate.toString(),
      allDay: event.startDate.isDate,
      description: event.description,
      status: v.getFirstPropertyValue('status')
    }
  })
}

test('one all-day event per milestone and one for go-live, with stable UIDs; a moved date moves the event', async () => {
  const plan = await createPlan(server, { template: 'mid-market', goLive: '2027-04-01', title: 'Contoso, Inc; rollout' })
  const first = await feed(plan.id, plan.buyer)
  assert.equal(first.status, 200)
  assert.match(first.type, /^text\/calendar/)
  assert.ok(first.text.split('\r\n').every(line => Buffer.byteLength(line) <= 75), 'lines folded at 75 octets')
  const before = events(first.text)
  assert.equal(before.length, 9, '8 milestones and go-live')
  assert.ok(before.every(e => e.allDay && e.sequence === 0))
  const goLive = before.find(e => e.uid === `go-live.${plan.id}@mapline`)
  assert.equal(goLive.start, '2027-04-01')
  assert.equal(goLive.summary, 'Go-live: Contoso, Inc; rollout', 'commas and semicolons survive escaping')
  const signature = before.find(e => e.uid === `ms-signature.${plan.id}@mapline`)
  assert.equal(signature.summary, 'Order form signed')
  assert.match(signature.description, /Side: buyer/)
  assert.match(signature.description, /Waits for: Order form sent; Security questionnaire answered/)

  // The seller moves the signature by a week with a reason.
  const seller = client(server, plan.id, plan.seller)
  await synced(seller)
  const ms = seller.map('milestones').get('ms-signature')
  seller.doc.transact(() => { ms.set('due', '2027-03-25'); ms.set('slipReason', 'Legal needs a second review') })
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}/slips`)).body.slips.length === 1, { what: 'the slip to be recorded' })
  const after = events((await feed(plan.id, plan.buyer)).text)
  assert.equal(after.length, 9, 'moved, not duplicated')
  const moved = after.find(e => e.uid === signature.uid)
  assert.deepEqual([moved.start, moved.sequence], ['2027-03-25', 1])
  assert.match(moved.description, /Last date change: Legal needs a second review/)
  assert.equal(after.find(e => e.uid === goLive.uid).sequence, 0, 'other events keep their sequence')

  // A cancelled step stays in the feed, marked cancelled; an undated one is left out.
  seller.map('milestones').get('ms-trial').set('status', 'cancelled')
  seller.map('milestones').get('ms-kickoff').delete('due')
  await waitFor(async () => {
    const now = events((await feed(plan.id, plan.buyer)).text)
    return now.length === 8 && now.find(e => e.uid.startsWith('ms-trial.'))?.status === 'CANCELLED'
  }, { what: 'the cancelled and undated steps in the feed' })
  destroy(seller)
})

test('?owner= gives one person\'s milestones (by name or stakeholder id), plus go-live', async () => {
  const plan = await createPlan(server)
  const seller = client(server, plan.id, plan.seller)
  await synced(seller)
  seller.doc.transact(() => {
    const people = seller.map('stakeholders')
    people.set('st-lena', new Y.Map([['name', 'Lena Fischer'], ['side', 'buyer']]))
    const steps = seller.map('milestones')
    steps.set('ms-a', new Y.Map([['title', 'Security review'], ['owner', 'st-lena'], ['due', '2027-02-01']]))
    steps.set('ms-b', new Y.Map([['title', 'DPA signed'], ['owner', 'Lena Fischer'], ['due', '2027-02-10']]))
    steps.set('ms-c', new Y.Map([['title', 'Kickoff'], ['owner', 'Raj'], ['due', '2027-03-01']]))
  })
  await waitFor(async () => events((await feed(plan.id, plan.seller)).text).length === 4, { what: 'the three steps in the feed' })
  for (const owner of ['st-lena', 'lena fischer']) {
    const mine = events((await feed(plan.id, plan.buyer, `&owner=${encodeURIComponent(owner)}`)).text)
    assert.deepEqual(mine.map(e => e.summary).sort(), ['DPA signed', 'Go-live: Rollout', 'Security review'], owner)
  }
  destroy(seller)
})

test('the feed needs a link of this plan: every other request is refused with a JSON error', async () => {
  const plan = await createPlan(server)
  const other = await createPlan(server)
  const viewer = await mintShare(server, plan.id, { role: 'viewer', label: 'CFO' })
  assert.equal((await feed(plan.id, viewer)).status, 200, 'a viewer may subscribe')
  const revoked = await api(server, 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'buyer', role: 'viewer', label: 'Gone' } })
  await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${revoked.body.id}`)
  const cases = [
    ['no token', `/api/plans/${plan.id}/calendar.ics`, 401, 'missing_token'],
    ['a wrong token', `/api/plans/${plan.id}/calendar.ics?token=s_nope`, 401, 'invalid_token'],
    ['a revoked link', `/api/plans/${plan.id}/calendar.ics?token=${revoked.body.token}`, 401, 'share_revoked'],
    ['another plan\'s link', `/api/plans/${plan.id}/calendar.ics?token=${other.buyer}`, 403, 'wrong_plan'],
    ['an unknown plan', `/api/plans/01900000-0000-7000-8000-000000000000/calendar.ics?token=${plan.buyer}`, 403, 'wrong_plan'],
    ['a bad query', `/api/plans/${plan.id}/calendar.ics?token=${plan.buyer}&owner=a&owner=b`, 400, 'bad_query']
  ]
  for (const [name, path, status, code] of cases) {
    const response = await fetch(server.url + path)
    const body = await response.json()
    assert.deepEqual([response.status, body.error.code], [status, code], name)
  }
})
