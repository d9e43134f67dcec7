// Stream history and its recovery across a network cut (the gateway's history.streams): a
// subscriber that was away gets the frames it missed (recovered) and then the live ones, in
// order and each once, while the publisher keeps publishing through its recovery; a
// 'recovery' event says it was complete. And history() pages on demand.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ConnectionState, RtmClient } from '../dist/index.js';
import { Events, Setup, TcpProxy, text, tokenFor, uniqueId } from './harness.mjs';

const HISTORY_YAML = 'history:\n  streams:\n    - {channel: "arena-*", topic: "*", size: 1000, age_s: 300}\n';

let setup;
let proxy;
before(async () => {
  setup = await Setup.start({ extraYaml: HISTORY_YAML });
  proxy = await TcpProxy.start(setup.broker.port);
});
after(async () => {
  await proxy?.stop();
  await setup?.stop();
});

test('a subscriber away gets what it missed, then the live frames, in order and once', async () => {
  const channel = uniqueId('arena');
  const alice = await setup.login(uniqueId('alice'));
  const bobUid = uniqueId('bob');
  const bob = new RtmClient({
    brokerUrl: proxy.url,
    uid: bobUid,
    token: tokenFor(bobUid),
    reconnectMinMs: 50,
    reconnectMaxMs: 300,
  });
  setup.clients.push(bob);
  await bob.login();
  const got = new Events(bob, 'message');
  const recoveries = new Events(bob, 'recovery');
  const states = new Events(bob, 'connectionState');
  const aRoom = alice.streamChannel(channel);
  await aRoom.join();
  await aRoom.joinTopic('input');
  const bRoom = bob.streamChannel(channel);
  await bRoom.join();
  await bRoom.subscribeTopic('input', [alice.uid]);

  let sent = 0;
  const publish = async (n) => {
    for (let i = 0; i < n; i++) await aRoom.publishTopic('input', `f${sent++}`);
  };
  await publish(10);
  await got.count(() => true, 10, 5000, 'live frames');

  proxy.cut();
  await states.find((e) => e.state === ConnectionState.RECONNECTING, 5000, 'RECONNECTING');
  await publish(50); // missed by bob
  // The history holds them before bob asks (the gateway reads the stream in order).
  const page = await aRoom.history('input', { reverse: true, limit: 1 });
  assert.equal(text(page.messages[0].payload), `f${sent - 1}`);

  proxy.restore();
  // The game goes on during bob's restore and recovery: these frames race it.
  let racing = true;
  const racer = (async () => {
    while (racing) {
      await publish(1);
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  const recovery = await recoveries.find(() => true, 10000, 'recovery');
  racing = false;
  await racer;
  await publish(20);
  const all = await got.count(() => true, sent, 10000, 'every frame');
  assert.equal(recovery.channel, channel);
  assert.equal(recovery.topic, 'input');
  assert.equal(recovery.complete, true, recovery.reason);
  assert.ok(recovery.recovered >= 50, `recovered ${recovery.recovered}`);
  assert.deepEqual(
    all.map((m) => text(m.payload)),
    Array.from({ length: sent }, (_, i) => `f${i}`),
    'every frame in order, each once',
  );
  const flags = all.map((m) => m.recovered === true);
  assert.deepEqual(flags.slice(0, 10), Array(10).fill(false), 'live before the cut');
  assert.equal(flags.filter(Boolean).length, recovery.recovered);
  const firstRecovered = flags.indexOf(true);
  assert.ok(flags.slice(firstRecovered, firstRecovered + recovery.recovered).every(Boolean), 'recovered ones together');
  const r = all[firstRecovered];
  assert.ok(r.offset > 0 && r.ts > 0);
  await new Promise((resolve) => setTimeout(resolve, 100)); // nothing more arrives (no duplicates)
  assert.equal(got.items.length, sent);
});

test('history pages on demand; a stream without history answers NO_HISTORY', async () => {
  const channel = uniqueId('arena');
  const alice = await setup.login(uniqueId('alice'));
  const room = alice.streamChannel(channel);
  await room.join();
  await room.joinTopic('chat');
  for (let i = 0; i < 5; i++) await room.publishTopic('chat', new Uint8Array([i, 255]));
  let page;
  for (const deadline = Date.now() + 5000; Date.now() < deadline; ) {
    page = await room.history('chat', { limit: 3 });
    if (page.messages.length === 3 && page.more) break;
  }
  assert.equal(page.messages.length, 3);
  assert.equal(page.more, true);
  assert.deepEqual([...page.messages[0].payload], [0, 255], 'bytes that are not UTF-8 come back as bytes');
  assert.equal(page.messages[0].publisher, alice.uid);
  const next = await room.history('chat', { limit: 3, after: page.messages[2].offset });
  assert.deepEqual(next.messages.map((m) => m.payload[0]), [3, 4]);
  assert.equal(next.more, false);
  const other = alice.streamChannel(uniqueId('plain'));
  await other.join();
  await assert.rejects(other.history('chat'), (e) => e.codeName === 'NO_HISTORY');
});
