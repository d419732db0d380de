// The audit page (issue 15, part 5), opened read-only with a buyer's share link
// (`/p/{id}/audit#token=…`): the activity feed equals `/history` and its filters narrow it as
// `/history` says they should; the slider at log position N renders what `?at=N` answers; "Now"
// returns to the live plan; slip analytics count what `/slips` holds; the server's integrity
// check and the audit export; "since my last review".
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPlan, api, mintShare, client, synced, destroy, waitFor } from './lib/harness.js'
import { openLink, browserSuite, noPageErrors, webRoot } from './lib/browser.js'

let server, browser
browserSuite(started => ({ server, browser } = started))

const plusDays = days => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10)

/** A plan with a history: the buyer moves a step with a reason, the seller marks a step done,
 * the seller moves go-live without a reason, the buyer renames a step. Returns the plan and the
 * two editors' tokens, once `/history` and `/slips` hold every change. */
async function planWithHistory () {
  const plan = await createPlan(server, { title: 'Northwind rollout', buyerOrg: 'Northwind Health', sellerOrg: 'Mapline Inc', goLive: plusDays(60), template: 'mid-market' })
  const { body } = await api(server, 'GET', `/api/plans/${plan.id}`)
  const [first, second] = body.plan.milestones
  const before = (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries.length
  const buyer = client(server, plan.id, plan.buyer)
  const seller = client(server, plan.id, plan.seller)
  await Promise.all([synced(buyer), synced(seller)])
  const stored = n => waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries.length >= before + n, { what: `${n} new history entries` })
  buyer.doc.transact(() => {
    const m = buyer.map('milestones').get(first.id)
    m.set('due', plusDays(20))
    m.set('slipReason', 'Security team is out')
  })
  await stored(1)
  seller.doc.transact(() => seller.map('milestones').get(second.id).set('status', 'done'))
  await stored(2)
  seller.doc.transact(() => seller.map('meta').set('goLive', plusDays(75)))
  await stored(3)
  buyer.doc.transact(() => buyer.map('milestones').get(second.id).set('status', 'in_progress'))
  await stored(4)
  await waitFor(async () => (await api(server, 'GET', `/api/plans/${plan.id}/slips`)).body.slips.length === 2, { what: 'two slips stored' })
  destroy(buyer, seller)
  return { ...plan, first, second }
}

async function openAudit (planId, token) {
  const person = await openLink(browser, server, `${planId}/audit`, token)
  await person.page.getByTestId('audit-page').waitFor({ timeout: 15000 })
  return person
}

/** The `data-seq` of every entry of a feed list, in page order. */
function feedSeqs (page, testid = 'feed') {
  return page.getByTestId(testid).locator('[data-testid="feed-entry"]').evaluateAll(els => els.map(el => Number(el.getAttribute('data-seq'))))
}

async function untilFeed (page, seqs, what) {
  await waitFor(async () => JSON.stringify(await feedSeqs(page)) === JSON.stringify(seqs), { what })
}

/** The steps the page renders at the current moment: id, due, status. */
function renderedSteps (page) {
  return page.getByTestId('audit-plan').locator('[data-testid="audit-step"]').evaluateAll(rows => rows.map(r => ({ id: r.dataset.id, due: r.dataset.due || null, status: r.dataset.status })))
}
const stepsOf = plan => plan.milestones.map(m => ({ id: m.id, due: m.due, status: m.status }))

test('the feed is the plan’s history, and each filter narrows it to the entries that match', async () => {
  const plan = await planWithHistory()
  const viewer = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'Ana Ruiz (procurement)' })
  const history = (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries
  const auditor = await openAudit(plan.id, viewer)
  try {
    const { page } = auditor
    await untilFeed(page, history.map(e => e.seq), 'the feed to list every /history entry, newest first')
    assert.equal(await page.getByTestId('feed').locator('[data-testid="feed-change"]').count(), history.reduce((n, e) => n + e.changes.length, 0), 'every change of every entry')

    await page.getByLabel('Side', { exact: true }).selectOption('buyer')
    const buyers = history.filter(e => e.who.side === 'buyer').map(e => e.seq)
    assert.equal(buyers.length, 2)
    await untilFeed(page, buyers, 'the buyer side only')

    await page.getByLabel('Side', { exact: true }).selectOption('')
    await page.getByLabel('Kind', { exact: true }).selectOption('date')
    const dates = history.filter(e => e.changes.some(c => c.field === 'due' || c.field === 'goLive')).map(e => e.seq)
    await untilFeed(page, dates, 'date moves only')
    // Of those entries, only the date changes are listed.
    const kinds = await page.getByTestId('feed').locator('[data-testid="feed-change"]').evaluateAll(els => els.map(el => el.dataset.kind))
    assert.ok(kinds.length > 0 && kinds.every(k => k === 'date'), `only date changes: ${kinds}`)

    await page.getByLabel('Kind', { exact: true }).selectOption('')
    await page.getByLabel('Step', { exact: true }).selectOption(plan.second.id)
    const onStep = history.filter(e => e.changes.some(c => c.entity === 'milestones' && c.entityId === plan.second.id)).map(e => e.seq)
    await untilFeed(page, onStep, 'changes of one step')

    await page.getByLabel('Step', { exact: true }).selectOption('')
    const ana = history.find(e => e.who.kind === 'share' && e.who.side === 'seller')
    await page.getByLabel('Person', { exact: true }).selectOption({ label: ana.who.label })
    await untilFeed(page, history.filter(e => e.who.shareId === ana.who.shareId).map(e => e.seq), 'one person’s changes')

    // A buyer link's audit page never shows the seller's internal document.
    assert.equal(await page.getByText('Internal — seller only').count(), 0)
    noPageErrors(auditor)
  } finally {
    await auditor.context.close()
  }
})

test('the slider at log position N renders the plan as ?at=N answers, and "Now" returns to the live plan', async () => {
  const plan = await planWithHistory()
  const history = (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries
  const positions = history.map(e => e.seq).sort((a, b) => a - b)
  const auditor = await openAudit(plan.id, plan.buyer)
  try {
    const { page } = auditor
    const slider = page.getByTestId('moment-slider')
    const live = (await api(server, 'GET', `/api/plans/${plan.id}`)).body.plan
    await page.locator('[data-testid="audit-plan"][data-live="true"]').waitFor()
    assert.deepEqual(await renderedSteps(page), stepsOf(live), 'the live plan first')
    // Every position before the four edits, and each of them: as `?at=N` answers.
    for (const index of [positions.length - 5, positions.length - 4, positions.length - 3, positions.length - 2]) {
      const n = positions[index]
      await slider.fill(String(index))
      await page.locator(`[data-testid="audit-plan"][data-at="${n}"]`).waitFor()
      const at = (await api(server, 'GET', `/api/plans/${plan.id}?at=${n}`)).body.plan
      assert.deepEqual(await renderedSteps(page), stepsOf(at), `the steps at position ${n}`)
      assert.equal(await page.getByTestId('audit-golive').getAttribute('data-date'), at.meta.goLive, `go-live at position ${n}`)
    }
    // The moment before the buyer's move differs from now (the test can fail).
    const early = (await api(server, 'GET', `/api/plans/${plan.id}?at=${positions[positions.length - 5]}`)).body.plan
    assert.notDeepEqual(stepsOf(early), stepsOf(live))

    await page.getByTestId('moment-now').click()
    await page.locator('[data-testid="audit-plan"][data-live="true"]').waitFor()
    assert.deepEqual(await renderedSteps(page), stepsOf(live), 'Now shows the live plan again')
    assert.equal(await page.getByTestId('moment-now').isDisabled(), true)
    noPageErrors(auditor)
  } finally {
    await auditor.context.close()
  }
})

test('changes between two moments list the entries after the first up to the second', async () => {
  const plan = await planWithHistory()
  const history = (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries
  const seqs = history.map(e => e.seq).sort((a, b) => a - b)
  const auditor = await openAudit(plan.id, plan.buyer)
  try {
    const { page } = auditor
    const [from, to] = [seqs[seqs.length - 4], seqs[seqs.length - 2]]
    await page.getByLabel('From', { exact: true }).selectOption(String(from))
    await page.getByLabel('To', { exact: true }).selectOption(String(to))
    await waitFor(async () => JSON.stringify(await feedSeqs(page, 'between')) === JSON.stringify([to, seqs[seqs.length - 3]]), { what: 'two entries between the moments' })
  } finally {
    await auditor.context.close()
  }
})

test('slip analytics count what /slips holds: in all, by side, per step, and those without a reason', async () => {
  const plan = await planWithHistory()
  const slips = (await api(server, 'GET', `/api/plans/${plan.id}/slips`)).body.slips
  const auditor = await openAudit(plan.id, plan.buyer)
  try {
    const { page } = auditor
    assert.equal(await page.getByTestId('slips-total').getAttribute('data-count'), String(slips.length))
    for (const side of ['buyer', 'seller']) {
      assert.equal(await page.locator(`[data-testid="slips-side"][data-side="${side}"]`).getAttribute('data-count'), String(slips.filter(s => s.who.side === side).length), `${side} moves`)
    }
    const step = slips.find(s => s.subject === 'milestone')
    assert.equal(await page.locator(`[data-testid="slips-step"][data-id="${step.milestoneId}"]`).getAttribute('data-count'), '1')
    const noReason = slips.filter(s => s.reason === null).map(s => String(s.seq))
    assert.deepEqual(await page.getByTestId('slip-no-reason').evaluateAll(els => els.map(el => el.dataset.seq)), noReason)
    assert.equal(await page.getByTestId('drift-point').count(), slips.filter(s => s.subject === 'go_live').length)
  } finally {
    await auditor.context.close()
  }
})

test('the plan page links to its audit page with the same link', async () => {
  const plan = await createPlan(server)
  const person = await openLink(browser, server, plan.id, plan.buyer)
  try {
    await person.page.getByTestId('audit-link').click()
    await person.page.getByTestId('audit-page').waitFor({ timeout: 15000 })
    assert.equal(new URL(person.page.url()).pathname, `/p/${plan.id}/audit`)
  } finally {
    await person.context.close()
  }
})

test('integrity: the server’s verdict and head hash are shown, and the export downloads with that head', async () => {
  const plan = await planWithHistory()
  const verify = (await api(server, 'GET', `/api/plans/${plan.id}/verify`)).body
  assert.equal(verify.ok, true)
  const auditor = await openAudit(plan.id, plan.buyer)
  try {
    const { page } = auditor
    await page.locator('[data-testid="verify"][data-ok="true"]').waitFor()
    assert.equal(await page.getByTestId('head-hash').textContent(), verify.head)
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download the audit export (JSON)' }).click()])
    const { readFile } = await import('node:fs/promises')
    const exported = JSON.parse(await readFile(await download.path(), 'utf8'))
    assert.equal(exported.format, 'mapline.audit.v1')
    assert.equal(exported.head, verify.head)
    assert.equal(exported.planId, plan.id)
  } finally {
    await auditor.context.close()
  }
})

test('since my last review lists exactly the changes after the mark', async () => {
  const plan = await planWithHistory()
  const auditor = await openAudit(plan.id, plan.seller)
  try {
    const { page } = auditor
    await page.getByRole('button', { name: 'Mark reviewed' }).click()
    const head = Math.max(...(await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries.map(e => e.seq))
    await page.locator(`[data-testid="last-review"][data-seq="${head}"]`).waitFor()
    await page.getByTestId('since-review-empty').waitFor()
    // Two changes after the mark.
    const seller = client(server, plan.id, plan.seller)
    await synced(seller)
    seller.doc.transact(() => seller.map('meta').set('title', 'Northwind rollout, phase 1'))
    seller.doc.transact(() => seller.map('milestones').get(plan.first.id).set('status', 'done'))
    const after = await waitFor(async () => {
      const entries = (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries.filter(e => e.seq > head)
      return entries.length === 2 && entries
    }, { what: 'two changes after the mark stored' })
    destroy(seller)
    await page.reload()
    await page.getByTestId('audit-page').waitFor()
    await waitFor(async () => JSON.stringify(await feedSeqs(page, 'since-review')) === JSON.stringify(after.map(e => e.seq)), { what: 'exactly the two changes after the mark' })
  } finally {
    await auditor.context.close()
  }
})

test('"Mark reviewed" marks up to the newest change the page shows, not one that arrived after it loaded', async () => {
  const plan = await planWithHistory()
  const auditor = await openAudit(plan.id, plan.seller)
  try {
    const { page } = auditor
    const history = (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries
    await untilFeed(page, history.map(e => e.seq), 'the feed as loaded')
    const shown = Math.max(...await feedSeqs(page))
    // A change reaches the server after the page loaded: the page never shows it.
    const seller = client(server, plan.id, plan.seller)
    await synced(seller)
    seller.doc.transact(() => seller.map('meta').set('title', 'Northwind rollout, renamed unseen'))
    const unseen = await waitFor(async () => {
      const newer = (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries.filter(e => e.seq > shown)
      return newer.length === 1 && newer[0].seq
    }, { what: 'the unseen change stored' })
    destroy(seller)
    assert.equal(Math.max(...await feedSeqs(page)), shown, 'the page still shows what it loaded')
    const [request] = await Promise.all([
      page.waitForRequest(r => r.method() === 'POST' && new URL(r.url()).pathname === `/api/plans/${plan.id}/reviews`),
      page.getByRole('button', { name: 'Mark reviewed' }).click()
    ])
    assert.deepEqual(request.postDataJSON(), { seq: shown }, 'the mark names the newest change shown')
    // A server that takes the mark's `seq` keeps the unseen change for the next review (an older
    // server ignores the body and marks its head): either way the list is what follows the mark.
    const mark = await waitFor(async () => {
      const last = (await api(server, 'GET', `/api/plans/${plan.id}/reviews/last`, { token: plan.seller })).body
      return last.seq !== null && last
    }, { what: 'the mark stored' })
    assert.ok(mark.seq === shown || mark.seq === unseen, `marked at ${mark.seq}`)
    await page.reload()
    await page.getByTestId('audit-page').waitFor()
    if (mark.seq === shown) await waitFor(async () => JSON.stringify(await feedSeqs(page, 'since-review')) === JSON.stringify([unseen]), { what: 'the unseen change listed since the review' })
    else await page.getByTestId('since-review-empty').waitFor()
    noPageErrors(auditor)
  } finally {
    await auditor.context.close()
  }
})

test('access: a seller’s feed shows links made and revoked (from the link list, by time); a buyer’s says it cannot list them', async () => {
  const plan = await createPlan(server, { title: 'Access audited' })
  const mint = async (label, role) => {
    const { status, body } = await api(server, 'POST', `/api/plans/${plan.id}/shares`, { token: plan.seller, body: { side: 'buyer', role, label } })
    assert.equal(status, 201, JSON.stringify(body))
    return body
  }
  const dev = await mint('Dev Patel (champion)', 'editor')
  const kim = await mint('Kim Lee (CFO)', 'viewer')
  const revoked = await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${kim.id}`)
  assert.equal(revoked.status, 200)
  const listed = (await api(server, 'GET', `/api/plans/${plan.id}/shares`)).body.shares
  const sellerLabel = listed.find(s => s.side === 'seller' && s.parentId === null).label

  const seller = await openAudit(plan.id, plan.seller)
  const buyer = await openAudit(plan.id, plan.buyer)
  try {
    const { page } = seller
    await page.locator('[data-testid="access-note"][data-links="listed"]').waitFor()
    await page.getByLabel('Kind', { exact: true }).selectOption('access')
    const events = () => page.getByTestId('feed').locator('[data-testid="access-event"]').evaluateAll(els => els.map(el => ({ share: el.dataset.share, action: el.dataset.action, words: el.querySelector('strong').textContent })))
    await waitFor(async () => (await events()).length === listed.length + 1, { what: 'every link made, and the one revoked' })
    const shown = await events()
    assert.equal(await page.getByTestId('feed').locator('[data-testid="feed-entry"]').count(), 0, 'no change of the log is about access')
    assert.deepEqual(shown[0], { share: kim.id, action: 'revoked', words: 'Link for Kim Lee (CFO) (buyer, viewer) revoked' }, 'the newest first: the revocation')
    assert.deepEqual(shown.find(e => e.share === dev.id), { share: dev.id, action: 'created', words: `Link for Dev Patel (champion) (buyer, editor) created by ${sellerLabel}` })
    assert.deepEqual(shown.find(e => e.share === kim.id && e.action === 'created'), { share: kim.id, action: 'created', words: `Link for Kim Lee (CFO) (buyer, viewer) created by ${sellerLabel}` })
    // Marked as from the link list, not the change log.
    assert.match(await page.locator(`[data-testid="access-event"][data-share="${kim.id}"][data-action="revoked"]`).textContent(), /from the link list, not the change log/)
    // Another kind: no access events.
    await page.getByLabel('Kind', { exact: true }).selectOption('status')
    await waitFor(async () => (await page.locator('[data-testid="access-event"]').count()) === 0, { what: 'access events gone for another kind' })

    // The buyer's audit: no access events, and the page says why.
    await buyer.page.locator('[data-testid="access-note"][data-links="sellers_only"]').waitFor()
    assert.equal(await buyer.page.locator('[data-testid="access-event"]').count(), 0)
    await buyer.page.getByLabel('Kind', { exact: true }).selectOption('access')
    await buyer.page.getByTestId('feed-empty').waitFor()
    noPageErrors(seller, buyer)
  } finally {
    await seller.context.close()
    await buyer.context.close()
  }
})
