// The demo server on its own: no path leads outside the files it serves, and the token endpoint
// signs only what it should (uid, ttl, who asks, how often). Real server process, real gateway
// binary signing the tokens.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import test from 'node:test';
import { resolveStatic } from '../server.mjs';
import { startWebServer, tempDir, TEST_SECRET } from './harness.mjs';

const RATE_LIMIT = 8;

// A raw GET: the path goes out exactly as written (no client-side normalisation of '..').
function get(base, rawPath, headers = {}, method = 'GET') {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path: rawPath, method, headers }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

function decodeJwt(token) {
  const [header, payload, signature] = token.split('.');
  const expected = createHmac('sha256', TEST_SECRET).update(`${header}.${payload}`).digest('base64url');
  return {
    header: JSON.parse(Buffer.from(header, 'base64url')),
    claims: JSON.parse(Buffer.from(payload, 'base64url')),
    signed: signature === expected,
  };
}

async function startServer(t) {
  const dir = tempDir(t);
  const config = path.join(dir, 'config.yaml');
  writeFileSync(config, [
    'broker:',
    '  uri: tcp://127.0.0.1:1',
    '  username: gw-user',
    'topics:',
    '  prefix: rtm',
    'auth:',
    `  token_secret: ${TEST_SECRET}`,
    'ops:',
    '  uids: [ops, "admin"]',
    '',
  ].join('\n'));
  process.env.RTM_WEB_TOKENS_PER_MINUTE = String(RATE_LIMIT);
  const server = await startWebServer(t, dir, { brokerWs: '', config });
  delete process.env.RTM_WEB_TOKENS_PER_MINUTE;
  return { ...server, dir, config };
}

test('coplay web server: no path leaves the served folders', async (t) => {
  const { base } = await startServer(t);
  assert.equal((await get(base, '/host.html')).status, 200);
  assert.equal((await get(base, '/vendor/mqtt.esm.js')).status, 200);
  const index = await get(base, '/');
  assert.equal(index.status, 200);
  assert.match(index.headers['content-type'], /^text\/html/);
  const attempts = [
    '/../config.yaml', '/../../config.yaml', '/../../../../../../etc/passwd',
    '/%2e%2e/%2e%2e/config.yaml', '/%2e%2e%2f%2e%2e%2fconfig.yaml', '/..%2f..%2fconfig.yaml',
    '/.%2e/.%2e/config.yaml', '/%252e%252e/%252e%252e/config.yaml', '/..%5c..%5cconfig.yaml',
    '/sdk/../../config.yaml', '/sdk/..%2f..%2fconfig.yaml', '/sdk/%2e%2e/%2e%2e/config.yaml',
    '/vendor/..%2f..%2fserver.mjs', '/public/../server.mjs', '/..%2fserver.mjs', '/%2e%2e/server.mjs',
    '/host.html%00.png', '/%00', '//etc/passwd', '/%2fetc%2fpasswd', '/etc/passwd',
    '/.gitignore', '/%2egitignore', '/node_modules/mqtt/package.json', '/test/server.test.mjs',
    '/%', '/%zz', '/' + 'a/'.repeat(2000),
  ];
  for (const attempt of attempts) {
    const r = await get(base, attempt);
    assert.ok([400, 404, 503].includes(r.status), `${attempt}: status ${r.status}`);
    assert.doesNotMatch(r.body, /root:|token_secret|import http/, attempt);
  }
  assert.equal((await get(base, '/host.html', {}, 'POST')).status, 405);
  assert.equal((await get(base, '/host.html', {}, 'DELETE')).status, 405);
});

test('coplay web server: a symbolic link out of a served folder is not followed', async (t) => {
  const dir = tempDir(t);
  const publicDir = path.join(dir, 'public');
  mkdirSync(publicDir);
  writeFileSync(path.join(dir, 'secret.txt'), 'secret');
  writeFileSync(path.join(publicDir, 'page.html'), 'page');
  symlinkSync(path.join(dir, 'secret.txt'), path.join(publicDir, 'link.html'));
  symlinkSync(dir, path.join(publicDir, 'up'));
  const settings = { publicDir, sdkDist: path.join(dir, 'dist'), mqttBundle: null };
  assert.ok(await resolveStatic(settings, '/page.html'));
  assert.equal(await resolveStatic(settings, '/link.html'), null);
  assert.equal(await resolveStatic(settings, '/up/secret.txt'), null);
  assert.equal(await resolveStatic(settings, '/public/page.html'), null);
  assert.equal(await resolveStatic(settings, '/vendor/mqtt.esm.js'), null);
});

test('coplay web server: demo tokens are bounded', async (t) => {
  const { base } = await startServer(t);
  // Without a broker WebSockets URL the pages are told what to do.
  const settings = JSON.parse((await get(base, '/config.json')).body);
  assert.equal(settings.brokerUrl, null);
  assert.equal(settings.prefix, 'rtm');
  assert.match(settings.help, /RTM_WS_PORT=auto \.\/scripts\/run\.sh/);

  const ok = await get(base, '/token?uid=player_1-A');
  assert.equal(ok.status, 200, ok.body);
  const { token, ttl } = JSON.parse(ok.body);
  const jwt = decodeJwt(token);
  assert.ok(jwt.signed, 'signed with the config\'s auth.token_secret');
  assert.equal(jwt.header.alg, 'HS256');
  assert.equal(jwt.claims.sub, 'player_1-A');
  assert.equal(jwt.claims.exp - jwt.claims.iat, ttl);
  assert.ok(ttl <= 3600);
  const short = JSON.parse((await get(base, '/token?uid=p2&ttl=60')).body);
  const claims = decodeJwt(short.token).claims;
  assert.equal(claims.exp - claims.iat, 60);

  const refused = [
    ['/token', 400], ['/token?uid=', 400], ['/token?uid=a%20b', 400], ['/token?uid=a%2Fb', 400],
    ['/token?uid=a.b', 400], ['/token?uid=a%2Bb', 400], ['/token?uid=%23', 400], ['/token?uid=..%2Fx', 400],
    [`/token?uid=${'x'.repeat(65)}`, 400], ['/token?uid=%C3%A9', 400], ['/token?uid=a%00', 400],
    ['/token?uid=ops', 403], ['/token?uid=admin', 403], ['/token?uid=gw-user', 403], ['/token?uid=rtm-gateway', 403],
    ['/token?uid=p&ttl=59', 400], ['/token?uid=p&ttl=3601', 400], ['/token?uid=p&ttl=1.5', 400],
    ['/token?uid=p&ttl=abc', 400], ['/token?uid=p&ttl=-1', 400], ['/token?uid=p&ttl=99999999999', 400],
  ];
  for (const [url, status] of refused) {
    const r = await get(base, url);
    assert.equal(r.status, status, `${url}: ${r.body}`);
    assert.doesNotMatch(r.body, /eyJ/, url);
    assert.ok(JSON.parse(r.body).error, url);
  }
  // Only pages of this server, reached by its loopback name, get tokens.
  const port = new URL(base).port;
  for (const headers of [{ Host: 'evil.example' }, { Host: `evil.example:${port}` }, { Host: '127.0.0.1:1' },
    { Origin: 'http://evil.example' }, { Origin: `http://localhost:${Number(port) + 1}` },
    { 'Sec-Fetch-Site': 'cross-site' }, { 'Sec-Fetch-Site': 'same-site' }]) {
    const r = await get(base, '/token?uid=p3', headers);
    assert.equal(r.status, 403, `${JSON.stringify(headers)}: ${r.body}`);
  }
  assert.equal((await get(base, '/token?uid=p3', { Origin: base, 'Sec-Fetch-Site': 'same-origin' })).status, 200);
  assert.equal((await get(base, '/token?uid=p3', { Host: `localhost:${port}` })).status, 200);

  // A few tokens a minute (the test's server: RATE_LIMIT); then 429 until the bucket refills.
  let statuses = [];
  for (let i = 0; i < RATE_LIMIT + 2; i++) statuses.push((await get(base, `/token?uid=r${i}`)).status);
  assert.ok(statuses.includes(429), statuses.join(','));
  assert.ok(statuses.indexOf(429) <= RATE_LIMIT, statuses.join(','));
});

test('coplay web server: the pages name the files it serves', async (t) => {
  const { base } = await startServer(t);
  for (const page of ['host.html', 'player.html']) {
    const html = (await get(base, `/${page}`)).body;
    const map = JSON.parse(/<script type="importmap">([\s\S]*?)<\/script>/.exec(html)[1]).imports;
    assert.equal(map.mqtt, '/vendor/mqtt.js');
    assert.equal(map['@rtm-mqtt-gateway/sdk'], '/sdk/index.js');
    const shim = await get(base, map.mqtt);
    assert.equal(shim.status, 200);
    assert.match(shim.headers['content-type'], /^text\/javascript/);
  }
});
