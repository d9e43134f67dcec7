// The SDK in a real browser (Debian's headless chromium): a page loads dist/index.js through
// an import map that maps 'mqtt' to MQTT.js's own browser bundle (node_modules/mqtt/dist/
// mqtt.esm.js), as a web app does without a bundler, then two clients of the page log in
// over ws://, join, publish text and bytes, and a third one (Node, over mqtt://) checks
// what the page published. The page posts its findings back to the test's HTTP server.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Events, Setup, text, tokenFor, uniqueId } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const chromium = ['chromium', 'chromium-browser'].find((b) => spawnSync('which', [b]).status === 0);

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8">
<script type="importmap">{"imports":{"mqtt":"/mqtt/mqtt.esm.js","@rtm-mqtt-gateway/sdk":"/sdk/index.js"}}</script>
</head><body>
<script type="module">
const params = new URLSearchParams(location.search);
const report = (body) => fetch('/result', { method: 'POST', body: JSON.stringify(body) });
try {
  const { RtmClient, ConnectionState, RtmError } = await import('@rtm-mqtt-gateway/sdk');
  const url = params.get('broker');
  const channel = params.get('channel');
  const host = new RtmClient({ brokerUrl: url, uid: params.get('hostUid'), token: params.get('hostToken') });
  const player = new RtmClient({ brokerUrl: url, uid: params.get('playerUid'), token: params.get('playerToken') });
  const states = [];
  host.on('connectionState', (e) => states.push(e.state));
  const got = [];
  const allArrived = new Promise((resolve) => host.on('message', (m) => {
    got.push(Array.from(m.payload));
    if (got.length === 3) resolve();
  }));
  await host.login();
  await player.login();
  const hostRoom = host.streamChannel(channel);
  await hostRoom.join();
  const playerRoom = player.streamChannel(channel);
  await playerRoom.join();
  await playerRoom.joinTopic('input');
  await hostRoom.subscribeTopic('input', [player.uid]);
  await playerRoom.publishTopic('input', 'a');
  await playerRoom.publishTopic('input', new Uint8Array([0, 200, 255]));
  await playerRoom.publishTopic('input', 'c', { qos: 1 });
  await allArrived;
  let notJoined = null;
  try { await host.streamChannel('elsewhere').leave(); } catch (e) { notJoined = e instanceof RtmError ? e.codeName : String(e); }
  const t0 = performance.now();
  for (let i = 0; i < 20; i++) await host.request('ping');
  const pingMs = (performance.now() - t0) / 20;
  await playerRoom.publishTopic('input', 'for-node'); // read by the Node client
  await report({ ok: true, states, got, notJoined, connected: host.state === ConnectionState.CONNECTED, pingMs });
  await host.close();
  await player.close();
} catch (e) {
  await report({ ok: false, error: String(e && e.stack || e) });
}
</script></body></html>`;

let setup;
let server;
let serverPort;
let results;
before(async () => {
  setup = await Setup.start();
  results = [];
  const waiters = [];
  results.next = () => new Promise((resolve) => waiters.push(resolve));
  server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const send = (type, body) => {
      res.writeHead(200, { 'content-type': type });
      res.end(body);
    };
    if (url.pathname === '/page.html') return send('text/html', PAGE);
    if (url.pathname === '/mqtt/mqtt.esm.js') {
      return send('text/javascript', readFileSync(path.join(root, 'node_modules/mqtt/dist/mqtt.esm.js')));
    }
    if (url.pathname.startsWith('/sdk/') && /^[a-zA-Z]+\.js(\.map)?$/.test(url.pathname.slice(5))) {
      return send('text/javascript', readFileSync(path.join(root, 'dist', url.pathname.slice(5))));
    }
    if (url.pathname === '/result' && req.method === 'POST') {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        res.end('ok');
        const parsed = JSON.parse(body);
        const w = waiters.shift();
        if (w) w(parsed);
        else results.push(parsed);
      });
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  serverPort = server.address().port;
});
after(async () => {
  server?.close();
  await setup?.stop();
});

test('the dist loads in chromium through an import map and runs the RTM flow over ws://', { skip: !chromium && 'no chromium' }, async () => {
  const channel = uniqueId('web');
  const hostUid = uniqueId('web-host');
  const playerUid = uniqueId('web-player');
  // A Node client over mqtt:// in the same channel sees what the page publishes.
  const node = await setup.login(uniqueId('node'), 'tcp');
  const nodeRoom = node.streamChannel(channel);
  await nodeRoom.join();
  await nodeRoom.subscribeTopic('input', [playerUid]);
  const nodeMessages = new Events(node, 'message');

  const q = new URLSearchParams({
    broker: setup.broker.wsUrl,
    channel,
    hostUid,
    playerUid,
    hostToken: tokenFor(hostUid),
    playerToken: tokenFor(playerUid),
  });
  const profile = mkdtempSync(path.join(tmpdir(), 'rtm-js-chromium-'));
  const browser = spawn(
    chromium,
    [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-extensions',
      `--user-data-dir=${profile}`,
      `http://127.0.0.1:${serverPort}/page.html?${q}`,
    ],
    { stdio: 'ignore', detached: true }, // its own process group: its helpers go with it
  );
  const exited = new Promise((resolve) => browser.once('exit', resolve));
  try {
    let timer;
    const result = await Promise.race([
      results.next(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('no result from the page within 30 s')), 30000);
      }),
    ]).finally(() => clearTimeout(timer));
    assert.equal(result.ok, true, result.error);
    assert.equal(result.connected, true);
    assert.deepEqual(result.states, [2, 3], 'CONNECTING then CONNECTED');
    assert.deepEqual(result.got, [[97], [0, 200, 255], [99]], 'text, bytes and QoS 1, in order');
    assert.equal(result.notJoined, 'NOT_JOINED');
    console.log(`# browser request round trip over ws: mean ${result.pingMs.toFixed(2)} ms`);
    const m = await nodeMessages.find((x) => text(x.payload) === 'for-node', 10000, 'the page message in Node');
    assert.equal(m.publisher, playerUid);
  } finally {
    try {
      process.kill(-browser.pid, 'SIGKILL');
    } catch {
      // gone already
    }
    await exited;
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  }
});
