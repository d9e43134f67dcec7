// The pages ride out a broker restart: Mosquitto stops under a host page and a player page that
// is sending, and starts again on the same ports. Both pages show that they reconnect, the player
// shows its queued frames, the SDK restores the sessions, and the frames reach the host again,
// in order.
import assert from 'node:assert/strict';
import test from 'node:test';
import { openPage, startDemo } from './harness.mjs';

const ROOM = 'room-restart';
const DEADLINE_MS = 20000;
const FRAMES_AFTER = 60; // a second of frames after the restore

test('coplay web: the pages reconnect after the broker restarts, and frames flow again', async (t) => {
  const { broker, web, browser, log } = await startDemo(t);
  const host = await openPage(browser, `${web.base}/host.html?room=${ROOM}&uid=host`, log);
  await host.waitForFunction(() => window.coplayStats.joined || window.coplayStats.error, null, { timeout: DEADLINE_MS });
  const player = await openPage(browser, `${web.base}/player.html?room=${ROOM}&uid=p9&auto=1`, log);
  const fail = async (what, e) => assert.fail(`${what}: ${e.message}\nhost: ${JSON.stringify(await host.evaluate(() => window.coplayStats))}\n` +
    `player: ${JSON.stringify(await player.evaluate(() => window.coplayPlayer))}\n${log.join('\n')}`);
  await host.waitForFunction(() => window.coplayStats.players.p9?.received >= 60, null, { timeout: DEADLINE_MS })
    .catch((e) => fail('frames before the restart', e));

  await broker.stop();
  await Promise.all([host, player].map((page) => page.waitForFunction(
    () => (window.coplayStats || window.coplayPlayer).state === 'reconnecting', null, { timeout: DEADLINE_MS })))
    .catch((e) => fail('the pages showing reconnecting', e));
  // While away the player's frames wait in the SDK's send queue, and the page shows them.
  await player.waitForFunction(() => window.coplayPlayer.queued > 0 && Number(document.getElementById('queued').textContent) > 0,
    null, { timeout: DEADLINE_MS }).catch((e) => fail('the player page showing queued frames', e));
  const sentBefore = await player.evaluate(() => window.coplayPlayer.sent);
  await broker.start();
  await Promise.all([host, player].map((page) => page.waitForFunction(
    () => ['connected', 'restored'].includes((window.coplayStats || window.coplayPlayer).state), null, { timeout: DEADLINE_MS })))
    .catch((e) => fail('the pages connected again', e));

  // Frames made after the restore arrive (the host's subscription was restored with its session).
  const seqAfter = await player.evaluate(() => window.coplayPlayer.sent);
  await host.waitForFunction((n) => window.coplayStats.players.p9?.lastSeq >= n, seqAfter + FRAMES_AFTER,
    { timeout: DEADLINE_MS }).catch((e) => fail('frames after the restore', e));
  const s = await host.evaluate(() => window.coplayStats.players.p9);
  const p = await player.evaluate(() => window.coplayPlayer);
  assert.equal(s.outOfOrder, 0, 'frames in order across the restart');
  await player.waitForFunction(() => window.coplayPlayer.queued === 0, null, { timeout: DEADLINE_MS })
    .catch((e) => fail('the send queue emptied', e));
  assert.equal(p.failed, 0);
  assert.equal(p.error, null);
  console.log(`# broker restart: the player had sent ${sentBefore} frames when the broker came back; the host has received ${s.received}, ` +
    `lost ${s.lost} (QoS 0 frames in flight when the broker stopped, or dropped while away), ` +
    `out of order ${s.outOfOrder}; player queued ${p.queued}, dropped ${p.dropped}`);
});
