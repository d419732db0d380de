// A member's plan page (issue 15): the plan's seller team — the owner adds a colleague by email,
// who then finds the plan on their home, and takes them off again — and the page when the
// member's session ends while it is open ("You were signed out", not a share link's words).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, waitFor } from './lib/harness.js'
import { browserSuite, noPageErrors, untilStatus, untilLinkPage, planCopy, copyIsGone, enterDate } from './lib/browser.js'

let server, browser
browserSuite(started => ({ server, browser } = started))

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

/** Signs a member in, in a new browser context, through a sign-in link; lands on home. */
async function signIn (signInUrl) {
  const url = new URL(signInUrl, server.url)
  const person = await visit(`${url.pathname}${url.hash}`)
  await person.page.getByTestId('home').waitFor({ timeout: 15000 })
  return person
}

/** Invites a member with the admin token and signs them in. */
async function invited (name, email, role) {
  const { status, body } = await api(server, 'POST', '/api/members', { body: { email, name, role } })
  assert.equal(status, 201, JSON.stringify(body))
  const person = await signIn(body.signInUrl)
  return { ...person, member: body.member }
}

/** A request from the member's page, with their cookie (and CSRF token on a write). */
function asMember (page, method, path, body) {
  return page.evaluate(async ({ method, path, body }) => {
    const session = await (await fetch('/api/session', { credentials: 'same-origin' })).json()
    const headers = { 'x-csrf-token': session.csrfToken }
    if (body !== undefined) headers['content-type'] = 'application/json'
    const response = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) })
    return { status: response.status, body: await response.json().catch(() => null) }
  }, { method, path, body })
}

const minePlanIds = async page => (await asMember(page, 'GET', '/api/plans?mine=1')).body.plans.map(p => p.id)

test('the owner adds a colleague by email, who then has the plan on their home; taking them off takes it away', async () => {
  const owner = await invited('Rita Rep', 'rita.team@mapline.example', 'rep')
  const colleague = await invited('Raj Rep', 'raj.team@mapline.example', 'rep')
  try {
    const made = await asMember(owner.page, 'POST', '/api/plans', { title: 'Contoso rollout', buyerOrg: 'Contoso', sellerOrg: 'Mapline Inc', goLive: '2027-06-01' })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    const planId = made.body.id
    assert.ok(!(await minePlanIds(colleague.page)).includes(planId), 'not the colleague’s plan yet')

    // The owner's plan page: the seller team names the owner.
    await owner.page.goto(`${server.url}/p/${planId}`)
    const team = owner.page.locator('#team')
    await team.locator(`[data-testid="team-member"][data-id="${owner.member.id}"][data-role="owner"]`).waitFor({ timeout: 15000 })
    assert.equal(await team.getByTestId('team-member').count(), 1)

    // An email no member has: refused in words, nothing added.
    await team.getByLabel('Colleague’s email').fill('nobody.here@mapline.example')
    await team.getByRole('button', { name: 'Add to the plan' }).click()
    const refused = team.locator('[data-testid="team-message"][data-bad="true"]')
    await refused.waitFor()
    assert.match(await refused.textContent(), /No one on the seller team has the email nobody\.here@mapline\.example.*invite them first/)
    assert.equal((await api(server, 'GET', `/api/plans/${planId}/members`)).body.members.length, 1, 'nobody added')

    // The colleague's email: added, listed, and the plan is on their home.
    await team.getByLabel('Colleague’s email').fill('raj.team@mapline.example')
    await team.getByRole('button', { name: 'Add to the plan' }).click()
    await team.locator(`[data-testid="team-member"][data-id="${colleague.member.id}"][data-role="seller"]`).waitFor()
    await team.locator('[data-testid="team-message"][data-bad="false"]').waitFor()
    const stored = (await api(server, 'GET', `/api/plans/${planId}/members`)).body.members
    assert.deepEqual(stored.map(m => [m.member.email, m.role]).sort(), [['raj.team@mapline.example', 'seller'], ['rita.team@mapline.example', 'owner']])
    assert.ok((await minePlanIds(colleague.page)).includes(planId), '/api/plans?mine=1 lists it for the colleague')
    await colleague.page.reload()
    await colleague.page.locator(`[data-testid="plan-row"][data-id="${planId}"]`).waitFor({ timeout: 15000 })

    // The colleague's own plan page: they see the team, and may not change it.
    await colleague.page.goto(`${server.url}/p/${planId}`)
    const theirs = colleague.page.locator('#team')
    await theirs.getByTestId('team-readonly').waitFor({ timeout: 15000 })
    assert.equal(await theirs.getByTestId('team-member').count(), 2)
    assert.equal(await theirs.getByRole('button', { name: /Remove|Add to the plan/ }).count(), 0, 'no controls for a colleague')
    // The server agrees: a colleague is not allowed.
    const notAllowed = await asMember(colleague.page, 'DELETE', `/api/plans/${planId}/members/${owner.member.id}`)
    assert.equal(notAllowed.status, 403)
    assert.equal(notAllowed.body.error.code, 'owner_only')

    // The owner takes them off: gone from the team, from their list and their home.
    await team.getByRole('button', { name: 'Take Raj Rep off this plan' }).click()
    await waitFor(async () => (await team.getByTestId('team-member').count()) === 1, { what: 'the team without the colleague' })
    assert.deepEqual((await api(server, 'GET', `/api/plans/${planId}/members`)).body.members.map(m => m.member.email), ['rita.team@mapline.example'])
    await colleague.page.goto(`${server.url}/`)
    await colleague.page.getByTestId('home').waitFor()
    assert.ok(!(await minePlanIds(colleague.page)).includes(planId), '/api/plans?mine=1 no longer lists it')
    await waitFor(async () => (await colleague.page.getByTestId('no-plans').count()) === 1 || (await colleague.page.getByTestId('plan-row').count()) > 0, { what: 'the colleague’s home loaded' })
    assert.equal(await colleague.page.locator(`[data-testid="plan-row"][data-id="${planId}"]`).count(), 0, 'not on their home')
    // The unknown email (404) and the colleague's refused removal (403) are refused on purpose.
    noPageErrors(owner, colleague, /status of 40[34]/)
  } finally {
    await owner.context.close()
    await colleague.context.close()
  }
})

test('a buyer’s plan page has no seller team', async () => {
  const { body } = await api(server, 'POST', '/api/plans', { body: { title: 'Buyer view', buyerOrg: 'B', sellerOrg: 'S', goLive: '2027-06-01' } })
  const buyer = body.shares.find(s => s.side === 'buyer').token
  const person = await visit(`/p/${body.id}#token=${buyer}`)
  try {
    await untilStatus(person.page, 'saved')
    await person.page.getByTestId('me').waitFor()
    assert.equal(await person.page.locator('#team').count(), 0)
    noPageErrors(person)
  } finally {
    await person.context.close()
  }
})

test('signed out everywhere from another browser, the open plan page says "You were signed out", offers signing in again, and deletes its copy', async () => {
  const first = await invited('Sam Manager', 'sam.team@mapline.example', 'manager')
  const { body: plan } = await api(server, 'POST', '/api/plans', { body: { title: 'Signed out', buyerOrg: 'B', sellerOrg: 'S', goLive: '2027-06-01' } })
  let second
  try {
    await first.page.goto(`${server.url}/p/${plan.id}`)
    await untilStatus(first.page, 'saved')
    await waitFor(async () => !copyIsGone(await planCopy(first.page, plan.id)), { what: 'a copy of the plan on this device' })

    // The same member, in another browser: "Sign out everywhere".
    const link = await api(server, 'POST', `/api/members/${first.member.id}/sign-in-link`, { body: {} })
    assert.equal(link.status, 201, JSON.stringify(link.body))
    second = await signIn(link.body.signInUrl)
    await second.page.getByRole('button', { name: 'Sign out everywhere' }).click()
    await second.page.getByTestId('signin-page').waitFor({ timeout: 15000 })

    // The open plan page: signed out, not a link's words.
    await untilLinkPage(first.page, 'signed_out')
    await first.page.getByRole('heading', { name: 'You were signed out' }).waitFor()
    assert.equal(await first.page.getByText('This link was revoked').count(), 0)
    const again = first.page.getByTestId('sign-in-again')
    assert.equal(await again.getAttribute('href'), `/?next=${encodeURIComponent(`/p/${plan.id}`)}`)
    await waitFor(async () => copyIsGone(await planCopy(first.page, plan.id)), { what: 'the copy on this device deleted' })
    // Signing in again is one click away: the sign-in page, which comes back here.
    await again.click()
    await first.page.getByTestId('signin-page').waitFor({ timeout: 15000 })
    noPageErrors(first, second, /status of 401/)
  } finally {
    await first.context.close()
    await second?.context.close()
  }
})

test('a date a member moved names the member in "Date changes" (not "Mapline")', async () => {
  const mover = await invited('Mia Mover', 'mia.team@mapline.example', 'manager')
  const { body: plan } = await api(server, 'POST', '/api/plans', { body: { title: 'Moved by a member', buyerOrg: 'B', sellerOrg: 'S', goLive: '2027-06-01' } })
  try {
    const { page } = mover
    await page.goto(`${server.url}/p/${plan.id}`)
    await untilStatus(page, 'saved')
    await enterDate(page.getByLabel('Go-live date', { exact: true }), '2027-06-15')
    const dialog = page.getByRole('dialog', { name: 'Why is this date moving?' })
    await dialog.getByLabel('Reason').fill('Their board meets later')
    await dialog.getByRole('button', { name: 'Move the date' }).click()
    const [slip] = await waitFor(async () => {
      const { body } = await api(server, 'GET', `/api/plans/${plan.id}/slips`)
      return body.slips.length === 1 && body.slips
    }, { what: 'the member’s slip stored' })
    assert.deepEqual([slip.who.kind, slip.who.name, slip.who.side], ['member', 'Mia Mover', 'seller'])
    await page.locator('#changes').getByText('Mia Mover (seller)').waitFor({ timeout: 15000 })
    assert.equal(await page.locator('#changes').getByText(/— Mapline,/).count(), 0)
    noPageErrors(mover)
  } finally {
    await mover.context.close()
  }
})
