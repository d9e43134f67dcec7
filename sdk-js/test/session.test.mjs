// Tokens and sessions: will_expire and expiry (FAILED / TOKEN_EXPIRED), renewToken keeps the
// session past the first token's exp, a login elsewhere replaces the session
// (FAILED / REMOTE_LOGIN), session events, and calls after the session ended.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ConnectionChangeReason, ConnectionState, ErrorCode, RtmClient } from '../dist/index.js';
import { Events, Setup, TcpProxy, tokenFor, uniqueId, waitUntil } from './harness.mjs';

const TOKEN_TTL_S = 3;
const OPERATOR = uniqueId('operator');

let setup;
before(async () => {
  setup = await Setup.start({ authYaml: '  token_warn_before_s: 1\n', extraYaml: `ops:\n  uids: [${OPERATOR}]\n` });
});
after(async () => {
  await setup?.stop();
});

// The tests wait for tokens to expire: they run side by side.
describe('tokens and sessions', { concurrency: true }, () => {
  test('a token that expires: will_expire, then FAILED with TOKEN_EXPIRED (over ws)', async () => {
    const uid = uniqueId('short');
    const c = setup.make(uid, 'ws', { token: tokenFor(uid, TOKEN_TTL_S) });
    const tokens = new Events(c, 'token');
    const states = new Events(c, 'connectionState');
    const sessions = new Events(c, 'session');
    const info = await c.login();
    const warned = await tokens.find((e) => e.state === 'will_expire', 6000, 'will_expire');
    assert.equal(warned.expiresAt, info.expiresAt);
    const failed = await states.find((e) => e.state === ConnectionState.FAILED, 8000, 'FAILED');
    assert.equal(failed.reason, ConnectionChangeReason.TOKEN_EXPIRED);
    assert.ok(Date.now() / 1000 >= info.expiresAt - 1, 'not before the token expired');
    const ended = await sessions.find((e) => e.state === 'ended', 1000, 'session ended');
    assert.equal(ended.reason, 'token_expired');
    assert.equal(ended.current, true);
    assert.equal(c.state, ConnectionState.FAILED);
    assert.equal(c.sessionId, '');
    await assert.rejects(c.streamChannel('room').join(), (e) => e.code === ErrorCode.NOT_LOGGED_IN);
  });

  test('renewToken moves the expiry: the session outlives the first token (over tcp)', async () => {
    const uid = uniqueId('renew');
    const c = setup.make(uid, 'tcp', { token: tokenFor(uid, TOKEN_TTL_S) });
    const states = new Events(c, 'connectionState');
    const info = await c.login();
    const expiresAt = await c.renewToken(tokenFor(uid, 3600));
    assert.ok(expiresAt > info.expiresAt + 3000);
    await assert.rejects(c.renewToken(tokenFor('someone-else', 3600)), (e) => e.codeName === 'TOKEN_UID_MISMATCH');
    await assert.rejects(c.renewToken('not-a-jwt'), (e) => e.codeName === 'TOKEN_INVALID');
    // Past the first token's exp and the gateway's expiry check: still logged in.
    await waitUntil(() => Date.now() / 1000 > info.expiresAt + 1.5, 8000, 'the first token to expire');
    assert.equal((await c.request('ping')).uid, uid);
    await c.streamChannel(uniqueId('room')).join();
    assert.equal(c.state, ConnectionState.CONNECTED);
    assert.equal(states.items.filter((e) => e.state === ConnectionState.FAILED).length, 0);
  });

  test('a login elsewhere replaces the session: FAILED with REMOTE_LOGIN', async () => {
    const uid = uniqueId('twice');
    const first = await setup.login(uid, 'tcp');
    const states = new Events(first, 'connectionState');
    const channel = uniqueId('room');
    await first.streamChannel(channel).join();
    const second = await setup.login(uid, 'ws');
    const failed = await states.find((e) => e.state === ConnectionState.FAILED, 5000, 'FAILED');
    assert.equal(failed.reason, ConnectionChangeReason.REMOTE_LOGIN);
    assert.equal(second.state, ConnectionState.CONNECTED);
    assert.deepEqual(await second.whereNow(uid), [], 'the replaced session left its channels');
  });

  test('an operator kicks a user: FAILED with KICKED; a user may not kick', async () => {
    const victim = await setup.login(uniqueId('victim'), 'ws');
    const states = new Events(victim, 'connectionState');
    const operator = await setup.login(OPERATOR, 'tcp');
    await assert.rejects(victim.request('kick', { uid: OPERATOR }), (e) => e.codeName === 'FORBIDDEN');
    await operator.request('kick', { uid: victim.uid });
    const failed = await states.find((e) => e.state === ConnectionState.FAILED, 5000, 'FAILED');
    assert.equal(failed.reason, ConnectionChangeReason.KICKED);
    await assert.rejects(victim.request('ping'), (e) => e.code === ErrorCode.NOT_LOGGED_IN);
  });

  test('logout, then login again on the same client', async () => {
    const c = await setup.login(uniqueId('again'), 'tcp');
    await c.streamChannel(uniqueId('room')).join();
    await c.logout();
    assert.equal(c.state, ConnectionState.DISCONNECTED);
    const info = await c.login();
    assert.equal(c.state, ConnectionState.CONNECTED);
    assert.equal(c.sessionId, info.sessionId);
    assert.deepEqual(await c.whereNow(c.uid), [], 'the logout left the channel');
  });

  test('without reconnect a lost link ends the session: FAILED with INTERRUPTED', async () => {
    const uid = uniqueId('fragile');
    const proxy = await TcpProxy.start(setup.broker.port);
    const c = new RtmClient({ brokerUrl: proxy.url, uid, token: tokenFor(uid), reconnect: false });
    setup.clients.push(c);
    try {
      const states = new Events(c, 'connectionState');
      await c.login();
      proxy.cut();
      const failed = await states.find((e) => e.state === ConnectionState.FAILED, 5000, 'FAILED');
      assert.equal(failed.reason, ConnectionChangeReason.INTERRUPTED);
      await assert.rejects(c.streamChannel('room').publishTopic('t', 'x'), (e) => e.codeName === 'NOT_JOINED');
    } finally {
      await proxy.stop();
    }
  });
});
