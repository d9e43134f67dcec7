// Malformed messages from the broker (anyone may publish to a user's topics on a broker that
// does not enforce the ACL): each is counted and skipped, none breaks the client, and
// answers to real requests still arrive. Handlers that throw do not break the client either.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ConnectionState } from '../dist/index.js';
import { Events, Setup, rawClient, text, uniqueId } from './harness.mjs';

let setup;
before(async () => {
  setup = await Setup.start();
});
after(async () => {
  await setup?.stop();
});

test('garbage on the response, event, inbox and channel topics is counted and skipped', async () => {
  const logs = [];
  const alice = await setup.login(uniqueId('alice'), 'tcp', { logger: (level, t) => logs.push(`${level} ${t}`) });
  const channel = uniqueId('room');
  await alice.streamChannel(channel).join();
  const events = new Events(alice, 'channelEvent');
  const sessions = new Events(alice, 'session');
  const raw = await rawClient(setup.broker.tcpUrl);
  const u = `rtm/u/${alice.uid}`;
  const garbage = [
    [`${u}/res/ping?msg_id=x`, '{not json'],
    [`${u}/res/ping?msg_id=x`, '[1,2,3]'],
    [`${u}/res/ping?msg_id=x`, '{"code":0}'], // no msg_id
    [`${u}/res/ping?msg_id=x`, Buffer.from([0xff, 0xfe, 0x00, 0x7b])],
    [`${u}/events/session`, 'null'],
    [`${u}/events/session`, '{"state":5,"session_id":[]}'], // wrong types: not about this session
    [`${u}/events/presence`, '{"state":"online"}'], // no uid
    [`${u}/events/message`, '{"type":"binary","message":"***not base64***"}'],
    [`${u}/events/invitation`, '{"state":"RECEIVED"}'], // no id
    [`${u}/events/metadata`, '{"kind":"bogus"}'],
    [`rtm/events/${channel}`, 'x'.repeat(100)],
    [`rtm/events/${channel}`, '{"event":42,"channel":{}}'], // wrong types: an unknown event
    [`rtm/ch/${channel}/t/${alice.uid}/extra`, 'not subscribed: never arrives'],
  ];
  for (const [topic, payload] of garbage) await raw.publishAsync(topic, payload, { qos: 1 });
  // A well-formed event after the garbage proves everything before it was handled.
  await raw.publishAsync(
    `rtm/events/${channel}`,
    JSON.stringify({ event: 'member_joined', channel, uid: 'marker', ts: 1 }),
    { qos: 1 },
  );
  await events.find((e) => e.uid === 'marker', 5000, 'the marker event');
  const stats = alice.receiveStats();
  assert.equal(stats.malformed, 10, `malformed counted: ${JSON.stringify(stats)}\n${logs.join('\n')}`);
  assert.equal(sessions.items.length, 1, 'the session event with wrong types is reported as not ours');
  assert.equal(sessions.items[0].current, false);
  assert.equal(events.items.length, 1, 'only the marker');
  assert.equal(alice.state, ConnectionState.CONNECTED);
  assert.equal((await alice.request('ping')).uid, alice.uid, 'requests still answered');
  raw.end(true);
});

test('a handler that throws is reported and other handlers still run', async () => {
  const logs = [];
  const a = await setup.login(uniqueId('a'), 'ws', { logger: (level, t) => logs.push(`${level} ${t}`) });
  const b = await setup.login(uniqueId('b'), 'ws');
  a.on('inbox', () => {
    throw new Error('app bug');
  });
  const got = new Events(a, 'inbox');
  await b.publish(a.uid, 'one');
  await b.publish(a.uid, 'two');
  await got.count(() => true, 2, 5000, 'inbox messages');
  assert.deepEqual(got.items.map((m) => text(m.payload)), ['one', 'two']);
  assert.ok(logs.some((l) => l.startsWith('error') && l.includes('app bug')), logs.join('\n'));
});
