// Tokens and sessions: will_expire and expiry (FAILED / TOKEN_EXPIRED), renewToken keeps the
// session past the first token's exp, a login elsewhere replaces the session
// (FAILED / REMOTE_LOGIN), session events, and calls after the session ended.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ConnectionChangeReason, ConnectionState, ErrorCode } from '../dist/index.js';
import { Events, Setup, tokenFor, uniqueId, waitUntil } from './harness.mjs';

const TOKEN_TTL_S = 3;

let setup;
before(async () => {
  setup = await Setup.start({ authYaml: '  token_warn_before_s: 1\n' });
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
});
