// The OpenAPI document (/api/openapi.json): generated from the route definitions, valid enough
// to read, and every operation it describes is a route the server really serves.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, tempData, createPlan, api } from './lib/harness.js'

let data, server
before(async () => { data = tempData(); server = await startServer({ dataFile: data.file }) })
after(async () => { await server.stop(); data.cleanup() })

test('the document describes the API, its bearer scheme and every operation the server serves', async () => {
  const response = await fetch(`${server.url}/api/openapi.json`)
  assert.equal(response.status, 200)
  const doc = await response.json()
  assert.match(doc.openapi, /^3\.1\./)
  assert.equal(doc.info.title, 'Mapline')
  assert.deepEqual(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer' })
  assert.ok(doc.components.schemas.ErrorBody, 'the error shape is described')

  const plan = await createPlan(server)
  const share = plan.shares[1].id
  const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item).filter(m => ['get', 'post', 'put', 'delete', 'patch'].includes(m)).map(method => [method, path]))
  const expected = [
    ['get', '/api/plans'], ['post', '/api/plans'], ['get', '/api/plans/{plan_id}'], ['get', '/api/plans/{plan_id}/slips'],
    ['get', '/api/plans/{plan_id}/history'], ['get', '/api/plans/{plan_id}/health'], ['get', '/api/plans/{plan_id}/me'],
    ['get', '/api/plans/{plan_id}/deleted'], ['post', '/api/plans/{plan_id}/restore'],
    ['get', '/api/plans/{plan_id}/shares'], ['post', '/api/plans/{plan_id}/shares'], ['delete', '/api/plans/{plan_id}/shares/{share_id}'],
    ['get', '/api/plans/{plan_id}/shares/{share_id}/revocation'],
    ['get', '/api/plans/{plan_id}/calendar.ics'], ['get', '/api/plans/{plan_id}/export.json'], ['get', '/api/plans/{plan_id}/export.md'],
    ['get', '/api/plans/{plan_id}/export.csv'], ['post', '/api/plans/import'], ['get', '/api/plans.csv'],
    ['get', '/api/plans/{plan_id}/verify'], ['get', '/api/plans/{plan_id}/audit.json'], ['get', '/api/templates'], ['get', '/api/admin/backup'],
    ['get', '/sync/{plan_id}'], ['get', '/sync/{plan_id}/internal'], ['get', '/healthz'], ['get', '/metrics'],
    ['get', '/api/webhooks'], ['post', '/api/webhooks'], ['delete', '/api/webhooks/{id}'], ['get', '/api/webhooks/{id}/deliveries'],
    ['get', '/api/auth/config'], ['get', '/api/session'], ['post', '/api/auth/sign-in-link'], ['post', '/api/auth/logout'],
    ['post', '/api/auth/logout-everywhere'], ['get', '/api/members'], ['post', '/api/members'],
    ['get', '/api/members/{member_id}/sessions'], ['delete', '/api/members/{member_id}/sessions'],
    ['get', '/api/plans/{plan_id}/members'], ['post', '/api/plans/{plan_id}/members'],
    ['delete', '/api/plans/{plan_id}/members/{member_id}'], ['post', '/api/members/{member_id}/sign-in-link'],
    ['post', '/api/members/{member_id}/disable'],
    ['post', '/api/plans/{plan_id}/reviews'], ['get', '/api/plans/{plan_id}/reviews/last'], ['get', '/auth/oidc/login'], ['get', '/auth/oidc/callback']
  ]
  assert.deepEqual(operations.map(o => o.join(' ')).sort(), expected.map(o => o.join(' ')).sort())
  for (const [method, path] of operations) {
    const operation = doc.paths[path][method]
    assert.ok(operation.responses && Object.keys(operation.responses).length > 0, `${method} ${path} has responses`)
    for (const name of path.match(/\{(\w+)\}/g) ?? []) {
      assert.ok(operation.parameters?.some(p => `{${p.name}}` === name && p.in === 'path'), `${method} ${path} describes ${name}`)
    }
    // Served: never the catch-all's 404 or a 405. (The sign-in pages answer HTML with a code:
    // without OIDC configured, 404 `oidc_unavailable`.)
    const url = path.replace('{plan_id}', plan.id).replace('{share_id}', share).replace('{id}', '01900000-0000-7000-8000-000000000000')
    const got = await api(server, method.toUpperCase(), url, method === 'post' ? { body: {} } : {})
    const code = typeof got.body === 'string' ? got.body.match(/<p id="error-code">([^<]*)</)?.[1] : got.body?.error?.code
    assert.ok(got.status !== 405 && !(got.status === 404 && ['not_found', undefined].includes(code)),
      `${method} ${path} is served (${got.status} ${JSON.stringify(got.body).slice(0, 80)})`)
  }
  // The calendar feed says which token opens it: a feed token, not a share link's.
  const feedToken = doc.paths['/api/plans/{plan_id}/calendar.ics'].get.parameters.find(p => p.name === 'token')
  assert.match(feedToken.description, /calendarUrl/)
  assert.match(feedToken.description, /feed_token_required/)
  assert.match(doc.paths['/api/plans/{plan_id}/me'].get.responses['200'].description, /calendarUrl/)
  // Routes without a credential say so.
  for (const path of ['/healthz', '/metrics', '/api/templates', '/api/auth/config', '/auth/oidc/login', '/auth/oidc/callback']) assert.deepEqual(doc.paths[path].get.security, [{}], path)
})
