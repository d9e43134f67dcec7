// The C++ players of examples/coplay on the web host page: coplay-player (the C++ SDK over TCP)
// sends binary and JSON frames, the host page (the JavaScript SDK over WebSockets) reads both
// with the same format, and their clocks agree (one machine): latency is small and positive.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import {
  openPage, Process, repoRoot, startDemo, TEST_SECRET,
} from './harness.mjs';

const ROOM = 'room-cpp';
const SECONDS = 3;
const DEADLINE_MS = 20000;
// Sanity bound for the median one-way latency on one machine: far above what is measured
// (about 1 ms), far below a clock that is off (seconds) or a unit mistake (x1000). On the
// median: a busy machine stretches the tail (a p99 of 330 ms was seen while another build ran),
// and latency targets belong to the benchmarks (group web).
const LATENCY_SANITY_MS = 100;
const playerBinary = process.env.RTM_COPLAY_PLAYER || path.join(repoRoot, 'build', 'examples', 'coplay', 'coplay-player');

test('coplay web: C++ coplay-players (binary and JSON frames) show up on the web host page', async (t) => {
  assert.ok(existsSync(playerBinary), `${playerBinary} is missing: build coplay-player (or set RTM_COPLAY_PLAYER)`);
  const { dir, broker, web, browser, log } = await startDemo(t);
  const host = await openPage(browser, `${web.base}/host.html?room=${ROOM}&uid=host`, log);
  await host.waitForFunction(() => window.coplayStats.joined || window.coplayStats.error, null, { timeout: DEADLINE_MS });
  assert.equal(await host.evaluate(() => window.coplayStats.error), null);

  const players = [['c1', 'binary'], ['c2', 'json']].map(([uid, format]) => ({
    uid,
    format,
    process: new Process(t, `coplay-player-${uid}`, playerBinary, ['--broker', broker.uri, '--secret', TEST_SECRET,
      '--uid', uid, '--room', ROOM, '--rate', '60', '--seconds', String(SECONDS), '--format', format], { logDir: dir }),
  }));
  for (const p of players) {
    const exit = await p.process.exitPromise;
    assert.equal(exit.code, 0, `${p.uid}: ${p.process.output}`);
    const sent = Number(/sent (\d+) frames/.exec(p.process.output)?.[1]);
    assert.ok(sent >= SECONDS * 60 * 0.9, `${p.uid} sent ${sent}`);
    // Every frame from the first one the host saw (the first few may cross before the host's
    // subscription does), up to the last one sent.
    await host.waitForFunction(({ u, n }) => window.coplayStats.players[u]?.lastSeq === n - 1, { u: p.uid, n: sent },
      { timeout: DEADLINE_MS }).catch(async (e) =>
      assert.fail(`${p.uid}: ${e.message}\n${JSON.stringify(await host.evaluate(() => window.coplayStats))}\n${log.join('\n')}`));
    p.sent = sent;
  }
  const ticks = await host.evaluate(() => window.coplayStats.ticks);
  await host.waitForFunction((n) => window.coplayStats.ticks > n, ticks, { timeout: 5000 });
  const stats = await host.evaluate(() => window.coplayStats);
  for (const p of players) {
    const s = stats.players[p.uid];
    assert.equal(s.format, p.format, p.uid);
    assert.equal(s.received, p.sent - s.firstSeq, p.uid);
    assert.ok(s.received >= p.sent / 2, `${p.uid}: received ${s.received} of ${p.sent}`);
    assert.equal(s.lost, 0, p.uid);
    assert.equal(s.outOfOrder, 0, p.uid);
    assert.ok(s.totalP50Ms > 0 && s.totalP50Ms < LATENCY_SANITY_MS, `${p.uid}: p50 ${s.totalP50Ms} ms, p99 ${s.totalP99Ms} ms`);
    console.log(`# ${p.uid} (C++, ${p.format}, TCP) -> web host: received ${s.received} of ${p.sent}, ` +
      `latency p50 ${s.totalP50Ms} ms, p99 ${s.totalP99Ms} ms`);
  }
  assert.equal(stats.badFrames, 0);
});
