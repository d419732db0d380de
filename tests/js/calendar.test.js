// The calendar feed (GET /api/plans/{id}/calendar.ics), parsed with a real iCalendar parser
// (ical.js): one event per dated milestone and one for go-live, stable UIDs, and a SEQUENCE
// that grows when a date moves, so a subscribed calendar moves the event instead of adding one.
//
// A calendar service keeps the subscribed URL, so the feed opens with each link's read-only feed
// token (`calendarUrl` of `/me`), never with the link's own token; the feed token opens nothing
// else and dies with its link (revocation, its parent's revocation, expiry).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import ICAL from 'ical.js'
import {
  startServer, tempData, createPlan, api, mintShare, client, synced, destroy, waitFor, upgradeStatus, Y,
  ADMIN_TOKEN
} from './lib/harness.js'

let data, server
before(async () => { data = tempData(); server = await startServer({ dataFile: data.file }) })
after(async () => { await server.stop(); data.cleanup() })

/** The feed token in the `calendarUrl` that `/me` answers a share link. */
async function feedToken (planId, shareToken) {
  const me = await api(server, 'GET', `/api/plans/${planId}/me`, { token: shareToken })
  assert.equal(me.status, 200, JSON.stringify(me.body))
  const url = new URL(me.body.calendarUrl, server.url)
  assert.equal(url.pathname, `/api/plans/${planId}/calendar.ics`)
  return url.searchParams.get('token')
}

/** The calendar feed of a plan as a calendar service fetches it: a URL, no headers. */
async function feed (planId, token, query = '') {
  const response = await fetch(`${server.url}/api/plans/${planId}/calendar.ics?token=${encodeURIComponent(token)}${query}`)
  const text = await response.text()
  return { status: response.status, type: response.headers.get('content-type'), text }
}

/** A JSON error's [status, code]. */
async function refusal (response) {
  const text = await response.text()
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/, text)
  return [response.status, JSON.parse(text).error?.code]
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
  const buyerFeed = await feedToken(plan.id, plan.buyer)
  const first = await feed(plan.id, buyerFeed)
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
  const after = events((await feed(plan.id, buyerFeed)).text)
  assert.equal(after.length, 9, 'moved, not duplicated')
  const moved = after.find(e => e.uid === signature.uid)
  assert.deepEqual([moved.start, moved.sequence], ['2027-03-25', 1])
  assert.match(moved.description, /Last date change: Legal needs a second review/)
  assert.equal(after.find(e => e.uid === goLive.uid).sequence, 0, 'other events keep their sequence')

  // A cancelled step stays in the feed, marked cancelled; an undated one is left out.
  seller.map('milestones').get('ms-trial').set('status', 'cancelled')
  seller.map('milestones').get('ms-kickoff').delete('due')
  await waitFor(async () => {
    const now = events((await feed(plan.id, buyerFeed)).text)
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
  const sellerFeed = await feedToken(plan.id, plan.seller)
  const buyerFeed = await feedToken(plan.id, plan.buyer)
  await waitFor(async () => events((await feed(plan.id, sellerFeed)).text).length === 4, { what: 'the three steps in the feed' })
  for (const owner of ['st-lena', 'lena fischer']) {
    const mine = events((await feed(plan.id, buyerFeed, `&owner=${encodeURIComponent(owner)}`)).text)
    assert.deepEqual(mine.map(e => e.summary).sort(), ['DPA signed', 'Go-live: Rollout', 'Security review'], owner)
  }
  destroy(seller)
})

test('the feed URL from /me opens the calendar for a buyer editor, a viewer and a seller link, the same URL each time', async () => {
  const plan = await createPlan(server)
  const viewer = await mintShare(server, plan.id, { role: 'viewer', label: 'CFO' })
  const feeds = new Set()
  for (const [who, token] of [['buyer editor', plan.buyer], ['viewer', viewer], ['seller editor', plan.seller]]) {
    const me = await api(server, 'GET', `/api/plans/${plan.id}/me`, { token })
    const url = me.body.calendarUrl
    assert.match(url, new RegExp(`^/api/plans/${plan.id}/calendar\\.ics\\?token=f_[A-Za-z0-9_-]+$`), who)
    assert.ok(!url.includes(token), `${who}: the share token is not in the feed URL`)
    assert.equal((await api(server, 'GET', `/api/plans/${plan.id}/me`, { token })).body.calendarUrl, url, `${who}: the same feed each time`)
    const response = await fetch(server.url + url)
    assert.equal(response.status, 200, who)
    assert.match(response.headers.get('content-type'), /^text\/calendar/, who)
    assert.equal(events(await response.text()).find(e => e.uid === `go-live.${plan.id}@mapline`)?.start, '2027-04-01', who)
    feeds.add(url)
  }
  assert.equal(feeds.size, 3, 'one feed per link')
  // The admin has no link: no feed URL, and it keeps reading the feed with its own credential.
  const admin = await api(server, 'GET', `/api/plans/${plan.id}/me`)
  assert.equal(admin.body.calendarUrl, null)
  assert.equal((await feed(plan.id, ADMIN_TOKEN)).status, 200, 'the admin credential opens the feed (automation)')
})

test('calendarUrl is absolute under --public-url, as share links are', async () => {
  const publicData = tempData()
  const public_ = await startServer({ dataFile: publicData.file, args: ['--public-url', 'https://plans.example.com/'] })
  try {
    const { status, body } = await api(public_, 'POST', '/api/plans', {
      body: { title: 'Rollout', buyerOrg: 'Northwind', sellerOrg: 'Mapline', goLive: '2027-04-01' }
    })
    assert.equal(status, 201)
    const buyer = body.shares.find(s => s.side === 'buyer')
    assert.match(buyer.url, /^https:\/\/plans\.example\.com\/p\//)
    const me = await api(public_, 'GET', `/api/plans/${body.id}/me`, { token: buyer.token })
    const url = new URL(me.body.calendarUrl)
    assert.equal(`${url.origin}${url.pathname}`, `https://plans.example.com/api/plans/${body.id}/calendar.ics`)
    const local = await fetch(`${public_.url}${url.pathname}${url.search}`)
    assert.equal(local.status, 200)
  } finally {
    await public_.stop()
    publicData.cleanup()
  }
})

test('an operator\'s own admin credential opens the feed even when it looks like a feed token', async () => {
  const ownData = tempData()
  const adminToken = 'f_operator-chosen-admin-credential-0123456789'
  const own = await startServer({ dataFile: ownData.file, adminToken })
  try {
    const created = await api(own, 'POST', '/api/plans', {
      token: adminToken, body: { title: 'Rollout', buyerOrg: 'Northwind', sellerOrg: 'Mapline', goLive: '2027-04-01' }
    })
    assert.equal(created.status, 201)
    const response = await fetch(`${own.url}/api/plans/${created.body.id}/calendar.ics?token=${adminToken}`)
    assert.equal(response.status, 200)
  } finally {
    await own.stop()
    ownData.cleanup()
  }
})

test('share tokens do not open the feed: 403 feed_token_required, saying where the feed is', async () => {
  const plan = await createPlan(server)
  const viewer = await mintShare(server, plan.id, { role: 'viewer', label: 'CFO' })
  for (const [who, token] of [['buyer editor', plan.buyer], ['seller editor', plan.seller], ['viewer', viewer]]) {
    for (const [how, init, query] of [['in the query', {}, `?token=${token}`], ['as a bearer', { headers: { authorization: `Bearer ${token}` } }, '']]) {
      const response = await fetch(`${server.url}/api/plans/${plan.id}/calendar.ics${query}`, init)
      const text = await response.text()
      const body = JSON.parse(text)
      assert.deepEqual([response.status, body.error.code], [403, 'feed_token_required'], `${who} ${how}`)
      assert.match(body.error.message, /calendarUrl/, `${who} ${how}: says where the feed link is`)
      assert.ok(!text.includes('BEGIN:VCALENDAR'))
    }
  }
})

test('a feed token opens its plan\'s calendar and nothing else', async () => {
  const plan = await createPlan(server)
  const other = await createPlan(server)
  const sellerFeed = await feedToken(plan.id, plan.seller)
  const buyerFeed = await feedToken(plan.id, plan.buyer)
  const otherFeed = await feedToken(other.id, other.buyer)
  const base = `/api/plans/${plan.id}`
  for (const token of [sellerFeed, buyerFeed]) {
    const reads = ['', '/history', '/slips', '/health', '/export.json', '/export.md', '/export.csv', '/me', '/shares', '/shares/x/revocation']
    for (const path of reads) {
      const asBearer = await fetch(`${server.url}${base}${path}`, { headers: { authorization: `Bearer ${token}` } })
      assert.deepEqual(await refusal(asBearer), [401, 'invalid_token'], `GET ${path} with the feed as a bearer`)
      const inQuery = await fetch(`${server.url}${base}${path}?token=${token}`)
      assert.equal(inQuery.status, 401, `GET ${path} with the feed in the query`)
    }
    const writes = [
      ['POST', `${base}/shares`, { side: 'buyer', role: 'editor', label: 'Intruder' }],
      ['DELETE', `${base}/shares/${plan.shares[0].id}`],
      ['POST', '/api/plans', { title: 'X', buyerOrg: 'X', sellerOrg: 'X', goLive: '2027-04-01' }],
      ['GET', '/api/plans']
    ]
    for (const [method, path, body] of writes) {
      const answer = await api(server, method, path, { token, body })
      assert.deepEqual([answer.status, answer.body.error?.code], [401, 'invalid_token'], `${method} ${path}`)
    }
    for (const path of [`/${plan.id}`, `/${plan.id}/internal`]) {
      const upgrade = await upgradeStatus(`${server.wsUrl}${path}?token=${token}`)
      assert.deepEqual([upgrade.status, upgrade.body?.error?.code], [401, 'invalid_token'], `the WebSocket upgrade of /sync${path}`)
      const bearer = await upgradeStatus(`${server.wsUrl}${path}`, { authorization: `Bearer ${token}` })
      assert.equal(bearer.status, 401, `the WebSocket upgrade of /sync${path} with the feed as a bearer`)
    }
  }
  assert.deepEqual(await refusal(await fetch(`${server.url}/api/plans/${other.id}/calendar.ics?token=${buyerFeed}`)), [403, 'wrong_plan'], 'plan A\'s feed on plan B')
  assert.deepEqual(await refusal(await fetch(`${server.url}${base}/calendar.ics?token=${otherFeed}`)), [403, 'wrong_plan'], 'plan B\'s feed on plan A')
  // Nothing was touched: no link minted, and the feeds still work.
  const listed = await api(server, 'GET', `${base}/shares`)
  assert.deepEqual(listed.body.shares.map(s => s.status), ['active', 'active'])
  for (const token of [sellerFeed, buyerFeed]) assert.equal((await feed(plan.id, token)).status, 200)
})

test('revoking a link, or a link it was minted through, ends its feed at once; so does expiry', async () => {
  const plan = await createPlan(server)
  // The buyer champion brings in a colleague, who brings in the CFO.
  const colleague = await api(server, 'POST', `/api/plans/${plan.id}/shares`, { token: plan.buyer, body: { side: 'buyer', role: 'editor', label: 'Colleague' } })
  const cfo = await api(server, 'POST', `/api/plans/${plan.id}/shares`, { token: colleague.body.token, body: { side: 'buyer', role: 'viewer', label: 'CFO' } })
  const outsider = await api(server, 'POST', `/api/plans/${plan.id}/shares`, { token: plan.buyer, body: { side: 'buyer', role: 'viewer', label: 'Outsider' } })
  const feeds = {}
  for (const [name, token] of [['buyer', plan.buyer], ['colleague', colleague.body.token], ['cfo', cfo.body.token], ['outsider', outsider.body.token]]) {
    feeds[name] = await feedToken(plan.id, token)
    assert.equal((await feed(plan.id, feeds[name])).status, 200, name)
  }
  const revoked = await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${colleague.body.id}`, { token: plan.seller })
  assert.equal(revoked.status, 200)
  for (const name of ['colleague', 'cfo']) {
    const response = await fetch(`${server.url}/api/plans/${plan.id}/calendar.ics?token=${feeds[name]}`)
    assert.deepEqual(await refusal(response), [401, 'share_revoked'], `${name}: revoked ${name === 'cfo' ? 'with the link it was minted through' : ''}`)
  }
  for (const name of ['buyer', 'outsider']) assert.equal((await feed(plan.id, feeds[name])).status, 200, `${name}: not minted through the revoked link`)

  // The root of the tree: its feed, and every feed below it, end together.
  await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${plan.shares.find(s => s.side === 'buyer').id}`)
  for (const name of ['buyer', 'outsider']) {
    assert.deepEqual(await refusal(await fetch(`${server.url}/api/plans/${plan.id}/calendar.ics?token=${feeds[name]}`)), [401, 'share_revoked'], name)
  }
  assert.equal((await feed(plan.id, await feedToken(plan.id, plan.seller))).status, 200, 'the seller\'s feed is another link\'s')

  // A link that expires takes its feed along when it does.
  const expiresAt = new Date(Date.now() + 1500).toISOString()
  const brief = await api(server, 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'buyer', role: 'viewer', label: 'Brief', expiresAt } })
  const briefFeed = await feedToken(plan.id, brief.body.token)
  assert.equal((await feed(plan.id, briefFeed)).status, 200)
  await waitFor(async () => (await feed(plan.id, briefFeed)).status === 401, { what: 'the expired link\'s feed to be refused' })
  assert.deepEqual(await refusal(await fetch(`${server.url}/api/plans/${plan.id}/calendar.ics?token=${briefFeed}`)), [401, 'share_expired'])
})

test('the feed needs a feed token of this plan: every other request is refused with a JSON error', async () => {
  const plan = await createPlan(server)
  const other = await createPlan(server)
  const buyerFeed = await feedToken(plan.id, plan.buyer)
  const forged = buyerFeed.slice(0, -4) + (buyerFeed.endsWith('AAAA') ? 'BBBB' : 'AAAA')
  const revoked = await api(server, 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'buyer', role: 'viewer', label: 'Gone' } })
  await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${revoked.body.id}`)
  const cases = [
    ['no token', `/api/plans/${plan.id}/calendar.ics`, 401, 'missing_token'],
    ['a wrong token', `/api/plans/${plan.id}/calendar.ics?token=s_nope`, 401, 'invalid_token'],
    ['a wrong feed token', `/api/plans/${plan.id}/calendar.ics?token=f_nope`, 401, 'invalid_token'],
    ['a forged feed token of a real link', `/api/plans/${plan.id}/calendar.ics?token=${forged}`, 401, 'invalid_token'],
    ['a revoked link', `/api/plans/${plan.id}/calendar.ics?token=${revoked.body.token}`, 401, 'share_revoked'],
    ['another plan\'s link', `/api/plans/${plan.id}/calendar.ics?token=${other.buyer}`, 403, 'feed_token_required'],
    ['another plan\'s feed', `/api/plans/${plan.id}/calendar.ics?token=${await feedToken(other.id, other.buyer)}`, 403, 'wrong_plan'],
    ['an unknown plan', `/api/plans/01900000-0000-7000-8000-000000000000/calendar.ics?token=${buyerFeed}`, 403, 'wrong_plan'],
    ['an unknown plan for the admin', `/api/plans/01900000-0000-7000-8000-000000000000/calendar.ics?token=${ADMIN_TOKEN}`, 404, 'plan_not_found'],
    ['a bad query', `/api/plans/${plan.id}/calendar.ics?token=${buyerFeed}&owner=a&owner=b`, 400, 'bad_query']
  ]
  for (const [name, path, status, code] of cases) {
    const response = await fetch(server.url + path)
    const body = await response.json()
    assert.deepEqual([response.status, body.error.code], [status, code], name)
  }
})
