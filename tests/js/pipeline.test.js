// The pipeline (GET /api/plans, /api/plans.csv) from stored summaries: edits by real Yjs
// clients reach it once their history is stored, `?today=` moves what is overdue, the CSV
// holds the same rows, and only the admin (today) may list plans.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import {
  startServer, tempData, createPlan, client, synced, destroy, waitFor, api, binary, ADMIN_TOKEN
} from './lib/harness.js'

const milestone = (c, id) => c.map('milestones').get(id)

/** Moves a due date as a good client does: date and reason in one transaction. */
function moveDue (c, id, due, reason) {
  c.doc.transact(() => {
    milestone(c, id).set('due', due)
    milestone(c, id).set('slipReason', reason)
  })
}

function moveGoLive (c, goLive, reason) {
  c.doc.transact(() => {
    c.map('meta').set('goLive', goLive)
    c.map('meta').set('goLiveSlipReason', reason)
  })
}

async function row (server, id, query = '') {
  const { status, body } = await api(server, 'GET', `/api/plans${query}`)
  assert.equal(status, 200)
  return body.plans.find(p => p.id === id)
}

/** The row once `check` holds for it (summaries are stored with the history, ≤ 100 ms later). */
async function rowOnce (server, id, check, what, query = '') {
  let found
  await waitFor(async () => {
    found = await row(server, id, query)
    return found && check(found)
  }, { what })
  return found
}

/** RFC 4180: quoted fields, doubled quotes, CRLF records. */
function parseCsv (text) {
  const rows = []
  let rowCells = []
  let cell = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++ } else if (c === '"') quoted = false
      else cell += c
    } else if (c === '"') quoted = true
    else if (c === ',') { rowCells.push(cell); cell = '' } else if (c === '\r' && text[i + 1] === '\n') {
      rowCells.push(cell); rows.push(rowCells); rowCells = []; cell = ''; i++
    } else cell += c
  }
  assert.equal(cell + rowCells.join(''), '', 'the CSV ends with CRLF')
  return rows
}

test('the pipeline follows edits once their history is stored: slips by side, drift, activity', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await createPlan(server, { template: 'enterprise' })
  const before = await row(server, plan.id)
  assert.deepEqual(
    [before.title, before.buyerOrg, before.sellerOrg, before.goLive, before.owner],
    ['Rollout', 'Northwind', 'Mapline', '2027-04-01', null])
  assert.deepEqual(before.slips, { buyer: 0, seller: 0, last14Days: 0 })
  assert.equal(before.goLiveDriftDays, 0)
  assert.equal(before.openSteps, 17)
  assert.equal(before.lastBuyerActivityAt, null)
  assert.equal(before.lastSellerActivityAt, null)
  assert.equal(before.buyerQuietDays, 0, 'quiet since the plan began: today')

  const seller = client(server, plan.id, plan.seller)
  const buyer = client(server, plan.id, plan.buyer)
  await Promise.all([synced(seller), synced(buyer)])
  moveDue(seller, 'ms-training', '2027-03-29', 'Trainer availability')
  moveGoLive(seller, '2027-04-15', 'Board meeting moved')
  const afterSeller = await rowOnce(server, plan.id,
    r => r.slips.seller === 2 && r.goLiveDriftDays === 14, 'the seller\'s two slips and the drift')
  assert.equal(afterSeller.goLive, '2027-04-15')
  assert.deepEqual(afterSeller.slips, { buyer: 0, seller: 2, last14Days: 2 })
  assert.ok(Date.parse(afterSeller.lastSellerActivityAt) > Date.now() - 60000)
  assert.equal(afterSeller.lastBuyerActivityAt, null)

  moveDue(buyer, 'ms-security-review', '2027-02-01', 'Security team is out')
  const afterBuyer = await rowOnce(server, plan.id, r => r.slips.buyer === 1, 'the buyer\'s slip')
  assert.deepEqual(afterBuyer.slips, { buyer: 1, seller: 2, last14Days: 3 })
  assert.ok(Date.parse(afterBuyer.lastBuyerActivityAt) >= Date.parse(afterSeller.lastSellerActivityAt))
  assert.equal(afterBuyer.buyerQuietDays, 0)
  // Days later, the same summary says the buyer has gone quiet.
  const later = new Date(Date.parse(afterBuyer.lastBuyerActivityAt) + 12 * 86400000).toISOString().slice(0, 10)
  const quiet = await row(server, plan.id, `?today=${later}`)
  assert.equal(quiet.buyerQuietDays, 12)
  assert.match(quiet.healthWords, /[Bb]uyer gone quiet for 12 days/)

  // The row shows the plan's current title, as GET /api/plans/{id} does: a cleared title is
  // untitled, never the title the plan was created with.
  seller.doc.transact(() => seller.map('meta').set('title', 'Rollout 2'))
  await rowOnce(server, plan.id, r => r.title === 'Rollout 2', 'the new title')
  seller.doc.transact(() => seller.map('meta').set('title', ''))
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}`)).body.plan.meta.title == null,
    { what: 'the plan has no title' })
  const untitled = await rowOnce(server, plan.id, r => r.title !== 'Rollout 2', 'the cleared title')
  assert.equal(untitled.title, 'Untitled plan')
  seller.doc.transact(() => seller.map('meta').set('title', 'Rollout'))
  await rowOnce(server, plan.id, r => r.title === 'Rollout', 'the title back')

  // A status change closes a step: one fewer open step, and no slip.
  seller.doc.transact(() => milestone(seller, 'ms-kickoff').set('status', 'done'))
  await rowOnce(server, plan.id, r => r.openSteps === 16, 'one step done')
  destroy(seller, buyer)

  // The summary survives a restart and a rebuild of the history.
  const rows = (await api(server, 'GET', '/api/plans?today=2027-03-01')).body.plans
  await server.stop()
  const rebuilt = spawnSync(binary, ['rebuild-history', '--data', data.file], { encoding: 'utf8' })
  assert.equal(rebuilt.status, 0, rebuilt.stderr)
  const again = await startServer({ dataFile: data.file })
  assert.deepEqual((await api(again, 'GET', '/api/plans?today=2027-03-01')).body.plans, rows)
  await again.stop()
  data.cleanup()
})

test('?today= moves what is overdue and at risk; the words say it', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await createPlan(server, { template: 'mid-market', goLive: '2027-04-01' })
  // The template's last step is due on go-live day: at risk (no slack) while nothing is late.
  const early = await row(server, plan.id, '?today=2026-01-01')
  assert.deepEqual([early.overdue, early.atRisk, early.health], [0, 0, 'at_risk'])
  assert.equal(early.healthWords, 'At risk: no slack: the last step is due on go-live day')
  const late = await row(server, plan.id, '?today=2028-01-01')
  assert.equal(late.overdue, late.openSteps)
  assert.equal(late.health, 'off_track')
  assert.match(late.healthWords, new RegExp(`^Off track: ${late.openSteps} steps overdue`))
  // Due within a week, not yet late: at risk.
  const firstDue = (await api(server, 'GET', `/api/plans/${plan.id}`)).body.plan.milestones.map(m => m.due).sort()[0]
  const weekBefore = new Date(Date.parse(firstDue) - 3 * 86400000).toISOString().slice(0, 10)
  const soon = await row(server, plan.id, `?today=${weekBefore}`)
  assert.deepEqual([soon.overdue, soon.atRisk >= 1], [0, true])
  await server.stop()
  data.cleanup()
})

test('the CSV has a header row and the same rows as the JSON, formula-safe, with CRLF', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const tricky = '=HYPERLINK("http://evil"), "quoted"'
  const a = await createPlan(server, { title: tricky, template: 'enterprise' })
  await createPlan(server, { title: 'Plain', buyerOrg: 'Acme, Inc.' })
  const response = await fetch(`${server.url}/api/plans.csv?today=2027-03-01`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-type'), /^text\/csv/)
  assert.match(response.headers.get('content-disposition'), /^attachment/)
  const text = await response.text()
  assert.ok(text.includes('\r\n') && !/[^\r]\n/.test(text), 'CRLF line ends only')
  const [header, ...rows] = parseCsv(text)
  assert.deepEqual(header, ['id', 'title', 'buyerOrg', 'sellerOrg', 'goLive', 'owner', 'health', 'healthWords',
    'overdue', 'atRisk', 'openSteps', 'openStepsWithoutBuyerOwner', 'goLiveDriftDays', 'slipsBuyer', 'slipsSeller',
    'slipsLast14Days', 'lastBuyerActivityAt', 'lastSellerActivityAt', 'buyerQuietDays'])
  const json = (await api(server, 'GET', '/api/plans?today=2027-03-01')).body.plans
  assert.equal(rows.length, json.length)
  const flat = p => ({ ...p, owner: p.owner?.name ?? null, slipsBuyer: p.slips.buyer, slipsSeller: p.slips.seller, slipsLast14Days: p.slips.last14Days })
  for (const [i, cells] of rows.entries()) {
    const expected = flat(json[i])
    for (const [j, name] of header.entries()) {
      const value = expected[name]
      const shown = value === null ? '' : String(value)
      assert.equal(cells[j], /^[=+\-@\t\r]/.test(shown) ? `'${shown}` : shown, `${name} of ${expected.id}`)
    }
  }
  const trickyRow = rows.find(r => r[0] === a.id)
  assert.equal(trickyRow[1], `'${tricky}`, 'a cell a spreadsheet would evaluate starts with a quote')
  await server.stop()
  data.cleanup()
})

test('share links cannot list plans; bad queries are 400 with a JSON error', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await createPlan(server)
  for (const path of ['/api/plans', '/api/plans.csv']) {
    for (const token of [plan.seller, plan.buyer]) {
      const refused = await api(server, 'GET', path, { token })
      assert.deepEqual([refused.status, refused.body?.error?.code], [403, 'members_only'], path)
    }
    const anonymous = await api(server, 'GET', path, { token: null })
    assert.deepEqual([anonymous.status, anonymous.body?.error?.code], [401, 'missing_token'], path)
    for (const query of ['?today=2027-02-30', '?today=tomorrow', '?mine=yes']) {
      const bad = await api(server, 'GET', path + query)
      assert.deepEqual([bad.status, bad.body?.error?.code], [400, 'bad_query'], path + query)
      assert.ok(bad.body.error.message.length > 0)
    }
  }
  // The admin token owns no plan: `mine` lists none of them; without it, every plan.
  assert.deepEqual((await api(server, 'GET', '/api/plans?mine=1')).body.plans, [])
  assert.equal((await api(server, 'GET', '/api/plans?mine=0')).body.plans.length, 1)
  await server.stop()
  data.cleanup()
})
