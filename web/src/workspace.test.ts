// Unit tests of the workspace pages' logic (issue 15): addresses, the audit feed and its
// filters, moments and reviews, slip analytics, the home and pipeline tables, invitation text,
// the internal document's forecast. Each feature has one small `check` so a case is one line.
import { afterEach, describe, expect, test, vi } from 'vitest'
import * as Y from 'yjs'
import { localNext, parseRoute, planPath, type Route } from './route'
import { accessEvents, accessPeople, between, changeKind, filterAccess, filterFeed, mergeFeed, NO_FILTER, people, personName, personWithSide, positions, sinceReview, slipAnalytics, steps, type FeedFilter } from './audit'
import { ALL_PLANS, buyerActivityWords, driftWords, healthCellWords, filterPlans, inviteEmail, inviteLabel, isQuiet, mailto, pipelineTotals, quietWords, sortPlans, type SortKey, type Summary } from './home'
import { formatAmount, parseAmount, readForecast } from './internal'
import { Api, credentialOf, notAvailable, setCsrfToken, ApiFailure, type HistoryChange, type HistoryEntry, type ListedShare, type Me, type Slip, type Who } from './api'
import { conflictWords, whoName, type Conflict } from './conflicts'
import { endOfClose, endOfRefusal } from './link'
import { canManageTeam, signInProblem, teamProblem } from './workspace'

const ID = '0192f5c4-7d1e-7abc-9def-0123456789ab'

describe('routes', () => {
  const check = (path: string, hash: string, expected: Route) => expect(parseRoute(path, hash)).toEqual(expected)
  test('every page has its address', () => {
    check('/', '', { page: 'home' })
    check('/signin', '#token=sl_abc', { page: 'signin', token: 'sl_abc' })
    check('/signin', '', { page: 'signin', token: null })
    check('/pipeline', '', { page: 'pipeline' })
    check('/pipeline/', '', { page: 'pipeline' })
    check(`/p/${ID}`, '#token=s_x', { page: 'plan', planId: ID, token: 's_x' })
    check(`/p/${ID.toUpperCase()}`, '', { page: 'plan', planId: ID, token: null })
    check(`/p/${ID}/audit`, '#token=b_y', { page: 'audit', planId: ID, token: 'b_y' })
    check(`/p/${ID}/audit`, '', { page: 'audit', planId: ID, token: null })
    check(`/p/${ID}`, '#steps', { page: 'plan', planId: ID, token: null })
    check('/p/not-a-plan', '#token=x', { page: 'unknown' })
    check('/elsewhere', '', { page: 'unknown' })
  })
  test('a plan path keeps the credential it came with', () => {
    expect(planPath(ID, 'b_y', true)).toBe(`/p/${ID}/audit#token=b_y`)
    expect(planPath(ID, null)).toBe(`/p/${ID}`)
  })
  test('sign-in goes on to a local path only', () => {
    expect(localNext('/pipeline')).toBe('/pipeline')
    for (const bad of [null, 'https://evil.example', '//evil.example', '/\\evil.example', 'pipeline']) expect(localNext(bad)).toBe('/')
  })
  test('sign-in never goes off-site, however the browser reads the address', () => {
    const origin = 'https://mapline.example'
    expect(localNext(`/p/${ID}/audit?x=1#steps`, origin)).toBe(`/p/${ID}/audit?x=1#steps`)
    // A browser drops tabs and newlines from an address: `/\t/x` would be `//x`, another host.
    // `%09` arrives decoded (`URLSearchParams`), so it is a tab here too.
    const decoded = new URLSearchParams('next=%2F%09%2Fevil.example').get('next')
    for (const bad of ['/\t/evil.example', '/\n/evil.example', '/\r/evil.example', decoded, '/x\u0000', '//evil.example', '/\\evil.example', '/\\/evil.example', 'https://evil.example', 'https:evil.example', ' /x']) {
      expect(localNext(bad, origin), JSON.stringify(bad)).toBe('/')
    }
    // Whatever is let through resolves to this origin, path and all.
    expect(localNext('/a/../pipeline', origin)).toBe('/pipeline')
  })
})

describe('credentials', () => {
  test('a share link sends its bearer token; a member sends the cookie, and the CSRF token on writes only', () => {
    setCsrfToken('csrf-1')
    expect(credentialOf('s_x', 'POST').headers).toEqual({ authorization: 'Bearer s_x' })
    expect(credentialOf(null, 'GET')).toEqual({ headers: {}, credentials: 'same-origin' })
    expect(credentialOf(null, 'POST')).toEqual({ headers: { 'x-csrf-token': 'csrf-1' }, credentials: 'same-origin' })
    expect(credentialOf(null, 'DELETE').headers).toEqual({ 'x-csrf-token': 'csrf-1' })
    setCsrfToken(null)
    expect(credentialOf(null, 'POST').headers).toEqual({})
  })
  test('only a missing route reads as "not available"', () => {
    expect(notAvailable(new ApiFailure(404, 'not_found', ''))).toBe(true)
    expect(notAvailable(new ApiFailure(404, 'plan_not_found', ''))).toBe(false)
    expect(notAvailable(new ApiFailure(500, 'internal', ''))).toBe(false)
    expect(notAvailable(new Error('offline'))).toBe(false)
  })
  test('a refused sign-in link says why', () => {
    expect(signInProblem('sign_in_link_used')).toMatch(/already used/)
    expect(signInProblem('sign_in_link_expired')).toMatch(/expired/)
    expect(signInProblem('sign_in_link_invalid')).toMatch(/not valid/)
    expect(signInProblem('whatever')).toMatch(/did not work/)
  })
})

const buyer: Who = { kind: 'share', shareId: 'sh-dev', label: 'Dev Patel (champion)', side: 'buyer' }
const seller: Who = { kind: 'member', memberId: 'm-ana', name: 'Ana Seller', email: 'ana@mapline.example', side: 'seller' }
const system: Who = { kind: 'system' }
const change = (entity: string, entityId: string | null, field: string | null, kind = 'updated', old: unknown = null, next: unknown = null): HistoryChange => ({ entity, entityId, field, kind, old, new: next })
const FEED: HistoryEntry[] = [
  { seq: 1, at: '2026-11-01T10:00:00Z', who: system, changes: [change('meta', null, 'title', 'updated', null, 'Rollout'), change('milestones', 'ms-a', null, 'created', null, { title: 'Security review' })] },
  { seq: 3, at: '2026-11-02T10:00:00Z', who: buyer, changes: [change('milestones', 'ms-a', 'due', 'updated', '2027-01-15', '2027-02-01'), change('milestones', 'ms-a', 'slipReason', 'updated', null, 'Out')] },
  { seq: 4, at: '2026-11-03T10:00:00Z', who: seller, changes: [change('milestones', 'ms-b', 'status', 'updated', 'not_started', 'done'), change('meta', null, 'goLive', 'updated', '2027-04-01', '2027-04-15')] },
  { seq: 7, at: '2026-11-04T10:00:00Z', who: buyer, changes: [change('milestones', 'ms-a', 'title', 'updated', 'Security review', 'Security and privacy review'), change('milestones', 'ms-c', null, 'deleted', { title: 'Old' }, null)] }
]

describe('the audit feed', () => {
  const check = (filter: Partial<FeedFilter>, expected: Array<[number, number]>) =>
    expect(filterFeed(FEED, { ...NO_FILTER, ...filter }).map(e => [e.seq, e.changes.length])).toEqual(expected)
  test('without a filter it is the history, newest first, whole', () => check({}, [[7, 2], [4, 2], [3, 2], [1, 2]]))
  test('by person', () => check({ person: 'member:m-ana' }, [[4, 2]]))
  test('by side', () => check({ side: 'buyer' }, [[7, 2], [3, 2]]))
  test('by kind: date moves, status, text, entries added or removed', () => {
    check({ kind: 'date' }, [[4, 1], [3, 1]])
    check({ kind: 'status' }, [[4, 1]])
    check({ kind: 'text' }, [[7, 1], [3, 1], [1, 1]])
    check({ kind: 'entries' }, [[7, 1], [1, 1]])
    check({ kind: 'access' }, [])
  })
  test('by step, and filters together', () => {
    check({ step: 'ms-a' }, [[7, 1], [3, 2], [1, 1]])
    check({ step: 'ms-a', kind: 'date', side: 'buyer' }, [[3, 1]])
    check({ step: 'ms-a', side: 'seller' }, [])
  })
  test('kinds of changes', () => {
    expect(changeKind(change('shares', 'sh-1', null, 'created'))).toBe('access')
    expect(changeKind(change('meta', null, 'goLive'))).toBe('date')
    expect(changeKind(change('milestones', 'ms-a', 'due', 'conflict'))).toBe('date')
  })
  test('people and steps named in it', () => {
    expect(people(FEED).map(p => p.name)).toEqual(['Ana Seller', 'Dev Patel (champion)', 'Mapline'])
    expect(steps(FEED)).toEqual([{ id: 'ms-c', title: 'ms-c' }, { id: 'ms-b', title: 'ms-b' }, { id: 'ms-a', title: 'Security and privacy review' }].sort((a, b) => a.title.localeCompare(b.title)))
    expect(personName({ kind: 'admin' })).toBe('Admin')
  })
})

describe('moments and reviews', () => {
  test('the slider moves over the log positions of the history, oldest first', () => {
    expect(positions(FEED)).toEqual([1, 3, 4, 7])
  })
  test('changes between two moments: after the first, up to and including the second, either order', () => {
    expect(between(FEED, 1, 4).map(e => e.seq)).toEqual([4, 3])
    expect(between(FEED, 4, 1).map(e => e.seq)).toEqual([4, 3])
    expect(between(FEED, 4, 4)).toEqual([])
  })
  test('since my last review: exactly the entries after the mark', () => {
    expect(sinceReview(FEED, 3).map(e => e.seq)).toEqual([7, 4])
    expect(sinceReview(FEED, 7)).toEqual([])
    expect(sinceReview(FEED, null).map(e => e.seq)).toEqual([7, 4, 3, 1])
  })
})

const slip = (seq: number, fields: Partial<Slip>): Slip => ({ seq, subject: 'milestone', from: null, to: null, days: null, reason: null, who: buyer, at: `2026-11-0${seq}T00:00:00Z`, ...fields })

describe('slip analytics', () => {
  test('per step, per side, go-live drift over time, slips without a reason', () => {
    const a = slipAnalytics([
      slip(5, { subject: 'go_live', from: '2027-04-15', to: '2027-05-01', days: 16, reason: 'Budget', who: seller }),
      slip(2, { milestoneId: 'ms-a', title: 'Security', from: '2027-01-15', to: '2027-02-01', days: 17, reason: 'Out' }),
      slip(3, { milestoneId: 'ms-a', title: 'Security review', from: '2027-02-01', to: '2027-02-08', days: 7 }),
      slip(4, { subject: 'go_live', from: '2027-04-01', to: '2027-04-15', days: 14, reason: 'Legal', who: seller }),
      slip(6, { milestoneId: 'ms-b', title: 'Contract', from: '2027-03-01', to: null, days: null, reason: '  ', who: system })
    ])
    expect(a.total).toBe(5)
    expect(a.perStep).toEqual([{ milestoneId: 'ms-a', title: 'Security review', count: 2, days: 24 }, { milestoneId: 'ms-b', title: 'Contract', count: 1, days: 0 }])
    expect(a.perSide).toEqual({ buyer: 2, seller: 2, other: 1 })
    expect(a.drift.map(d => [d.seq, d.goLive, d.driftDays])).toEqual([[4, '2027-04-15', 14], [5, '2027-05-01', 30]])
    expect(a.withoutReason.map(s => s.seq)).toEqual([6, 3])
  })
  test('moves that did not hold count nowhere: not in all, per side, per step, nor in the go-live drift; they are listed apart', () => {
    const held = [
      slip(2, { milestoneId: 'ms-a', title: 'Security', from: '2027-01-15', to: '2027-02-01', days: 17, reason: 'Out', kept: true }),
      slip(4, { subject: 'go_live', from: '2027-04-01', to: '2027-04-15', days: 14, reason: 'Legal', who: seller })
    ]
    const lost = [
      slip(3, { milestoneId: 'ms-a', title: 'Security', from: '2027-02-01', to: '2027-03-01', days: 28, kept: false }),
      // The first go-live move lost: the drift starts from the first move that held.
      slip(1, { subject: 'go_live', from: '2027-03-01', to: '2027-03-20', days: 19, who: seller, kept: false }),
      slip(5, { milestoneId: 'ms-b', title: 'Contract', from: '2027-03-01', to: '2027-03-08', days: 7, who: seller, kept: false })
    ]
    const a = slipAnalytics([...held, ...lost])
    expect(a.total).toBe(2)
    expect(a.perSide).toEqual({ buyer: 1, seller: 1, other: 0 })
    expect(a.perStep).toEqual([{ milestoneId: 'ms-a', title: 'Security', count: 1, days: 17 }])
    expect(a.drift.map(d => [d.seq, d.goLive, d.driftDays])).toEqual([[4, '2027-04-15', 14]])
    expect(a.withoutReason).toEqual([])
    expect(a.lost.map(s => s.seq)).toEqual([5, 3, 1])
  })
  test('no slips: nothing to count', () => {
    expect(slipAnalytics([])).toEqual({ total: 0, perStep: [], perSide: { buyer: 0, seller: 0, other: 0 }, drift: [], withoutReason: [], lost: [] })
  })
})

const summary = (id: string, fields: Partial<Summary>): Summary => ({
  id, title: id, buyerOrg: null, sellerOrg: null, goLive: null, owner: null, health: 'on_track', healthWords: '', overdue: 0, atRisk: 0,
  openSteps: 0, openStepsWithoutBuyerOwner: 0, goLiveDriftDays: null, slips: { buyer: 0, seller: 0, last14Days: 0 },
  lastBuyerActivityAt: null, lastSellerActivityAt: null, buyerQuietDays: null, ...fields
})
const PLANS = [
  summary('a', { title: 'Northwind', buyerOrg: 'Northwind Health', goLive: '2027-04-01', health: 'at_risk', overdue: 2, buyerQuietDays: 12, lastBuyerActivityAt: 'x', slips: { buyer: 3, seller: 1, last14Days: 2 }, goLiveDriftDays: 14 }),
  summary('b', { title: 'Contoso', buyerOrg: 'Contoso', goLive: '2027-02-01', health: 'off_track', overdue: 5, buyerQuietDays: 1, lastBuyerActivityAt: 'x', openStepsWithoutBuyerOwner: 2, goLiveDriftDays: -3 }),
  summary('c', { title: 'Fabrikam', owner: { id: 'm1', name: 'Ana Seller' }, health: 'done' })
]

describe('home and pipeline tables', () => {
  const check = (key: SortKey, desc: boolean, expected: string[]) => expect(sortPlans(PLANS, key, desc).map(s => s.id)).toEqual(expected)
  test('sorting: by each column, rows without a value last', () => {
    check('title', false, ['b', 'c', 'a'])
    check('goLive', false, ['b', 'a', 'c'])
    check('goLive', true, ['a', 'b', 'c'])
    check('health', false, ['b', 'a', 'c'])
    check('overdue', true, ['b', 'a', 'c'])
    check('quiet', true, ['a', 'b', 'c'])
    check('drift', true, ['a', 'b', 'c'])
    check('slips', true, ['a', 'b', 'c'])
  })
  test('filtering by words, health, quiet buyers, steps without a buyer owner', () => {
    const ids = (f: Partial<typeof ALL_PLANS>) => filterPlans(PLANS, { ...ALL_PLANS, ...f }).map(s => s.id)
    expect(ids({})).toEqual(['a', 'b', 'c'])
    expect(ids({ text: 'north' })).toEqual(['a'])
    expect(ids({ text: 'ana' })).toEqual(['c'])
    expect(ids({ health: 'off_track' })).toEqual(['b'])
    expect(ids({ quietOnly: true })).toEqual(['a', 'c'])
    expect(ids({ noBuyerOwnerOnly: true })).toEqual(['b'])
    expect(pipelineTotals(PLANS)).toEqual({ plans: 3, offTrack: 1, atRisk: 1, quiet: 2, noBuyerOwner: 1, slipsBuyer: 3, slipsSeller: 1 })
  })
  test('the buyer’s silence and drift in words', () => {
    expect(quietWords(12)).toBe('gone quiet for 12 days')
    expect(quietWords(7)).toBe('gone quiet for 7 days')
    expect(quietWords(3)).toBe('active 3 days ago')
    expect(quietWords(1)).toBe('active yesterday')
    expect(quietWords(0)).toBe('active today')
    expect(quietWords(null)).toBe('no buyer activity yet')
    expect(isQuiet(PLANS[1])).toBe(false)
    expect(driftWords(14)).toBe('14 days later')
    expect(driftWords(-1)).toBe('1 day earlier')
    expect(driftWords(0)).toBe('held')
  })
  test('a buyer who never edited has no activity yet, counted from the plan’s creation, never "gone quiet"', () => {
    expect(buyerActivityWords({ lastBuyerActivityAt: null, buyerQuietDays: 12 })).toBe('no buyer activity yet (12 days)')
    expect(buyerActivityWords({ lastBuyerActivityAt: null, buyerQuietDays: 1 })).toBe('no buyer activity yet (1 day)')
    expect(buyerActivityWords({ lastBuyerActivityAt: null, buyerQuietDays: null })).toBe('no buyer activity yet')
    expect(buyerActivityWords({ lastBuyerActivityAt: null, buyerQuietDays: 0 })).toBe('no buyer activity yet')
    expect(buyerActivityWords({ lastBuyerActivityAt: '2026-11-01T10:00:00Z', buyerQuietDays: 12 })).toBe('gone quiet for 12 days')
    expect(buyerActivityWords({ lastBuyerActivityAt: '2026-11-01T10:00:00Z', buyerQuietDays: 0 })).toBe('active today')
  })
  test('the health cell says the server’s words once, not the verdict twice', () => {
    expect(healthCellWords({ health: 'at_risk', healthWords: 'At risk: 1 step overdue' })).toBe('At risk: 1 step overdue')
    expect(healthCellWords({ health: 'on_track', healthWords: 'On track' })).toBe('On track')
    expect(healthCellWords({ health: 'off_track', healthWords: '' })).toBe('Off track')
  })
})

describe('inviting the buyer', () => {
  test('the email names the plan, what they can do and the link, signed by the seller', () => {
    const m = inviteEmail({ name: 'Dev Patel', email: 'dev@northwind.example', role: 'editor', url: 'https://m.example/p/x#token=b_1', planTitle: 'Northwind rollout', goLive: '2027-04-01', from: 'Ana Seller', sellerOrg: 'Mapline Inc' }, 'en-US')
    expect(m.subject).toBe('Our shared plan: Northwind rollout')
    expect(m.body).toContain('Hi Dev,')
    expect(m.body).toContain('go-live on 04/01/2027')
    expect(m.body).toContain('see and update')
    expect(m.body).toContain('\nhttps://m.example/p/x#token=b_1\n')
    expect(m.body.endsWith('Ana Seller, Mapline Inc')).toBe(true)
    const viewer = inviteEmail({ name: '', email: '', role: 'viewer', url: 'u', planTitle: 'P', goLive: null, from: 'Ana', sellerOrg: null }, 'en-GB')
    expect(viewer.body).toContain('Hi there,')
    expect(viewer.body).toContain('You can see the steps')
    expect(mailto('dev@northwind.example', m)).toMatch(/^mailto:dev%40northwind\.example\?subject=Our%20shared%20plan/)
    expect(inviteLabel(' Dev Patel ', 'dev@x.example')).toBe('Dev Patel <dev@x.example>')
    expect(inviteLabel('Dev Patel', '')).toBe('Dev Patel')
  })
})

describe('the internal document', () => {
  test('the forecast reads what is of the right shape and nothing else', () => {
    const doc = new Y.Doc()
    const f = doc.getMap<unknown>('forecast')
    expect(readForecast(f)).toEqual({ category: null, amount: null, closeDate: null })
    f.set('category', 'commit'); f.set('amount', 250000); f.set('closeDate', '2027-03-31')
    expect(readForecast(f)).toEqual({ category: 'commit', amount: 250000, closeDate: '2027-03-31' })
    f.set('amount', '250000'); f.set('closeDate', 'end of Q1')
    expect(readForecast(f)).toEqual({ category: 'commit', amount: null, closeDate: null })
  })
  test('amounts as typed (en-US)', () => {
    expect(parseAmount('250,000', 'en-US')).toBe(250000)
    expect(parseAmount('250000', 'en-US')).toBe(250000)
    expect(parseAmount('$ 1 200.50', 'en-US')).toBe(1200.5)
    expect(parseAmount('1,234,567.8', 'en-US')).toBe(1234567.8)
    for (const bad of ['', 'lots', '-5', '1.234', '250.000', '1,2', '12,34,567']) expect(parseAmount(bad, 'en-US'), bad).toBeNull()
  })
  test('amounts in the locale the page shows them in: de-DE reads 250.000 as 250000, not 250', () => {
    expect(parseAmount('250.000', 'de-DE')).toBe(250000)
    expect(parseAmount('1.234,5', 'de-DE')).toBe(1234.5)
    expect(parseAmount('250,50 €', 'de-DE')).toBe(250.5)
    expect(parseAmount('250000', 'de-DE')).toBe(250000)
    // Another locale's decimal point is refused, not taken for grouping.
    for (const bad of ['250000.50', '120,000', '1.2']) expect(parseAmount(bad, 'de-DE'), bad).toBeNull()
    // What the page shows reads back as the same amount, in either locale.
    for (const locale of ['de-DE', 'en-US', 'fr-FR', 'de-CH']) {
      for (const n of [250000, 1234.5, 0.25, 7]) expect(parseAmount(formatAmount(n, locale), locale), `${locale} ${n}`).toBe(n)
    }
  })
})

describe('access in the audit feed (from the link list)', () => {
  const share = (id: string, more: Partial<ListedShare>): ListedShare => ({
    id, side: 'buyer', role: 'editor', label: id, createdAt: null, expiresAt: null, revokedAt: null, status: 'active',
    firstSeenAt: null, lastSeenAt: null, opens: 0, parentId: null, mintedBy: null, mintedByMember: null, ...more
  })
  const LINKS: ListedShare[] = [
    share('sh-first', { side: 'seller', label: 'Seller team', createdAt: '2026-11-01T10:00:00Z' }),
    share('sh-dev', { label: 'Dev Patel (champion)', createdAt: '2026-11-02T09:00:00Z', mintedBy: 'Ana Seller', mintedByMember: 'm-ana', revokedAt: '2026-11-03T12:00:00Z', status: 'revoked' }),
    share('sh-cfo', { label: 'Kim Lee (CFO)', role: 'viewer', createdAt: '2026-11-02T11:00:00Z', parentId: 'sh-dev', mintedBy: 'Dev Patel (champion)', expiresAt: '2026-11-04T12:00:00Z', status: 'expired' }),
    share('sh-later', { label: 'Later', createdAt: '2026-11-05T00:00:00Z', expiresAt: '2026-12-31T00:00:00Z' })
  ]
  const NOW = new Date('2026-11-10T00:00:00Z')
  const events = accessEvents(LINKS, NOW)
  test('each link: created (by whom), revoked, expired once past; newest first', () => {
    expect(events.map(e => [e.key, e.at])).toEqual([
      ['sh-later:created', '2026-11-05T00:00:00Z'],
      ['sh-cfo:expired', '2026-11-04T12:00:00Z'],
      ['sh-dev:revoked', '2026-11-03T12:00:00Z'],
      ['sh-cfo:created', '2026-11-02T11:00:00Z'],
      ['sh-dev:created', '2026-11-02T09:00:00Z'],
      ['sh-first:created', '2026-11-01T10:00:00Z']
    ])
    const words = Object.fromEntries(events.map(e => [e.key, e.words]))
    expect(words['sh-dev:created']).toBe('Link for Dev Patel (champion) (buyer, editor) created by Ana Seller')
    expect(words['sh-dev:revoked']).toBe('Link for Dev Patel (champion) (buyer, editor) revoked')
    expect(words['sh-cfo:created']).toBe('Link for Kim Lee (CFO) (buyer, viewer) created by Dev Patel (champion)')
    expect(words['sh-cfo:expired']).toBe('Link for Kim Lee (CFO) (buyer, viewer) expired')
    expect(words['sh-first:created']).toBe('Link for Seller team (seller, editor) created with the plan or by the admin')
    // Its expiry not passed yet: no event.
    expect(events.some(e => e.key === 'sh-later:expired')).toBe(false)
    expect(accessEvents(LINKS, new Date('2027-01-01T00:00:00Z')).some(e => e.key === 'sh-later:expired')).toBe(true)
  })
  test('the makers on record: a member (seller), a link (its side)', () => {
    const by = Object.fromEntries(events.map(e => [e.key, e.by]))
    expect(by['sh-dev:created']).toEqual({ key: 'member:m-ana', side: 'seller' })
    expect(by['sh-cfo:created']).toEqual({ key: 'share:sh-dev', side: 'buyer' })
    expect(by['sh-first:created']).toBe(null)
    expect(by['sh-dev:revoked']).toBe(null)
    expect(accessPeople(LINKS)).toEqual([{ key: 'member:m-ana', name: 'Ana Seller' }, { key: 'share:sh-dev', name: 'Dev Patel (champion)' }])
  })
  test('filters: kind access or none, never a step; a person or side only where the maker is on record', () => {
    const keys = (filter: Partial<FeedFilter>) => filterAccess(events, { ...NO_FILTER, ...filter }).map(e => e.key)
    expect(keys({})).toHaveLength(6)
    expect(keys({ kind: 'access' })).toHaveLength(6)
    expect(keys({ kind: 'date' })).toEqual([])
    expect(keys({ step: 'ms-a' })).toEqual([])
    expect(keys({ person: 'member:m-ana' })).toEqual(['sh-dev:created'])
    expect(keys({ side: 'buyer' })).toEqual(['sh-cfo:created'])
    expect(keys({ side: 'seller', kind: 'access' })).toEqual(['sh-dev:created'])
  })
  test('merged with the history by time, newest first; the log keeps its own order', () => {
    const merged = mergeFeed(filterFeed(FEED, NO_FILTER), events)
    expect(merged.map(i => i.type === 'change' ? `#${i.entry.seq}` : i.event.key)).toEqual([
      'sh-later:created', 'sh-cfo:expired', '#7', 'sh-dev:revoked', '#4', 'sh-cfo:created', '#3', 'sh-dev:created', '#1', 'sh-first:created'
    ])
    // An entry whose clock went back stays in log order; an event of the same moment goes after it.
    const skewed: HistoryEntry[] = [{ ...FEED[3], at: '2026-11-01T00:00:00Z' }, FEED[2]]
    const at = (key: string, when: string) => ({ ...events[0], key, at: when })
    expect(mergeFeed(skewed, [at('x', '2026-11-03T10:00:00Z'), at('y', '2026-11-02T00:00:00Z')]).map(i => i.type === 'change' ? `#${i.entry.seq}` : i.event.key))
      .toEqual(['x', 'y', '#7', '#4'])
    expect(mergeFeed([], events).length).toBe(events.length)
    expect(mergeFeed(FEED.slice(0, 1), []).map(i => i.type)).toEqual(['change'])
  })
})

describe('a member named in the history', () => {
  test('by name everywhere: the feed, date changes, conflict banners', () => {
    expect(personName(seller)).toBe('Ana Seller')
    expect(personWithSide(seller)).toBe('Ana Seller (seller)')
    expect(personWithSide(buyer)).toBe('Dev Patel (champion) (buyer)')
    expect(personWithSide({ kind: 'admin' })).toBe('Admin')
    expect(whoName(seller)).toBe('Ana Seller')
    expect(whoName({ kind: 'member', memberId: 'm-x', email: 'x@mapline.example' })).toBe('x@mapline.example')
    expect(conflictWords({ key: 'k', entity: 'meta', entityId: null, field: 'goLive', kept: { value: '2027-04-01', who: buyer, at: '2026-11-02T10:00:00Z' }, lost: { value: '2027-05-01', who: seller, at: '2026-11-01T10:00:00Z' } } as unknown as Conflict, 'en-GB'))
      .toBe('Ana Seller set 01/05/2027; 01/04/2027, set offline by Dev Patel (champion), was kept')
  })
})

describe('a member’s plan page ends when the session does', () => {
  test('a share link ends as before', () => {
    expect(endOfRefusal(false, 401, 'share_revoked')).toBe('revoked')
    expect(endOfRefusal(false, 401, 'session_revoked')).toBe(null)
    expect(endOfClose(false, 'this share link has expired')).toBe('expired')
  })
  test('a member: signed out on a 401 about the session or a 4401 close; no access when taken off the plan', () => {
    expect(endOfRefusal(true, 401, 'session_revoked')).toBe('signed_out')
    expect(endOfRefusal(true, 401, 'session_expired')).toBe('signed_out')
    expect(endOfRefusal(true, 401, 'not_signed_in')).toBe('signed_out')
    expect(endOfRefusal(true, 403, 'not_a_plan_member')).toBe('no_access')
    expect(endOfRefusal(true, 404, 'plan_not_found')).toBe('no_access')
    // Answers that say nothing about the session keep the copy.
    expect(endOfRefusal(true, 404, 'http_error')).toBe(null)
    expect(endOfRefusal(true, 403, 'csrf')).toBe(null)
    expect(endOfRefusal(true, 500, 'internal')).toBe(null)
    expect(endOfClose(true, 'signed out')).toBe('signed_out')
  })
})

describe('the seller team', () => {
  const owner = { member: { id: 'm-rita', email: 'rita@x.example', name: 'Rita Rep', role: 'rep' as const }, role: 'owner' as const, addedAt: null }
  const colleague = { member: { id: 'm-raj', email: 'raj@x.example', name: 'Raj Rep', role: 'rep' as const }, role: 'seller' as const, addedAt: null }
  const me = (kind: Me['kind'], member?: Me['member'], side: Me['side'] = 'seller'): Me => ({ planId: 'p', kind, member, label: '', side, role: 'editor', canEdit: true, canManageShares: true, canMintSides: [] })
  test('the owner, managers, admins and the admin credential manage it; a colleague or a link does not', () => {
    expect(canManageTeam(me('member', owner.member), [owner, colleague])).toBe(true)
    expect(canManageTeam(me('member', colleague.member), [owner, colleague])).toBe(false)
    expect(canManageTeam(me('member', { ...colleague.member, role: 'manager' }), [owner])).toBe(true)
    expect(canManageTeam(me('admin', undefined, null), [])).toBe(true)
    expect(canManageTeam(me('share'), [owner])).toBe(false)
  })
  test('refusals in words', () => {
    expect(teamProblem('member_not_found', 'kim@x.example')).toMatch(/No one on the seller team has the email kim@x.example.*invite them first/)
    expect(teamProblem('owner_only')).toMatch(/Only the plan’s owner, a manager or an admin/)
    expect(teamProblem('invalid_email')).toMatch(/not an email/)
    expect(teamProblem('owner_not_removable')).toMatch(/owner stays/)
  })
})

/** `fetch` answering from a function of the request; the requests are kept. */
function fakeFetch (answer: (url: URL, init: RequestInit) => unknown): Array<{ url: URL, init: RequestInit }> {
  const requests: Array<{ url: URL, init: RequestInit }> = []
  vi.stubGlobal('fetch', async (input: string, init: RequestInit) => {
    const url = new URL(input, 'http://mapline.test')
    requests.push({ url, init })
    return new Response(JSON.stringify(answer(url, init)), { status: 200, headers: { 'content-type': 'application/json' } })
  })
  return requests
}

describe('the audit page’s requests', () => {
  afterEach(() => { vi.unstubAllGlobals() })
  /** A history of `total` entries (seq 1..total) served as the server pages it: newest first,
   * `nextBefore` set on a full page. */
  const serve = (total: number) => (url: URL) => {
    const limit = Number(url.searchParams.get('limit'))
    const before = url.searchParams.has('before') ? Number(url.searchParams.get('before')) : total + 1
    const entries = []
    for (let seq = before - 1; seq >= 1 && entries.length < limit; seq--) entries.push({ seq, at: '', who: system, changes: [] })
    return { entries, nextBefore: entries.length === limit ? entries[entries.length - 1].seq : null }
  }
  test('history past the page’s limit says older entries exist, and goes on from there', async () => {
    const requests = fakeFetch(serve(1200))
    const api = new Api('p1', 's_x')
    const first = await api.historyFrom(null, 600)
    expect(first.entries.map(e => e.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => 1200 - i))
    expect(first.nextBefore).toBe(201)
    const rest = await api.historyFrom(first.nextBefore, 600)
    expect(rest.entries.map(e => e.seq)).toEqual(Array.from({ length: 200 }, (_, i) => 200 - i))
    expect(rest.nextBefore).toBe(null)
    expect(requests.map(r => r.url.search)).toEqual(['?limit=500', '?limit=500&before=701', '?limit=500&before=201'])
  })
  test('a history within the limit is whole', async () => {
    fakeFetch(serve(30))
    const all = await new Api('p1', 's_x').historyFrom()
    expect(all.entries).toHaveLength(30)
    expect(all.nextBefore).toBe(null)
  })
  test('"Mark reviewed" sends the newest change the page showed', async () => {
    const requests = fakeFetch(() => ({ seq: 7, at: '2026-11-01T00:00:00Z' }))
    const api = new Api('p1', 's_x')
    await api.markReviewed(7)
    await api.markReviewed()
    expect(requests.map(r => [r.init.method, r.url.pathname, r.init.body])).toEqual([
      ['POST', '/api/plans/p1/reviews', JSON.stringify({ seq: 7 })],
      ['POST', '/api/plans/p1/reviews', '{}']
    ])
  })
})
