// Members of the seller team: invited with a single-use sign-in link (CLI on a stopped file, or
// the API), signed in with a session cookie, reading plans by role and membership, protected
// against CSRF (same origin + X-CSRF-Token on writes, Origin on the WebSocket), named in history,
// signed out (their sockets close with 4401), and review marks.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import {
  startServer, tempData, createPlan, mintShare, api, waitFor, binary, upgradeStatus, Y, destroy, synced, within
} from './lib/harness.js'

const run = promisify(execFile)

let data, server, cliInvite
before(async () => {
  data = tempData()
  // Invited on the data file before the server starts (the server is stopped).
  const { stdout } = await run(binary, ['members', 'invite', 'Rita.Rep@Example.com', '--name', 'Rita Rep',
    '--role', 'rep', '--data', data.file, '--json'])
  cliInvite = JSON.parse(stdout)
  server = await startServer({ dataFile: data.file })
})
after(async () => { await server.stop(); data.cleanup() })

const tokenOf = url => new URL(url, 'http://x').hash.replace('#token=', '')

/** Signs in with a sign-in link; returns { cookie, csrf, member, status, body }. */
async function signIn (signInUrl) {
  const response = await fetch(`${server.url}/api/auth/sign-in-link`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: server.url },
    body: JSON.stringify({ token: tokenOf(signInUrl) })
  })
  const body = await response.json()
  const setCookie = response.headers.get('set-cookie') || ''
  const cookie = setCookie.split(';')[0]
  return { status: response.status, body, setCookie, cookie, csrf: body.csrfToken, member: body.member }
}

/** Invites over the API with the admin token and signs in. */
async function member (email, name, role) {
  const invited = await api(server, 'POST', '/api/members', { body: { email, name, role } })
  assert.equal(invited.status, 201, JSON.stringify(invited.body))
  const session = await signIn(invited.body.signInUrl)
  assert.equal(session.status, 200, JSON.stringify(session.body))
  return { ...session, id: invited.body.member.id }
}

/** A request with the session cookie (no bearer); writes carry our Origin and the CSRF token. */
async function asMember (who, method, path, { body, origin = server.url, csrf = who.csrf, headers = {} } = {}) {
  const init = { method, headers: { cookie: who.cookie, ...headers } }
  if (method !== 'GET') {
    if (origin) init.headers.origin = origin
    if (csrf) init.headers['x-csrf-token'] = csrf
  }
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
    init.headers['content-type'] = 'application/json'
  }
  const response = await fetch(server.url + path, init)
  const text = await response.text()
  let json
  try { json = JSON.parse(text) } catch { json = text }
  return { status: response.status, body: json, headers: response.headers }
}

const newPlan = { title: 'Rollout', buyerOrg: 'Northwind', sellerOrg: 'Mapline', goLive: '2027-04-01' }

/** A y-websocket client signed in with the cookie (no token), from the given Origin. */
function cookieClient (planId, who, origin = server.url) {
  const doc = new Y.Doc()
  class CookieSocket extends WebSocket {
    constructor (url, protocols) { super(url, protocols, { headers: { cookie: who.cookie, origin } }) }
  }
  const provider = new WebsocketProvider(server.wsUrl, planId, doc, {
    WebSocketPolyfill: CookieSocket, disableBc: true, maxBackoffTime: 200
  })
  return { doc, provider, map: name => doc.getMap(name) }
}

/** A raw cookie WebSocket that reports how it closed. */
function cookieSocket (planId, who) {
  const ws = new WebSocket(`${server.wsUrl}/${planId}`, { headers: { cookie: who.cookie, origin: server.url } })
  const opened = new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with HTTP ${res.statusCode}`)))
  })
  const closed = new Promise(resolve => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  return { ws, opened, closed }
}

test('a member invited with the CLI on the stopped file signs in once; the second use is refused', async () => {
  assert.equal(cliInvite.member.email, 'rita.rep@example.com')
  assert.equal(cliInvite.member.role, 'rep')
  assert.match(cliInvite.signInUrl, /\/signin#token=l_/)
  const first = await signIn(cliInvite.signInUrl)
  assert.equal(first.status, 200, JSON.stringify(first.body))
  assert.equal(first.member.name, 'Rita Rep')
  assert.match(first.setCookie, /^mapline_session=ms_[\w-]+; HttpOnly; SameSite=Lax; Path=\//)
  assert.doesNotMatch(first.setCookie, /Secure/, 'plain http without an https --public-url')
  const again = await signIn(cliInvite.signInUrl)
  assert.equal(again.status, 401)
  assert.equal(again.body.error.code, 'sign_in_link_used')
  assert.equal(again.setCookie, '')
  const session = await asMember(first, 'GET', '/api/session')
  assert.equal(session.status, 200)
  assert.equal(session.body.member.email, 'rita.rep@example.com')
  assert.equal(session.body.csrfToken, first.csrf)
  assert.ok(Date.parse(session.body.expiresAt) > Date.now() + 13 * 86400e3)
  const unknown = await signIn('/signin#token=l_nothing')
  assert.equal(unknown.body.error.code, 'sign_in_link_invalid')
  const listed = await run(binary, ['members', 'list', '--server', server.url, '--admin-token', 'test-admin-token-0123456789abcdef', '--json'])
  assert.ok(JSON.parse(listed.stdout).some(m => m.email === 'rita.rep@example.com'))
})

test('an expired sign-in link is refused and starts no session', async () => {
  // Invited through the running server's CLI path would give 15 minutes; on a file, one second.
  const local = tempData()
  try {
    const { stdout } = await run(binary, ['members', 'invite', 'late@example.com', '--name', 'Late', '--role', 'rep',
      '--link-valid-secs', '1', '--data', local.file, '--json'])
    const invited = JSON.parse(stdout)
    const expiresAt = Date.parse(invited.signInExpiresAt)
    const other = await startServer({ dataFile: local.file })
    try {
      // The deadline is the link's own expiry time (a clock condition, not a sleep for sync).
      await waitFor(() => Date.now() > expiresAt + 50, { what: 'the link to be past its expiry', timeout: 5000 })
      const response = await fetch(`${other.url}/api/auth/sign-in-link`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: tokenOf(invited.signInUrl) })
      })
      assert.equal(response.status, 401)
      assert.equal((await response.json()).error.code, 'sign_in_link_expired')
      assert.equal(response.headers.get('set-cookie'), null)
      const sessions = await api(other, 'GET', `/api/members/${invited.member.id}/sessions`)
      assert.deepEqual(sessions.body.sessions, [])
    } finally { await other.stop() }
  } finally { local.cleanup() }
})

test('without a valid cookie: not_signed_in; a garbage cookie is a clear 401', async () => {
  const none = await fetch(`${server.url}/api/session`)
  assert.equal(none.status, 401)
  assert.equal((await none.json()).error.code, 'not_signed_in')
  const garbage = await fetch(`${server.url}/api/session`, { headers: { cookie: 'mapline_session=%%%garbage' } })
  assert.equal(garbage.status, 401)
  assert.equal((await garbage.json()).error.code, 'not_signed_in')
  const plans = await fetch(`${server.url}/api/plans/00000000-0000-0000-0000-000000000000`, { headers: { cookie: 'mapline_session=nope' } })
  assert.equal(plans.status, 401)
  assert.equal((await plans.json()).error.code, 'not_signed_in')
})

test('a rep reads only plans they own or are a member of; a manager reads every plan', async () => {
  const ann = await member('ann@example.com', 'Ann Rep', 'rep')
  const bob = await member('bob@example.com', 'Bob Rep', 'rep')
  const mia = await member('mia@example.com', 'Mia Manager', 'manager')
  const created = await asMember(ann, 'POST', '/api/plans', { body: newPlan })
  assert.equal(created.status, 201, JSON.stringify(created.body))
  const id = created.body.id
  assert.equal(created.body.shares.length, 2)
  assert.equal((await asMember(ann, 'GET', `/api/plans/${id}`)).status, 200)
  const refused = await asMember(bob, 'GET', `/api/plans/${id}`)
  assert.equal(refused.status, 403)
  assert.equal(refused.body.error.code, 'not_a_plan_member')
  assert.equal((await asMember(mia, 'GET', `/api/plans/${id}`)).status, 200)
  // The owner is listed; a rep who is not the owner cannot add anyone.
  const listed = await asMember(ann, 'GET', `/api/plans/${id}/members`)
  assert.deepEqual(listed.body.members.map(m => [m.member.email, m.role]), [['ann@example.com', 'owner']])
  const byBob = await asMember(bob, 'POST', `/api/plans/${id}/members`, { body: { email: 'bob@example.com' } })
  assert.equal(byBob.status, 403)
  const added = await asMember(ann, 'POST', `/api/plans/${id}/members`, { body: { email: 'BOB@example.com' } })
  assert.equal(added.status, 201, JSON.stringify(added.body))
  assert.equal(added.body.role, 'seller')
  assert.equal((await asMember(bob, 'GET', `/api/plans/${id}`)).status, 200)
  const unknown = await asMember(ann, 'POST', `/api/plans/${id}/members`, { body: { email: 'nobody@example.com' } })
  assert.equal(unknown.status, 404)
  assert.equal(unknown.body.error.code, 'member_not_found')
  // /me says who the member is on the plan.
  const me = await asMember(bob, 'GET', `/api/plans/${id}/me`)
  assert.equal(me.body.kind, 'member')
  assert.equal(me.body.side, 'seller')
  assert.equal(me.body.canEdit, true)
  assert.deepEqual(me.body.canMintSides, ['buyer', 'seller'])
  assert.equal(me.body.member.name, 'Bob Rep')
  // Members are the admin's: a rep cannot list them.
  assert.equal((await asMember(ann, 'GET', '/api/members')).status, 403)
})

test('a cookie write from another origin, or without X-CSRF-Token, is 403 csrf and changes nothing', async () => {
  const eve = await member('eve@example.com', 'Eve Admin', 'admin')
  const before = (await api(server, 'GET', '/api/members')).body.members.length
  const invite = { email: 'victim-made@example.com', name: 'X', role: 'admin' }
  const foreign = await asMember(eve, 'POST', '/api/members', { body: invite, origin: 'http://evil.example' })
  assert.equal(foreign.status, 403)
  assert.equal(foreign.body.error.code, 'csrf')
  const noOrigin = await asMember(eve, 'POST', '/api/members', { body: invite, origin: null })
  assert.equal(noOrigin.body.error.code, 'csrf')
  const foreignReferer = await asMember(eve, 'POST', '/api/members', { body: invite, origin: null, headers: { referer: 'http://evil.example/page' } })
  assert.equal(foreignReferer.body.error.code, 'csrf')
  const noToken = await asMember(eve, 'POST', '/api/members', { body: invite, csrf: null })
  assert.equal(noToken.status, 403)
  assert.equal(noToken.body.error.code, 'csrf')
  const wrongToken = await asMember(eve, 'POST', '/api/members', { body: invite, csrf: 'not-the-token' })
  assert.equal(wrongToken.body.error.code, 'csrf')
  // A `?token=` on a write does not replace the cookie, so it does not excuse it either.
  const queryToken = await asMember(eve, 'POST', '/api/members?token=a_whatever', { body: invite, origin: 'http://evil.example', csrf: null })
  assert.equal(queryToken.status, 403)
  assert.equal(queryToken.body.error.code, 'csrf')
  const plans = await asMember(eve, 'POST', '/api/plans', { body: newPlan, origin: 'http://evil.example' })
  assert.equal(plans.body.error.code, 'csrf')
  assert.equal((await api(server, 'GET', '/api/members')).body.members.length, before, 'no member was made')
  // A same-origin Referer instead of Origin, with the token, is accepted.
  const ok = await asMember(eve, 'POST', '/api/members', { body: invite, origin: null, headers: { referer: `${server.url}/members` } })
  assert.equal(ok.status, 201, JSON.stringify(ok.body))
  // A bearer token is not subject to the cookie's rules.
  const bearer = await api(server, 'POST', '/api/members', { body: { email: 'bearer@example.com', name: 'B', role: 'rep' }, headers: { origin: 'http://evil.example', cookie: eve.cookie } })
  assert.equal(bearer.status, 201)
})

test('a cookie WebSocket from another origin is refused; from ours it syncs and history names the member', async () => {
  const dana = await member('dana@example.com', 'Dana Seller', 'rep')
  const id = (await asMember(dana, 'POST', '/api/plans', { body: newPlan })).body.id
  const foreign = await upgradeStatus(`${server.wsUrl}/${id}`, { cookie: dana.cookie, origin: 'http://evil.example' })
  assert.equal(foreign.status, 403)
  assert.equal(foreign.body.error.code, 'cross_origin')
  const noOrigin = await upgradeStatus(`${server.wsUrl}/${id}`, { cookie: dana.cookie })
  assert.equal(noOrigin.status, 403)
  const internal = await upgradeStatus(`${server.wsUrl}/${id}/internal`, { cookie: dana.cookie, origin: 'http://evil.example' })
  assert.equal(internal.status, 403)
  const c = cookieClient(id, dana)
  try {
    await synced(c)
    c.map('meta').set('objective', 'Signed in and editing')
    const entry = await waitFor(async () => {
      const history = await asMember(dana, 'GET', `/api/plans/${id}/history`)
      return history.body.entries?.find(e => e.changes.some(ch => ch.field === 'objective' && String(ch.new).includes('Signed in and editing')))
    }, { what: 'the edit in history' })
    assert.deepEqual(entry.who, { kind: 'member', memberId: dana.id, name: 'Dana Seller', email: 'dana@example.com', side: 'seller' })
    // A buyer's link sees the member's name and side, never their email (history, slips, exports).
    const buyer = await mintShare(server, id, { side: 'buyer', role: 'viewer', label: 'CFO' })
    const seen = (await api(server, 'GET', `/api/plans/${id}/history`, { token: buyer })).body.entries.find(e => e.seq === entry.seq)
    assert.deepEqual(seen.who, { kind: 'member', memberId: dana.id, name: 'Dana Seller', side: 'seller' })
    for (const file of ['export.json', 'audit.json']) {
      const answer = await api(server, 'GET', `/api/plans/${id}/${file}`, { token: buyer })
      assert.equal(answer.status, 200, file)
      assert.ok(JSON.stringify(answer.body).includes('Dana Seller'), `${file} names the member`)
      assert.ok(!JSON.stringify(answer.body).includes('dana@example.com'), `${file} names no email for a buyer`)
    }
    const seller = await mintShare(server, id, { side: 'seller', role: 'viewer', label: 'Sales engineer' })
    const sellerSeen = (await api(server, 'GET', `/api/plans/${id}/history`, { token: seller })).body.entries.find(e => e.seq === entry.seq)
    assert.equal(sellerSeen.who.email, 'dana@example.com')
  } finally { destroy(c) }
  // Another rep's cookie may not open it even from our origin.
  const bob = await member('bob2@example.com', 'Bob Two', 'rep')
  const other = await upgradeStatus(`${server.wsUrl}/${id}`, { cookie: bob.cookie, origin: server.url })
  assert.equal(other.status, 403)
})

test('logout and revoking sessions end them at once: 401 and open sockets close with 4401', async () => {
  const lea = await member('lea@example.com', 'Lea', 'rep')
  const id = (await asMember(lea, 'POST', '/api/plans', { body: newPlan })).body.id
  const socket = cookieSocket(id, lea)
  await within(socket.opened, { what: 'the cookie socket to open' })
  const out = await asMember(lea, 'POST', '/api/auth/logout')
  assert.equal(out.status, 204)
  assert.match(out.headers.get('set-cookie'), /mapline_session=; .*Max-Age=0/)
  assert.equal((await within(socket.closed, { what: 'the socket to close' })).code, 4401)
  const after = await asMember(lea, 'GET', `/api/plans/${id}`)
  assert.equal(after.status, 401)
  assert.equal(after.body.error.code, 'session_revoked')
  // Two sessions; the admin ends them all (over the CLI, through the running server).
  const invite = await api(server, 'POST', '/api/members', { body: { email: 'max@example.com', name: 'Max', role: 'rep' } })
  const first = await signIn(invite.body.signInUrl)
  const id2 = (await asMember(first, 'POST', '/api/plans', { body: newPlan })).body.id
  const socket2 = cookieSocket(id2, first)
  await within(socket2.opened, { what: 'the second cookie socket to open' })
  const sessions = await run(binary, ['members', 'sessions', 'max@example.com', '--server', server.url, '--admin-token', 'test-admin-token-0123456789abcdef', '--json'])
  assert.equal(JSON.parse(sessions.stdout)[0].sessions[0].status, 'active')
  const revoked = await run(binary, ['members', 'revoke-sessions', 'max@example.com', '--server', server.url, '--admin-token', 'test-admin-token-0123456789abcdef', '--json'])
  assert.deepEqual(JSON.parse(revoked.stdout), { revoked: 1 })
  assert.equal((await within(socket2.closed, { what: 'the second socket to close' })).code, 4401)
  assert.equal((await asMember(first, 'GET', '/api/session')).body.error.code, 'session_revoked')
  // logout-everywhere counts the sessions it ended.
  const again = await member('max2@example.com', 'Max Two', 'rep')
  const everywhere = await asMember(again, 'POST', '/api/auth/logout-everywhere')
  assert.deepEqual(everywhere.body, { revoked: 1 })
  // Logout needs the CSRF token too.
  const csrfLess = await member('max3@example.com', 'Max Three', 'rep')
  assert.equal((await asMember(csrfLess, 'POST', '/api/auth/logout', { csrf: null })).body.error.code, 'csrf')
  assert.equal((await asMember(csrfLess, 'GET', '/api/session')).status, 200, 'still signed in')
})

test('review marks round-trip per reviewer: member and share link', async () => {
  const rev = await member('rev@example.com', 'Rev', 'manager')
  const plan = await createPlan(server)
  const none = await asMember(rev, 'GET', `/api/plans/${plan.id}/reviews/last`)
  assert.equal(none.status, 200)
  assert.equal(none.body.seq, null)
  const marked = await asMember(rev, 'POST', `/api/plans/${plan.id}/reviews`)
  assert.equal(marked.status, 200, JSON.stringify(marked.body))
  assert.equal(marked.body.seq, 1, 'the plan\'s first update')
  assert.ok(Date.parse(marked.body.at))
  assert.deepEqual((await asMember(rev, 'GET', `/api/plans/${plan.id}/reviews/last`)).body, marked.body)
  // A share link has its own mark.
  const byLink = await api(server, 'GET', `/api/plans/${plan.id}/reviews/last`, { token: plan.buyer })
  assert.equal(byLink.body.seq, null)
  await api(server, 'POST', `/api/plans/${plan.id}/reviews`, { token: plan.buyer })
  assert.equal((await api(server, 'GET', `/api/plans/${plan.id}/reviews/last`, { token: plan.buyer })).body.seq, 1)
})

test('bad inputs get clear JSON errors', async () => {
  const check = async (body, status, code, raw) => {
    const answer = raw
      ? await api(server, 'POST', '/api/members', { raw, headers: { 'content-type': 'application/json' } })
      : await api(server, 'POST', '/api/members', { body })
    assert.equal(answer.status, status, JSON.stringify(answer.body))
    assert.equal(answer.body.error.code, code)
  }
  await check({ email: 'not-an-email', name: 'X', role: 'rep' }, 422, 'invalid_email')
  await check({ email: 'x@example.com', name: 'X', role: 'owner' }, 422, 'invalid_role')
  await check({ email: 'x@example.com', name: '  ', role: 'rep' }, 422, 'invalid_field')
  await check({ email: 'x@example.com' }, 422, 'invalid_body')
  await check(null, 400, 'invalid_json', '{"email": ')
  await check({ email: 'RITA.rep@example.com', name: 'Again', role: 'rep' }, 409, 'member_exists')
  const badLink = await fetch(`${server.url}/api/auth/sign-in-link`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' })
  assert.equal(badLink.status, 400)
  assert.equal((await badLink.json()).error.code, 'invalid_json')
  const local = tempData()
  try {
    const cli = await run(binary, ['members', 'invite', 'bad', '--name', 'X', '--role', 'rep', '--data', local.file]).catch(e => e)
    assert.notEqual(cli.code, 0)
    assert.match(cli.stderr, /not an email address/)
    const role = await run(binary, ['members', 'invite', 'a@example.com', '--name', 'X', '--role', 'boss', '--data', local.file]).catch(e => e)
    assert.notEqual(role.code, 0)
    assert.match(role.stderr, /boss/)
  } finally { local.cleanup() }
})

test('the demo prints a sign-in link for its seller, who owns the demo plan', async () => {
  const local = tempData()
  const demo = await startServer({ dataFile: local.file, args: ['--demo'] })
  try {
    const out = await waitFor(() => demo.output().stdout.match(/Demo plan (\S+) created[\s\S]*Sign in as the demo seller.*: (\S+)/), { what: 'the demo links' })
    const [, planId, link] = out
    const response = await fetch(`${demo.url}/api/auth/sign-in-link`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: tokenOf(link) })
    })
    assert.equal(response.status, 200)
    const body = await response.json()
    assert.deepEqual([body.member.name, body.member.email, body.member.role], ['Dana Seller', 'demo.seller@mapline.local', 'admin'])
    const cookie = response.headers.get('set-cookie').split(';')[0]
    const members = await (await fetch(`${demo.url}/api/plans/${planId}/members`, { headers: { cookie } })).json()
    assert.deepEqual(members.members.map(m => [m.member.email, m.role]), [['demo.seller@mapline.local', 'owner']])
  } finally { await demo.stop(); local.cleanup() }
})

test('a member acts as a seller editor: mints and lists links, opens the internal document', async () => {
  const sam = await member('sam@example.com', 'Sam Rep', 'rep')
  const id = (await asMember(sam, 'POST', '/api/plans', { body: newPlan })).body.id
  const minted = await asMember(sam, 'POST', `/api/plans/${id}/shares`, { body: { side: 'buyer', role: 'editor', label: 'Dev Patel (champion)' } })
  assert.equal(minted.status, 201, JSON.stringify(minted.body))
  const seller = await asMember(sam, 'POST', `/api/plans/${id}/shares`, { body: { side: 'seller', role: 'viewer', label: 'Finance' } })
  assert.equal(seller.status, 201)
  const listed = await asMember(sam, 'GET', `/api/plans/${id}/shares`)
  assert.ok(listed.body.shares.some(s => s.label === 'Dev Patel (champion)'))
  const internal = await upgradeStatus(`${server.wsUrl}/${id}/internal`, { cookie: sam.cookie, origin: server.url })
  assert.equal(internal.status, 101)
  // Another rep may not mint on it.
  const other = await member('sue@example.com', 'Sue Rep', 'rep')
  const refused = await asMember(other, 'POST', `/api/plans/${id}/shares`, { body: { side: 'buyer', role: 'viewer', label: 'X' } })
  assert.equal(refused.status, 403)

  // The links it minted name it: mintedBy is its name, mintedByMember its id.
  const mine = listed.body.shares.find(s => s.label === 'Dev Patel (champion)')
  assert.equal(mine.mintedBy, 'Sam Rep')
  assert.equal(mine.mintedByMember, sam.id)
  assert.equal(listed.body.shares.find(s => s.side === 'buyer' && s.label !== 'Dev Patel (champion)').mintedByMember, null)
  const preview = await asMember(sam, 'GET', `/api/plans/${id}/shares/${minted.body.id}/revocation`)
  assert.equal(preview.body.shares[0].mintedBy, 'Sam Rep')
  assert.equal(preview.body.shares[0].mintedByMember, sam.id)
  const gone = await asMember(sam, 'DELETE', `/api/plans/${id}/shares/${minted.body.id}`)
  assert.equal(gone.status, 200)
  assert.equal(gone.body.revoked[0].mintedByMember, sam.id)
})

const ADMIN = ['--server', null, '--admin-token', 'test-admin-token-0123456789abcdef', '--json']
const cli = (...args) => run(binary, [...args, ...ADMIN.map(a => a ?? server.url)])

test('a member whose link was used gets a new one (API and CLI); a disabled member does not', async () => {
  const ida = await member('ida@example.com', 'Ida Rep', 'rep')
  // Inviting the email again is refused: the new-link route is the way back in.
  const again = await api(server, 'POST', '/api/members', { body: { email: 'ida@example.com', name: 'Ida', role: 'rep' } })
  assert.equal(again.status, 409)
  const made = await api(server, 'POST', `/api/members/${ida.id}/sign-in-link`, { body: { validSecs: 120 } })
  assert.equal(made.status, 201, JSON.stringify(made.body))
  assert.equal(made.body.member.email, 'ida@example.com')
  const expires = Date.parse(made.body.signInExpiresAt)
  assert.ok(expires > Date.now() + 60e3 && expires <= Date.now() + 121e3, made.body.signInExpiresAt)
  const back = await signIn(made.body.signInUrl)
  assert.equal(back.status, 200)
  assert.equal(back.member.id, ida.id)
  // Without a body: the default 15 minutes.
  const plain = await api(server, 'POST', `/api/members/${ida.id}/sign-in-link`)
  assert.equal(plain.status, 201, JSON.stringify(plain.body))
  assert.ok(Date.parse(plain.body.signInExpiresAt) > Date.now() + 14 * 60e3)
  // Over the CLI through the server.
  const { stdout } = await cli('members', 'link', 'IDA@example.com', '--link-valid-secs', '300')
  const byCli = JSON.parse(stdout)
  assert.ok(Date.parse(byCli.signInExpiresAt) <= Date.now() + 301e3)
  assert.equal((await signIn(byCli.signInUrl)).status, 200)
  // Bad inputs and other callers.
  assert.equal((await api(server, 'POST', `/api/members/${ida.id}/sign-in-link`, { body: { validSecs: 0 } })).body.error.code, 'invalid_field')
  assert.equal((await api(server, 'POST', '/api/members/00000000-0000-0000-0000-000000000000/sign-in-link')).status, 404)
  const notAdmin = await asMember(ida, 'POST', `/api/members/${ida.id}/sign-in-link`, { body: {} })
  assert.equal(notAdmin.status, 403)
  // A disabled member gets no link.
  assert.equal((await api(server, 'POST', `/api/members/${ida.id}/disable`)).status, 200)
  const refused = await api(server, 'POST', `/api/members/${ida.id}/sign-in-link`)
  assert.equal(refused.status, 409)
  assert.equal(refused.body.error.code, 'member_disabled')
})

test('invite --server sends --link-valid-secs; on a data file without --public-url the CLI warns the link is relative', async () => {
  const { stdout } = await cli('members', 'invite', 'quick@example.com', '--name', 'Quick', '--role', 'rep', '--link-valid-secs', '60')
  const invited = JSON.parse(stdout)
  assert.ok(Date.parse(invited.signInExpiresAt) <= Date.now() + 61e3, invited.signInExpiresAt)
  const local = tempData()
  try {
    const onFile = await run(binary, ['members', 'invite', 'rel@example.com', '--name', 'Rel', '--role', 'rep',
      '--data', local.file, '--json'], { env: { ...process.env, MAPLINE_PUBLIC_URL: '' } })
    assert.match(JSON.parse(onFile.stdout).signInUrl, /^\/signin#token=/)
    assert.match(onFile.stderr, /relative/)
    const link = await run(binary, ['members', 'link', 'rel@example.com', '--public-url', 'https://plans.example.com',
      '--data', local.file, '--json'])
    assert.match(JSON.parse(link.stdout).signInUrl, /^https:\/\/plans\.example\.com\/signin#token=l_/)
    assert.doesNotMatch(link.stderr, /relative/)
  } finally { local.cleanup() }
})

test('disabling a member ends their sessions and sockets (4401), voids their pending link, and keeps them out', async () => {
  const vic = await member('vic@example.com', 'Vic Leaving', 'rep')
  const id = (await asMember(vic, 'POST', '/api/plans', { body: newPlan })).body.id
  const socket = cookieSocket(id, vic)
  await within(socket.opened, { what: 'the cookie socket to open' })
  const pending = await api(server, 'POST', `/api/members/${vic.id}/sign-in-link`)
  // Over the CLI through the server.
  const { stdout } = await cli('members', 'disable', 'vic@example.com')
  const disabled = JSON.parse(stdout)
  assert.equal(disabled.revoked, 1)
  assert.ok(disabled.member.disabledAt)
  assert.equal((await within(socket.closed, { what: 'the socket to close' })).code, 4401)
  assert.equal((await asMember(vic, 'GET', '/api/session')).status, 401)
  const late = await signIn(pending.body.signInUrl)
  assert.equal(late.status, 401)
  assert.equal(late.setCookie, '')
  const listed = await api(server, 'GET', '/api/members')
  assert.ok(listed.body.members.find(m => m.email === 'vic@example.com').disabledAt)
  // Only the admin disables.
  const other = await member('wes@example.com', 'Wes Rep', 'rep')
  assert.equal((await asMember(other, 'POST', `/api/members/${other.id}/disable`)).status, 403)
})

test('a plan member is taken off the plan by its owner; the owner stays; others may not', async () => {
  const own = await member('own@example.com', 'Own Rep', 'rep')
  const hal = await member('hal@example.com', 'Hal Rep', 'rep')
  const id = (await asMember(own, 'POST', '/api/plans', { body: newPlan })).body.id
  assert.equal((await asMember(own, 'POST', `/api/plans/${id}/members`, { body: { email: 'hal@example.com' } })).status, 201)
  assert.equal((await asMember(hal, 'GET', `/api/plans/${id}`)).status, 200)
  const byHal = await asMember(hal, 'DELETE', `/api/plans/${id}/members/${own.id}`)
  assert.equal(byHal.status, 403)
  assert.equal(byHal.body.error.code, 'owner_only')
  const ownerOff = await asMember(own, 'DELETE', `/api/plans/${id}/members/${own.id}`)
  assert.equal(ownerOff.status, 409)
  assert.equal(ownerOff.body.error.code, 'owner_not_removable')
  const off = await asMember(own, 'DELETE', `/api/plans/${id}/members/${hal.id}`)
  assert.equal(off.status, 200, JSON.stringify(off.body))
  assert.deepEqual(off.body, { removed: true, memberId: hal.id })
  const after = await asMember(hal, 'GET', `/api/plans/${id}`)
  assert.equal(after.status, 403)
  assert.equal(after.body.error.code, 'not_a_plan_member')
  const twice = await asMember(own, 'DELETE', `/api/plans/${id}/members/${hal.id}`)
  assert.equal(twice.status, 404)
  const members = await asMember(own, 'GET', `/api/plans/${id}/members`)
  assert.deepEqual(members.body.members.map(m => m.member.email), ['own@example.com'])
})

test('sign-in-link from another site is refused even without a cookie (login CSRF), and uses nothing up', async () => {
  const invited = await api(server, 'POST', '/api/members', { body: { email: 'csrf@example.com', name: 'Csrf', role: 'rep' } })
  const token = tokenOf(invited.body.signInUrl)
  const evil = await fetch(`${server.url}/api/auth/sign-in-link`, {
    method: 'POST', headers: { 'content-type': 'application/json', origin: 'http://evil.example' }, body: JSON.stringify({ token })
  })
  assert.equal(evil.status, 403)
  assert.equal((await evil.json()).error.code, 'csrf')
  assert.equal(evil.headers.get('set-cookie'), null)
  assert.equal((await signIn(invited.body.signInUrl)).status, 200, 'the link still works from our site')
})

test('signing in with a link from a browser that has a session ends that session', async () => {
  const joe = await member('joe@example.com', 'Joe Rep', 'rep')
  const made = await api(server, 'POST', `/api/members/${joe.id}/sign-in-link`)
  const response = await fetch(`${server.url}/api/auth/sign-in-link`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: server.url, cookie: joe.cookie },
    body: JSON.stringify({ token: tokenOf(made.body.signInUrl) })
  })
  assert.equal(response.status, 200)
  const fresh = { cookie: response.headers.get('set-cookie').split(';')[0] }
  const old = await asMember(joe, 'GET', '/api/session')
  assert.equal(old.status, 401)
  assert.equal(old.body.error.code, 'session_revoked')
  assert.equal((await asMember(fresh, 'GET', '/api/session')).status, 200)
})

test('logout with a dead session answers 401 and clears the cookie; session routes refuse a bearer', async () => {
  const kay = await member('kay@example.com', 'Kay Rep', 'rep')
  assert.equal((await asMember(kay, 'POST', '/api/auth/logout')).status, 204)
  const dead = await asMember(kay, 'POST', '/api/auth/logout')
  assert.equal(dead.status, 401)
  assert.equal(dead.body.error.code, 'session_revoked')
  assert.match(dead.headers.get('set-cookie') ?? '', /^mapline_session=; .*Max-Age=0/)
  // A bearer or ?token= beside the cookie: refused, not answered for the cookie.
  const liv = await member('liv@example.com', 'Liv Rep', 'rep')
  const bearer = { authorization: 'Bearer test-admin-token-0123456789abcdef' }
  for (const [method, path] of [['GET', '/api/session'], ['POST', '/api/auth/logout'], ['POST', '/api/auth/logout-everywhere']]) {
    const withBearer = await asMember(liv, method, path, { headers: bearer })
    assert.equal(withBearer.status, 400, `${method} ${path}`)
    assert.equal(withBearer.body.error.code, 'bearer_not_accepted')
  }
  const withQuery = await asMember(liv, 'POST', '/api/auth/logout?token=s_whatever')
  assert.equal(withQuery.body.error.code, 'bearer_not_accepted')
  assert.equal((await asMember(liv, 'GET', '/api/session')).status, 200, 'still signed in')
})

test('the pipeline by role: a rep lists the plans they own or were added to, a manager every plan; a buyer link none', async () => {
  const rae = await member('rae@example.com', 'Rae Rep', 'rep')
  const ray = await member('ray@example.com', 'Ray Rep', 'rep')
  const max = await member('max.manager@example.com', 'Max Manager', 'manager')
  const raes = (await asMember(rae, 'POST', '/api/plans', { body: { ...newPlan, title: 'Rae’s deal' } })).body.id
  const rays = (await asMember(ray, 'POST', '/api/plans', { body: { ...newPlan, title: 'Ray’s deal' } })).body.id
  const ids = async (who, query = '') => (await asMember(who, 'GET', `/api/plans${query}`)).body.plans.map(p => p.id)
  assert.deepEqual(await ids(rae), [raes])
  assert.deepEqual(await ids(ray), [rays])
  const all = await ids(max)
  assert.ok(all.includes(raes) && all.includes(rays), 'a manager sees every plan')
  assert.deepEqual(await ids(max, '?mine=1'), [], 'a manager owns none of them')
  const row = (await asMember(max, 'GET', '/api/plans')).body.plans.find(p => p.id === raes)
  assert.deepEqual(row.owner, { id: rae.id, name: 'Rae Rep' })
  // The CSV follows the same rule.
  const csv = await fetch(`${server.url}/api/plans.csv`, { headers: { cookie: rae.cookie } })
  const text = await csv.text()
  assert.ok(text.includes('Rae’s deal') && !text.includes('Ray’s deal'), text)
  // Added to Ray's plan, Rae lists it too.
  const added = await asMember(ray, 'POST', `/api/plans/${rays}/members`, { body: { email: 'rae@example.com' } })
  assert.ok([200, 201].includes(added.status), JSON.stringify(added.body))
  assert.deepEqual((await ids(rae)).sort(), [raes, rays].sort())
  const buyer = await mintShare(server, raes, { side: 'buyer' })
  const refused = await api(server, 'GET', '/api/plans', { token: buyer })
  assert.deepEqual([refused.status, refused.body.error.code], [403, 'members_only'])
})
