// The rest of the RTM model over both transports (mqtt:// and ws://): peer messages (raw
// inbox, send_message with receipts, kept for an offline peer), presence and watch, user and
// channel metadata with compare-and-set, presence states, locks, invitations, message
// channels, module-style generic requests.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

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
    test('peer messages: raw inbox, send_message with receipts, kept while offline', async () => {
      const alice = await setup.login(uniqueId('alice'), transport);
      const bob = await setup.login(uniqueId('bob'), transport);
      const inbox = new Events(bob, 'inbox');
      const receipts = new Events(alice, 'receipt');

      await alice.publish(bob.uid, 'raw hello');
      const raw = await inbox.find((m) => m.type === 'raw', 5000, 'raw inbox message');
      assert.equal(raw.from, alice.uid);
      assert.equal(raw.text, 'raw hello');

      const sent = await alice.sendMessage(bob.uid, 'hi bob', { receipt: true });
      assert.equal(sent.status, 'delivered');
      assert.ok(sent.id);
      const m = await inbox.find((x) => x.id === sent.id, 5000, 'send_message');
      assert.equal(m.type, 'text');
      assert.equal(m.text, 'hi bob');
      assert.equal(m.offline, false);
      const receipt = await receipts.find((r) => r.id === sent.id, 5000, 'receipt');
      assert.equal(receipt.to, bob.uid);
      assert.equal(receipt.status, 'delivered');

      const bytes = await alice.sendMessage(bob.uid, new Uint8Array([1, 2, 250]));
      const b = await inbox.find((x) => x.id === bytes.id, 5000, 'binary send_message');
      assert.equal(b.type, 'binary');
      assert.deepEqual([...b.payload], [1, 2, 250]);

      // To a user without a session: stored, delivered at its next login.
      const carolUid = uniqueId('carol');
      const stored = await alice.sendMessage(carolUid, 'while you were away');
      assert.equal(stored.status, 'stored');
      await rejectsWith(alice.sendMessage(carolUid, 'not kept', { store: false }), 'PEER_OFFLINE');
      const carol = setup.make(carolUid, transport);
      const carolInbox = new Events(carol, 'inbox');
      await carol.login();
      const offline = await carolInbox.find(() => true, 5000, 'offline message');
      assert.equal(offline.text, 'while you were away');
      assert.equal(offline.offline, true);
      const history = await carol.inboxHistory();
      assert.equal(history.more, false);
    });

    test('presence: watch, events, whoNow, whereNow', async () => {
      const alice = await setup.login(uniqueId('alice'), transport);
      const bobUid = uniqueId('bob');
      const presence = new Events(alice, 'presence');
      const before = await alice.watch([bobUid]);
      assert.deepEqual(before.map((u) => [u.uid, u.ok, u.online]), [[bobUid, true, false]]);
      const bob = await setup.login(bobUid, transport);
      const on = await presence.find((e) => e.uid === bobUid && e.online, 5000, 'online');
      assert.equal(on.online, true);
      const channel = uniqueId('room');
      await alice.streamChannel(channel).join();
      await bob.streamChannel(channel).join();
      assert.deepEqual(await alice.whoNow(channel), [alice.uid, bobUid]);
      assert.deepEqual(await alice.whereNow(bobUid), [channel]);
      await bob.close();
      await presence.find((e) => e.uid === bobUid && !e.online, 5000, 'offline');
      const un = await alice.unwatch([bobUid]);
      assert.equal(un[0].ok, true);
      await rejectsWith(alice.watch(['bad name']), 'INVALID_NAME');
    });

    test('metadata with revisions (compare-and-set) and its events', async () => {
      const alice = await setup.login(uniqueId('alice'), transport);
      const bob = await setup.login(uniqueId('bob'), transport);
      const storage = alice.storage();
      const set = await storage.setUserMetadata('', [{ key: 'name', value: 'Alice' }], { recordAuthor: true });
      assert.equal(set.majorRevision, 1);
      assert.deepEqual(set.items.map((i) => [i.key, i.value, i.author]), [['name', 'Alice', alice.uid]]);
      const rev = set.items[0].revision;

      const bobEvents = new Events(bob, 'storageEvent');
      await bob.storage().subscribeUserMetadata(alice.uid);
      const snap = await bobEvents.find((e) => e.type === 'snapshot', 5000, 'snapshot');
      assert.equal(snap.uid, alice.uid);
      assert.equal(snap.metadata.items[0].value, 'Alice');

      const updated = await storage.updateUserMetadata('', [{ key: 'name', value: 'Al', revision: rev }]);
      assert.equal(updated.items[0].value, 'Al');
      const change = await bobEvents.find((e) => e.type === 'update', 5000, 'update event');
      assert.equal(change.by, alice.uid);
      await rejectsWith(storage.updateUserMetadata('', [{ key: 'name', value: 'A', revision: rev }]), 'ITEM_REVISION_MISMATCH');
      await rejectsWith(storage.setUserMetadata('', [{ key: 'x', value: '1' }], { majorRevision: 1 }), 'MAJOR_REVISION_MISMATCH');
      await rejectsWith(storage.updateUserMetadata('', [{ key: 'nope', value: '1' }]), 'ITEM_NOT_FOUND');
      const got = await bob.storage().getUserMetadata(alice.uid, ['name']);
      assert.equal(got.items[0].value, 'Al');
      await rejectsWith(bob.storage().setUserMetadata(alice.uid, [{ key: 'k', value: 'v' }]), 'FORBIDDEN');

      // channel metadata: members write, members see the changes
      const channel = uniqueId('room');
      await alice.streamChannel(channel).join();
      await bob.streamChannel(channel).join();
      await rejectsWith(storage.setChannelMetadata(uniqueId('other'), [{ key: 'k', value: 'v' }]), 'NOT_JOINED');
      const seat = await storage.setChannelMetadata(channel, [{ key: 'seat-2', value: alice.uid, revision: 0 }]);
      assert.equal(seat.items[0].value, alice.uid);
      await rejectsWith(bob.storage().setChannelMetadata(channel, [{ key: 'seat-2', value: bob.uid, revision: 0 }]), 'ITEM_REVISION_MISMATCH');
      const ch = await bobEvents.find((e) => e.scope === 'channel' && e.channel === channel, 5000, 'channel metadata event');
      assert.equal(ch.by, alice.uid);
      const removed = await storage.removeChannelMetadata(channel, [{ key: 'seat-2' }]);
      assert.equal(removed.items[0].key, 'seat-2');
      assert.deepEqual((await storage.getChannelMetadata(channel)).items, []);
    });

    test('presence states and their events', async () => {
      const alice = await setup.login(uniqueId('alice'), transport);
      const bob = await setup.login(uniqueId('bob'), transport);
      const channel = uniqueId('room');
      await alice.streamChannel(channel).join();
      await bob.streamChannel(channel).join();
      const events = new Events(bob, 'presenceState');
      const states = await alice.presence().setState(channel, { mood: 'happy', seat: '1' });
      assert.deepEqual(states, { mood: 'happy', seat: '1' });
      const ev = await events.find((e) => e.uid === alice.uid, 5000, 'state_changed');
      assert.deepEqual(ev.states, { mood: 'happy', seat: '1' });
      const left = await alice.presence().removeState(channel, ['seat']);
      assert.deepEqual(left, { mood: 'happy' });
      const got = await bob.presence().getState(channel, alice.uid);
      assert.deepEqual(got.states, { mood: 'happy' });
      const who = await bob.presence().whoNow(channel, true);
      assert.deepEqual(who.members, [alice.uid, bob.uid]);
      assert.deepEqual(who.states[alice.uid], { mood: 'happy' });
    });

    test('locks: set, acquire, LOCK_HELD, waiting in the queue, events', async () => {
      const alice = await setup.login(uniqueId('alice'), transport);
      const bob = await setup.login(uniqueId('bob'), transport);
      const channel = uniqueId('room');
      await alice.streamChannel(channel).join();
      await bob.streamChannel(channel).join();
      const events = new Events(bob, 'lockEvent');
      await alice.lock().setLock(channel, 'host', 30);
      await rejectsWith(alice.lock().setLock(channel, 'host', 30), 'LOCK_EXISTS');
      assert.equal(await alice.lock().acquireLock(channel, 'host'), 'acquired');
      assert.equal(await alice.lock().acquireLock(channel, 'host'), 'already_held');
      await rejectsWith(bob.lock().acquireLock(channel, 'host'), 'LOCK_HELD');
      const waiting = bob.lock().acquireLock(channel, 'host', { retry: true, waitMs: 5000 });
      await waitForWaiter(alice, channel, bob.uid);
      await alice.lock().releaseLock(channel, 'host');
      assert.equal(await waiting, 'acquired');
      const locks = await alice.lock().getLocks(channel);
      assert.deepEqual(locks.map((l) => [l.name, l.owner, l.ttl]), [['host', bob.uid, 30]]);
      await events.find((e) => e.type === 'acquired' && e.uid === bob.uid, 5000, 'acquired event');
      await rejectsWith(alice.lock().releaseLock(channel, 'host'), 'NOT_LOCK_HOLDER');
      await alice.lock().removeLock(channel, 'host');
      await rejectsWith(bob.lock().releaseLock(channel, 'host'), 'LOCK_NOT_FOUND');
    });

    test('invitations: the callee acknowledges itself, accept and cancel reach both sides', async () => {
      const alice = await setup.login(uniqueId('alice'), transport);
      const bob = await setup.login(uniqueId('bob'), transport);
      const aliceEvents = new Events(alice, 'invitation');
      const bobEvents = new Events(bob, 'invitation');
      const inv = await alice.invitations().send(bob.uid, 'play?', 'room-1');
      assert.equal(inv.state, 'SENT_TO_REMOTE');
      const received = await bobEvents.find((e) => e.id === inv.id && e.state === 'RECEIVED', 5000, 'RECEIVED');
      assert.equal(received.caller, alice.uid);
      assert.equal(received.content, 'play?');
      assert.equal(received.channelId, 'room-1');
      // the SDK's automatic ack
      await aliceEvents.find((e) => e.id === inv.id && e.state === 'RECEIVED_BY_REMOTE', 5000, 'RECEIVED_BY_REMOTE');
      assert.equal((await alice.invitations().list()).length, 1);
      await bob.invitations().accept(inv.id, 'yes');
      const accepted = await aliceEvents.find((e) => e.state === 'ACCEPTED_BY_REMOTE', 5000, 'ACCEPTED_BY_REMOTE');
      assert.equal(accepted.response, 'yes');
      assert.equal(accepted.ended, true);
      await rejectsWith(bob.invitations().accept(inv.id), 'INVITATION_NOT_FOUND');

      const second = await alice.invitations().send(bob.uid, 'again?');
      await bobEvents.find((e) => e.id === second.id && e.state === 'RECEIVED', 5000, 'second RECEIVED');
      await rejectsWith(bob.invitations().cancel(second.id), 'INVITATION_WRONG_SIDE');
      await alice.invitations().cancel(second.id);
      await bobEvents.find((e) => e.id === second.id && e.state === 'CANCELED', 5000, 'CANCELED');

      const offline = await alice.invitations().send(uniqueId('nobody'));
      assert.equal(offline.state, 'FAILURE');
      assert.equal(offline.reason, 'PEER_OFFLINE');
    });

    test('message channels: publish with a type, subscribe, presence', async () => {
      const alice = await setup.login(uniqueId('alice'), transport);
      const bob = await setup.login(uniqueId('bob'), transport);
      const channel = uniqueId('news');
      const got = new Events(bob, 'channelMessage');
      const bobChannelEvents = new Events(bob, 'channelEvent');
      const info = await bob.subscribeChannel(channel, { withPresence: true });
      assert.equal(info.withPresence, true);
      assert.deepEqual(info.members, [bob.uid]);
      await alice.subscribeChannel(channel, { withPresence: true });
      const joined = await bobChannelEvents.find((e) => e.messageChannel && e.uid === alice.uid, 5000, 'member_joined');
      assert.equal(joined.type, 'member_joined');
      await alice.publish(channel, 'hello', 'string');
      await alice.publish(channel, new Uint8Array([7, 8]), 'binary', { qos: 1 });
      await bob.publish(channel, 'my own', 'string'); // never delivered to its publisher
      const msgs = await got.count(() => true, 2, 5000, 'channel messages');
      assert.deepEqual(msgs.map((m) => [m.publisher, m.type, text(m.payload)]), [
        [alice.uid, 'string', 'hello'],
        [alice.uid, 'binary', '\x07\x08'],
      ]);
      await bob.unsubscribeChannel(channel);
      await rejectsWith(bob.unsubscribeChannel(channel), 'NOT_SUBSCRIBED');
      await alice.publish(channel, 'after', 'string');
      await assert.rejects(alice.publish('bad/channel', 'x', 'string'), (e) => e.codeName === 'INVALID_NAME');
    });

    test('channel tokens: join with one, one for another channel refused, renewal', async () => {
      const alice = await setup.login(uniqueId('alice'), transport);
      const channel = uniqueId('vip');
      const snapshot = await alice.streamChannel(channel).join(tokenFor(alice.uid, 600, { channel }));
      assert.ok(snapshot.tokenExpiresAt > Date.now() / 1000 + 500, 'the channel token expiry');
      await rejectsWith(
        alice.streamChannel(uniqueId('other')).join(tokenFor(alice.uid, 600, { channel })),
        'TOKEN_CHANNEL_MISMATCH',
      );
      const renewed = await alice.renewChannelToken(channel, tokenFor(alice.uid, 1200, { channel }));
      assert.ok(renewed > snapshot.tokenExpiresAt);
      const info = await alice.subscribeChannel(channel, { token: tokenFor(alice.uid, 600, { channel }) });
      assert.ok(info.tokenExpiresAt > 0);
    });

    test('generic request: built-in operations and an absolute URI without a backend', async () => {
      const alice = await setup.login(uniqueId('alice'), transport);
      const pong = await alice.request('ping');
      assert.equal(pong.uid, alice.uid);
      assert.ok(pong.time_ms > 0);
      const where = await alice.request('where_now', { uid: alice.uid });
      assert.deepEqual(where.channels, []);
      await rejectsWith(alice.request('im://modulus/x.json'), 'NO_ROUTE');
    });
  });
}

async function waitForWaiter(client, channel, uid) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const locks = await client.lock().getLocks(channel);
    if (locks.some((l) => l.waiters.includes(uid))) return;
    if (Date.now() > deadline) throw new Error(`${uid} never queued for the lock`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
