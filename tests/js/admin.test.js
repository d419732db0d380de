// CLI administration: `mapline plans|shares|compact`, on the data file with the server stopped
// and through the HTTP API while it runs, with --json for scripts and exit code 2 on errors.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ADMIN_TOKEN, binary, startServer, tempData, rawSocket } from './lib/harness.js'

function mapline (args, env = {}) {
  const run = spawnSync(binary, args, { encoding: 'utf8', env: { ...process.env, MAPLINE_ADMIN_TOKEN: '', ...env } })
  return { status: run.status, out: run.stdout, err: run.stderr, json: () => JSON.parse(run.stdout) }
}

test('on the data file (server stopped): create, list, show, export, import, links, compact', async () => {
  const data = tempData()
  const on = args => mapline([...args, '--data', data.file])
  const created = on(['plans', 'create', '--title', 'Acme, Inc rollout', '--buyer-org', 'Acme', '--seller-org', 'Mapline',
    '--go-live', '2027-05-01', '--template', 'mid-market', '--json'])
  assert.equal(created.status, 0, created.err)
  const plan = created.json()
  assert.equal(plan.shares.length, 2)
  assert.deepEqual(on(['plans', 'list', '--json']).json().map(p => [p.id, p.title]), [[plan.id, 'Acme, Inc rollout']])
  assert.match(on(['plans', 'show', plan.id]).out, /^# Acme, Inc rollout/)
  assert.equal(on(['plans', 'show', plan.id, '--json']).json().plan.milestones.length, 8)
  assert.equal(on(['plans', 'export', plan.id, '--format', 'csv']).out.split('\r\n').length, 1 + 8 + 1)

  const file = join(data.dir, 'export.json')
  assert.equal(on(['plans', 'export', plan.id, '--output', file]).status, 0)
  const imported = on(['plans', 'import', file, '--json'])
  assert.equal(imported.status, 0, imported.err)
  const copy = on(['plans', 'show', imported.json().id, '--json']).json()
  assert.deepEqual(copy.plan, JSON.parse(readFileSync(file, 'utf8')).plan, 'the import is the same plan')

  const link = on(['shares', 'create', plan.id, '--side', 'buyer', '--role', 'viewer', '--label', 'CFO', '--json']).json()
  assert.match(link.token, /^s_/)
  assert.equal(on(['shares', 'revoke', plan.id, link.id]).status, 0)
  const listed = on(['shares', 'list', plan.id, '--json']).json()
  assert.deepEqual(listed.map(s => s.status), ['active', 'active', 'revoked'])
  const compacted = on(['compact', '--json'])
  assert.equal(compacted.status, 0, compacted.err)
  assert.ok(compacted.json().bytesAfter <= compacted.json().bytesBefore)

  // Then the server serves what the commands made, and the revoked link stays revoked.
  const server = await startServer({ dataFile: data.file })
  const response = await fetch(`${server.url}/api/plans/${plan.id}`, { headers: { authorization: `Bearer ${link.token}` } })
  assert.equal(response.status, 401)
  assert.equal((await fetch(`${server.url}/api/plans/${plan.id}`, { headers: { authorization: `Bearer ${plan.shares[1].token}` } })).status, 200)
  await server.stop()
  data.cleanup()
})

test('through the running server: the same commands over HTTP; the file itself is refused', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const via = (args, env = { MAPLINE_ADMIN_TOKEN: ADMIN_TOKEN }) => mapline([...args, '--server', server.url], env)
  try {
    const plan = via(['plans', 'create', '--title', 'Live plan', '--buyer-org', 'B', '--seller-org', 'S', '--go-live', '2027-06-01', '--json']).json()
    assert.ok(via(['plans', 'list', '--json']).json().some(p => p.id === plan.id && p.health), 'the pipeline view, with health')
    const link = via(['shares', 'create', plan.id, '--side', 'buyer', '--role', 'editor', '--label', 'Dev', '--json']).json()
    const socket = rawSocket(server, plan.id, link.token)
    await socket.opened
    assert.equal(via(['shares', 'revoke', plan.id, link.id]).status, 0)
    assert.equal((await socket.closed).code, 4401, 'revoking through the server closes the link\'s socket')
    assert.match(via(['plans', 'export', plan.id, '--format', 'md']).out, /^# Live plan/)
    const file = join(data.dir, 'e.json')
    assert.equal(via(['plans', 'export', plan.id, '--output', file]).status, 0)
    assert.equal(via(['plans', 'import', file]).status, 0)
    assert.equal(via(['plans', 'list', '--json']).json().length, 2)

    // What cannot work is refused with exit code 2 and one line saying why.
    const cases = [
      [mapline(['plans', 'list', '--data', data.file]), /server running\? then pass --server URL/],
      [mapline(['compact', '--data', data.file]), /server running/],
      [via(['compact']), /stop the server and run it with --data/],
      [via(['plans', 'list'], {}), /--server needs the admin token/],
      [via(['plans', 'list'], { MAPLINE_ADMIN_TOKEN: 'wrong-token-0123456789' }), /the server refused: .*\(invalid_token\) \[401/],
      [via(['plans', 'show', 'not-an-id']), /"not-an-id" is not a plan id/],
      [via(['plans', 'show', '01900000-0000-7000-8000-000000000000']), /\(plan_not_found\) \[404/],
      [via(['plans', 'create', '--title', 'T', '--buyer-org', 'B', '--seller-org', 'S', '--go-live', '2027-02-30']), /\(invalid_field\) \[422/],
      [via(['plans', 'import', join(data.dir, 'none.json')]), /reading .*none\.json/],
      [mapline(['plans', 'list', '--server', 'http://127.0.0.1:9'], { MAPLINE_ADMIN_TOKEN: ADMIN_TOKEN }), /cannot reach/]
    ]
    for (const [run, message] of cases) {
      assert.equal(run.status, 2, run.err)
      assert.match(run.err, /^error: /)
      assert.match(run.err, message)
    }
  } finally {
    await server.stop()
    data.cleanup()
  }
})

test('shares list names who minted each link, and revoking on the file takes the links minted through it along', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const post = async (path, token, body) => {
    const response = await fetch(server.url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return response.json()
  }
  let plan, champion, cfo
  try {
    plan = await post('/api/plans', ADMIN_TOKEN, { title: 'Lineage', buyerOrg: 'B', sellerOrg: 'S', goLive: '2027-06-01' })
    champion = await post(`/api/plans/${plan.id}/shares`, plan.shares[0].token, { side: 'buyer', role: 'editor', label: 'Dev Patel (champion)' })
    cfo = await post(`/api/plans/${plan.id}/shares`, champion.token, { side: 'buyer', role: 'viewer', label: 'Ana Ruiz (CFO)' })
    assert.equal(cfo.parentId, champion.id)
    // Through the server too.
    const listed = mapline(['shares', 'list', plan.id, '--server', server.url], { MAPLINE_ADMIN_TOKEN: ADMIN_TOKEN })
    assert.match(listed.out, /Ana Ruiz \(CFO\) \(buyer viewer\)\s+active\s+opened 0×\s+minted by Dev Patel \(champion\)/)
  } finally {
    await server.stop()
  }
  const on = args => mapline([...args, '--data', data.file])
  const text = on(['shares', 'list', plan.id]).out
  assert.match(text, /Dev Patel \(champion\) \(buyer editor\)\s+active\s+opened 0×\s+minted by S team/)
  assert.match(text, /Ana Ruiz \(CFO\) \(buyer viewer\)\s+active\s+opened 0×\s+minted by Dev Patel \(champion\)/)
  assert.doesNotMatch(text.split('\n').find(l => l.includes('B team')), /minted by/, 'a default link has no parent')
  const revoked = on(['shares', 'revoke', plan.id, champion.id])
  assert.equal(revoked.status, 0, revoked.err)
  assert.match(revoked.out, /revoked, with 1 link\(s\) minted through it/)
  const after = on(['shares', 'list', plan.id, '--json']).json()
  assert.deepEqual(after.map(s => [s.label, s.status, s.mintedBy]), [
    ['S team', 'active', null], ['B team', 'active', null],
    ['Dev Patel (champion)', 'revoked', 'S team'], ['Ana Ruiz (CFO)', 'revoked', 'Dev Patel (champion)']])
  data.cleanup()
})
