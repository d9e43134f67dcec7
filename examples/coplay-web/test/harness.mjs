// Real parts for the web tests, as tests/integration/harness.cpp has them for the C++ tests: a
// Mosquitto started on free ports with its own config (a TCP and a WebSockets listener), the
// real rtm-gateway binary, the demo's server.mjs, and Debian's Chromium through playwright-core.
// Waiting is always for an event or a condition with a deadline, never a fixed sleep.
import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import {
  chmodSync, copyFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';

const here = path.dirname(fileURLToPath(import.meta.url));
export const webDir = path.resolve(here, '..');
export const repoRoot = path.resolve(webDir, '../..');

export const START_DEADLINE_MS = 10000;
const STOP_GRACE_MS = 5000;
const POLL_MS = 10;

export const gatewayBinary = process.env.RTM_GATEWAY_BIN || path.join(repoRoot, 'build', 'gateway', 'rtm-gateway');
export const chromiumPath = process.env.RTM_CHROMIUM || '/usr/bin/chromium';
// Where screenshots and logs go: ctest's build tree (CMake sets it), else a temp dir.
export const outputDir = process.env.RTM_TEST_OUTPUT_DIR || path.join(os.tmpdir(), 'coplay-web-test-output');
export const TEST_SECRET = 'coplay-web-test-secret-0123456789abcdef';

// Cleanups of a test, run last-registered first once it ends (processes stop before their
// directory goes).
const cleanups = new WeakMap();
export function onCleanup(t, fn) {
  if (!cleanups.has(t)) {
    cleanups.set(t, []);
    t.after(async () => {
      for (const f of cleanups.get(t).reverse()) await f();
    });
  }
  cleanups.get(t).push(fn);
}

// A temp dir for a test's processes; their logs are copied to the output folder at the end.
export function tempDir(t, prefix = 'coplay-web-') {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  // Mosquitto started as root reads its files as the `mosquitto` user.
  chmodSync(dir, 0o755);
  onCleanup(t, () => {
    const logs = path.join(outputDir, 'logs', t.name.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 80));
    mkdirSync(logs, { recursive: true });
    for (const f of readdirSync(dir)) if (f.endsWith('.log')) copyFileSync(path.join(dir, f), path.join(logs, f));
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export async function waitUntil(check, { deadlineMs = START_DEADLINE_MS, what = 'condition' } = {}) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

function portAccepts(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// A child process with its output in a log file; stopped (SIGTERM, then SIGKILL) at the
// test's end.
export class Process {
  constructor(t, name, command, args, { env = {}, logDir, cwd } = {}) {
    this.name = name;
    this.logPath = path.join(logDir, `${name}.log`);
    const log = createWriteStream(this.logPath);
    this.child = spawn(command, args, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.output = '';
    this.exited = null;
    const collect = (chunk) => {
      this.output += chunk.toString();
      log.write(chunk);
    };
    this.child.stdout.on('data', collect);
    this.child.stderr.on('data', collect);
    this.exitPromise = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exited = { code, signal };
        log.end();
        resolve(this.exited);
      });
    });
    this.child.once('error', (e) => {
      this.output += `spawn failed: ${e.message}\n`;
    });
    onCleanup(t, () => this.stop());
  }

  running() {
    return this.exited === null && this.child.exitCode === null;
  }

  async stop() {
    if (!this.running()) return this.exited;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_GRACE_MS);
    const result = await this.exitPromise;
    clearTimeout(timer);
    return result;
  }

  async waitForOutput(regex, deadlineMs = START_DEADLINE_MS) {
    return waitUntil(() => {
      if (!this.running()) throw new Error(`${this.name} exited (${JSON.stringify(this.exited)}):\n${this.output}`);
      return regex.exec(this.output);
    }, { deadlineMs, what: `${this.name} printing ${regex}` });
  }
}

// Mosquitto with a TCP listener and a `protocol websockets` listener, open (no logins), as the
// C++ harness configures it (set_tcp_nodelay true, no persistence).
// With `tls`, the WebSockets listener is wss:// with a self-signed certificate for 127.0.0.1
// (made here with openssl), as docs/security.md's "Mosquitto itself" set-up.
// `secure`: the shipped secure set-up (docs/security.md): the project's auth plugin (tokens as
// MQTT passwords, client ids "{uid}/...", the gateway's grants enforced), the shipped ACL, no
// anonymous clients, and the gateway as password user rtm-gateway (GATEWAY_PASSWORD).
export async function startMosquitto(t, dir, { tls = false, secure = false } = {}) {
  const tcpPort = await freePort();
  const wsPort = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  const tlsLines = [];
  if (tls) {
    const [cert, key] = [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')];
    execFileSync(findProgram('openssl'), ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    chmodSync(key, 0o644); // read by the `mosquitto` user; a throw-away key in a throw-away dir
    tlsLines.push(`certfile ${cert}`, `keyfile ${key}`);
  }
  writeFileSync(conf, [
    'per_listener_settings false',
    `allow_anonymous ${secure ? 'false' : 'true'}`,
    ...(secure ? secureLines(dir) : []),
    'set_tcp_nodelay true',
    'persistence false',
    `listener ${tcpPort} 127.0.0.1`,
    // Debian's Mosquitto 2.0.11 binds a WebSockets listener on every interface whatever the
    // address: for this test's few seconds only.
    `listener ${wsPort} 127.0.0.1`,
    'protocol websockets',
    ...tlsLines,
    'log_dest stdout',
    'log_type error', 'log_type warning', 'log_type notice',
    '',
  ].join('\n'));
  const broker = {
    process: null,
    tcpPort,
    wsPort,
    uri: `tcp://127.0.0.1:${tcpPort}`,
    wsUrl: `${tls ? 'wss' : 'ws'}://127.0.0.1:${wsPort}`,
    // (Re)starts on the same ports; resolves once both listeners accept connections.
    async start() {
      const n = broker.starts = (broker.starts || 0) + 1;
      const mosquitto = new Process(t, n === 1 ? 'mosquitto' : `mosquitto-${n}`, findProgram('mosquitto'), ['-c', conf],
        { logDir: dir });
      broker.process = mosquitto;
      for (const port of [tcpPort, wsPort]) {
        await waitUntil(async () => {
          if (!mosquitto.running()) throw new Error(`mosquitto exited at start:\n${mosquitto.output}`);
          return portAccepts(port);
        }, { what: `mosquitto accepting on ${port}` });
      }
    },
    stop: () => broker.process.stop(),
  };
  await broker.start();
  return broker;
}

export const GATEWAY_PASSWORD = 'coplay-web-test-gateway-password';
export const authPlugin = process.env.RTM_AUTH_PLUGIN || path.join(repoRoot, 'build', 'mosquitto-auth', 'rtm_mosquitto_auth.so');

// The secure set-up's broker lines, with copies of its files the `mosquitto` user can read.
function secureLines(dir) {
  if (!existsSync(authPlugin)) throw new Error(`${authPlugin} is missing: build rtm_mosquitto_auth (or set RTM_AUTH_PLUGIN)`);
  const [plugin, acl, passwd] = ['rtm_mosquitto_auth.so', 'acl', 'passwd'].map((f) => path.join(dir, f));
  copyFileSync(authPlugin, plugin);
  copyFileSync(path.join(repoRoot, 'docker', 'mosquitto', 'acl'), acl);
  execFileSync(findProgram('mosquitto_passwd'), ['-b', '-c', passwd, 'rtm-gateway', GATEWAY_PASSWORD]);
  for (const f of [plugin, acl, passwd]) chmodSync(f, 0o644);
  return [`plugin ${plugin}`, `plugin_opt_token_secret ${TEST_SECRET}`, 'plugin_opt_enforce_grants true',
    `password_file ${passwd}`, `acl_file ${acl}`];
}

// A login token as `rtm-gateway token` signs it (HS256; sub, iat, exp).
export function tokenFor(uid, ttlS = 600) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: uid, iat: now, exp: now + ttlS })}`;
  return `${body}.${createHmac('sha256', TEST_SECRET).update(body).digest('base64url')}`;
}

export function findProgram(name) {
  for (const dir of [...(process.env.PATH || '').split(':'), '/usr/sbin', '/sbin', '/usr/local/sbin']) {
    const file = path.join(dir, name);
    if (dir && existsSync(file)) return file;
  }
  throw new Error(`${name} is not installed (scripts/install-deps.sh)`);
}

// The gateway on a config the test writes (broker, prefix rtm, TEST_SECRET, memory state), or
// on a given config file with --broker pointing at the test's broker.
export async function startGateway(t, dir, brokerUri, { configFile, extraYaml = '', authYaml = '', secure = false } = {}) {
  let config = configFile;
  const args = [];
  if (!config) {
    config = path.join(dir, 'gateway.yaml');
    writeFileSync(config, [
      'broker:',
      `  uri: ${brokerUri}`,
      `  client_id: gw-web-${process.pid}-${Date.now()}`,
      '  reconnect_min_ms: 50',
      '  reconnect_max_ms: 500',
      ...(secure ? ['  username: rtm-gateway', `  password: ${GATEWAY_PASSWORD}`] : []),
      'topics:',
      '  prefix: rtm',
      'auth:',
      `  token_secret: ${TEST_SECRET}`,
      authYaml,
      'log:',
      '  level: info',
      ...(secure ? ['enforcement:', '  publish_grants: true'] : []),
      extraYaml,
    ].join('\n'));
  } else {
    args.push('--broker', brokerUri, '--ops-listen', '');
  }
  if (!existsSync(gatewayBinary)) throw new Error(`${gatewayBinary} is missing: build rtm-gateway (or set RTM_GATEWAY_BIN)`);
  const gateway = new Process(t, 'gateway', gatewayBinary, ['--config', config, ...args], { logDir: dir });
  await waitGatewayReady(brokerUri, gateway, 'rtm', secure);
  return { process: gateway, config };
}

// Until the gateway answers a ping over MQTT (as wait_gateway_ready of the C++ harness).
export async function waitGatewayReady(brokerUri, gateway, prefix = 'rtm', secure = false) {
  const uid = `probe-${process.pid}-${Date.now()}`;
  // The secure broker takes token logins: username = uid, password = token, client id uid/...
  const login = secure ? { username: uid, password: tokenFor(uid), clientId: `${uid}/probe` } : { clientId: uid };
  const client = await mqtt.connectAsync(brokerUri.replace(/^tcp:/, 'mqtt:'), { ...login, reconnectPeriod: 0 });
  try {
    await client.subscribeAsync(`${prefix}/u/${uid}/#`);
    let answered = false;
    client.on('message', (topic, payload) => {
      if (topic.startsWith(`${prefix}/u/${uid}/res/ping`) && JSON.parse(payload.toString()).code === 0) answered = true;
    });
    let n = 0;
    let lastAsk = 0;
    await waitUntil(() => {
      if (!gateway.running()) throw new Error(`the gateway exited:\n${gateway.output}`);
      if (!answered && Date.now() - lastAsk > 200) {
        lastAsk = Date.now();
        client.publish(`${prefix}/req/${uid}/ping?msg_id=ready-${++n}`, '', { qos: 1 });
      }
      return answered;
    }, { what: 'the gateway answering a ping' });
  } finally {
    await client.endAsync();
  }
}

// examples/coplay-web/server.mjs on a free port, with the test's broker and gateway config.
export async function startWebServer(t, dir, { brokerWs, config }) {
  const server = new Process(t, 'web', process.execPath, [path.join(webDir, 'server.mjs')], {
    logDir: dir,
    env: {
      RTM_WEB_PORT: '0',
      RTM_BROKER_WS: brokerWs || '',
      RTM_CONFIG: config,
      RTM_GATEWAY_BIN: gatewayBinary,
      RTM_RUN_ENV: path.join(dir, 'no-run-env'), // never the developer's run.sh
    },
  });
  // Its last line of the start: everything it says at the start has been read then.
  await server.waitForOutput(/Ctrl-C to stop/);
  const base = /serving \S+ on (http:\/\/127\.0\.0\.1:\d+)/.exec(server.output)[1];
  return { process: server, base };
}

// The whole demo for one test: a Mosquitto with its WebSockets listener (`broker`: the options
// of startMosquitto), the gateway (`gateway`: those of startGateway), the demo server on both,
// and a headless Chromium; all stopped at the test's end. `log` gathers the pages' consoles.
export async function startDemo(t, { broker: brokerOptions = {}, gateway: gatewayOptions = {} } = {}) {
  const dir = tempDir(t);
  const broker = await startMosquitto(t, dir, brokerOptions);
  const gateway = await startGateway(t, dir, broker.uri, gatewayOptions);
  const web = await startWebServer(t, dir, { brokerWs: broker.wsUrl, config: gateway.config });
  const browser = await launchBrowser(t);
  return { dir, broker, gateway, web, browser, log: [] };
}

// Headless Debian Chromium through playwright-core (no browser download: executablePath).
export async function launchBrowser(t) {
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: apt-get install chromium (scripts/packages.txt)`);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // As root (CI, containers) Chromium's sandbox cannot start.
    args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
  });
  onCleanup(t, () => browser.close());
  return browser;
}

// A page that fails the test on an uncaught error, and keeps its console for the report.
export async function openPage(browser, url, log) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  await page.goto(url);
  return page;
}

export function saveArtifact(name, data) {
  mkdirSync(outputDir, { recursive: true });
  const file = path.join(outputDir, name);
  writeFileSync(file, data);
  return file;
}
