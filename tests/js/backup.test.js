// Backup and restore: a consistent copy taken from the running server while clients write,
// restored into a new data file that verifies and serves the plan; and every way it can be
// asked wrongly refused without touching anything.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  ADMIN_TOKEN, binary, startServer, tempData, createPlan, client, synced, destroy, waitFor, Y
} from './lib/harness.js'

function mapline (args, env = {}) {
  return spawnSync(binary, args, { encoding: 'utf8', env: { ...process.env, MAPLINE_ADMIN_TOKEN: '', ...env } })
}

test('a backup taken while clients write restores into a file that verifies and serves the plan', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const plan = await createPlan(server, { template: 'enterprise' })
  const writer = client(server, plan.id, plan.seller)
  await synced(writer)
  for (let i = 0; i < 200; i++) writer.map('objectives').set(`before-${i}`, new Y.Map([['text', `goal ${i}`]]))
  const reader = client(server, plan.id, plan.buyer)
  await waitFor(() => reader.map('objectives').size === 200, { what: 'the edits before the backup to be shown' })

  // Keep writing while the backup runs.
  let writing = true
  let after = 0
  const busy = (async () => {
    while (writing) {
      writer.map('objectives').set(`during-${after++}`, new Y.Map([['text', 'during']]))
      await new Promise(resolve => setImmediate(resolve))
    }
  })()
  const backupFile = join(data.dir, 'backup.redb')
  const made = await new Promise(resolve => {
    // Asynchronously, so the writer keeps running.
    const child = spawn(binary, ['backup', backupFile, '--server', server.url], { env: { ...process.env, MAPLINE_ADMIN_TOKEN: ADMIN_TOKEN } })
    let out = ''
    child.stdout.on('data', c => { out += c })
    child.stderr.on('data', c => { out += c })
    child.on('exit', code => resolve({ code, out }))
  })
  writing = false
  await busy
  assert.equal(made.code, 0, made.out)
  assert.match(made.out, /no problem found/)
  assert.match(made.out, /backup written to/)
  assert.ok(after > 0, 'edits went on during the backup')
  destroy(writer, reader)
  await server.stop()

  // Restore into a fresh data file and serve it.
  const restored = join(data.dir, 'restored', 'mapline.redb')
  const restore = mapline(['restore', backupFile, '--data', restored])
  assert.equal(restore.status, 0, restore.stdout + restore.stderr)
  const verify = mapline(['verify', '--data', restored])
  assert.equal(verify.status, 0, verify.stdout + verify.stderr)
  const again = await startServer({ dataFile: restored })
  const check = client(again, plan.id, plan.buyer)
  await synced(check)
  const keys = [...check.map('objectives').keys()]
  assert.equal(keys.filter(k => k.startsWith('before-')).length, 200, 'everything shown before the backup started')
  assert.equal(check.map('milestones').size, 17, 'the template plan')
  const history = await fetch(`${again.url}/api/plans/${plan.id}/history?limit=1`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  assert.equal(history.status, 200)
  assert.equal((await history.json()).entries.length, 1, 'the derived history came along')
  destroy(check)
  await again.stop()
  data.cleanup()
})

test('backup and restore refuse what they cannot do, and change nothing', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  await createPlan(server)
  try {
    const out = join(data.dir, 'b.redb')
    const noToken = mapline(['backup', out, '--server', server.url])
    assert.deepEqual([noToken.status, noToken.stderr.trim()], [2, 'error: --server needs the admin token (--admin-token or MAPLINE_ADMIN_TOKEN)'])
    const wrongToken = mapline(['backup', out, '--server', server.url], { MAPLINE_ADMIN_TOKEN: 'wrong-token-0123456789' })
    assert.equal(wrongToken.status, 2)
    assert.match(wrongToken.stderr, /refused the backup \(401/)
    const noSource = mapline(['backup', out])
    assert.equal(noSource.status, 2)
    assert.match(noSource.stderr, /say where to back up from/)
    const busy = mapline(['backup', out, '--data', data.file])
    assert.equal(busy.status, 2)
    assert.match(busy.stderr, /server still running/)
    const down = mapline(['backup', out, '--server', 'http://127.0.0.1:9'], { MAPLINE_ADMIN_TOKEN: ADMIN_TOKEN })
    assert.equal(down.status, 2)
    assert.match(down.stderr, /cannot reach/)
    assert.equal(existsSync(out), false, 'no refused backup left a file')

    // A share token is not an admin token.
    const shareOnly = await fetch(`${server.url}/api/admin/backup`, { headers: { authorization: 'Bearer s_nope' } })
    assert.equal(shareOnly.status, 401)

    // A backup never overwrites a file.
    writeFileSync(out, 'precious')
    const overwrite = mapline(['backup', out, '--server', server.url], { MAPLINE_ADMIN_TOKEN: ADMIN_TOKEN })
    assert.equal(overwrite.status, 2)
    assert.match(overwrite.stderr, /already exists/)
    assert.equal(readFileSync(out, 'utf8'), 'precious')

    // Restoring garbage, or over a file the server holds, changes nothing.
    const garbage = mapline(['restore', out, '--data', data.file])
    assert.equal(garbage.status, 2)
    assert.match(garbage.stderr, /is not a Mapline data file/)
    const good = join(data.dir, 'good.redb')
    assert.equal(mapline(['backup', good, '--server', server.url], { MAPLINE_ADMIN_TOKEN: ADMIN_TOKEN }).status, 0)
    const overRunning = mapline(['restore', good, '--data', data.file])
    assert.equal(overRunning.status, 2)
    assert.match(overRunning.stderr, /server still running/)
    const missing = mapline(['restore', join(data.dir, 'none.redb'), '--data', data.file])
    assert.deepEqual([missing.status, missing.stderr.trim()], [2, `error: no backup at ${join(data.dir, 'none.redb')}`])
    assert.equal((await fetch(`${server.url}/api/plans`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 200, 'the server is undisturbed')
  } finally {
    await server.stop()
    data.cleanup()
  }
})
