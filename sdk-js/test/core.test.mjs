// The core RTM flow over both transports (mqtt:// and ws://): login and connection states,
// stream channels, topics, publish/subscribe between two clients, channel events, errors
// with their codes, and the request round trip (TCP_NODELAY on Node's socket).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  ConnectionChangeReason,
  ConnectionState,
  MAX_SUBSCRIBED_PUBLISHERS,
  RtmClient,
} from '../dist/index.js';
import { Events, Setup, rejectsWith, text, tokenFor, uniqueId } from './harness.mjs';

let setup;
before(async () => {
  setup = await Setup.start();
});
after(async () => {
  await setup?.stop();
});

for (const transport of ['tcp', 'ws']) {
  describe(`over ${transport}`, () => {
    test('login reports connecting then connected, with the session id', async () => {
      const uid = uniqueId('alice');
      const c = setup.make(uid, transport);
      const states = new Events(c, 'connectionState');
      assert.equal(c.state, ConnectionState.DISCONNECTED);
      const info = await c.login();
      assert.equal(info.uid, uid);
      assert.match(info.sessionId, /^[0-9a-f]+$/);
      assert.equal(c.sessionId, info.sessionId);
      assert.ok(info.expiresAt > Date.now() / 1000 + 3000, 'expiresAt is the token exp');
      assert.deepEqual(
        states.items.map((e) => [e.state, e.reason]),
        [
          [ConnectionState.CONNECTING, ConnectionChangeReason.LOGIN],
          [ConnectionState.CONNECTED, ConnectionChangeReason.LOGIN_SUCCESS],
        ],
      );
      await c.logout();
      assert.equal(c.state, ConnectionState.DISCONNECTED);
      assert.equal(states.items.at(-1).reason, ConnectionChangeReason.LOGOUT);
    });

    test('a bad token fails the login with its code and state FAILED', async () => {
      const uid = uniqueId('mallory');
      const c = new RtmClient({ brokerUrl: setup.url(transport), uid, token: tokenFor('someone-else') });
      setup.clients.push(c);
      await rejectsWith(c.login(), 'TOKEN_UID_MISMATCH');
      assert.equal(c.state, ConnectionState.FAILED);
      await rejectsWith(c.streamChannel('x').join(), 'NOT_LOGGED_IN');
    });

    test('two clients: join, topics, publish and subscribe, channel events', async () => {
      const channel = uniqueId('room');
      const host = await setup.login(uniqueId('host'), transport);
      const player = await setup.login(uniqueId('player'), transport);
      const hostEvents = new Events(host, 'channelEvent');
      const messages = new Events(host, 'message');

      const hostRoom = host.streamChannel(channel);
      const first = await hostRoom.join();
      assert.deepEqual(first.members, [host.uid]);
      assert.ok(hostRoom.joined);

      const playerRoom = player.streamChannel(channel);
      await playerRoom.join();
      await hostEvents.find((e) => e.type === 'member_joined' && e.uid === player.uid, 5000, 'member_joined');
      await playerRoom.joinTopic('input');
      const pj = await hostEvents.find((e) => e.type === 'publisher_joined', 5000, 'publisher_joined');
      assert.equal(pj.topic, 'input');
      assert.equal(pj.uid, player.uid);
      assert.equal(pj.channel, channel);

      const snapshot = await host.streamChannel(channel).join(); // idempotent
      assert.deepEqual(snapshot.members, [host.uid, player.uid]);
      assert.deepEqual(snapshot.publishers, { input: [player.uid] });

      const sub = await hostRoom.subscribeTopic('input', [player.uid]);
      assert.deepEqual(sub.succeeded, [player.uid]);
      assert.equal(sub.users[0].ok, true);
      assert.deepEqual(await hostRoom.subscribedUsers('input'), [player.uid]);

      const frames = 50;
      for (let i = 0; i < frames; i++) await playerRoom.publishTopic('input', `frame-${i}`);
      await playerRoom.publishTopic('input', new Uint8Array([0, 1, 2, 255]), { qos: 1 });
      const got = await messages.count(() => true, frames + 1, 5000, 'frames');
      assert.deepEqual(
        got.slice(0, frames).map((m) => text(m.payload)),
        Array.from({ length: frames }, (_, i) => `frame-${i}`),
        'every frame, in order',
      );
      assert.deepEqual([...got[frames].payload], [0, 1, 2, 255], 'binary payloads stay bytes');
      assert.equal(got[0].channel, channel);
      assert.equal(got[0].topic, 'input');
      assert.equal(got[0].publisher, player.uid);
      assert.ok(got[0].payload instanceof Uint8Array);

      assert.deepEqual(await hostRoom.whoNow(), [host.uid, player.uid]);

      // Unsubscribed: nothing more arrives (a marker on another topic proves delivery went on).
      const unsub = await hostRoom.unsubscribeTopic('input', [player.uid]);
      assert.deepEqual(unsub.succeeded, [player.uid]);
      await playerRoom.joinTopic('marker');
      await hostRoom.subscribeTopic('marker', [player.uid]);
      await playerRoom.publishTopic('input', 'after-unsubscribe');
      await playerRoom.publishTopic('marker', 'm');
      await messages.find((m) => m.topic === 'marker', 5000, 'marker');
      assert.equal(messages.items.filter((m) => text(m.payload) === 'after-unsubscribe').length, 0);

      await playerRoom.leave();
      const left = await hostEvents.find((e) => e.type === 'member_left' && e.uid === player.uid, 5000, 'member_left');
      assert.equal(left.channel, channel);
      assert.equal(playerRoom.joined, false);
    });

    test('every-publisher subscription brings later publishers but not my own messages', async () => {
      const channel = uniqueId('lobby');
      const a = await setup.login(uniqueId('a'), transport);
      const b = await setup.login(uniqueId('b'), transport);
      const got = new Events(a, 'message');
      const ra = a.streamChannel(channel);
      await ra.join();
      await ra.joinTopic('chat');
      const all = await ra.subscribeTopic('chat');
      assert.equal(all.all, true);
      const rb = b.streamChannel(channel);
      await rb.join();
      await rb.joinTopic('chat'); // after the subscription: added by the gateway
      await ra.publishTopic('chat', 'mine');
      await rb.publishTopic('chat', 'from-b');
      const m = await got.find(() => true, 5000, 'a message');
      assert.equal(text(m.payload), 'from-b');
      assert.equal(m.publisher, b.uid);
      await ra.publishTopic('chat', 'mine-2');
      await rb.publishTopic('chat', 'from-b-2');
      await got.count(() => true, 2, 5000, 'messages');
      assert.deepEqual(got.items.map((x) => text(x.payload)), ['from-b', 'from-b-2']);
    });

    test('errors carry the gateway codes and names', async () => {
      const c = await setup.login(uniqueId('err'), transport);
      const room = c.streamChannel(uniqueId('nowhere'));
      await rejectsWith(room.leave(), 'NOT_JOINED');
      await rejectsWith(room.joinTopic('t'), 'NOT_JOINED');
      await rejectsWith(room.publishTopic('t', 'x'), 'NOT_JOINED');
      await rejectsWith(c.streamChannel('bad/name').join(), 'INVALID_NAME');
      await rejectsWith(c.streamChannel('x'.repeat(65)).join(), 'INVALID_NAME');
      await rejectsWith(c.request('no_such_op'), 'UNKNOWN_OPERATION');
      await rejectsWith(c.request('/leading-slash'), 'INVALID_URI');
      await rejectsWith(c.request('join', { channel: 'a', bogus: 1 }), 'INVALID_PARAMETER');
      const err = await room.leave().catch((e) => e);
      assert.match(err.message, /has not joined/);
      assert.match(String(err), /^NOT_JOINED \(3\): /);
      // the joined-topic limit (limits.topics_per_channel 8)
      const full = c.streamChannel(uniqueId('full'));
      await full.join();
      for (let i = 0; i < 8; i++) await full.joinTopic(`t${i}`);
      await rejectsWith(full.joinTopic('t8'), 'LIMIT_TOPICS');
      // at most 64 publishers per subscription: the rest are refused one by one
      const users = Array.from({ length: MAX_SUBSCRIBED_PUBLISHERS + 2 }, (_, i) => `p${i}`);
      const sub = await full.subscribeTopic('t0', users);
      assert.equal(sub.succeeded.length, MAX_SUBSCRIBED_PUBLISHERS);
      assert.deepEqual(
        sub.users.filter((u) => !u.ok).map((u) => [u.uid, u.error.codeName, u.error.code]),
        [
          ['p64', 'LIMIT_SUBSCRIPTIONS', 33],
          ['p65', 'LIMIT_SUBSCRIPTIONS', 33],
        ],
      );
      assert.equal((await full.subscribedUsers('t0')).length, MAX_SUBSCRIBED_PUBLISHERS);
    });

    test('request round trips are fast (TCP_NODELAY on Node sockets)', async () => {
      const c = await setup.login(uniqueId('ping'), transport);
      const times = [];
      for (let i = 0; i < 60; i++) {
        const t0 = performance.now();
        const r = await c.request('ping');
        times.push(performance.now() - t0);
        assert.equal(r.uid, c.uid);
      }
      times.sort((x, y) => x - y);
      const p50 = times[Math.floor(times.length / 2)];
      const p99 = times[Math.floor(times.length * 0.99)];
      console.log(`# request round trip over ${transport}: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`);
      // Without TCP_NODELAY the p50 is ~44 ms (Nagle + delayed ACK): see FACTS.md.
      assert.ok(p50 < 10, `request p50 ${p50.toFixed(2)} ms`);
    });
  });
}
