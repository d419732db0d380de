// Webhooks cannot be aimed at the server itself, the cloud metadata service or the network behind
// it (SSRF): refused at subscription (422, nothing stored) and again at every delivery (the
// refusal in the delivery log, nothing sent). Redirects are never followed.
// --webhooks-allow-private opens loopback and private addresses for receivers inside the
// deployment's own network, and nothing else.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { startServer, tempData, createPlan, api, waitFor } from './lib/harness.js'

const OWN_NETWORK = ['--webhooks-allow-private']

/** A local HTTP receiver; `answer(req, res)` decides the reply (204 by default). */
async function receiver (answer = (_req, res) => res.writeHead(204).end()) {
  const got = []
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => { got.push({ method: req.method, url: req.url, headers: req.headers }); answer(req, res) })
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = server.address().port
  return {
    got,
    port,
    url: (path = '/hook') => `http://127.0.0.1:${port}${path}`,
    stop: () => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) })
  }
}

const deliveries = async (server, id) => (await api(server, 'GET', `/api/webhooks/${id}/deliveries`)).body.deliveries

/** Makes an event for every subscription: revoking one of the plan's links. */
async function revokeALink (server, plan) {
  const revoked = await api(server, 'DELETE', `/api/plans/${plan.id}/shares/${plan.shares[1].id}`)
  assert.equal(revoked.status, 200)
}

test('every URL that points inside is refused at subscription with 422 and nothing is stored', async (t) => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file })
  const own = new URL(server.url).port
  try {
    // Kept: a public-looking name that does not resolve here is checked again at delivery.
    const kept = await api(server, 'POST', '/api/webhooks', { body: { url: 'https://hooks.example.invalid/in' } })
    assert.equal(kept.status, 201)
    const before = (await api(server, 'GET', '/api/webhooks')).body

    const refused = 'url_not_allowed'
    const malformed = 'invalid_field'
    const cases = [
      [`http://127.0.0.1:${own}/metrics`, refused, /127\.0\.0\.1 is a loopback address/],
      [`http://127.0.0.2:${own}/`, refused, /loopback/],
      ['http://169.254.169.254/latest/meta-data/iam/security-credentials/', refused, /169\.254\.169\.254 is a link-local address/],
      [`http://[::1]:${own}/metrics`, refused, /::1 is a loopback address/],
      [`http://localhost:${own}/metrics`, refused, /localhost resolves to a loopback address (127\.0\.0\.1|::1)/],
      [`http://2130706433:${own}/metrics`, refused, /127\.0\.0\.1 is a loopback address/],
      [`http://0x7f.1:${own}/`, refused, /127\.0\.0\.1 is a loopback address/],
      [`http://0177.0.0.1:${own}/`, refused, /127\.0\.0\.1 is a loopback address/],
      [`http://0x7f000001:${own}/`, refused, /127\.0\.0\.1 is a loopback address/],
      [`http://0.0.0.0:${own}/`, refused, /0\.0\.0\.0 is an unspecified address/],
      [`http://[::]:${own}/`, refused, /unspecified/],
      [`http://[::ffff:127.0.0.1]:${own}/`, refused, /loopback/],
      ['http://[::ffff:169.254.169.254]/', refused, /link-local/],
      ['http://10.0.0.5/hook', refused, /10\.0\.0\.5 is a private address/],
      ['http://172.16.3.4/hook', refused, /private/],
      ['http://192.168.1.10/hook', refused, /private/],
      ['http://100.64.0.1/hook', refused, /carrier-grade NAT/],
      ['http://[fd00::1]/hook', refused, /private/],
      ['http://[fe80::1]/hook', refused, /link-local/],
      ['http://224.0.0.1/hook', refused, /multicast/],
      ['http://255.255.255.255/hook', refused, /broadcast/],
      ['http://192.0.2.1/hook', refused, /documentation/],
      ['http://user:secret@example.com/hook', refused, /credentials/],
      ['http://', malformed, /not a URL/],
      ['http://:80/hook', malformed, /not a URL/],
      ['http://example.com/hook\r\nX-Injected: 1', malformed, /whitespace or control characters/],
      ['http://example.com/a hook', malformed, /whitespace or control characters/],
      ['ftp://example.com/hook', malformed, /only http and https/],
      ['file:///etc/passwd', malformed, /only http and https/],
      ['javascript:alert(1)', malformed, /only http and https/],
      ['/relative/hook', malformed, /not a URL/]
    ]
    t.diagnostic(`ssrf: ${cases.length} cases`)
    for (const [url, code, message] of cases) {
      const got = await api(server, 'POST', '/api/webhooks', { body: { url } })
      assert.deepEqual([got.status, got.body?.error?.code], [422, code], JSON.stringify(url))
      assert.match(got.body.error.message, message, JSON.stringify(url))
    }
    assert.deepEqual((await api(server, 'GET', '/api/webhooks')).body, before, 'nothing was stored')
  } finally {
    await server.stop()
    data.cleanup()
  }
})

test('the default server refuses loopback receivers at subscription and at delivery', async () => {
  const data = tempData()
  const hook = await receiver()
  // The environment variable is the flag's other spelling.
  let server = await startServer({ dataFile: data.file, env: { MAPLINE_WEBHOOKS_ALLOW_PRIVATE: 'true' } })
  try {
    const plan = await createPlan(server)
    // Subscribed while the own network was allowed …
    const made = await api(server, 'POST', '/api/webhooks', { body: { url: hook.url() } })
    assert.equal(made.status, 201)
    await server.stop()

    // … and delivered by a server that does not allow it: the attempt is refused and logged.
    server = await startServer({ dataFile: data.file })
    for (const url of [hook.url(), `http://localhost:${hook.port}/hook`]) {
      const got = await api(server, 'POST', '/api/webhooks', { body: { url } })
      assert.deepEqual([got.status, got.body?.error?.code], [422, 'url_not_allowed'], url)
    }
    await revokeALink(server, plan)
    const log = await waitFor(async () => {
      const log = await deliveries(server, made.body.id)
      return log.length > 0 && log
    }, { what: 'the refused attempt in the log' })
    assert.deepEqual([log[0].status, log[0].outcome], [null, 'retrying'])
    assert.equal(log[0].error, 'refused: 127.0.0.1 is a loopback address')
    assert.deepEqual(hook.got, [], 'nothing reached the receiver')
  } finally {
    await server.stop()
    await hook.stop()
    data.cleanup()
  }
})

test('with --webhooks-allow-private loopback receivers are delivered to, but redirects are not followed and metadata stays refused', async () => {
  const data = tempData()
  const server = await startServer({ dataFile: data.file, args: OWN_NETWORK })
  const target = await receiver()
  const redirecting = await receiver((_req, res) => res.writeHead(302, { location: target.url('/stolen') }).end())
  const toItself = await receiver((_req, res) => res.writeHead(307, { location: `${server.url}/healthz` }).end())
  const direct = await receiver()
  try {
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://[fe80::1]/', `http://0.0.0.0:${direct.port}/`, 'http://user:pw@127.0.0.1/']) {
      const got = await api(server, 'POST', '/api/webhooks', { body: { url } })
      assert.deepEqual([got.status, got.body?.error?.code], [422, 'url_not_allowed'], url)
    }
    const plan = await createPlan(server)
    const hooks = {}
    for (const [name, r] of Object.entries({ redirecting, toItself, direct })) {
      const made = await api(server, 'POST', '/api/webhooks', { body: { url: r.url() } })
      assert.equal(made.status, 201, name)
      hooks[name] = made.body.id
    }
    // Stored as normalised by the URL parser.
    const numeric = await api(server, 'POST', '/api/webhooks', { body: { url: `http://2130706433:${direct.port}/hook` } })
    assert.equal(numeric.body.url, direct.url())
    await api(server, 'DELETE', `/api/webhooks/${numeric.body.id}`)

    await revokeALink(server, plan)
    const attempted = id => waitFor(async () => {
      const log = await deliveries(server, id)
      return log.length > 0 && log[0]
    }, { what: 'an attempt in the log' })
    const first = await attempted(hooks.redirecting)
    assert.deepEqual([first.status, first.outcome], [302, 'retrying'], 'a 3xx is a failed delivery')
    assert.equal(first.error, `redirect (302 to ${target.url('/stolen')}) not followed`)
    assert.equal(redirecting.got.length, 1)
    assert.deepEqual(target.got, [], 'the redirect target never got a request')
    const second = await attempted(hooks.toItself)
    assert.deepEqual([second.status, second.outcome], [307, 'retrying'])
    assert.match(second.error, /not followed/)
    const delivered = await attempted(hooks.direct)
    assert.deepEqual([delivered.status, delivered.outcome], [204, 'delivered'])
    assert.equal(direct.got.length, 1)
    assert.equal(direct.got[0].headers.host, `127.0.0.1:${direct.port}`)
  } finally {
    await server.stop()
    for (const r of [target, redirecting, toItself, direct]) await r.stop()
    data.cleanup()
  }
})
