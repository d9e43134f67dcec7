// The SDK against the shipped secure set-up (docs/security.md): Mosquitto with the project's
// auth plugin (tokens as MQTT passwords, client ids "{uid}/...", the broker enforcing the
// gateway's grants) and docker/mosquitto/acl, over mqtt:// and ws://. The SDK's CONNECT is
// accepted, the RTM flow works under enforcement, a bad token is refused at CONNECT
// (FAILED / LOGIN_FAILURE), and an expired token's connection is closed by the broker
// (FAILED / TOKEN_EXPIRED).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ConnectionChangeReason, ConnectionState, RtmClient } from '../dist/index.js';
import { Events, Gateway, Mosquitto, SECRET, text, tokenFor, uniqueId } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PLUGIN = process.env.RTM_AUTH_PLUGIN || path.join(root, 'build/mosquitto-auth/rtm_mosquitto_auth.so');
const GATEWAY_PASSWORD = 'js-secure-gateway-password';

describe('secure broker', { skip: !existsSync(PLUGIN) && `no auth plugin at ${PLUGIN}` }, () => {
  let broker;
  let gateway;
  let files;
  const clients = [];
  before(async () => {
    // Mosquitto started as root reads these as the mosquitto user: copies in a readable dir.
    files = mkdtempSync(path.join(tmpdir(), 'rtm-js-secure-'));
    chmodSync(files, 0o755);
    const plugin = path.join(files, 'rtm_mosquitto_auth.so');
    const acl = path.join(files, 'acl');
    const passwd = path.join(files, 'passwd');
    copyFileSync(PLUGIN, plugin);
    copyFileSync(path.join(root, 'docker/mosquitto/acl'), acl);
    const made = spawnSync('mosquitto_passwd', ['-b', '-c', passwd, 'rtm-gateway', GATEWAY_PASSWORD]);
    assert.equal(made.status, 0, String(made.stderr));
    for (const f of [plugin, acl, passwd]) chmodSync(f, 0o644);
    broker = await Mosquitto.start(
      [
        `plugin ${plugin}`,
        `plugin_opt_token_secret ${SECRET}`,
        'plugin_opt_enforce_grants true',
        `password_file ${passwd}`,
        `acl_file ${acl}`,
      ].join('\n'),
      { allowAnonymous: false },
    );
    gateway = await Gateway.start(broker.port, {
      password: GATEWAY_PASSWORD,
      extraYaml: 'enforcement:\n  publish_grants: true\n',
      authYaml: '  token_warn_before_s: 1\n',
    });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await gateway?.stop();
    gateway?.cleanup();
    await broker?.stop();
    if (files) rmSync(files, { recursive: true, force: true });
  });

  function make(uid, transport, token = tokenFor(uid)) {
    const url = transport === 'ws' ? broker.wsUrl : broker.tcpUrl;
    const c = new RtmClient({ brokerUrl: url, uid, token, reconnectMinMs: 50, reconnectMaxMs: 300 });
    clients.push(c);
    return c;
  }

  for (const transport of ['tcp', 'ws']) {
    test(`the RTM flow under enforcement over ${transport}`, async () => {
      const channel = uniqueId('room');
      const host = make(uniqueId('host'), transport);
      const player = make(uniqueId('player'), transport);
      await host.login();
      await player.login();
      const got = new Events(host, 'message');
      const inbox = new Events(player, 'inbox');
      await host.streamChannel(channel).join();
      const room = player.streamChannel(channel);
      await room.join();
      await room.joinTopic('input');
      await host.streamChannel(channel).subscribeTopic('input', [player.uid]);
      for (let i = 0; i < 5; i++) await room.publishTopic('input', `f${i}`);
      const frames = await got.count(() => true, 5, 5000, 'frames');
      assert.deepEqual(frames.map((m) => text(m.payload)), ['f0', 'f1', 'f2', 'f3', 'f4']);
      await host.publish(player.uid, 'hi');
      assert.equal((await inbox.find(() => true, 5000, 'inbox')).text, 'hi');
    });
  }

  test('a bad token is refused at CONNECT: FAILED with LOGIN_FAILURE', async () => {
    const uid = uniqueId('mallory');
    const c = make(uid, 'tcp', tokenFor('someone-else'));
    const states = new Events(c, 'connectionState');
    await assert.rejects(c.login(), (e) => e.codeName === 'UNAVAILABLE' && /CONNACK [45]/.test(e.message));
    assert.equal(c.state, ConnectionState.FAILED);
    assert.equal(states.items.at(-1).reason, ConnectionChangeReason.LOGIN_FAILURE);
  });

  test('an expired token: the broker closes the connection, FAILED with TOKEN_EXPIRED, no reconnect', async () => {
    const uid = uniqueId('short');
    const c = make(uid, 'ws', tokenFor(uid, 2));
    const states = new Events(c, 'connectionState');
    const info = await c.login();
    const failed = await states.find((e) => e.state === ConnectionState.FAILED, 8000, 'FAILED');
    assert.equal(failed.reason, ConnectionChangeReason.TOKEN_EXPIRED);
    assert.ok(Date.now() / 1000 >= info.expiresAt - 1);
    assert.equal(states.items.filter((e) => e.state === ConnectionState.RESTORED).length, 0);
  });
});
