// The pages over wss://: Mosquitto's WebSockets listener with a certificate (docs/security.md,
// "Mosquitto itself"), the demo server handing the pages the wss:// URL. The browser is told to
// accept the test's self-signed certificate; a real deployment has a trusted one.
import assert from 'node:assert/strict';
import test from 'node:test';
import { startDemo } from './harness.mjs';

const ROOM = 'room-wss';
const FRAMES = 120;
const DEADLINE_MS = 20000;

test('coplay web: host and player pages over wss://', async (t) => {
  const { broker, web, browser, log } = await startDemo(t, { broker: { tls: true } });
  assert.match(broker.wsUrl, /^wss:\/\//);
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const open = async (url) => {
    const page = await context.newPage();
    page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
    await page.goto(url);
    return page;
  };
  const host = await open(`${web.base}/host.html?room=${ROOM}&uid=host`);
  const fail = async (what, e) => assert.fail(`${what}: ${e.message}\n${JSON.stringify(await host.evaluate(() => window.coplayStats))}\n${log.join('\n')}`);
  await host.waitForFunction(() => window.coplayStats.joined || window.coplayStats.error, null, { timeout: DEADLINE_MS });
  assert.equal(await host.evaluate(() => window.coplayStats.error), null);
  const player = await open(`${web.base}/player.html?room=${ROOM}&uid=p1&frames=${FRAMES}&auto=1&start=button`);
  await player.waitForFunction(() => window.coplayPlayer.ready || window.coplayPlayer.error, null, { timeout: DEADLINE_MS });
  await host.waitForFunction(() => window.coplayStats.subscribed.includes('p1'), null, { timeout: DEADLINE_MS })
    .catch((e) => fail('the host subscribing', e));
  await player.click('#start');
  await host.waitForFunction((n) => window.coplayStats.players.p1?.received === n, FRAMES, { timeout: DEADLINE_MS })
    .catch((e) => fail(`the host counting ${FRAMES} frames`, e));
  const s = await host.evaluate(() => window.coplayStats.players.p1);
  assert.equal(s.lost, 0);
  assert.equal(s.outOfOrder, 0);
  console.log(`# wss://: ${s.received} frames, latency p50 ${s.totalP50Ms ?? '(next second)'} ms`);
});
