// The coplay demo end to end in a real browser: Mosquitto (TCP + WebSockets listeners), the real
// gateway, the demo server, headless Debian Chromium. Two player pages (binary and JSON frames)
// send 600 frames each at 60 Hz over MQTT-over-WebSockets; the host page must count all of them,
// none lost, none out of order. Its figures and a screenshot go to the test output folder.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import {
  launchBrowser, openPage, outputDir, repoRoot, saveArtifact, startDemo, startWebServer, tempDir, TEST_SECRET,
} from './harness.mjs';

const FRAMES = 600;
const ROOM = 'web-room';
const JOIN_DEADLINE_MS = 15000;
// 600 frames at 60 Hz take 10 s; a loaded 2-core machine gets twice that.
const FRAMES_DEADLINE_MS = 30000;

async function failWithLogs(page, what, log, fn) {
  try {
    return await fn();
  } catch (e) {
    const state = await page.evaluate(() => JSON.stringify(window.coplayStats || window.coplayPlayer)).catch(() => '?');
    throw new Error(`${what}: ${e.message}\npage state: ${state}\nconsole:\n${log.join('\n')}`);
  }
}

test('coplay web: 600 frames from each player page reach the host page, none lost or out of order', async (t) => {
  const { web, browser, log } = await startDemo(t);

  const host = await openPage(browser, `${web.base}/host.html?room=${ROOM}&uid=host`, log);
  await failWithLogs(host, 'the host page joining', log, () =>
    host.waitForFunction(() => window.coplayStats.joined || window.coplayStats.error, null, { timeout: JOIN_DEADLINE_MS }));
  assert.equal(await host.evaluate(() => window.coplayStats.error), null);

  // The players wait for their start button, so that the host has subscribed to them before
  // their first frame (frames sent before that are not the host's to count).
  const players = [];
  for (const [uid, format] of [['p1', 'binary'], ['p2', 'json']]) {
    const page = await openPage(browser,
      `${web.base}/player.html?room=${ROOM}&uid=${uid}&frames=${FRAMES}&format=${format}&auto=1&start=button`, log);
    await failWithLogs(page, `player ${uid} joining`, log, () =>
      page.waitForFunction(() => window.coplayPlayer.ready || window.coplayPlayer.error, null, { timeout: JOIN_DEADLINE_MS }));
    assert.equal(await page.evaluate(() => window.coplayPlayer.error), null);
    players.push({ uid, format, page });
  }
  await failWithLogs(host, 'the host subscribing to both players', log, () =>
    host.waitForFunction(() => ['p1', 'p2'].every((u) => window.coplayStats.subscribed.includes(u)), null,
      { timeout: JOIN_DEADLINE_MS }));

  const started = Date.now();
  for (const p of players) await p.page.click('#start');
  // A picture while the frames flow (the README's), from a one-second window well inside the run.
  const LIVE_AT = FRAMES / 2;
  await failWithLogs(host, 'the host counting frames', log, () =>
    host.waitForFunction((n) => ['p1', 'p2'].every((u) => window.coplayStats.players[u]?.received >= n), LIVE_AT,
      { timeout: FRAMES_DEADLINE_MS, polling: 50 }));
  const live = saveArtifact('coplay-web-host-live.png', await host.screenshot({ fullPage: true }));
  for (const p of players) {
    await failWithLogs(p.page, `player ${p.uid} sending ${FRAMES} frames`, log, () =>
      p.page.waitForFunction(() => window.coplayPlayer.done && window.coplayPlayer.queued === 0, null,
        { timeout: FRAMES_DEADLINE_MS }));
    const counters = await p.page.evaluate(() => window.coplayPlayer);
    assert.equal(counters.dropped, 0);
    assert.equal(counters.sent, FRAMES);
    assert.equal(counters.failed, 0);
    assert.equal(counters.state, 'connected');
  }
  saveArtifact('coplay-web-player.png', await players[0].page.screenshot());
  // Every frame counted, then one more one-second window closed so that the figures are final.
  await failWithLogs(host, `the host counting ${FRAMES} frames of each player`, log, () =>
    host.waitForFunction((n) => ['p1', 'p2'].every((u) => window.coplayStats.players[u]?.received === n), FRAMES,
      { timeout: FRAMES_DEADLINE_MS }));
  const ticks = await host.evaluate(() => window.coplayStats.ticks);
  await host.waitForFunction((n) => window.coplayStats.ticks > n, ticks, { timeout: 5000 });
  const tookMs = Date.now() - started;

  const stats = await host.evaluate(() => window.coplayStats);
  for (const p of players) {
    const s = stats.players[p.uid];
    assert.equal(s.received, FRAMES, p.uid);
    assert.equal(s.lost, 0, p.uid);
    assert.equal(s.outOfOrder, 0, p.uid);
    assert.equal(s.duplicates, 0, p.uid);
    assert.equal(s.firstSeq, 0, p.uid);
    assert.equal(s.lastSeq, FRAMES - 1, p.uid);
    assert.equal(s.format, p.format, p.uid);
    assert.ok(s.totalP50Ms !== null && s.totalP99Ms >= s.totalP50Ms, p.uid);
    // The table shows the same figures (data- attributes of the player's row).
    const row = await host.$eval(`#players tr[data-uid="${p.uid}"]`, (tr) => ({ ...tr.dataset }));
    assert.equal(row.received, String(FRAMES));
    assert.equal(row.lost, '0');
    assert.equal(row.outOfOrder, '0');
  }
  assert.equal(stats.badFrames, 0);
  const figures = players.map((p) => {
    const s = stats.players[p.uid];
    return `${p.uid} (${p.format}): ${s.peakFps} fps at most, received ${s.received}, lost ${s.lost}, out of order ${s.outOfOrder}, ` +
      `latency p50 ${s.totalP50Ms} ms, p99 ${s.totalP99Ms} ms, max ${s.maxMs} ms`;
  });
  console.log(`# ${FRAMES} frames per player over WebSockets in ${(tookMs / 1000).toFixed(1)} s:\n# ${figures.join('\n# ')}`);
  saveArtifact('coplay-web-host.json', JSON.stringify({ tookMs, players: stats.players }, null, 2));
  const shot = saveArtifact('coplay-web-host.png', await host.screenshot({ fullPage: true }));
  console.log(`# screenshots: ${shot} (the end), ${live} (during the run), in ${outputDir}`);
  // RTM_UPDATE_SCREENSHOT=1: refresh the README's picture (during the run) from this run.
  if (process.env.RTM_UPDATE_SCREENSHOT === '1') {
    mkdirSync(path.join(repoRoot, 'docs', 'images'), { recursive: true });
    copyFileSync(live, path.join(repoRoot, 'docs', 'images', 'coplay-web-host.png'));
  }
});

test('coplay web: keyboard and gamepad input reach the host page, and the pages renew their tokens', async (t) => {
  // Tokens of 60 s warned about 58 s before expiry: the pages renew theirs within seconds.
  const { web, browser, log } = await startDemo(t, { gateway: { authYaml: '  token_warn_before_s: 58' } });
  const host = await openPage(browser, `${web.base}/host.html?room=${ROOM}&uid=host&ttl=60`, log);
  await host.waitForFunction(() => window.coplayStats.joined || window.coplayStats.error, null, { timeout: JOIN_DEADLINE_MS });
  // A gamepad the test holds: navigator.getGamepads() answers window.testPad once it is set.
  const page = await browser.newPage();
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  await page.addInitScript(() => {
    navigator.getGamepads = () => (window.testPad ? [window.testPad] : []);
  });
  await page.goto(`${web.base}/player.html?room=${ROOM}&uid=p3&ttl=60&start=button`);
  await page.waitForFunction(() => window.coplayPlayer.ready || window.coplayPlayer.error, null, { timeout: JOIN_DEADLINE_MS });
  assert.equal(await page.evaluate(() => window.coplayPlayer.error), null);
  await host.waitForFunction(() => window.coplayStats.subscribed.includes('p3'), null, { timeout: JOIN_DEADLINE_MS });
  await page.click('#start');
  const hostSees = (buttons, axes, what) => failWithLogs(host, what, log, () =>
    host.waitForFunction(({ b, a }) => {
      const p = window.coplayStats.players.p3;
      return p && p.buttons === b && a.every((v, i) => p.axes[i] === v);
    }, { b: buttons, a: axes }, { timeout: JOIN_DEADLINE_MS }));

  await hostSees(0, [0, 0, 0, 0], 'the host seeing p3 at rest');
  // Keyboard: right arrow and W move the left stick right and up, Space is A, E is Y.
  for (const key of ['ArrowRight', 'w', ' ', 'e']) await page.keyboard.down(key);
  await hostSees(0x1 | 0x8, [32767, -32767, 0, 0], 'the host seeing the keys held on p3');
  for (const key of ['ArrowRight', 'w', ' ', 'e']) await page.keyboard.up(key);
  await hostSees(0, [0, 0, 0, 0], 'the host seeing p3 at rest again');

  // Gamepad (standard mapping): button 1 is B, button 9 Start; axes are the two sticks.
  await page.evaluate(() => {
    const buttons = Array.from({ length: 17 }, (_, i) => ({ pressed: i === 1 || i === 9, value: 0 }));
    window.testPad = { id: 'test pad', connected: true, buttons, axes: [0.5, -1, 0.02, 1] };
  });
  await hostSees((1 << 1) | (1 << 9), [16384, -32767, 0, 32767], 'the host seeing the gamepad of p3');
  assert.match(await page.evaluate(() => window.coplayPlayer.input), /gamepad: test pad/);

  // Both pages renewed their 60 s tokens on the gateway's warning, and p3 still sends.
  await failWithLogs(page, 'token renewals', log, async () => {
    await page.waitForFunction(() => window.coplayPlayer.tokenRenewals.count > 0 || window.coplayPlayer.tokenRenewals.error,
      null, { timeout: JOIN_DEADLINE_MS });
    await host.waitForFunction(() => window.coplayStats.tokenRenewals.count > 0 || window.coplayStats.tokenRenewals.error,
      null, { timeout: JOIN_DEADLINE_MS });
  });
  assert.equal(await page.evaluate(() => window.coplayPlayer.tokenRenewals.error), null);
  assert.equal(await host.evaluate(() => window.coplayStats.tokenRenewals.error), null);
  const before = await host.evaluate(() => window.coplayStats.players.p3.received);
  await host.waitForFunction((n) => window.coplayStats.players.p3.received > n + 30, before, { timeout: JOIN_DEADLINE_MS });
  const s = await host.evaluate(() => window.coplayStats.players.p3);
  assert.equal(s.lost, 0);
  assert.equal(s.outOfOrder, 0);
  assert.equal(await page.evaluate(() => window.coplayPlayer.state), 'connected');
});

test('coplay web: without a broker WebSockets URL the pages say how to start one', async (t) => {
  const dir = tempDir(t);
  const config = path.join(dir, 'gateway.yaml');
  writeFileSync(config, `topics:\n  prefix: rtm\nauth:\n  token_secret: ${TEST_SECRET}\n`);
  const web = await startWebServer(t, dir, { brokerWs: '', config });
  assert.match(web.process.output, /broker: +none yet\. .*RTM_WS_PORT=auto \.\/scripts\/run\.sh/);
  const browser = await launchBrowser(t);
  const log = [];
  for (const page of ['host.html', 'player.html']) {
    const p = await openPage(browser, `${web.base}/${page}?room=${ROOM}&uid=u1`, log);
    await p.waitForFunction(() => (window.coplayStats || window.coplayPlayer).error, null, { timeout: JOIN_DEADLINE_MS });
    assert.match(await p.textContent('#message'), /RTM_WS_PORT=auto \.\/scripts\/run\.sh/, page);
    assert.equal(await p.textContent('#state'), 'failed', page);
  }
});
