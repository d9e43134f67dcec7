// Test harness for the JS SDK, as tests/integration/harness.cpp does it for the C++ tests: a
// real Mosquitto on free ports (a TCP listener and a WebSockets listener), the real gateway
// binary (RTM_GATEWAY_BIN, set by CMake) with its own config, tokens signed with the test
// secret, a TCP proxy that can cut the network, and waits for events with deadlines (never
// sleeps as synchronisation).
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync } from 'node:fs';
import assert from 'node:assert/strict';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import mqtt from 'mqtt';

import { ConnectionState, ErrorCode, RtmClient, RtmError } from '../dist/index.js';

export const SECRET = 'js-sdk-test-secret-0123456789abcdef';
const here = path.dirname(fileURLToPath(import.meta.url));
export const GATEWAY_BIN =
  process.env.RTM_GATEWAY_BIN || path.resolve(here, '../../build/gateway/rtm-gateway');

let uniqueCounter = 0;
export function uniqueId(base) {
  return `${base}-${process.pid}-${++uniqueCounter}`;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portAccepts(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Polls `check` (an async predicate) until it holds or the deadline passes. */
export async function waitUntil(check, timeoutMs = 10000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

class Process {
  constructor(argv, logPath) {
    this.logPath = logPath;
    const fd = openSync(logPath, 'a');
    this.child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.running = true;
    this.exited.then(() => (this.running = false));
  }

  async stop(signal = 'SIGTERM') {
    if (!this.running) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  log() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }
}

/** Mosquitto with a TCP and a WebSockets listener, set_tcp_nodelay on. */
export class Mosquitto {
  static async start(extra = '', { allowAnonymous = true } = {}) {
    const m = new Mosquitto();
    m.allowAnonymous = allowAnonymous;
    m.dir = mkdtempSync(path.join(tmpdir(), 'rtm-js-mosq-'));
    chmodSync(m.dir, 0o755); // Mosquitto started as root reads it as the mosquitto user
    m.port = await freePort();
    m.wsPort = await freePort();
    m.extra = extra;
    await m.start();
    return m;
  }

  async start() {
    const conf = [
      `listener ${this.port} 127.0.0.1`,
      `listener ${this.wsPort} 127.0.0.1`,
      'protocol websockets',
      `allow_anonymous ${this.allowAnonymous}`,
      'set_tcp_nodelay true',
      'persistence false',
      'log_dest stdout',
      'log_type error',
      'log_type warning',
      'log_type notice',
      this.extra,
    ].join('\n');
    writeFileSync(path.join(this.dir, 'mosquitto.conf'), conf + '\n');
    this.process = new Process(['mosquitto', '-c', path.join(this.dir, 'mosquitto.conf')], path.join(this.dir, 'mosquitto.log'));
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      if (!this.process.running) throw new Error('mosquitto exited at start: ' + this.process.log());
      if ((await portAccepts(this.port)) && (await portAccepts(this.wsPort))) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('mosquitto did not accept connections within 10 s');
  }

  get tcpUrl() {
    return `mqtt://127.0.0.1:${this.port}`;
  }
  get wsUrl() {
    return `ws://127.0.0.1:${this.wsPort}`;
  }

  async stop() {
    await this.process?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The gateway binary with a generated config (as harness.cpp's GatewayProcess). */
export class Gateway {
  static async start(brokerPort, { extraYaml = '', authYaml = '', prefix = 'rtm', password = '' } = {}) {
    const g = new Gateway();
    g.dir = mkdtempSync(path.join(tmpdir(), 'rtm-js-gw-'));
    g.configPath = path.join(g.dir, 'config.yaml');
    g.brokerUrl = `mqtt://127.0.0.1:${brokerPort}`;
    g.prefix = prefix;
    const yaml =
      `broker:\n  uri: tcp://127.0.0.1:${brokerPort}\n  client_id: ${uniqueId('gw')}\n` +
      `  username: "rtm-gateway"\n  password: "${password}"\n  reconnect_min_ms: 50\n  reconnect_max_ms: 500\n` +
      `topics:\n  prefix: ${prefix}\n` +
      `auth:\n  token_secret: ${SECRET}\n${authYaml}` +
      `log:\n  level: debug\n  stats_interval_s: 1\n` +
      extraYaml;
    writeFileSync(g.configPath, yaml);
    await g.start();
    return g;
  }

  async start() {
    this.process = new Process([GATEWAY_BIN, '--config', this.configPath], path.join(this.dir, 'gateway.log'));
    if (!(await waitGatewayReady(this.brokerUrl, 10000, this.prefix))) {
      throw new Error('the gateway did not answer ping within 10 s:\n' + this.process.log().slice(-3000));
    }
  }

  async stop(signal) {
    await this.process?.stop(signal);
  }

  log() {
    return this.process?.log() ?? '';
  }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A plain MQTT client (MQTT.js) for what the tests do outside the SDK. */
export async function rawClient(url, clientId = uniqueId('raw'), credentials = {}) {
  const c = mqtt.connect(url, { clientId, protocolVersion: 4, reconnectPeriod: 0, clean: true, ...credentials });
  await new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
  c.stream.setNoDelay?.(true);
  return c;
}

export async function waitGatewayReady(brokerUrl, timeoutMs, prefix = 'rtm') {
  const uid = uniqueId('probe');
  // With a token: a broker with the auth plugin takes token users ("{uid}/..." client ids) only.
  const c = await rawClient(brokerUrl, `${uid}/probe`, { username: uid, password: tokenFor(uid) });
  try {
    await c.subscribeAsync(`${prefix}/u/${uid}/#`, { qos: 1 });
    const deadline = Date.now() + timeoutMs;
    for (let i = 1; Date.now() < deadline; i++) {
      const id = `ready-${i}`;
      const got = new Promise((resolve) => {
        const t = setTimeout(() => resolve(false), 200);
        c.on('message', (topic, payload) => {
          if (topic.endsWith(`msg_id=${id}`)) {
            clearTimeout(t);
            resolve(JSON.parse(payload.toString()).code === 0);
          }
        });
      });
      c.publish(`${prefix}/req/${uid}/ping?msg_id=${id}`, '', { qos: 1 });
      if (await got) return true;
      c.removeAllListeners('message');
    }
    return false;
  } finally {
    c.end(true);
  }
}

function base64url(data) {
  return Buffer.from(data).toString('base64url');
}

/** A login token (JWT HS256, sub = uid), as `rtm-gateway token` makes it. */
export function tokenFor(uid, ttlS = 3600, extraClaims = {}) {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const claims = base64url(JSON.stringify({ sub: uid, iat: now, exp: now + ttlS, ...extraClaims }));
  const sig = createHmac('sha256', SECRET).update(`${header}.${claims}`).digest('base64url');
  return `${header}.${claims}.${sig}`;
}

/** A TCP proxy between clients and the broker whose connections can be cut (a network failure). */
export class TcpProxy {
  static async start(targetPort) {
    const p = new TcpProxy();
    p.sockets = new Set();
    p.accepting = true;
    p.server = net.createServer((client) => {
      if (!p.accepting) {
        client.destroy();
        return;
      }
      const upstream = net.connect(targetPort, '127.0.0.1');
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      p.sockets.add(client);
      p.sockets.add(upstream);
      const close = () => {
        client.destroy();
        upstream.destroy();
        p.sockets.delete(client);
        p.sockets.delete(upstream);
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise((resolve) => p.server.listen(0, '127.0.0.1', resolve));
    p.port = p.server.address().port;
    return p;
  }

  get url() {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** Cuts every connection and refuses new ones until restore(). */
  cut() {
    this.accepting = false;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  restore() {
    this.accepting = true;
  }

  async stop() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** Collects a client's events of one kind; `next(pred)` waits for the first that matches. */
export class Events {
  constructor(client, name) {
    this.items = [];
    this.waiters = [];
    this.off = client.on(name, (e) => {
      this.items.push(e);
      for (const w of [...this.waiters]) w();
    });
  }

  /** The first event (from the start) matching `pred`, waiting up to timeoutMs for it. */
  find(pred = () => true, timeoutMs = 10000, what = 'an event') {
    const found = this.items.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const check = () => {
        const e = this.items.find(pred);
        if (!e) return;
        cleanup();
        resolve(e);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${this.describe()}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
    });
  }

  /** Waits until `n` events match `pred`. */
  async count(pred, n, timeoutMs = 10000, what = 'events') {
    await waitUntil(() => this.items.filter(pred).length >= n, timeoutMs, `${n} ${what}; got ${this.items.filter(pred).length}`);
    return this.items.filter(pred);
  }

  describe() {
    return JSON.stringify(
      this.items.slice(-5),
      (k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString() : v),
    );
  }
}

/** A broker and a gateway for one test file; `client(uid)` makes logged-in clients. */
export class Setup {
  static async start({ extraYaml = '', authYaml = '' } = {}) {
    const s = new Setup();
    s.broker = await Mosquitto.start();
    s.gateway = await Gateway.start(s.broker.port, { extraYaml, authYaml });
    s.clients = [];
    return s;
  }

  url(transport) {
    return transport === 'ws' ? this.broker.wsUrl : this.broker.tcpUrl;
  }

  /** A new client of `uid` (not logged in). */
  make(uid, transport = 'tcp', config = {}) {
    const c = new RtmClient({ brokerUrl: this.url(transport), uid, token: tokenFor(uid), requestTimeoutMs: 5000, ...config });
    this.clients.push(c);
    return c;
  }

  /** A logged-in client of `uid`. */
  async login(uid, transport = 'tcp', config = {}) {
    const c = this.make(uid, transport, config);
    await c.login();
    if (c.state !== ConnectionState.CONNECTED) throw new Error(`login left ${uid} in state ${c.state}`);
    return c;
  }

  async stop() {
    await Promise.all(this.clients.map((c) => c.close().catch(() => {})));
    await this.gateway?.stop();
    await this.broker?.stop();
    this.gateway?.cleanup();
  }
}

export function text(bytes) {
  return Buffer.from(bytes).toString('utf8');
}

/** Asserts that `promise` rejects with the RtmError of `codeName`, its number as ErrorCode says. */
export async function rejectsWith(promise, codeName) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof RtmError, `an RtmError, got ${e}`);
    assert.equal(e.codeName, codeName, `${codeName} expected, got ${e}`);
    assert.equal(e.code, ErrorCode[codeName]);
    return true;
  });
}
