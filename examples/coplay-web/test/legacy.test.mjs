// Legacy controllers on the web host page: the gateway runs examples/coplay/gateway.yaml (its
// bridge rules; --broker points it at the test's Mosquitto), and controllers that only know
// their old topics publish on coplay/{room}/{player}/input over plain MQTT (mosquitto_pub, as
// the README shows, then an MQTT.js client over TCP at 60 Hz). The host page sees each as
// publisher {player} of topic input, subscribes, and counts its frames.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import test from 'node:test';
import mqtt from 'mqtt';
import { encodeBinary } from '../public/frame.js';
import {
  findProgram, onCleanup, openPage, repoRoot, startDemo,
} from './harness.mjs';

const ROOM = 'room-legacy';
const CONTROLLER = 'ctl7';
const FRAMES = 300;
const RATE_HZ = 60;
const DEADLINE_MS = 20000;

function nowNs() {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
}

test('coplay web: a legacy controller through gateway.yaml\'s bridge shows up on the host page', async (t) => {
  const config = path.join(repoRoot, 'examples', 'coplay', 'gateway.yaml');
  const { broker, web, browser, log } = await startDemo(t, { gateway: { configFile: config } });
  const host = await openPage(browser, `${web.base}/host.html?room=${ROOM}&uid=host`, log);
  const state = async () => JSON.stringify(await host.evaluate(() => window.coplayStats)) + `\n${log.join('\n')}`;
  await host.waitForFunction(() => window.coplayStats.joined || window.coplayStats.error, null, { timeout: DEADLINE_MS })
    .catch(async (e) => assert.fail(`${e.message}\n${await state()}`));
  assert.equal(await host.evaluate(() => window.coplayStats.error), null);

  // The README's legacy controller: one JSON frame with mosquitto_pub. Its first message
  // registers the controller as a publisher; the host subscribes on that event.
  execFileSync(findProgram('mosquitto_pub'), ['-p', String(broker.tcpPort), '-t', `coplay/${ROOM}/${CONTROLLER}/input`,
    '-m', `{"seq":0,"sent_ns":${nowNs()},"buttons":1,"axes":[0,0,0,0]}`]);
  await host.waitForFunction((c) => window.coplayStats.subscribed.includes(c), CONTROLLER, { timeout: DEADLINE_MS })
    .catch(async (e) => assert.fail(`the host subscribing to ${CONTROLLER}: ${e.message}\n${await state()}`));

  // Then the controller plays: binary frames 1..FRAMES at 60 Hz over TCP.
  const controller = await mqtt.connectAsync(broker.uri.replace(/^tcp:/, 'mqtt:'), { clientId: `${CONTROLLER}-device`, reconnectPeriod: 0 });
  onCleanup(t, () => controller.endAsync());
  controller.stream.setNoDelay?.(true);
  const start = performance.now();
  for (let seq = 1; seq <= FRAMES; seq++) {
    const due = start + ((seq - 1) * 1000) / RATE_HZ;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait)); // the controller's 60 Hz clock
    const phase = seq / RATE_HZ;
    controller.publish(`coplay/${ROOM}/${CONTROLLER}/input`,
      Buffer.from(encodeBinary({ seq, sent_ns: nowNs(), buttons: seq % 60 < 30 ? 0x2 : 0,
        axes: [Math.round(32767 * Math.cos(phase)), Math.round(32767 * Math.sin(phase)), 0, 0] })), { qos: 0 });
  }
  await host.waitForFunction(({ c, n }) => window.coplayStats.players[c]?.lastSeq === n, { c: CONTROLLER, n: FRAMES },
    { timeout: DEADLINE_MS }).catch(async (e) => assert.fail(`the host seeing frame ${FRAMES}: ${e.message}\n${await state()}`));
  const ticks = await host.evaluate(() => window.coplayStats.ticks);
  await host.waitForFunction((n) => window.coplayStats.ticks > n, ticks, { timeout: 5000 });

  const s = (await host.evaluate(() => window.coplayStats)).players[CONTROLLER];
  // Every frame from the first one the host saw (the JSON frame 0 may have crossed before the
  // subscription did); none lost, none out of order.
  assert.ok(s.firstSeq === 0 || s.firstSeq === 1, `first seq ${s.firstSeq}`);
  assert.equal(s.received, FRAMES - s.firstSeq + 1);
  assert.equal(s.lost, 0);
  assert.equal(s.outOfOrder, 0);
  assert.equal(s.format, 'binary');
  const row = await host.$eval(`#players tr[data-uid="${CONTROLLER}"]`, (tr) => ({ ...tr.dataset }));
  assert.equal(row.lastSeq, String(FRAMES));
  console.log(`# legacy controller ${CONTROLLER} through the bridge: received ${s.received}, lost ${s.lost}, ` +
    `out of order ${s.outOfOrder}, latency p50 ${s.totalP50Ms} ms, p99 ${s.totalP99Ms} ms`);
});
