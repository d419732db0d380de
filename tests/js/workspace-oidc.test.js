// The seller's workspace end to end, as a seller meets it: a real OpenID provider
// (`oidc-provider`, on loopback in this process), the real binary serving the built web client,
// and Chromium. A seller signs in through the provider's login form, lands on home, creates a
// plan from a template, invites a buyer, moves a date on the plan page and opens the audit page,
// whose feed, integrity check and export match the API; the buyer's link opens the audit page
// read-only and never the internal document.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { startServer, tempData, waitFor, freePort, api, client, synced, destroy } from './lib/harness.js'
import { launch, webRoot, untilStatus, noPageErrors } from './lib/browser.js'
import { startIdp, untilDiscovered, CLIENT_ID, CLIENT_SECRET } from './lib/oidc-provider.js'

let idp, mapline, data, browser

before(async () => {
  data = tempData()
  idp = await startIdp()
  const port = await freePort()
  mapline = await startServer({
    dataFile: data.file,
    web: webRoot,
    addr: `127.0.0.1:${port}`,
    args: ['--public-url', `http://127.0.0.1:${port}`, '--oidc-issuer', idp.issuer, '--oidc-client-id', CLIENT_ID,
      '--oidc-allowed-domains', 'example.com', '--oidc-logins-per-address-per-minute', '0'],
    env: { MAPLINE_OIDC_CLIENT_SECRET: CLIENT_SECRET }
  })
  idp.configure({ redirectUri: `${mapline.url}/auth/oidc/callback` })
  await untilDiscovered(mapline)
  browser = await launch()
})

after(async () => {
  await browser?.close()
  await mapline?.stop()
  await idp?.stop()
  data?.cleanup()
})

/** A person: a browser context of their own, collecting page errors. */
async function person () {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true })
  const page = await context.newPage()
  const errors = []
  const consoleErrors = []
  page.on('pageerror', error => errors.push(error.message))
  // Mapline's pages only: the IdP's login page is not ours to judge.
  page.on('console', message => {
    if (message.type() === 'error' && message.location().url.startsWith(mapline.url)) consoleErrors.push(message.text())
  })
  return { context, page, errors, consoleErrors, violations: [] }
}

const plusDays = days => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10)

test('a seller signs in with the company IdP, creates a plan from a template, invites a buyer, and audits it', async () => {
  const seller = await person()
  const buyer = await person()
  try {
    const { page } = seller
    // Signed out, home is the sign-in page with the company sign-in.
    await page.goto(`${mapline.url}/`)
    await page.getByTestId('signin-page').waitFor()
    await page.getByTestId('oidc-sign-in').click()
    // The provider's own login form, then back on Mapline's home.
    await page.locator('input[name=login]').fill('ana@example.com')
    await page.locator('input[name=password]').fill('any password')
    await page.locator('button[type=submit]').click()
    const consent = page.locator('form input[name=prompt][value=consent]')
    await Promise.race([
      consent.waitFor({ state: 'attached', timeout: 15000 }).catch(() => {}),
      page.getByTestId('home').waitFor({ timeout: 15000 }).catch(() => {})
    ])
    if (await consent.count() > 0) await page.locator('button[type=submit]').click()
    await page.getByTestId('home').waitFor({ timeout: 15000 })
    assert.match(await page.getByTestId('me').innerText(), /Ana Seller/)
    const cookie = (await seller.context.cookies(mapline.url)).find(c => c.name === 'mapline_session')
    assert.ok(cookie?.httpOnly, 'an HttpOnly session cookie')

    // Create a plan from a template, worked back from the buyer's go-live.
    await page.getByRole('button', { name: 'Create a plan' }).click()
    await page.getByLabel('Template').selectOption('enterprise')
    const goLive = plusDays(90)
    await page.getByLabel(/Go-live date/).fill(goLive)
    await page.getByLabel('Title').fill('Northwind rollout')
    await page.getByLabel('Buyer organisation').fill('Northwind')
    await page.getByLabel('Seller organisation').fill('Mapline Inc')
    await page.getByRole('button', { name: 'Create the plan' }).click()
    await page.getByTestId('invite').waitFor()

    // Invite the buyer's champion: one link for one person.
    await page.getByLabel('Name').fill('Dev Patel')
    await page.getByLabel('Email').fill('dev@northwind.example')
    await page.getByLabel('They may').selectOption('editor')
    await page.getByRole('button', { name: 'Make their link' }).click()
    const link = new URL(await waitFor(async () => (await page.getByTestId('invite-url').count()) === 1 &&
      page.getByTestId('invite-url').inputValue(), { what: 'the buyer’s link' }))
    const planId = link.pathname.split('/')[2]
    const token = new URLSearchParams(link.hash.slice(1)).get('token')

    const plan = (await api(mapline, 'GET', `/api/plans/${planId}`)).body.plan
    assert.equal(plan.meta.title, 'Northwind rollout')
    assert.equal(plan.meta.goLive, goLive)
    assert.ok(plan.milestones.length > 3, 'the template’s steps')
    const listed = (await api(mapline, 'GET', '/api/plans')).body.plans.find(p => p.id === planId)
    assert.equal(listed.owner?.name, 'Ana Seller', 'the seller who created it owns it')

    // The buyer moves a step's date through their link (a real Yjs client).
    const buyerDoc = client(mapline, planId, token)
    await synced(buyerDoc)
    const step = plan.milestones[0]
    const moved = new Date(Date.parse(step.due) + 7 * 86_400_000).toISOString().slice(0, 10)
    buyerDoc.doc.transact(() => {
      const entry = buyerDoc.doc.getMap('milestones').get(step.id)
      entry.set('due', moved)
      entry.set('slipReason', 'Security review needs another week')
    })
    await waitFor(async () => (await api(mapline, 'GET', `/api/plans/${planId}/slips`)).body.slips.length === 1,
      { what: 'the buyer’s slip on record' })
    destroy(buyerDoc)

    // The seller's audit page: the feed is the plan's history, the buyer's move named.
    await page.goto(`${mapline.url}/p/${planId}/audit`)
    await page.getByTestId('audit-page').waitFor({ timeout: 15000 })
    const history = (await api(mapline, 'GET', `/api/plans/${planId}/history?limit=500`)).body.entries
    const feedSeqs = p => p.getByTestId('feed').locator('[data-testid="feed-entry"]').evaluateAll(items => items.map(i => Number(i.dataset.seq)))
    await waitFor(async () => (await feedSeqs(page)).length === history.length, { what: 'every history entry in the feed' })
    assert.deepEqual(await feedSeqs(page), history.map(e => e.seq))
    await waitFor(async () => (await page.locator('[data-testid="slips-side"][data-side="buyer"]').getAttribute('data-count')) === '1',
      { what: 'the buyer’s slip in the analytics' })
    // Integrity: the server's verdict and head, and the export carries the same head.
    const verify = (await api(mapline, 'GET', `/api/plans/${planId}/verify`)).body
    assert.equal(verify.ok, true)
    await waitFor(async () => (await page.getByTestId('head-hash').innerText()) === verify.head, { what: 'the head hash shown' })
    assert.equal(await page.getByTestId('verify').getAttribute('data-ok'), 'true')
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: /audit export/i }).click()
    ])
    const exported = JSON.parse(await readFile(await download.path(), 'utf8'))
    assert.equal(exported.planId, planId)
    assert.equal(exported.head, verify.head)
    // Mark a review: "since my last review" then lists nothing new.
    await page.getByRole('button', { name: /mark reviewed/i }).click()
    await waitFor(async () => (await page.getByTestId('last-review').getAttribute('data-seq')) !== '', { what: 'the review mark' })
    const mark = (await api(mapline, 'GET', `/api/plans/${planId}/reviews/last`, { token: null, headers: { cookie: `mapline_session=${cookie.value}` } })).body
    assert.ok(mark.seq >= history[0].seq, `the mark ${mark.seq} covers the newest change ${history[0].seq}`)
    await page.getByTestId('since-review-empty').waitFor()

    // The buyer's link opens the audit page read-only, and never the internal document.
    await buyer.page.goto(`${mapline.url}/p/${planId}/audit${link.hash}`)
    await buyer.page.getByTestId('audit-page').waitFor({ timeout: 15000 })
    await waitFor(async () => (await feedSeqs(buyer.page)).length === history.length, { what: 'the buyer’s feed' })
    assert.equal(await buyer.page.getByText('Internal — seller only').count(), 0)
    await buyer.page.goto(`${mapline.url}${link.pathname}${link.hash}`)
    await untilStatus(buyer.page, 'saved')
    assert.equal(await buyer.page.getByText('Internal — seller only').count(), 0)

    // Back home, the plan is listed with the buyer's slip: on record in `/api/plans`, and shown
    // in its row (by side, and in the last 14 days).
    const summary = (await api(mapline, 'GET', '/api/plans')).body.plans.find(p => p.id === planId)
    assert.deepEqual(summary.slips, { buyer: 1, seller: 0, last14Days: 1 })
    await page.goto(`${mapline.url}/`)
    const row = page.locator(`[data-testid="plan-row"][data-id="${planId}"]`)
    await row.waitFor()
    assert.equal((await row.locator('[data-col="slipsBySide"]').innerText()).trim(), '1 / 0', 'one slip by the buyer, none by the seller')
    assert.equal((await row.locator('[data-col="slips14"]').innerText()).trim(), '1')
    assert.equal((await row.locator('[data-col="quiet"]').innerText()).trim(), 'active today', 'the buyer moved a date today')
    // The one expected refusal: `/` asks for the session before the seller has signed in.
    noPageErrors(seller, buyer, /status of 401/)
  } finally {
    await seller.context.close()
    await buyer.context.close()
  }
})
