// The pages in the secure set-up (docs/security.md): Mosquitto with the project's auth plugin
// (the demo tokens are the MQTT passwords), the shipped ACL and the gateway's grants enforced.
// The player page may write only its own input stream, the host page read only what it
// subscribed to; frames still cross, none lost or out of order.
import assert from 'node:assert/strict';
import test from 'node:test';
import { authPlugin, openPage, startDemo } from './harness.mjs';
import { existsSync } from 'node:fs';

const ROOM = 'room-secure';
const FRAMES = 120;
const DEADLINE_MS = 20000;

test('coplay web: host and player pages in the secure set-up (token logins, enforced grants)',
  { skip: !existsSync(authPlugin) && `no auth plugin at ${authPlugin}` }, async (t) => {
    const { web, browser, log } = await startDemo(t, { broker: { secure: true }, gateway: { secure: true } });
    const host = await openPage(browser, `${web.base}/host.html?room=${ROOM}&uid=host`, log);
    const fail = async (what, e) => assert.fail(`${what}: ${e.message}\n${JSON.stringify(await host.evaluate(() => window.coplayStats))}\n${log.join('\n')}`);
    await host.waitForFunction(() => window.coplayStats.joined || window.coplayStats.error, null, { timeout: DEADLINE_MS });
    assert.equal(await host.evaluate(() => window.coplayStats.error), null);
    const player = await openPage(browser, `${web.base}/player.html?room=${ROOM}&uid=p1&frames=${FRAMES}&auto=1&start=button`, log);
    await player.waitForFunction(() => window.coplayPlayer.ready || window.coplayPlayer.error, null, { timeout: DEADLINE_MS });
    assert.equal(await player.evaluate(() => window.coplayPlayer.error), null);
    await host.waitForFunction(() => window.coplayStats.subscribed.includes('p1'), null, { timeout: DEADLINE_MS })
      .catch((e) => fail('the host subscribing', e));
    await player.click('#start');
    await host.waitForFunction((n) => window.coplayStats.players.p1?.received === n, FRAMES, { timeout: DEADLINE_MS })
      .catch((e) => fail(`the host counting ${FRAMES} frames`, e));
    const s = await host.evaluate(() => window.coplayStats.players.p1);
    assert.equal(s.lost, 0);
    assert.equal(s.outOfOrder, 0);
    for (const page of [host, player]) {
      assert.equal(await page.evaluate(() => (window.coplayStats || window.coplayPlayer).state), 'connected');
    }
  });
