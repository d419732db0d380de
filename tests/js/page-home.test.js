// The seller's workspace in the browser (issue 15, parts 1–4 and 6): the sign-in page, a
// single-use sign-in link, home (my plans, create a plan from a template, invite the buyer's
// people), the pipeline for managers, and a member's plan page (the session cookie, no token)
// with the internal section.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, createPlan, client, synced, destroy, waitFor, ADMIN_TOKEN } from './lib/harness.js'
import { browserSuite, noPageErrors, webRoot, untilStatus, openLink } from './lib/browser.js'

let server, browser
browserSuite(started => ({ server, browser } = started))

const plusDays = days => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10)

/** A new browser context (a person) with error collection, at `path`. */
async function visit (path) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  const errors = []
  const consoleErrors = []
  page.on('pageerror', error => errors.push(error.message))
  page.on('console', message => { if (message.type() === 'error') consoleErrors.push(message.text()) })
  await page.goto(`${server.url}${path}`)
  return { context, page, errors, consoleErrors, violations: [] }
}

/** Invites a member with the admin token and signs them in through their sign-in link. */
async function signedIn (name, email, role) {
  const { status, body } = await api(server, 'POST', '/api/members', { body: { email, name, role } })
  assert.equal(status, 201, JSON.stringify(body))
  const url = new URL(body.signInUrl, server.url)
  const person = await visit(`${url.pathname}${url.hash}`)
  await person.page.getByTestId('home').waitFor({ timeout: 15000 })
  assert.equal(new URL(person.page.url()).pathname, '/', 'lands on home')
  return person
}

test('signed out, / is the sign-in page: "open the link you were sent", and company sign-in only where the server has OIDC', async () => {
  const person = await visit('/')
  try {
    await person.page.getByTestId('signin-page').waitFor()
    await person.page.getByRole('heading', { name: 'Open the link you were sent' }).waitFor()
    const config = await api(server, 'GET', '/api/auth/config', { token: null })
    const oidc = config.status === 200 && config.body.oidc === true
    assert.equal(await person.page.getByTestId('oidc-sign-in').count(), oidc ? 1 : 0)
    noPageErrors(person, /status of 40[14]/)
  } finally {
    await person.context.close()
  }
})

test('a sign-in link that is not valid signs nobody in, says why, and leaves the token out of the address', async () => {
  const person = await visit('/signin#token=sl_not-a-real-link')
  try {
    const problem = person.page.getByTestId('signin-problem')
    await problem.waitFor()
    assert.equal(await problem.getAttribute('data-code'), 'sign_in_link_invalid')
    assert.equal(new URL(person.page.url()).hash, '', 'the token is gone from the address bar')
    const cookies = await person.context.cookies()
    assert.equal(cookies.filter(c => c.name === 'mapline_session').length, 0)
  } finally {
    await person.context.close()
  }
})

test('a plan address without a token, signed out, still says the link is missing its key', async () => {
  const plan = await createPlan(server)
  const person = await visit(`/p/${plan.id}`)
  try {
    await person.page.locator('[data-testid="link-page"][data-problem="no_token"]').waitFor()
  } finally {
    await person.context.close()
  }
})

test('a rep signs in with a link, creates a plan from a template, invites a buyer, and works on the plan with the internal section', async () => {
  const rep = await signedIn('Rita Rep', 'rita@mapline.example', 'rep')
  let buyer
  try {
    const { page } = rep
    assert.equal(await page.getByTestId('pipeline-link').count(), 0, 'a rep has no pipeline link')
    await page.getByRole('button', { name: 'Create a plan' }).click()
    await page.getByLabel('Template').selectOption('mid-market')
    const goLive = plusDays(50)
    await page.getByLabel(/Go-live date/).fill(goLive)
    await page.getByLabel('Title').fill('Contoso onboarding')
    await page.getByLabel('Buyer organisation').fill('Contoso')
    await page.getByLabel('Seller organisation').fill('Mapline Inc')
    await page.getByRole('button', { name: 'Create the plan' }).click()
    await page.getByTestId('invite').waitFor()

    await page.getByLabel('Name').fill('Dev Patel')
    await page.getByLabel('Email').fill('dev@contoso.example')
    await page.getByLabel('They may').selectOption('editor')
    await page.getByRole('button', { name: 'Make their link' }).click()
    const link = await waitFor(async () => (await page.getByTestId('invite-url').count()) === 1 && page.getByTestId('invite-url').inputValue(), { what: 'the buyer’s link' })
    const url = new URL(link)
    const planId = url.pathname.split('/')[2]

    // The plan: from the template, owned by the rep; the buyer's link is one of its links.
    const made = (await api(server, 'GET', `/api/plans/${planId}`)).body.plan
    assert.equal(made.meta.title, 'Contoso onboarding')
    assert.equal(made.meta.goLive, goLive)
    assert.ok(made.milestones.length > 3, 'the template’s steps')
    const shares = (await api(server, 'GET', `/api/plans/${planId}/shares`)).body.shares
    const invited = shares.find(s => s.label === 'Dev Patel <dev@contoso.example>')
    assert.ok(invited !== undefined, 'one link for Dev')
    assert.equal(invited.side, 'buyer')
    assert.equal(invited.role, 'editor')
    const listed = (await api(server, 'GET', '/api/plans')).body.plans.find(p => p.id === planId)
    assert.equal(listed.owner?.name, 'Rita Rep')

    // The buyer opens their link.
    buyer = await visit(`${url.pathname}${url.hash}`)
    await untilStatus(buyer.page, 'saved')

    // The rep opens the plan as a member (no token): the internal section is there.
    await page.getByTestId('open-plan').click()
    await page.getByRole('heading', { name: 'Internal — seller only' }).waitFor({ timeout: 15000 })
    assert.equal(new URL(page.url()).hash, '', 'no token in a member’s address')
    await page.getByLabel('Forecast category').selectOption('commit')
    const internal = client(server, `${planId}/internal`, ADMIN_TOKEN)
    await synced(internal)
    await waitFor(() => internal.doc.getMap('forecast').get('category') === 'commit', { what: 'the forecast stored in the internal document' })
    destroy(internal)
    // The buyer never sees it.
    assert.equal(await buyer.page.getByText('Internal — seller only').count(), 0)

    // Home lists the plan.
    await page.goto(`${server.url}/`)
    await page.locator(`[data-testid="plan-row"][data-id="${planId}"]`).waitFor()
    noPageErrors(rep, buyer)
  } finally {
    await rep.context.close()
    await buyer?.context.close()
  }
})

test('a manager sees the Pipeline link and every plan on the pipeline', async () => {
  const other = await createPlan(server, { title: 'Fabrikam renewal' })
  const manager = await signedIn('Maya Manager', 'maya@mapline.example', 'manager')
  try {
    await manager.page.getByTestId('pipeline-link').click()
    await manager.page.getByTestId('pipeline-table').waitFor()
    const all = (await api(server, 'GET', '/api/plans')).body.plans
    await waitFor(async () => (await manager.page.getByTestId('plan-row').count()) === all.length, { what: 'every plan in the pipeline' })
    await manager.page.locator(`[data-testid="plan-row"][data-id="${other.id}"]`).waitFor()
    // Each row's health is the server's words once ("At risk: 1 step overdue", not "At risk —
    // At risk: …"), the verdict kept as data; a buyer who never edited has no activity yet,
    // never "active today" or "gone quiet".
    for (const p of all) {
      const row = manager.page.locator(`[data-testid="plan-row"][data-id="${p.id}"]`)
      assert.equal((await row.locator('[data-col="health"]').innerText()).trim(), p.healthWords, `health of ${p.title}`)
      assert.equal(await row.locator('[data-col="health"] [data-health]').getAttribute('data-health'), p.health)
      if (p.lastBuyerActivityAt === null) {
        const words = p.buyerQuietDays > 0 ? `no buyer activity yet (${p.buyerQuietDays} ${p.buyerQuietDays === 1 ? 'day' : 'days'})` : 'no buyer activity yet'
        assert.equal((await row.locator('[data-col="quiet"]').innerText()).trim(), words, `buyer activity of ${p.title}`)
      }
    }
    assert.ok(all.some(p => p.lastBuyerActivityAt === null), 'a plan whose buyer never edited')
    noPageErrors(manager)
  } finally {
    await manager.context.close()
  }
})

test('a member’s audit page opens with the session cookie', async () => {
  const manager = await signedIn('Max Manager', 'max@mapline.example', 'manager')
  const plan = await createPlan(server, { title: 'Audited' })
  try {
    await manager.page.goto(`${server.url}/p/${plan.id}/audit`)
    await manager.page.getByTestId('audit-page').waitFor({ timeout: 15000 })
    const history = (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries
    await waitFor(async () => (await manager.page.getByTestId('feed').locator('[data-testid="feed-entry"]').count()) === history.length, { what: 'the feed' })
    await manager.page.getByRole('button', { name: 'Mark reviewed' }).click()
    await manager.page.locator(`[data-testid="last-review"][data-seq="${history[0].seq}"]`).waitFor()
    noPageErrors(manager)
  } finally {
    await manager.context.close()
  }
})

test('a member’s audit page marks a review even when this browser lost its signed-in hint', async () => {
  const manager = await signedIn('Mo Manager', 'mo@mapline.example', 'manager')
  const plan = await createPlan(server, { title: 'Audited without the hint' })
  try {
    // The hint is only a hint (storage cleared, another tab signed out and in): the session
    // cookie still signs this member in, and marking needs its CSRF token.
    await manager.page.evaluate(() => localStorage.removeItem('mapline:signed-in'))
    await manager.page.goto(`${server.url}/p/${plan.id}/audit`)
    await manager.page.getByTestId('audit-page').waitFor({ timeout: 15000 })
    const history = (await api(server, 'GET', `/api/plans/${plan.id}/history?limit=500`)).body.entries
    await waitFor(async () => (await manager.page.getByTestId('feed').locator('[data-testid="feed-entry"]').count()) === history.length, { what: 'the feed' })
    await manager.page.getByRole('button', { name: 'Mark reviewed' }).click()
    await manager.page.locator(`[data-testid="last-review"][data-seq="${history[0].seq}"]`).waitFor()
    noPageErrors(manager)
  } finally {
    await manager.context.close()
  }
})

test('a seller link’s plan page has the internal section: forecast and qualification notes stored in the internal document, never shown to the buyer nor printed', async () => {
  const plan = await createPlan(server, { title: 'Forecasted' })
  const seller = await openLink(browser, server, plan.id, plan.seller)
  const buyer = await openLink(browser, server, plan.id, plan.buyer)
  const internal = client(server, `${plan.id}/internal`, ADMIN_TOKEN)
  try {
    const { page } = seller
    await untilStatus(page, 'saved')
    await page.getByRole('heading', { name: 'Internal — seller only' }).waitFor()
    await page.getByLabel('Forecast category').selectOption('best_case')
    await page.getByLabel('Amount').fill('120,000')
    await page.getByLabel('Amount').press('Enter')
    await page.getByLabel('Expected close date').fill('2027-05-31')
    await page.getByLabel('Expected close date').press('Tab')
    await page.getByLabel('Qualification notes').fill('Budget approved by the CFO')
    await synced(internal)
    await waitFor(() => {
      const f = internal.doc.getMap('forecast')
      return f.get('category') === 'best_case' && f.get('amount') === 120000 && f.get('closeDate') === '2027-05-31' &&
        internal.doc.getText('qualification').toString() === 'Budget approved by the CFO'
    }, { what: 'the forecast and notes in the internal document' })
    // A bad amount is refused with words, and nothing is written.
    await page.getByLabel('Amount').fill('lots')
    await page.getByLabel('Amount').press('Tab')
    await page.getByText('The amount must be a number').waitFor()
    assert.equal(internal.doc.getMap('forecast').get('amount'), 120000)

    // The read view shows it as text, and print hides it.
    await page.getByRole('group', { name: 'View' }).getByRole('button', { name: 'Read' }).click()
    const section = page.locator('#internal')
    await section.getByText('Budget approved by the CFO').waitFor()
    assert.equal(await section.locator('input, select, textarea').count(), 0)
    await page.emulateMedia({ media: 'print' })
    assert.equal(await section.isVisible(), false, 'never printed')
    await page.emulateMedia({ media: 'screen' })

    await untilStatus(buyer.page, 'saved')
    assert.equal(await buyer.page.getByText('Internal — seller only').count(), 0)
    assert.equal(await buyer.page.locator('#internal').count(), 0)
    noPageErrors(seller, buyer)
  } finally {
    destroy(internal)
    await seller.context.close()
    await buyer.context.close()
  }
})
