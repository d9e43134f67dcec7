#!/usr/bin/env node
// The coplay web demo's server: serves the host and player pages, the JavaScript SDK
// (sdk-js/dist) and MQTT.js's browser bundle (no bundler: the pages' import map names them),
// tells the pages the broker's WebSockets URL, and signs short demo login tokens for them.
// Node's http module only; it listens on 127.0.0.1, never on another interface.
//
//   node examples/coplay-web/server.mjs [--port N] [--broker-ws URL] [--config FILE] [--gateway BIN]
//
//   --port / RTM_WEB_PORT        port (default: 8080, or the next free one; an explicit port must be free)
//   --broker-ws / RTM_BROKER_WS  the broker's MQTT-over-WebSockets URL; else RTM_BROKER_WS of
//                                scripts/run.sh's .run/env, read again at each page load
//   --config / RTM_CONFIG        the gateway's config (its auth.token_secret signs the tokens and
//                                topics.prefix is passed to the pages); default: RTM_CONFIG of
//                                .run/env, else config.yaml
//   --gateway / RTM_GATEWAY_BIN  rtm-gateway binary (its `token` subcommand signs the tokens);
//                                default: build/gateway/rtm-gateway (RTM_BUILD_DIR)
//
// The token endpoint is what a real app's backend does after its own login: here anyone who can
// reach 127.0.0.1 gets a token for any plain uid, so the demo server must stay on loopback.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, promises as fsp } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');

const DEFAULT_PORT = 8080;
const PORT_TRIES = 100;
const HOST = '127.0.0.1';
// Demo tokens: short-lived, for plain uids, and not too many.
export const TOKEN_TTL_DEFAULT_S = 3600;
export const TOKEN_TTL_MIN_S = 60;
export const TOKEN_TTL_MAX_S = 3600;
export const TOKENS_PER_MINUTE = 120; // RTM_WEB_TOKENS_PER_MINUTE may lower it (the tests do)
const TOKEN_COMMAND_TIMEOUT_MS = 5000;
export const UID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_URL_BYTES = 2048;

const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.ts': 'text/plain; charset=utf-8',
};

// ---------------------------------------------------------------- settings

function parseArgs(argv) {
  const options = {};
  const names = { '--port': 'port', '--broker-ws': 'brokerWs', '--config': 'config', '--gateway': 'gateway' };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    if (flag === '--help' || flag === '-h') {
      options.help = true;
      continue;
    }
    const name = names[flag];
    if (!name) throw new Error(`unknown option ${argv[i]} (try --help)`);
    const value = inline !== undefined ? inline : argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    options[name] = value;
  }
  return options;
}

// `export NAME=value` lines of run.sh's .run/env ({} when run.sh is not running).
export function readRunEnv(file) {
  const values = {};
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return values;
  }
  for (const line of text.split('\n')) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) values[m[1]] = m[2].trim().replace(/^(['"])(.*)\1$/, '$2');
  }
  return values;
}

// A top-level section's scalar key of a YAML config, read the way run.sh reads topics.prefix
// (the server has no YAML parser; the gateway itself checks the file when it signs a token).
export function yamlValue(text, section, key) {
  let inSection = false;
  for (const line of text.split('\n')) {
    if (/^[^\s#]/.test(line)) inSection = line.startsWith(`${section}:`);
    else if (inSection) {
      const m = new RegExp(`^\\s+${key}:\\s*(.*?)\\s*(#.*)?$`).exec(line);
      if (m) return m[1].replace(/^(['"])(.*)\1$/, '$2');
    }
  }
  return null;
}

// The uids the config gives powers to (ops.uids) and the gateway's own MQTT username: no demo
// token for them.
export function reservedUids(text) {
  const reserved = new Set(['rtm-gateway']);
  const username = yamlValue(text, 'broker', 'username');
  if (username) reserved.add(username);
  const uids = yamlValue(text, 'ops', 'uids');
  if (uids) {
    for (const u of uids.replace(/^\[|\]$/g, '').split(',')) {
      const name = u.trim().replace(/^(['"])(.*)\1$/, '$2');
      if (name) reserved.add(name);
    }
  }
  return reserved;
}

export function makeSettings(options, env = process.env) {
  const runEnvFile = env.RTM_RUN_ENV || path.join(repoRoot, '.run', 'env');
  const runEnv = readRunEnv(runEnvFile);
  const fromCwd = (p) => path.resolve(process.cwd(), p);
  let config;
  let configFrom;
  if (options.config || env.RTM_CONFIG) {
    config = fromCwd(options.config || env.RTM_CONFIG);
    configFrom = options.config ? '--config' : 'RTM_CONFIG';
  } else if (runEnv.RTM_CONFIG) {
    config = path.resolve(path.dirname(path.dirname(runEnvFile)), runEnv.RTM_CONFIG); // the checkout's
    configFrom = '.run/env';
  } else {
    config = path.join(repoRoot, 'config.yaml');
    configFrom = 'the default';
  }
  const buildDir = path.resolve(repoRoot, env.RTM_BUILD_DIR || 'build');
  const gateway = options.gateway || env.RTM_GATEWAY_BIN || path.join(buildDir, 'gateway', 'rtm-gateway');
  const explicitPort = options.port || env.RTM_WEB_PORT;
  const port = explicitPort === undefined ? null : Number(explicitPort);
  if (port !== null && !(Number.isInteger(port) && port >= 0 && port < 65536)) {
    throw new Error(`port ${explicitPort}: expected 0-65535`);
  }
  return {
    runEnvFile,
    fixedBrokerWs: options.brokerWs || env.RTM_BROKER_WS || null,
    config,
    configFrom,
    gateway: fromCwd(gateway),
    port,
    publicDir: path.join(here, 'public'),
    sdkDist: path.join(repoRoot, 'sdk-js', 'dist'),
    mqttBundle: findMqttBundle(),
  };
}

function findMqttBundle() {
  for (const dir of [here, path.join(repoRoot, 'sdk-js')]) {
    const file = path.join(dir, 'node_modules', 'mqtt', 'dist', 'mqtt.esm.js');
    if (existsSync(file)) return file;
  }
  return null;
}

// The broker's WebSockets URL now: the flag or variable, else run.sh's .run/env (read each time,
// so that a run.sh started after this server is found).
function brokerWs(settings) {
  if (settings.fixedBrokerWs) return { url: settings.fixedBrokerWs, from: 'RTM_BROKER_WS / --broker-ws' };
  const url = readRunEnv(settings.runEnvFile).RTM_BROKER_WS;
  return url ? { url, from: '.run/env' } : { url: null, from: null };
}

export const NO_BROKER_HELP =
  'No broker WebSockets URL. Start the broker with a WebSockets listener, ' +
  '`RTM_WS_PORT=auto ./scripts/run.sh` in another terminal (this page finds it in .run/env: reload), ' +
  'or give one to the server: RTM_BROKER_WS=ws://127.0.0.1:PORT ./scripts/web.sh';

// ---------------------------------------------------------------- tokens

class RateLimit {
  constructor(perMinute) {
    this.perMinute = perMinute;
    this.tokens = perMinute;
    this.at = Date.now();
  }
  take() {
    const now = Date.now();
    this.tokens = Math.min(this.perMinute, this.tokens + ((now - this.at) / 60000) * this.perMinute);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

function signToken(settings, uid, ttl) {
  return new Promise((resolve, reject) => {
    execFile(settings.gateway, ['token', '--uid', uid, '--ttl', String(ttl), '--config', settings.config],
      { timeout: TOKEN_COMMAND_TIMEOUT_MS },
      (error, stdout, stderr) => {
        const token = String(stdout).trim();
        if (error || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) {
          reject(new Error(`${path.basename(settings.gateway)} token: ${String(stderr).trim() || error?.message || 'no token'}`));
        } else {
          resolve(token);
        }
      });
  });
}

const LOOPBACK_ADDRESSES = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

// Who may ask for a token: a client on this machine, through a page this server served (or a
// tool such as curl). The Host check stops a DNS-rebinding page (evil.example resolving to
// 127.0.0.1); the Origin and Sec-Fetch-Site checks stop other sites' pages.
function tokenRequestRefusal(req, port) {
  if (!LOOPBACK_ADDRESSES.has(req.socket.remoteAddress)) return 'tokens are for loopback clients only';
  const host = String(req.headers.host || '');
  const hostname = host.replace(/:\d+$/, '');
  if (!LOOPBACK_HOSTS.has(hostname) || (host !== hostname && host.slice(hostname.length + 1) !== String(port))) {
    return `Host ${JSON.stringify(host)} is not this server`;
  }
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${host}`) return `Origin ${JSON.stringify(origin)} is not this server`;
  // A page elsewhere that loads the URL without CORS (a <script> or <img>) sends no Origin.
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `a ${site} request`;
  return null;
}

// ---------------------------------------------------------------- static files

// The file a URL path names, or null. Every segment is checked after decoding: no '..', no '.',
// no dotfiles, no backslashes, no NUL; and the resolved real path must stay inside its root
// (symbolic links included).
export async function resolveStatic(settings, urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (!decoded.startsWith('/') || /[\\\0]/.test(decoded)) return null;
  const segments = decoded.split('/').slice(1);
  if (segments.some((s) => s === '..' || s === '.' || s.startsWith('.'))) return null;
  let root;
  let rest;
  if (decoded === '/') {
    [root, rest] = [settings.publicDir, ['index.html']];
  } else if (decoded === '/vendor/mqtt.esm.js') {
    if (!settings.mqttBundle) return null;
    return { file: settings.mqttBundle };
  } else if (decoded === '/vendor/mqtt.js') {
    [root, rest] = [settings.publicDir, ['mqtt-shim.js']];
  } else if (segments[0] === 'sdk') {
    [root, rest] = [settings.sdkDist, segments.slice(1)];
  } else {
    [root, rest] = [settings.publicDir, segments];
  }
  if (rest.length === 0 || rest.some((s) => s === '')) return null;
  const candidate = path.resolve(root, ...rest);
  try {
    const [realRoot, realFile] = await Promise.all([fsp.realpath(root), fsp.realpath(candidate)]);
    const relative = path.relative(realRoot, realFile);
    if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) return null;
    const stat = await fsp.stat(realFile);
    return stat.isFile() ? { file: realFile } : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- server

function send(res, status, body, type = 'text/plain; charset=utf-8', extra = {}) {
  res.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    ...extra,
  });
  res.end(body);
}

function sendJson(res, status, value) {
  send(res, status, JSON.stringify(value), CONTENT_TYPES['.json']);
}

export function createServer(settings) {
  const perMinute = Math.min(TOKENS_PER_MINUTE, Number(process.env.RTM_WEB_TOKENS_PER_MINUTE) || TOKENS_PER_MINUTE);
  const limit = new RateLimit(perMinute);
  let configText = '';
  const server = http.createServer(async (req, res) => {
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        send(res, 405, 'only GET and HEAD\n', undefined, { Allow: 'GET, HEAD' });
        return;
      }
      if (!req.url || req.url.length > MAX_URL_BYTES || !req.url.startsWith('/')) {
        send(res, 400, 'bad request\n');
        return;
      }
      const question = req.url.indexOf('?');
      const urlPath = question < 0 ? req.url : req.url.slice(0, question);
      const query = new URLSearchParams(question < 0 ? '' : req.url.slice(question + 1));

      if (urlPath === '/config.json') {
        try {
          configText = readFileSync(settings.config, 'utf8');
        } catch {
          configText = '';
        }
        const broker = brokerWs(settings);
        sendJson(res, 200, {
          brokerUrl: broker.url,
          prefix: yamlValue(configText, 'topics', 'prefix') || 'rtm',
          help: broker.url ? undefined : NO_BROKER_HELP,
        });
        return;
      }

      if (urlPath === '/token') {
        const refusal = tokenRequestRefusal(req, server.address().port);
        if (refusal) {
          sendJson(res, 403, { error: refusal });
          return;
        }
        const uid = query.get('uid') || '';
        if (!UID_PATTERN.test(uid)) {
          sendJson(res, 400, { error: `uid ${JSON.stringify(uid.slice(0, 80))}: the demo signs tokens for 1-64 letters, digits, '-' or '_'` });
          return;
        }
        try {
          configText = readFileSync(settings.config, 'utf8');
        } catch {
          sendJson(res, 500, { error: `cannot read the gateway config ${settings.config}` });
          return;
        }
        if (reservedUids(configText).has(uid)) {
          sendJson(res, 403, { error: `uid ${uid} is reserved (ops.uids or the gateway's own user): no demo token` });
          return;
        }
        const ttlText = query.get('ttl');
        const ttl = ttlText === null ? TOKEN_TTL_DEFAULT_S : Number(ttlText);
        if (!Number.isInteger(ttl) || ttl < TOKEN_TTL_MIN_S || ttl > TOKEN_TTL_MAX_S) {
          sendJson(res, 400, { error: `ttl: ${TOKEN_TTL_MIN_S}-${TOKEN_TTL_MAX_S} seconds` });
          return;
        }
        if (!limit.take()) {
          sendJson(res, 429, { error: `more than ${perMinute} tokens a minute` });
          return;
        }
        try {
          const token = await signToken(settings, uid, ttl);
          sendJson(res, 200, { uid, token, ttl });
        } catch (e) {
          sendJson(res, 500, { error: e.message });
        }
        return;
      }

      if (urlPath.startsWith('/sdk/') && !existsSync(settings.sdkDist)) {
        send(res, 503, 'sdk-js/dist is missing: build the SDK with ./scripts/js.sh\n');
        return;
      }
      const found = await resolveStatic(settings, urlPath);
      if (!found) {
        send(res, 404, 'not found\n');
        return;
      }
      const body = await fsp.readFile(found.file);
      const type = CONTENT_TYPES[path.extname(found.file)] || 'application/octet-stream';
      send(res, 200, req.method === 'HEAD' ? undefined : body, type, { 'Content-Length': body.length });
    } catch (e) {
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
      console.error(`coplay-web: ${req.method} ${req.url}: ${e.message}`);
    }
  });
  return server;
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    const onError = (e) => {
      server.off('listening', onListening);
      reject(e);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve(server.address().port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, HOST);
  });
}

async function listenOnFreePort(server, settings) {
  if (settings.port !== null) return listen(server, settings.port);
  for (let port = DEFAULT_PORT; port < DEFAULT_PORT + PORT_TRIES; port++) {
    try {
      return await listen(server, port);
    } catch (e) {
      if (e.code !== 'EADDRINUSE') throw e;
    }
  }
  throw new Error(`no free port in ${DEFAULT_PORT}-${DEFAULT_PORT + PORT_TRIES - 1}; set RTM_WEB_PORT`);
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  if (options.help) {
    const text = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
    console.log(text.slice(1, text.findIndex((l) => l.startsWith('import'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    return;
  }
  const settings = makeSettings(options);
  const problems = [];
  if (!existsSync(settings.sdkDist)) problems.push('sdk-js/dist is missing: build the SDK with ./scripts/js.sh (./scripts/web.sh does)');
  if (!settings.mqttBundle) problems.push('MQTT.js is not installed: npm ci in examples/coplay-web (./scripts/web.sh does)');
  if (!existsSync(settings.gateway)) problems.push(`${settings.gateway} is missing (it signs the demo tokens): build it, e.g. ./scripts/run.sh does`);
  if (!existsSync(settings.config)) problems.push(`the gateway config ${settings.config} is missing`);
  const server = createServer(settings);
  const port = await listenOnFreePort(server, settings);
  const base = `http://${HOST}:${port}`;
  const broker = brokerWs(settings);
  console.log(`coplay-web: serving examples/coplay-web on ${base}`);
  console.log(`  host page:   ${base}/host.html?room=room-42&uid=host`);
  console.log(`  player page: ${base}/player.html?room=room-42&uid=p1   (&auto=1: made-up input; &frames=600; &format=json)`);
  if (broker.url) console.log(`  broker:      ${broker.url} (from ${broker.from})`);
  else console.log(`  broker:      none yet. ${NO_BROKER_HELP}`);
  console.log(`  tokens:      ${base}/token?uid=UID, signed with auth.token_secret of ${path.relative(process.cwd(), settings.config) || settings.config} (${settings.configFrom}), ttl at most ${TOKEN_TTL_MAX_S} s`);
  for (const p of problems) console.log(`  warning:     ${p}`);
  console.log('Ctrl-C to stop');
  // Browsers keep their connections open: close them too, or close() waits for ever.
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

// Run as a program (not imported by the tests); Node names this module by its real path.
if (process.argv[1] && realpathSync(path.resolve(process.argv[1])) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`coplay-web: ${e.message}`);
    process.exit(1);
  });
}
