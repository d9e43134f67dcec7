// Across a network cut (a TCP proxy between one client and the broker): RECONNECTING with
// INTERRUPTED, the send queue while away (delivered in order after the restore; QoS 1
// refused with LIMIT_SEND_QUEUE past the bound, oldest QoS 0 dropped), calls made while
// away answered after the restore, channels / topics / subscriptions / watches restored
// (RESTORED), presence changes missed while away reported. And a gateway restart on sqlite:
// the session is kept, a request sent while the gateway is down is answered once it is back.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ConnectionChangeReason, ConnectionState, ErrorCode, RtmClient, RtmError } from '../dist/index.js';
import { Events, Gateway, Mosquitto, TcpProxy, Setup, rawClient, text, tokenFor, uniqueId } from './harness.mjs';

const FAST_RECONNECT = { reconnectMinMs: 50, reconnectMaxMs: 300 };

describe('network cut', () => {
  let setup;
  let proxy; // to the broker's TCP listener
  let wsProxy; // to its WebSockets listener
  before(async () => {
    setup = await Setup.start();
    proxy = await TcpProxy.start(setup.broker.port);
    wsProxy = await TcpProxy.start(setup.broker.wsPort);
  });
  after(async () => {
    await proxy?.stop();
    await wsProxy?.stop();
    await setup?.stop();
  });

  /** A logged-in client whose connection goes through the proxy of `transport`. */
  async function away(uid, config = {}, transport = 'tcp') {
    const url = transport === 'ws' ? `ws://127.0.0.1:${wsProxy.port}` : proxy.url;
    const c = new RtmClient({ brokerUrl: url, uid, token: tokenFor(uid), requestTimeoutMs: 8000, ...FAST_RECONNECT, ...config });
    setup.clients.push(c);
    await c.login();
    return c;
  }

  for (const transport of ['tcp', 'ws']) {
    test(`restore after a cut over ${transport}: queue in order, parked calls, subscriptions, watches, invitations`, async () => {
      const cutter = transport === 'ws' ? wsProxy : proxy;
      const channel = uniqueId('room');
      const traveller = await away(uniqueId('traveller'), {}, transport);
      const peer = await setup.login(uniqueId('peer'));
      const watched = uniqueId('watched');
      const states = new Events(traveller, 'connectionState');
      const travellerMessages = new Events(traveller, 'message');
      const presence = new Events(traveller, 'presence');
      const peerMessages = new Events(peer, 'message');

      const tRoom = traveller.streamChannel(channel);
      await tRoom.join();
      await tRoom.joinTopic('input');
      const pRoom = peer.streamChannel(channel);
      await pRoom.join();
      await pRoom.joinTopic('input');
      await tRoom.subscribeTopic('input', [peer.uid]);
      await pRoom.subscribeTopic('input', [traveller.uid]);
      await traveller.watch([watched]);
      // An invitation in flight: the session ends with the cut (the broker publishes the Will),
      // and the gateway cancels it; the restore reports what the lost connection did not.
      const invitations = new Events(traveller, 'invitation');
      const invitation = await traveller.invitations().send(peer.uid, 'play?');
      await invitations.find((e) => e.state === 'RECEIVED_BY_REMOTE', 5000, 'RECEIVED_BY_REMOTE');

      cutter.cut();
      const lost = await states.find((e) => e.state === ConnectionState.RECONNECTING, 5000, 'RECONNECTING');
      assert.equal(lost.reason, ConnectionChangeReason.INTERRUPTED);

      // While away: messages wait in the queue, calls wait for the restore.
      for (let i = 0; i < 10; i++) await tRoom.publishTopic('input', `q-${i}`, { qos: i % 2 });
      assert.equal(traveller.sendQueueStats().queued, 10);
      assert.equal(traveller.sendQueueStats().queuedBytes, 30);
      const parked = traveller.whoNow(channel);
      // Meanwhile the watched user came online: the restore reports what was missed.
      const watchedClient = await setup.login(watched);

      cutter.restore();
      const restored = await states.find((e) => e.state === ConnectionState.RESTORED, 10000, 'RESTORED');
      assert.equal(restored.reason, ConnectionChangeReason.RESTORED);
      assert.match(restored.message, /1 channel\(s\), 1 topic\(s\), 1 subscription\(s\), 1 watch\(es\)/);
      assert.match(restored.message, /sent after the restore: 10 queued message\(s\), 1 waiting request\(s\)/);
      assert.deepEqual((await parked).sort(), [peer.uid, traveller.uid].sort());

      const got = await peerMessages.count(() => true, 10, 5000, 'queued messages');
      assert.deepEqual(got.map((m) => text(m.payload)), Array.from({ length: 10 }, (_, i) => `q-${i}`), 'in order');
      const stats = traveller.sendQueueStats();
      assert.equal(stats.queued, 0);
      assert.equal(stats.sent, 10);
      assert.equal(stats.dropped, 0);

      // Subscriptions are back: the peer's messages arrive again.
      await pRoom.publishTopic('input', 'after-restore');
      const m = await travellerMessages.find((x) => text(x.payload) === 'after-restore', 5000, 'message after restore');
      assert.equal(m.publisher, peer.uid);
      const online = await presence.find((e) => e.uid === watched, 5000, 'presence missed while away');
      assert.equal(online.online, true);
      assert.equal(traveller.state, ConnectionState.RESTORED);
      assert.deepEqual(await traveller.whereNow(traveller.uid), [channel]);
      const ended = await invitations.find((e) => e.id === invitation.id && e.ended, 5000, 'the invitation ended');
      assert.equal(ended.state, restored.message.startsWith('logged in again') ? 'CANCELED' : 'FAILURE');
      await watchedClient.close();
    });
  }

  test('the send queue is bounded: QoS 1 refused with LIMIT_SEND_QUEUE, oldest QoS 0 dropped', async () => {
    const channel = uniqueId('room');
    const traveller = await away(uniqueId('bounded'), { maxSendQueue: 3, maxSendQueueBytes: 1000 });
    const peer = await setup.login(uniqueId('peer'));
    const states = new Events(traveller, 'connectionState');
    const peerMessages = new Events(peer, 'message');
    const tRoom = traveller.streamChannel(channel);
    await tRoom.join();
    await tRoom.joinTopic('t');
    await peer.streamChannel(channel).join();
    await peer.streamChannel(channel).subscribeTopic('t', [traveller.uid]);

    proxy.cut();
    await states.find((e) => e.state === ConnectionState.RECONNECTING, 5000, 'RECONNECTING');
    for (let i = 0; i < 5; i++) await tRoom.publishTopic('t', `zero-${i}`); // QoS 0: the oldest make room
    assert.deepEqual(traveller.sendQueueStats(), { queued: 3, queuedBytes: 18, sent: 0, dropped: 2 });
    await assert.rejects(tRoom.publishTopic('t', 'one', { qos: 1 }), (e) => {
      assert.ok(e instanceof RtmError);
      assert.equal(e.code, 62);
      assert.equal(e.codeName, 'LIMIT_SEND_QUEUE');
      return true;
    });
    await assert.rejects(tRoom.publishTopic('t', 'x'.repeat(2000), { qos: 1 }), (e) => e.code === ErrorCode.LIMIT_SEND_QUEUE);

    proxy.restore();
    await states.find((e) => e.state === ConnectionState.RESTORED, 10000, 'RESTORED');
    const got = await peerMessages.count(() => true, 3, 5000, 'queued messages');
    assert.deepEqual(got.map((m) => text(m.payload)), ['zero-2', 'zero-3', 'zero-4']);
    assert.equal(traveller.sendQueueStats().sent, 3);
  });

  test('a call made while away fails with TIMEOUT when the restore takes longer than its timeout', async () => {
    const traveller = await away(uniqueId('slow'), { requestTimeoutMs: 300 });
    const states = new Events(traveller, 'connectionState');
    proxy.cut();
    await states.find((e) => e.state === ConnectionState.RECONNECTING, 5000, 'RECONNECTING');
    const t0 = Date.now();
    await assert.rejects(traveller.whereNow(traveller.uid), (e) => e.codeName === 'TIMEOUT');
    assert.ok(Date.now() - t0 >= 250);
    proxy.restore();
    await states.find((e) => e.state === ConnectionState.RESTORED, 10000, 'RESTORED');
  });
  test('the gateway ends the session while the link stays up: SESSION_LOST, then RESTORED', async () => {
    const channel = uniqueId('room');
    const c = await setup.login(uniqueId('lost'));
    const states = new Events(c, 'connectionState');
    await c.streamChannel(channel).join();
    // The session ends as if this connection's Will came: its own offline presence, as the
    // broker would publish it for a connection it believed dead.
    const raw = await rawClient(setup.broker.tcpUrl);
    const presence = `rtm/presence/${c.uid}`;
    const online = await new Promise((resolve) => {
      raw.on('message', (topic, payload) => topic === presence && resolve(JSON.parse(payload.toString())));
      raw.subscribe(presence);
    });
    assert.equal(online.state, 'online');
    await raw.publishAsync(presence, JSON.stringify({ state: 'offline', session: online.session }), { qos: 1, retain: true });
    const lost = await states.find((e) => e.state === ConnectionState.RECONNECTING, 5000, 'RECONNECTING');
    assert.equal(lost.reason, ConnectionChangeReason.SESSION_LOST);
    const restored = await states.find((e) => e.state === ConnectionState.RESTORED, 10000, 'RESTORED');
    assert.match(restored.message, /^logged in again; 1 channel/);
    assert.deepEqual(await c.whereNow(c.uid), [channel]);
    raw.end(true);
  });
});

describe('gateway restart on sqlite', () => {
  let broker;
  let gateway;
  let stateDir;
  before(async () => {
    broker = await Mosquitto.start();
    stateDir = mkdtempSync(path.join(tmpdir(), 'rtm-js-state-'));
    gateway = await Gateway.start(broker.port, {
      extraYaml: `state:\n  backend: sqlite\n  path: ${path.join(stateDir, 'state.db')}\n`,
    });
  });
  after(async () => {
    await gateway?.stop();
    gateway?.cleanup();
    await broker?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('the session, its channel and its topic survive; a request sent meanwhile is answered once back', async () => {
    const uid = uniqueId('steady');
    const c = new RtmClient({ brokerUrl: broker.tcpUrl, uid, token: tokenFor(uid), requestTimeoutMs: 15000 });
    const states = new Events(c, 'connectionState');
    try {
      const info = await c.login();
      const channel = uniqueId('room');
      await c.streamChannel(channel).join();
      await c.streamChannel(channel).joinTopic('input');
      await gateway.stop();
      const meanwhile = c.whereNow(uid); // the gateway's persistent MQTT session keeps it
      await gateway.start();
      assert.deepEqual(await meanwhile, [channel]);
      const snapshot = await c.streamChannel(channel).join();
      assert.deepEqual(snapshot.publishers, { input: [uid] });
      assert.equal(c.sessionId, info.sessionId);
      assert.equal(c.state, ConnectionState.CONNECTED);
      assert.deepEqual(
        states.items.map((e) => e.state),
        [ConnectionState.CONNECTING, ConnectionState.CONNECTED],
        'the client never noticed',
      );
    } finally {
      await c.close();
    }
  });
});
