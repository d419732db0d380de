// The web client in a real browser: Debian's Chromium (playwright-core) against the real binary
// serving web/dist. Two browser contexts are two people with their own storage.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { startServer, tempData, createPlan, api, mintShare, waitFor, client, synced, destroy, rawSocket, awarenessFrame, metric } from './lib/harness.js'
import { openLink, untilStatus, untilValue, untilLinkPage, planCopy, copyIsGone, syncStatus, webRoot, artifacts, untilDate, enterDate, browserSuite, noPageErrors } from './lib/browser.js'

let server, browser
browserSuite(started => ({ server, browser } = started))

/** A mid-market plan (8 dated milestones, ids `ms-{key}`) going live in about two months. */
async function newPlan (title = 'Contoso × Mapline rollout') {
  const goLive = new Date(Date.now() + 60 * 86_400_000).toISOString().slice(0, 10)
  return createPlan(server, { title, buyerOrg: 'Contoso', sellerOrg: 'Mapline Inc', goLive, template: 'mid-market' })
}

async function milestone (plan, id) {
  const { body } = await api(server, 'GET', `/api/plans/${plan.id}`)
  return body.plan.milestones.find(m => m.id === id)
}


/** Opens the plan as its seller and its buyer (two browser contexts), both saved, runs `steps`,
 * checks that neither page had a script error, console error (but `expectedConsole`) or CSP
 * violation, and closes both. */
async function asSellerAndBuyer (plan, steps, { expectedConsole = null } = {}) {
  const seller = await openLink(browser, server, plan.id, plan.seller)
  const buyer = await openLink(browser, server, plan.id, plan.buyer)
  try {
    await untilStatus(seller.page, 'saved')
    await untilStatus(buyer.page, 'saved')
    await steps({ seller, buyer })
    noPageErrors(seller, buyer, ...(expectedConsole === null ? [] : [expectedConsole]))
  } finally {
    await seller.context.close()
    await buyer.context.close()
  }
}

test('a buyer and a seller see each other, and each other\'s edits, live', async () => {
  const plan = await newPlan()
  await asSellerAndBuyer(plan, async ({ seller, buyer }) => {
    await seller.page.getByTestId('presence').getByText('Contoso team').waitFor()
    await buyer.page.getByTestId('presence').getByText('Mapline Inc team').waitFor()

    // The seller writes the objective; the buyer sees it without reloading.
    const objective = 'Cut onboarding time for new support agents from 6 weeks to 3'
    await seller.page.getByLabel('Objective', { exact: true }).fill(objective)
    await seller.page.getByLabel('Objective', { exact: true }).press('Tab')
    await untilValue(buyer.page.getByLabel('Objective', { exact: true }), objective, 'the buyer\'s objective')

    // The buyer renames a step and marks it in progress; the seller sees both.
    const trial = await milestone(plan, 'ms-trial')
    await buyer.page.getByLabel(`Status of ${trial.title}`).selectOption('in_progress')
    await untilValue(seller.page.getByLabel(`Status of ${trial.title}`), 'in_progress', 'the seller\'s status')

    // Presence says what the other is editing.
    await buyer.page.getByLabel(`Notes on ${trial.title}`).focus()
    await seller.page.locator('[data-milestone="ms-trial"] [data-testid="editing-by"]', { hasText: 'Contoso team' }).waitFor()
    await seller.page.getByTestId('presence').getByText(`editing notes of “${trial.title}”`).waitFor()
    await buyer.page.getByLabel(`Notes on ${trial.title}`).blur()
    await seller.page.locator('[data-milestone="ms-trial"] [data-testid="editing-by"]').waitFor({ state: 'detached' })

    // The buyer may bring in colleagues, but only as buyers, and does not see the seller's list.
    await buyer.page.getByRole('button', { name: 'Share', exact: true }).click()
    const shareDialog = buyer.page.locator('.share-dialog')
    assert.deepEqual(await shareDialog.getByLabel('Their side').locator('option').allTextContents(), ['Buyer'])
    await shareDialog.getByText('The seller\'s team sees every link').waitFor()
    await shareDialog.getByRole('button', { name: 'Close' }).click()

    // What the browsers showed is what the server stored.
    await untilStatus(buyer.page, 'saved')
    const stored = await api(server, 'GET', `/api/plans/${plan.id}`)
    assert.equal(stored.body.plan.meta.objective, objective)
    assert.equal(stored.body.plan.milestones.find(m => m.id === 'ms-trial').status, 'in_progress')
  })
})

test('the buyer edits offline, reloads, comes back, and the seller gets the merged edit', async () => {
  const plan = await newPlan()
  await asSellerAndBuyer(plan, async ({ seller, buyer }) => {
    // The page's files are kept by the service worker once it is active.
    await buyer.page.evaluate(() => navigator.serviceWorker.ready.then(() => true))
    const onboarding = await milestone(plan, 'ms-onboarding')
    const notes = buyer.page.getByLabel(`Notes on ${onboarding.title}`)

    await buyer.context.setOffline(true)
    await untilStatus(buyer.page, 'offline')
    await notes.fill('IT needs two weeks notice for SSO changes')
    await notes.press('Tab')
    // Meanwhile the seller edits another field of the same step.
    const sellerOwner = seller.page.getByLabel(`Owner of ${onboarding.title}`)
    await sellerOwner.fill('Priya Shah')
    await sellerOwner.press('Tab')
    await untilStatus(seller.page, 'saved')

    // Reload while offline: the page and the edit come back from this device.
    await buyer.page.reload()
    await untilStatus(buyer.page, 'offline')
    await untilValue(buyer.page.getByLabel(`Notes on ${onboarding.title}`), 'IT needs two weeks notice for SSO changes', 'the kept offline edit')
    assert.equal(await seller.page.getByLabel(`Notes on ${onboarding.title}`).inputValue(), '', 'nothing reached the seller while offline')

    await buyer.context.setOffline(false)
    await untilStatus(buyer.page, 'saved')
    await untilValue(seller.page.getByLabel(`Notes on ${onboarding.title}`), 'IT needs two weeks notice for SSO changes', 'the seller\'s view of the offline edit')
    await untilValue(buyer.page.getByLabel(`Owner of ${onboarding.title}`), 'Priya Shah', 'the buyer\'s view of the seller\'s edit')
    const stored = await milestone(plan, 'ms-onboarding')
    assert.equal(stored.notes, 'IT needs two weeks notice for SSO changes')
    assert.equal(stored.owner.name, 'Priya Shah')
  }, { expectedConsole: /^Failed to load resource: net::ERR_INTERNET_DISCONNECTED$/ })
})

test('moving a date asks why, and the slip shows in both views', async () => {
  const plan = await newPlan()
  await asSellerAndBuyer(plan, async ({ seller, buyer }) => {
    const signature = await milestone(plan, 'ms-signature')
    const due = buyer.page.getByLabel(`Due date of ${signature.title}`)
    const later = new Date(Date.parse(signature.due) + 9 * 86_400_000).toISOString().slice(0, 10)

    // Cancelling keeps the old date.
    await enterDate(due, later)
    const dialog = buyer.page.getByRole('dialog', { name: 'Why is this date moving?' })
    await dialog.waitFor()
    await dialog.getByRole('button', { name: 'Keep the old date' }).click()
    await dialog.waitFor({ state: 'detached' })
    await untilDate(due, signature.due, 'the kept date')

    // Moving with a reason writes both, and the slip appears for everyone.
    await enterDate(due, later)
    await dialog.waitFor()
    assert.equal(await dialog.getByRole('button', { name: 'Move the date' }).isDisabled(), true, 'a reason is required')
    await dialog.getByLabel('Reason').fill('Legal review moved to after the board meeting')
    await dialog.getByRole('button', { name: 'Move the date' }).click()
    await untilDate(seller.page.getByLabel(`Due date of ${signature.title}`), later, 'the seller\'s due date')
    for (const person of [buyer, seller]) {
      const slip = person.page.getByTestId('slip').filter({ hasText: signature.title })
      await slip.waitFor()
      const text = await slip.textContent()
      assert.match(text, /Legal review moved to after the board meeting/)
      assert.match(text, /(?<!\+)9 days later/)
      assert.match(text, /Contoso team \(buyer\)/)
      await person.page.locator('[data-milestone="ms-signature"] [data-testid="moved"]', { hasText: 'moved 1×' }).waitFor()
    }
    const { body } = await api(server, 'GET', `/api/plans/${plan.id}/slips`)
    assert.equal(body.slips.length, 1, 'one slip: the cancelled move never happened')
    assert.deepEqual([body.slips[0].from, body.slips[0].to, body.slips[0].days, body.slips[0].reason],
      [signature.due, later, 9, 'Legal review moved to after the board meeting'])

    // Go-live too: the seller moves it a week, with the reason. The reason is why it moved
    // (goLiveSlipReason); why the date matters ("Why this date") is not touched by a move.
    const whyThisDate = await buyer.page.getByLabel('Why this date', { exact: true }).inputValue()
    const goLive = seller.page.getByLabel('Go-live date', { exact: true })
    const oldGoLive = await goLive.getAttribute('data-date')
    const newGoLive = new Date(Date.parse(oldGoLive) + 7 * 86_400_000).toISOString().slice(0, 10)
    await enterDate(goLive, newGoLive)
    const sellerDialog = seller.page.getByRole('dialog', { name: 'Why is this date moving?' })
    await sellerDialog.getByLabel('Reason').fill('Customer board meeting moved')
    await sellerDialog.getByRole('button', { name: 'Move the date' }).click()
    await untilDate(buyer.page.getByLabel('Go-live date', { exact: true }), newGoLive, 'the buyer\'s go-live')
    await buyer.page.getByTestId('slip').filter({ hasText: 'Go-live' }).filter({ hasText: 'Customer board meeting moved' }).waitFor()
    assert.equal(await buyer.page.getByLabel('Why this date', { exact: true }).inputValue(), whyThisDate, 'a move keeps why this date matters')
    const all = (await api(server, 'GET', `/api/plans/${plan.id}/slips?milestone=goLive`)).body.slips
    assert.deepEqual(all.map(s => [s.from, s.to, s.days, s.reason, s.who.label]), [[oldGoLive, newGoLive, 7, 'Customer board meeting moved', 'Mapline Inc team']])
    const stored = (await api(server, 'GET', `/api/plans/${plan.id}`)).body.plan.meta
    assert.equal(stored.goLiveReason ?? '', whyThisDate, 'the stored go-live reason is unchanged')
  })
})

test('a viewer link is read-only in the page, and the server refuses what it sends anyway', async () => {
  const plan = await newPlan()
  const viewerToken = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'Ana Ruiz (CFO)' })
  const viewer = await openLink(browser, server, plan.id, viewerToken)
  try {
    await viewer.page.getByText('You can view this plan.').waitFor()
    await untilStatus(viewer.page, 'live')
    // A viewer gets the read view: the plan as text, no form field (page-read.test.js has more).
    await viewer.page.getByTestId('read-view').waitFor()
    assert.equal(await viewer.page.locator('main input, main select, main textarea').count(), 0)
    const trial = await milestone(plan, 'ms-trial')
    await viewer.page.locator('[data-step="ms-trial"]').getByText(trial.title, { exact: true }).waitFor()
    assert.equal(await viewer.page.getByRole('button', { name: /Add a step/ }).count(), 0)
    assert.equal(await viewer.page.getByRole('button', { name: 'Share', exact: true }).count(), 0)

    // A tampered page writes to the document anyway: the server refuses and says so.
    await viewer.page.evaluate(() => window.mapline.session.doc.getMap('meta').set('objective', 'sneaky'))
    await viewer.page.getByText('Not saved: this link is read-only').waitFor()
    const stored = await api(server, 'GET', `/api/plans/${plan.id}`)
    assert.notEqual(stored.body.plan.meta.objective, 'sneaky')
    noPageErrors(viewer)
  } finally {
    await viewer.context.close()
  }
})

test('a viewer flooding presence cannot push the page out: it stays live and keeps receiving edits', async () => {
  const plan = await newPlan()
  const buyerToken = await mintShare(server, plan.id, { side: 'buyer', role: 'editor', label: 'Dev Patel (champion)' })
  const buyer = await openLink(browser, server, plan.id, buyerToken)
  const seller = client(server, plan.id, plan.seller)
  try {
    await untilStatus(buyer.page, 'saved')
    await synced(seller)
    await buyer.page.evaluate(() => {
      window.__closes = []
      window.mapline.session.provider.on('connection-close', event => window.__closes.push(event?.code ?? null))
    })
    const viewerToken = await mintShare(server, plan.id, { side: 'buyer', role: 'viewer', label: 'Flooder' })
    const frame = (clock, json) => awarenessFrame([[777, clock, json]])
    // The attack as reported: forty 900 KB states. Then one within the size limit but over the
    // byte rate, and one within every limit (relayed, merged per reader).
    const floods = [
      [40, i => JSON.stringify({ user: { name: 'x'.repeat(900 * 1024), i } }), 4413],
      [40, i => JSON.stringify({ user: { name: 'x'.repeat(15 * 1024), i } }), 4429],
      [250, i => JSON.stringify({ user: { name: `busy ${i}` } }), null]
    ]
    for (const [count, state, expected] of floods) {
      // The server closes after the first refused message; with megabytes still unread behind
      // it, the close may reach this client as a reset (1006), so the server's count is the proof.
      const closedWith = `mapline_connections_closed_total{code="${expected}"}`
      const before = await metric(server, closedWith) ?? 0
      const flooder = rawSocket(server, plan.id, viewerToken)
      await flooder.opened
      for (let i = 0; i < count; i++) flooder.ws.send(frame(i + 1, state(i)))
      if (expected === null) { flooder.ws.close(); continue }
      const closed = await flooder.closed
      assert.ok([expected, 1006].includes(closed.code), JSON.stringify(closed))
      await waitFor(async () => (await metric(server, closedWith) ?? 0) > before, { what: `a close with ${expected}` })
    }
    assert.equal(await syncStatus(buyer.page), 'saved', 'still connected and saved after the floods')
    seller.map('meta').set('objective', 'Edited after the flood')
    await untilValue(buyer.page.getByLabel('Objective', { exact: true }), 'Edited after the flood', 'the objective')
    assert.deepEqual(await buyer.page.evaluate(() => window.__closes), [], 'the page was never disconnected')
    noPageErrors(buyer)
  } finally {
    destroy(seller)
    await buyer.context.close()
  }
})

test('"All changes saved" waits for the server\'s acknowledgement', async () => {
  // Its own server: this test freezes it.
  const own = tempData()
  const frozen = await startServer({ dataFile: own.file, web: webRoot })
  const goLive = new Date(Date.now() + 60 * 86_400_000).toISOString().slice(0, 10)
  const { body } = await api(frozen, 'POST', '/api/plans', { body: { title: 'Ack check', buyerOrg: 'B', sellerOrg: 'S', goLive } })
  const token = body.shares.find(s => s.side === 'seller').token
  const seller = await openLink(browser, frozen, body.id, token)
  try {
    await untilStatus(seller.page, 'saved')
    frozen.proc.kill('SIGSTOP')
    try {
      await seller.page.getByLabel('Objective', { exact: true }).fill('Saved only once stored')
      await seller.page.getByLabel('Objective', { exact: true }).press('Tab')
      // The edit has left the page (the socket took it) and nothing acknowledged it yet.
      await waitFor(() => seller.page.evaluate(() => {
        const ws = window.mapline.session.provider.ws
        return ws !== null && ws.sentUpdates > ws.acknowledged
      }), { what: 'the edit to be sent' })
      assert.equal(await syncStatus(seller.page), 'syncing')
    } finally {
      frozen.proc.kill('SIGCONT')
    }
    await untilStatus(seller.page, 'saved')
    const stored = await api(frozen, 'GET', `/api/plans/${body.id}`)
    assert.equal(stored.body.plan.meta.objective, 'Saved only once stored')
    noPageErrors(seller)
  } finally {
    await seller.context.close()
    await frozen.stop()
    own.cleanup()
  }
})

test('after either side\'s edit, both pages settle on "All changes saved", whoever edited', async () => {
  const plan = await newPlan()
  const trial = await milestone(plan, 'ms-trial')
  await asSellerAndBuyer(plan, async ({ seller, buyer }) => {
    // Each edits in turn; the other only receives (its pill used to stay on "Saving…").
    const turns = [
      [seller, buyer, 'Objective', 'Cut onboarding from 6 weeks to 3'],
      [buyer, seller, `Notes on ${trial.title}`, 'Security review booked for the 14th'],
      [seller, buyer, `Notes on ${trial.title}`, 'Security review booked for the 15th']
    ]
    for (const [editor, other, label, value] of turns) {
      await editor.page.getByLabel(label, { exact: true }).fill(value)
      await editor.page.getByLabel(label, { exact: true }).press('Tab')
      await untilValue(other.page.getByLabel(label, { exact: true }), value, `the other page's ${label}`)
      await untilStatus(editor.page, 'saved')
      await untilStatus(other.page, 'saved')
      assert.equal(await other.page.getByTestId('sync-status').textContent(), 'All changes saved')
    }
  })
})

test('a link revoked while its page is open: the page says so, shows nothing of the plan, and the copy on the device goes', async () => {
  const plan = await newPlan()
  const trial = await milestone(plan, 'ms-trial')
  const made = await api(server, 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'buyer', role: 'editor', label: 'Dev Patel (champion)' } })
  assert.equal(made.status, 201)
  const person = await openLink(browser, server, plan.id, made.body.token)
  try {
    await untilStatus(person.page, 'saved')
    await person.page.getByTestId('health').waitFor()
    await waitFor(async () => {
      const copy = await planCopy(person.page, plan.id)
      return copy.databases.some(db => db.records > 0) && copy.storage.length >= 2
    }, { what: 'the copy kept on this device (IndexedDB and the remembered API answers)' })

    assert.equal((await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${made.body.id}`)).status, 200)
    await untilLinkPage(person.page, 'revoked')
    await person.page.getByRole('heading', { name: 'This link was revoked' }).waitFor()
    await person.page.getByText('Ask the person who sent it for a new one.').waitFor()
    const text = await person.page.locator('body').innerText()
    for (const shown of ['Contoso × Mapline rollout', trial.title, 'kept on this device']) assert.ok(!text.includes(shown), `the page shows ${JSON.stringify(shown)}: ${text}`)
    await waitFor(async () => copyIsGone(await planCopy(person.page, plan.id)), { what: 'the copy on the device to be removed' })
    noPageErrors(person)
  } finally {
    await person.context.close()
  }
})

test('a link revoked while its page was closed: opening it again shows nothing of the plan and removes the copy', async () => {
  const plan = await newPlan()
  const trial = await milestone(plan, 'ms-trial')
  const made = await api(server, 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'buyer', role: 'editor', label: 'Dev Patel (champion)' } })
  const person = await openLink(browser, server, plan.id, made.body.token)
  try {
    await untilStatus(person.page, 'saved')
    await person.page.getByTestId('health').waitFor()
    await waitFor(async () => {
      const copy = await planCopy(person.page, plan.id)
      return copy.databases.some(db => db.records > 0) && copy.storage.length >= 2
    }, { what: 'the copy kept on this device' })
    await person.page.goto('about:blank')

    assert.equal((await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${made.body.id}`)).status, 200)
    // Whether the plan ever shows, even for a moment, while the page finds out: every change to
    // the page is looked at as it happens.
    await person.context.addInitScript(title => {
      window.__planShown = false
      new MutationObserver(() => {
        if (document.querySelector('[data-milestone]') !== null || document.body?.textContent.includes(title) ||
          [...document.querySelectorAll('input, textarea')].some(field => field.value.includes(title))) window.__planShown = true
      }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true })
    }, trial.title)
    await person.page.goto(`${server.url}/p/${plan.id}#token=${made.body.token}`)
    await untilLinkPage(person.page, 'revoked')
    assert.equal(await person.page.evaluate(() => window.__planShown), false, 'the kept copy showed before the link was found revoked')
    await person.page.getByRole('heading', { name: 'This link was revoked' }).waitFor()
    const text = await person.page.locator('body').innerText()
    for (const shown of ['Contoso × Mapline rollout', trial.title, 'kept on this device']) assert.ok(!text.includes(shown), `the page shows ${JSON.stringify(shown)}: ${text}`)
    await waitFor(async () => copyIsGone(await planCopy(person.page, plan.id)), { what: 'the copy on the device to be removed' })
    // Reloaded once more, there is nothing left to show.
    await person.page.reload()
    await untilLinkPage(person.page, 'revoked')
    assert.ok(!(await person.page.locator('body').innerText()).includes(trial.title))
    noPageErrors(person, /^Failed to load resource: the server responded with a status of 401 \(Unauthorized\)$|^WebSocket connection to '.*' failed: HTTP Authentication failed; no valid credentials available$/)
  } finally {
    await person.context.close()
  }
})

test('a link that expires while its page is open: the page says it expired, and the copy goes', async () => {
  const plan = await newPlan()
  // Long enough for the page to open and sync first: the expiry then arrives as a 4401 close.
  const expiresAt = new Date(Date.now() + 8000).toISOString()
  const made = await api(server, 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'buyer', role: 'viewer', label: 'Trial access', expiresAt } })
  assert.equal(made.status, 201)
  const person = await openLink(browser, server, plan.id, made.body.token)
  try {
    await untilStatus(person.page, 'live')
    await untilLinkPage(person.page, 'expired', 20000)
    await person.page.getByRole('heading', { name: 'This link has expired' }).waitFor()
    assert.ok(!(await person.page.locator('body').innerText()).includes('Contoso × Mapline rollout'))
    await waitFor(async () => copyIsGone(await planCopy(person.page, plan.id)), { what: 'the copy on the device to be removed' })
    // Reloaded, the API says why (`share_expired`): the same page.
    await person.page.reload()
    await untilLinkPage(person.page, 'expired')
    noPageErrors(person, /^Failed to load resource: the server responded with a status of 401 \(Unauthorized\)$|^WebSocket connection to '.*' failed: HTTP Authentication failed; no valid credentials available$/)
  } finally {
    await person.context.close()
  }
})

test('a wrong token shows the "not valid" page: nothing of the plan, no claim of a copy on this device', async () => {
  const plan = await newPlan()
  const person = await openLink(browser, server, plan.id, 's_' + 'x'.repeat(40))
  try {
    await untilLinkPage(person.page, 'invalid')
    await person.page.getByRole('heading', { name: 'This link is not valid' }).waitFor()
    const text = await person.page.locator('body').innerText()
    for (const shown of ['Contoso × Mapline rollout', 'Loading the plan', 'kept on this device', 'Offline']) assert.ok(!text.includes(shown), `the page shows ${JSON.stringify(shown)}: ${text}`)
    assert.equal(await person.page.getByTestId('sync-status').count(), 0, 'no status pill')
    await waitFor(async () => copyIsGone(await planCopy(person.page, plan.id)), { what: 'no copy on the device' })
    noPageErrors(person, /^Failed to load resource: the server responded with a status of 401 \(Unauthorized\)$|^WebSocket connection to '.*' failed: HTTP Authentication failed; no valid credentials available$/)
  } finally {
    await person.context.close()
  }
})

test('a plan address without its token, then the full link pasted into the same tab: the plan opens without a reload', async () => {
  const plan = await newPlan()
  const person = await openLink(browser, server, plan.id, null)
  try {
    await untilLinkPage(person.page, 'no_token')
    await person.page.getByRole('heading', { name: 'This link is missing its access key' }).waitFor()
    await person.page.evaluate(() => { window.__sameDocument = true })
    await person.page.evaluate(token => { location.hash = `#token=${token}` }, plan.buyer)
    await untilStatus(person.page, 'saved')
    await untilValue(person.page.getByLabel('Plan title'), 'Contoso × Mapline rollout', 'the plan title')
    assert.equal(await person.page.evaluate(() => window.__sameDocument), true, 'the page was not reloaded')
    // The page's own anchors change the fragment too: they leave the plan open.
    await person.page.locator('nav.toc').getByRole('link', { name: 'Steps' }).click()
    await waitFor(async () => (await person.page.evaluate(() => location.hash)) === '#steps', { what: 'the anchor' })
    assert.equal(await person.page.getByTestId('link-page').count(), 0)
    await untilStatus(person.page, 'saved')
    noPageErrors(person)
  } finally {
    await person.context.close()
  }
})

test('a seller makes a link for the CFO, sees when it was opened, and revokes it', async () => {
  const plan = await newPlan()
  const seller = await openLink(browser, server, plan.id, plan.seller)
  let cfo
  try {
    await untilStatus(seller.page, 'saved')
    await seller.page.getByRole('button', { name: 'Share', exact: true }).click()
    const dialog = seller.page.locator('.share-dialog')
    await dialog.getByLabel('Who is it for').fill('Ana Ruiz (CFO)')
    await dialog.getByLabel('They can').selectOption('viewer')
    await dialog.getByRole('button', { name: 'Create link' }).click()
    const link = await dialog.getByLabel('Link for Ana Ruiz (CFO)').inputValue()
    assert.match(link, new RegExp(`^${server.url}/p/${plan.id}#token=s_`))
    const row = dialog.locator('tr', { hasText: 'Ana Ruiz (CFO)' })
    await row.getByText('never').waitFor()

    // The CFO opens the link.
    const token = new URL(link).hash.replace('#token=', '')
    cfo = await openLink(browser, server, plan.id, token)
    await untilStatus(cfo.page, 'live')
    await cfo.page.getByTestId('me').getByText('Ana Ruiz (CFO)').waitFor()

    // The list says so (reopen the manager to reload it).
    await waitFor(async () => {
      await dialog.getByRole('button', { name: 'Close' }).click()
      await seller.page.getByRole('button', { name: 'Share', exact: true }).click()
      return /\(1×\)/.test(await row.textContent())
    }, { what: 'the CFO\'s visit to show' })

    // Revoking asks first (nothing was minted with this link), then closes the CFO's live page.
    await row.getByRole('button', { name: 'Revoke the link of Ana Ruiz (CFO)' }).click()
    const confirm = dialog.getByRole('alertdialog', { name: 'Revoke the link of Ana Ruiz (CFO)?' })
    await confirm.getByText('It stops working at once, and its open pages close.').waitFor()
    await confirm.getByRole('button', { name: 'Revoke link', exact: true }).click()
    await row.getByText('revoked').waitFor()
    await untilLinkPage(cfo.page, 'revoked')
    const after = await api(server, 'GET', `/api/plans/${plan.id}`, { token })
    assert.equal(after.status, 401)
    noPageErrors(seller, cfo)
  } finally {
    await seller.context.close()
    await cfo?.context.close()
  }
})

test('a link revoked while its page was closed: the reloaded page says so and stops trying to connect', async () => {
  const plan = await newPlan()
  const made = await api(server, 'POST', `/api/plans/${plan.id}/shares`, { body: { side: 'buyer', role: 'viewer', label: 'Old laptop' } })
  assert.equal(made.status, 201)
  const person = await openLink(browser, server, plan.id, made.body.token, {
    setup: async context => {
      // Timers under the test's control, and every WebSocket the page creates counted as it is
      // created (the page's socket class extends the global one, replaced here first).
      await context.clock.install()
      await context.addInitScript(() => {
        window.__socketsCreated = 0
        const Native = window.WebSocket
        window.WebSocket = class extends Native {
          constructor (...args) { super(...args); window.__socketsCreated++ }
        }
      })
    }
  })
  try {
    await untilStatus(person.page, 'live')
    const revoked = await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${made.body.id}`)
    assert.equal(revoked.status, 200)
    await untilLinkPage(person.page, 'revoked')

    // The reload is refused at the upgrade (401, which the browser sees as a 1006 close). The
    // page also asks /me when it starts; that answer is held until the page has tried a socket,
    // so what is checked is the page learning from a refused upgrade.
    const socketTried = new Promise(resolve => person.page.once('websocket', resolve))
    await person.context.route('**/api/plans/*/me', async route => { await socketTried; await route.continue() })
    await person.page.reload()
    await untilLinkPage(person.page, 'revoked')
    await person.page.getByRole('heading', { name: 'This link was revoked' }).waitFor()
    const created = await person.page.evaluate(() => window.__socketsCreated)
    assert.ok(created >= 1, 'the reloaded page tried the link')
    assert.equal(await person.page.evaluate(() => window.mapline.session.provider.shouldConnect), false)
    // The check of an absence: ten minutes of the page's timers run (y-websocket retries within
    // 5 s at most), and the browser coming back online (which reconnects a page that is only
    // offline) — no further socket is created.
    await person.page.clock.runFor('10:00')
    await person.context.setOffline(true)
    await person.context.setOffline(false)
    await person.page.clock.runFor('10:00')
    assert.equal(await person.page.evaluate(() => window.__socketsCreated), created, 'no retry after the link was found invalid')
    await untilLinkPage(person.page, 'revoked')
    noPageErrors(person, /^Failed to load resource: the server responded with a status of 401 \(Unauthorized\)$|^WebSocket connection to '.*' failed: HTTP Authentication failed; no valid credentials available$/)
  } finally {
    await person.context.close()
  }
})

test('the link manager shows who minted each link, and revoking one names the links that go with it', async () => {
  const plan = await newPlan()
  const seller = await openLink(browser, server, plan.id, plan.seller)
  let cfo
  try {
    await untilStatus(seller.page, 'saved')
    // The champion's link is made on the page with the seller's link; the champion then makes
    // one for their CFO.
    await seller.page.getByRole('button', { name: 'Share', exact: true }).click()
    const dialog = seller.page.locator('.share-dialog')
    await dialog.getByLabel('Who is it for').fill('Dev Patel (champion)')
    await dialog.getByRole('button', { name: 'Create link' }).click()
    const champion = new URL(await dialog.getByLabel('Link for Dev Patel (champion)').inputValue()).hash.replace('#token=', '')
    const made = await api(server, 'POST', `/api/plans/${plan.id}/shares`, { token: champion, body: { side: 'buyer', role: 'viewer', label: 'Ana Ruiz (CFO)' } })
    assert.equal(made.status, 201)
    cfo = await openLink(browser, server, plan.id, made.body.token)
    await untilStatus(cfo.page, 'live')

    await dialog.getByRole('button', { name: 'Close' }).click()
    await seller.page.getByRole('button', { name: 'Share', exact: true }).click()
    const cfoRow = dialog.locator('tr', { hasText: 'Ana Ruiz (CFO)' })
    await cfoRow.getByText('minted by Dev Patel (champion)').waitFor()
    const championRow = dialog.locator('tr', { hasText: 'Dev Patel (champion)' }).first()
    await championRow.getByText('minted by Mapline Inc team').waitFor()
    // Tree order: the seller's link, the champion under it, the CFO under the champion.
    const rows = await dialog.locator('tbody tr').evaluateAll(trs => trs.map(tr => [tr.dataset.depth, tr.querySelector('td').textContent]))
    const at = label => rows.findIndex(([, text]) => text.replace('↳ ', '').startsWith(label))
    assert.deepEqual(rows.map(([depth]) => depth), ['0', '1', '2', '0'], JSON.stringify(rows))
    assert.ok(at('Mapline Inc team') < at('Dev Patel (champion)') && at('Dev Patel (champion)') < at('Ana Ruiz (CFO)'), JSON.stringify(rows))

    // Revoking the champion's link names the CFO's link, which goes with it; cancelling keeps both.
    await dialog.getByRole('button', { name: 'Revoke the link of Dev Patel (champion)' }).click()
    const confirm = dialog.getByRole('alertdialog', { name: 'Revoke the link of Dev Patel (champion)?' })
    await confirm.getByRole('list', { name: 'Links revoked with it' }).getByText('Ana Ruiz (CFO)').waitFor()
    await confirm.getByRole('button', { name: 'Cancel' }).click()
    await confirm.waitFor({ state: 'detached' })
    assert.equal((await api(server, 'GET', `/api/plans/${plan.id}`, { token: made.body.token })).status, 200, 'cancelled: nothing revoked')

    await dialog.getByRole('button', { name: 'Revoke the link of Dev Patel (champion)' }).click()
    await confirm.getByRole('button', { name: 'Revoke 2 links' }).waitFor()
    await seller.page.screenshot({ path: join(artifacts, 'share-lineage.png') })
    await confirm.getByRole('button', { name: 'Revoke 2 links' }).click()
    await cfoRow.getByText('revoked').waitFor()
    await untilLinkPage(cfo.page, 'revoked')
    assert.equal((await api(server, 'GET', `/api/plans/${plan.id}`, { token: champion })).status, 401)
    noPageErrors(seller, cfo)
  } finally {
    await seller.context.close()
    await cfo?.context.close()
  }
})

test('Export → Subscribe copies the link\'s read-only feed (webcal), never the share token', async () => {
  const plan = await newPlan()
  const viewer = await mintShare(server, plan.id, { role: 'viewer', label: 'CFO' })
  for (const [who, token] of [['buyer editor', plan.buyer], ['viewer', viewer]]) {
    const person = await openLink(browser, server, plan.id, token, {
      setup: context => context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url })
    })
    try {
      await untilStatus(person.page, who === 'viewer' ? 'live' : 'saved')
      await person.page.getByText('Export', { exact: true }).click()
      await person.page.getByRole('button', { name: 'Subscribe in your calendar' }).click()
      await person.page.getByText('Calendar link copied', { exact: false }).waitFor()
      const copied = await person.page.evaluate(() => navigator.clipboard.readText())
      const url = new URL(copied)
      assert.equal(url.protocol, 'webcal:', who)
      assert.equal(`${url.host}${url.pathname}`, `${new URL(server.url).host}/api/plans/${plan.id}/calendar.ics`, who)
      assert.ok(!copied.includes(token), `${who}: the share token is not in the subscription`)
      const me = await api(server, 'GET', `/api/plans/${plan.id}/me`, { token })
      assert.equal(url.search, new URL(me.body.calendarUrl, server.url).search, `${who}: the feed /me answers`)
      // What a calendar service would fetch: the feed, over http.
      const feed = await fetch(copied.replace(/^webcal/, 'http'))
      assert.equal(feed.status, 200, who)
      assert.match(await feed.text(), /^BEGIN:VCALENDAR/)
      noPageErrors(person)
    } finally {
      await person.context.close()
    }
  }
})

test('the plan page on a desktop and a phone (screenshots saved as artifacts)', async () => {
  const plan = await newPlan('Northwind Health × Mapline — onboarding rollout')
  const desktop = await openLink(browser, server, plan.id, plan.buyer)
  const phone = await openLink(browser, server, plan.id, plan.seller, { viewport: { width: 390, height: 844 }, isMobile: true })
  try {
    for (const person of [desktop, phone]) {
      await untilStatus(person.page, 'saved')
      await person.page.getByTestId('health').waitFor()
      await person.page.locator('#timeline svg .point').first().waitFor()
    }
    await desktop.page.screenshot({ path: join(artifacts, 'plan-desktop.png'), fullPage: true })
    // The one-pager downloads from the page, with the plan in it.
    await desktop.page.getByText('Export', { exact: true }).click()
    const [download] = await Promise.all([
      desktop.page.waitForEvent('download'),
      desktop.page.getByRole('button', { name: 'One-pager (Markdown)' }).click()
    ])
    assert.equal(download.suggestedFilename(), 'northwind-health-mapline-onboarding-rollout.md')
    const { readFile } = await import('node:fs/promises')
    const onePager = await readFile(await download.path(), 'utf8')
    assert.match(onePager, /^# Northwind Health × Mapline — onboarding rollout/)
    assert.match(onePager, /## Milestones/)
    await phone.page.screenshot({ path: join(artifacts, 'plan-phone.png'), fullPage: true })
    // Usable on a phone: nothing is wider than the screen (a mobile browser would otherwise zoom
    // the whole page out to fit the widest element).
    const width = await phone.page.evaluate(() => document.documentElement.scrollWidth)
    assert.ok(width <= 390, `the phone page is ${width}px wide on a 390px screen`)
    // Every form control has an accessible name.
    const unnamed = await desktop.page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
      .filter(el => !(el.getAttribute('aria-label') || el.labels?.[0]?.textContent?.trim() || el.textContent.trim()))
      .map(el => el.outerHTML.slice(0, 80)))
    assert.deepEqual(unnamed, [])
    noPageErrors(desktop, phone)
  } finally {
    await desktop.context.close()
    await phone.context.close()
  }
})
