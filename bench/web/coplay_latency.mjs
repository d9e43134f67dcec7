#!/usr/bin/env node
// Coplay latency with Node clients of the JavaScript SDK: the measurement of
// `rtm-bench latency` (bench/src/latency.cpp) over MQTT-over-WebSockets or TCP.
//
// P host/player pairs; player i logs in, joins room i and its topic `input` and publishes a
// frame F times a second on an absolute schedule; host i logs in, joins room i and subscribes
// to player i's `input`; the receive time is taken in the host's 'message' handler. Pairs are
// split over worker processes (child_process.fork, 10 pairs each by default), each with its
// own clients and event loop, as the C++ bench splits them over forked workers. The parent
// starts every worker on one absolute t0, reads the broker's and gateway's CPU from /proc over
// the measured part, merges the samples and writes the same JSON keys as rtm-bench latency.
//
// With --raw, MQTT.js alone (no SDK, no gateway): the player publishes
// P/ch/{room}/input/{player} and the host subscribes to it, what the C++ `--path direct` does.
//
// Frames: the C++ bench's FrameHeader, little-endian (x86): u32 magic "RTMF", u32 pair,
// u32 seq, u32 reserved, i64 send time in ns, padded to --frame-bytes. Times come from
// process.hrtime.bigint(), libuv's uv_hrtime = CLOCK_MONOTONIC, the clock of std::steady_clock.
import { fork, execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const SDK_DIST = new URL('../../sdk-js/dist/index.js', import.meta.url);
const SDK_PACKAGE = new URL('../../sdk-js/package.json', import.meta.url);

const MAGIC = 0x52544d46; // "RTMF", as kMagic in bench/src/latency.cpp
const HEADER_BYTES = 24; // sizeof(FrameHeader)
const PAIRS_PER_PROC = 10; // as the C++ bench: one worker per 10 pairs
const START_DELAY_NS = 100e6; // t0 = GO + 100 ms, as the C++ bench
// A timer may fire a little before its time (libuv's clock is in whole ms and read at the
// start of a loop turn): frames due within this margin go out at once rather than after
// one more timer of at least 1 ms.
const EARLY_NS = 100e3;
const DRAIN_QUIET_MS = 1000; // after the last send: stop when nothing new came for this long
const DRAIN_MAX_MS = 10000;
const TOKEN_TTL_S = 3600;

// ------------------------------------------------------------------ options

const USAGE = `usage: coplay_latency.mjs [--raw] --transport ws|tcp --broker-url URL --pairs N
  [--hz 60] [--seconds 20] [--warmup 1] [--frame-bytes 32] [--secret S] [--prefix rtm]
  [--procs K] [--broker-pid P] [--gateway-pid P] [--json out.json] [--curve out.csv] [--label L]
  [--host-transport ws|tcp --host-broker-url URL]   hosts on another listener than players
  --raw            MQTT.js alone, no SDK and no gateway
  --ws-one-frame   (with --raw over ws) one WebSocket frame per MQTT packet: see openRawPath`;

function parseArgs(argv) {
  const o = {
    raw: false, oneFrame: false, transport: '', brokerUrl: '', hostTransport: '', hostBrokerUrl: '',
    pairs: 1, hz: 60, seconds: 20, warmup: 1, frameBytes: 32, secret: '', prefix: 'rtm', procs: 0, brokerPid: 0, gatewayPid: 0,
    json: '', curve: '', label: '', tag: randomBytes(3).toString('hex'),
  };
  const numeric = new Set(['pairs', 'hz', 'seconds', 'warmup', 'frameBytes', 'procs', 'brokerPid', 'gatewayPid']);
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === '--raw') { o.raw = true; continue; }
    if (a === '--ws-one-frame') { o.oneFrame = true; continue; }
    if (a === '--help' || a === '-h') { console.log(USAGE); process.exit(0); }
    if (!a.startsWith('--') || i + 1 >= argv.length) throw new Error(`bad argument ${a}\n${USAGE}`);
    const key = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in o) || key === 'raw' || key === 'oneFrame') throw new Error(`unknown option ${a}\n${USAGE}`);
    const v = argv[++i];
    o[key] = numeric.has(key) ? Number(v) : v;
    if (numeric.has(key) && !Number.isFinite(o[key])) throw new Error(`${a}: not a number: ${v}`);
  }
  if (o.transport !== 'ws' && o.transport !== 'tcp') throw new Error(`--transport ws|tcp is required\n${USAGE}`);
  if (!o.brokerUrl) o.brokerUrl = o.transport === 'ws' ? 'ws://127.0.0.1:9001' : 'mqtt://127.0.0.1:1883';
  // Mixed runs (a ws player and a tcp host, or the other way) tell which leg costs what.
  if (!o.hostTransport) o.hostTransport = o.transport;
  if (o.hostTransport !== 'ws' && o.hostTransport !== 'tcp') throw new Error('--host-transport is ws or tcp');
  if (!o.hostBrokerUrl) {
    if (o.hostTransport !== o.transport) throw new Error('--host-transport needs --host-broker-url');
    o.hostBrokerUrl = o.brokerUrl;
  }
  if (o.pairs < 1 || o.hz <= 0 || o.seconds <= 0 || o.warmup < 0) throw new Error('bad --pairs/--hz/--seconds/--warmup');
  if (!o.raw && !o.secret) throw new Error('--secret (the gateway\'s auth.token_secret) is needed for the SDK logins');
  o.frameBytes = Math.max(o.frameBytes, HEADER_BYTES);
  o.procs = Math.min(Math.max(o.procs > 0 ? o.procs : Math.ceil(o.pairs / PAIRS_PER_PROC), 1), o.pairs);
  if (o.oneFrame && !(o.raw && o.transport === 'ws')) throw new Error('--ws-one-frame goes with --raw --transport ws');
  o.path = o.raw ? 'mqttjs' : 'js-sdk';
  const transports = o.hostTransport === o.transport ? o.transport : `${o.transport}-${o.hostTransport}`;
  if (!o.label) o.label = `${o.path}-${transports}${o.oneFrame ? '1' : ''}`;
  return o;
}

function frameCounts(o) {
  const warmupFrames = Math.round(o.warmup * o.hz);
  return { warmupFrames, framesPerPair: warmupFrames + Math.round(o.seconds * o.hz) };
}

const nowNs = () => Number(process.hrtime.bigint()); // exact below 2^53 ns (104 days of uptime)

// Names of pair i (w = web, as rtm-bench's d/s/b prefixes).
const room = (o, i) => `room-${o.tag}-${i}`;
const player = (o, i) => `wp-${o.tag}-${i}`;
const host = (o, i) => `wh-${o.tag}-${i}`;

// An HS256 JWT as tokens/src/jwt.cpp's sign_token writes it: claims sub, iat, exp.
function signToken(uid, secret, ttlS = TOKEN_TTL_S) {
  const b64 = (s) => Buffer.from(s).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64('{"alg":"HS256","typ":"JWT"}')}.${b64(JSON.stringify({ sub: uid, iat: now, exp: now + ttlS }))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

// ------------------------------------------------------------------ paths
// A path connects the players and hosts of pairs [first, last) and returns
// { send(pair, frame), close() }; frames reach `sink(hostPair, payload, recvNs)`.

async function openSdkPath(o, first, last, sink) {
  const { RtmClient } = await import(SDK_DIST.href);
  const logger = (level, text) => { if (level === 'warn' || level === 'error') console.error(`sdk ${level}: ${text}`); };
  const make = (uid, brokerUrl) => new RtmClient({ brokerUrl, uid, token: signToken(uid, o.secret), prefix: o.prefix, logger });
  const rooms = new Map(); // pair -> the player's StreamChannel
  const clients = [];
  const setUp = async (i) => {
    const p = make(player(o, i), o.brokerUrl);
    clients.push(p);
    await p.login();
    const pRoom = p.streamChannel(room(o, i));
    await pRoom.join();
    await pRoom.joinTopic('input');
    const h = make(host(o, i), o.hostBrokerUrl);
    clients.push(h);
    h.on('message', (e) => {
      const recv = nowNs(); // first thing: the SDK has parsed the packet and matched the subscription
      sink(i, e.payload, recv);
    });
    await h.login();
    const hRoom = h.streamChannel(room(o, i));
    await hRoom.join();
    const sub = await hRoom.subscribeTopic('input', [player(o, i)]);
    if (sub.succeeded.length !== 1) throw new Error(`subscribe to ${player(o, i)} failed: ${JSON.stringify(sub.users)}`);
    rooms.set(i, pRoom);
  };
  const pairs = [];
  for (let i = first; i < last; ++i) pairs.push(setUp(i));
  await Promise.all(pairs);
  return {
    send(pair, frame) {
      rooms.get(pair).publishTopic('input', frame, { qos: 0 }).catch((e) => console.error(`publish: ${e.message}`));
    },
    async close() {
      await Promise.allSettled(clients.map((c) => c.close()));
    },
  };
}

// mqtt-packet writes a PUBLISH as 5 writes (header, length, topic length, topic, payload)
// into a corked stream. A TCP socket takes them as one writev; the Duplex of ws's
// createWebSocketStream (MQTT.js over ws:// in Node) has no _writev, so each write becomes a
// WebSocket frame of its own and a send() of its own. Giving it a _writev that joins the
// corked writes sends one frame per packet, as MQTT.js's browser stream does.
function coalesceWrites(stream) {
  const write = stream._write;
  stream._writev = function (chunks, callback) {
    write.call(this, Buffer.concat(chunks.map((c) => c.chunk)), 'buffer', callback);
  };
}

async function openRawPath(o, first, last, sink) {
  const mqtt = createRequire(SDK_PACKAGE)('mqtt'); // the MQTT.js the SDK is built on
  const connect = (clientId, brokerUrl) => new Promise((resolve, reject) => {
    const c = mqtt.connect(brokerUrl, { protocolVersion: 4, clientId, clean: true, keepalive: 60, reconnectPeriod: 0 });
    c.once('connect', () => {
      // As the SDK does: Nagle would hold each small PUBLISH on a TCP socket (ws sets it itself).
      c.stream?.setNoDelay?.(true);
      if (o.oneFrame && brokerUrl.startsWith('ws')) coalesceWrites(c.stream);
      resolve(c);
    });
    c.once('error', reject);
  });
  const players = new Map();
  const clients = [];
  const topicOf = (i) => `${o.prefix}/ch/${room(o, i)}/input/${player(o, i)}`;
  const setUp = async (i) => {
    const p = await connect(`lat-mqttjs-${o.tag}-${i}-player`, o.brokerUrl);
    clients.push(p);
    const h = await connect(`lat-mqttjs-${o.tag}-${i}-host`, o.hostBrokerUrl);
    clients.push(h);
    const topic = topicOf(i);
    h.on('message', (t, payload) => {
      const recv = nowNs();
      if (t === topic) sink(i, payload, recv);
    });
    const granted = await h.subscribeAsync(topic, { qos: 0 });
    if (granted.some((g) => g.qos === 128)) throw new Error(`the broker refused ${topic}`);
    players.set(i, { client: p, topic });
  };
  const pairs = [];
  for (let i = first; i < last; ++i) pairs.push(setUp(i));
  await Promise.all(pairs);
  return {
    send(pair, frame) {
      const p = players.get(pair);
      p.client.publish(p.topic, frame, { qos: 0, retain: false });
    },
    async close() {
      await Promise.allSettled(clients.map((c) => c.endAsync()));
    },
  };
}

// ------------------------------------------------------------------ worker

async function runWorker(o, first, last) {
  const { warmupFrames, framesPerPair } = frameCounts(o);
  const mine = last - first;
  const pairs = [];
  for (let i = 0; i < mine; ++i) {
    pairs.push({ seen: new Uint8Array(framesPerPair), maxSeq: -1, measured: 0, reordered: 0, duplicates: 0, latencies: [] });
  }
  let misrouted = 0, malformed = 0, received = 0;
  const sink = (hostPair, payload, recvNs) => {
    if (payload.byteLength < HEADER_BYTES) { ++malformed; return; }
    const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const pair = v.getUint32(4, true), seq = v.getUint32(8, true);
    if (v.getUint32(0, true) !== MAGIC || pair < first || pair >= last || seq >= framesPerPair) { ++malformed; return; }
    if (pair !== hostPair) ++misrouted;
    const p = pairs[pair - first];
    if (p.seen[seq]) { ++p.duplicates; return; }
    p.seen[seq] = 1;
    ++received;
    if (seq < p.maxSeq) ++p.reordered;
    p.maxSeq = Math.max(p.maxSeq, seq);
    if (seq >= warmupFrames) {
      ++p.measured;
      p.latencies.push(recvNs - Number(v.getBigInt64(16, true)));
    }
  };

  const path = o.raw ? await openRawPath(o, first, last, sink) : await openSdkPath(o, first, last, sink);
  process.send({ type: 'ready' });
  const t0 = await new Promise((resolve) => process.once('message', (m) => resolve(Number(m.t0))));

  // Absolute schedule, as the C++ bench: frame n of pair i is due at t0 + n * period +
  // i * period / P (i global), so the pairs are spread over each period and no error builds up.
  // One timer at a time: it sends every frame that is due, then waits for the next.
  const periodNs = 1e9 / o.hz, spacingNs = periodNs / o.pairs;
  const total = framesPerPair * mine;
  const due = (k) => t0 + Math.round(Math.floor(k / mine) * periodNs + (first + (k % mine)) * spacingNs);
  const lateness = [];
  let cpuStart = null;
  await new Promise((resolve) => {
    let k = 0;
    const tick = () => {
      let now = nowNs();
      while (k < total && due(k) <= now + EARLY_NS) {
        const seq = Math.floor(k / mine), pair = first + (k % mine);
        if (seq === warmupFrames && cpuStart === null) cpuStart = process.cpuUsage();
        const frame = Buffer.alloc(o.frameBytes); // a fresh buffer: MQTT.js may still hold the last one
        frame.writeUInt32LE(MAGIC, 0);
        frame.writeUInt32LE(pair, 4);
        frame.writeUInt32LE(seq, 8);
        const sendNs = nowNs();
        frame.writeBigInt64LE(BigInt(sendNs), 16);
        if (seq >= warmupFrames) lateness.push(sendNs - due(k));
        path.send(pair, frame);
        ++k;
        now = nowNs();
      }
      if (k >= total) { resolve(); return; }
      const waitMs = Math.ceil((due(k) - EARLY_NS - now) / 1e6);
      if (waitMs <= 0) setImmediate(tick); else setTimeout(tick, waitMs);
    };
    tick();
  });
  const used = process.cpuUsage(cpuStart ?? undefined);
  const cpuS = cpuStart ? (used.user + used.system) / 1e6 : 0;

  // Drain: everything arrived, or nothing new for a second (the rest is lost).
  const sent = total;
  const started = Date.now();
  let lastN = received, lastChange = Date.now();
  while (received < sent && Date.now() - started < DRAIN_MAX_MS && Date.now() - lastChange < DRAIN_QUIET_MS) {
    await new Promise((r) => setTimeout(r, 10));
    if (received !== lastN) { lastN = received; lastChange = Date.now(); }
  }
  await path.close();

  const latencies = new Float64Array(pairs.reduce((n, p) => n + p.latencies.length, 0));
  let at = 0;
  for (const p of pairs) { latencies.set(p.latencies, at); at += p.latencies.length; }
  const sum = (f) => pairs.reduce((n, p) => n + f(p), 0);
  return {
    type: 'result', latencies, lateness: Float64Array.from(lateness), cpuS, misrouted, malformed,
    measured: sum((p) => p.measured), reordered: sum((p) => p.reordered), duplicates: sum((p) => p.duplicates),
  };
}

// ------------------------------------------------------------------ parent

// Nearest rank, as bench/src/common.cpp's quantile_ms; `sorted` in ns.
function quantileMs(sorted, q) {
  if (sorted.length === 0) return 0;
  const rank = Math.min(Math.max(Math.ceil(q * sorted.length), 1), sorted.length);
  return sorted[rank - 1] / 1e6;
}

function summarize(samples) {
  samples.sort();
  const n = samples.length;
  let total = 0;
  for (const v of samples) total += v;
  return {
    count: n, mean_ms: n ? total / n / 1e6 : 0, p50_ms: quantileMs(samples, 0.5), p90_ms: quantileMs(samples, 0.9),
    p99_ms: quantileMs(samples, 0.99), p999_ms: quantileMs(samples, 0.999), max_ms: n ? samples[n - 1] / 1e6 : 0,
  };
}

const CLK_TCK = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100; } catch { return 100; }
})();

// CPU seconds (user + system) of a process from /proc/PID/stat; 0 without a pid.
function procCpuS(pid) {
  if (!pid) return 0;
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' '); // field 3 is f[0]
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime (14), stime (15)
  } catch {
    return 0;
  }
}

// Microseconds in which some runnable task waited for a CPU (PSI "some" total), or null.
function cpuStallUs() {
  try {
    const m = readFileSync('/proc/pressure/cpu', 'utf8').match(/^some .*total=(\d+)/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const sleepUntilNs = (t) => new Promise((r) => setTimeout(r, Math.max(0, Math.ceil((t - nowNs()) / 1e6))));
const fmt = (v) => v.toFixed(3);

async function runParent(o) {
  const { warmupFrames, framesPerPair } = frameCounts(o);
  const perProc = Math.ceil(o.pairs / o.procs);
  const legs = o.hostTransport === o.transport ? o.transport : `${o.transport} (players), ${o.hostTransport} (hosts)`;
  const what = o.raw
    ? `one MQTT.js ${legs} connection per player and per host${o.oneFrame ? ' (one WebSocket frame per packet)' : ''}, ` +
      "publish -> 'message' (no SDK, no gateway)"
    : `one RtmClient of @rtm-mqtt-gateway/sdk (Node, MQTT.js over ${legs}) per player and per host; publishTopic -> 'message'`;
  const describe = `${what}; ${o.procs} Node process(es), ${perProc} pair(s) each`;
  console.error(`latency ${o.label}: ${o.pairs} pair(s), ${o.hz} Hz, ${o.warmup} s warm-up + ${o.seconds} s; ${describe}`);

  const self = fileURLToPath(import.meta.url);
  const workers = [];
  for (let w = 0; w < o.procs; ++w) {
    const first = Math.floor((o.pairs * w) / o.procs), last = Math.floor((o.pairs * (w + 1)) / o.procs);
    const child = fork(self, ['--worker', JSON.stringify({ ...o, first, last })], { serialization: 'advanced' });
    const messages = [];
    let waiter = null;
    child.on('message', (m) => { messages.push(m); if (waiter) { waiter(); waiter = null; } });
    // Gone: exited, and its IPC channel closed (so every message it sent has been read).
    const exited = Promise.all([
      new Promise((resolve) => child.once('exit', (code) => resolve(code ?? 1))),
      new Promise((resolve) => child.once('disconnect', resolve)),
    ]).then(([code]) => code);
    // The next message of this worker; rejects when it exits first.
    const next = async () => {
      while (messages.length === 0) {
        const code = await Promise.race([new Promise((r) => { waiter = () => r(null); }), exited]);
        if (code !== null && messages.length === 0) throw new Error(`latency worker ${w} exited (${code}) (see above)`);
      }
      return messages.shift();
    };
    workers.push({ child, next, exited });
  }
  try {
    for (const w of workers) {
      const m = await w.next();
      if (m.type !== 'ready') throw new Error(`a latency worker did not start: ${JSON.stringify(m)}`);
    }
    const t0 = nowNs() + START_DELAY_NS;
    for (const w of workers) w.child.send({ type: 'go', t0 });

    // CPU of the broker and the gateway over the measured part.
    const measureFrom = t0 + (warmupFrames * 1e9) / o.hz, measureTo = t0 + (framesPerPair * 1e9) / o.hz;
    await sleepUntilNs(measureFrom);
    const broker0 = procCpuS(o.brokerPid), gateway0 = procCpuS(o.gatewayPid), stall0 = cpuStallUs();
    await sleepUntilNs(measureTo);
    const brokerS = procCpuS(o.brokerPid) - broker0, gatewayS = procCpuS(o.gatewayPid) - gateway0;
    const stall1 = cpuStallUs();
    const wallS = (measureTo - measureFrom) / 1e9;

    const results = [];
    for (const w of workers) {
      const m = await w.next();
      if (m.type !== 'result') throw new Error(`a latency worker failed: ${JSON.stringify(m)}`);
      results.push(m);
      await w.exited;
    }
    const cat = (key) => {
      const out = new Float64Array(results.reduce((n, r) => n + r[key].length, 0));
      let at = 0;
      for (const r of results) { out.set(r[key], at); at += r[key].length; }
      return out;
    };
    const all = cat('latencies'), lateness = cat('lateness');
    const sum = (key) => results.reduce((n, r) => n + r[key], 0);
    const expected = (framesPerPair - warmupFrames) * o.pairs;
    const measured = sum('measured');
    const lost = expected - Math.min(expected, measured);
    const s = summarize(all), late = summarize(lateness);
    const clientS = sum('cpuS');

    console.log(`latency ${o.label} ${o.pairs} pair(s): p50 ${fmt(s.p50_ms)}  p99 ${fmt(s.p99_ms)}  p99.9 ${fmt(s.p999_ms)}  ` +
      `max ${fmt(s.max_ms)} ms  (n=${s.count})  lost ${lost}/${expected}  reordered ${sum('reordered')}  duplicates ${sum('duplicates')}`);
    console.log(`  sender lateness p99 ${fmt(late.p99_ms)} ms, max ${fmt(late.max_ms)} ms; cpu over ${wallS.toFixed(1)} s: ` +
      `broker ${brokerS.toFixed(2)} s, gateway ${gatewayS.toFixed(2)} s, Node clients ${clientS.toFixed(2)} s`);
    if (sum('misrouted') || sum('malformed')) {
      console.log(`  WARNING: ${sum('misrouted')} frame(s) reached the wrong host, ${sum('malformed')} malformed`);
    }

    // The keys of rtm-bench latency's results (bench/src/latency.cpp), plus transport and client.
    const r = {
      benchmark: 'latency', path: o.path, transport: o.transport, host_transport: o.hostTransport, client: o.raw ? 'mqttjs' : 'js-sdk', ws_one_frame: o.oneFrame ? 1 : 0,
      label: o.label, describe, pairs: o.pairs, token_logins: o.raw ? 0 : 1, grants_population: 0, procs: o.procs,
      hz: o.hz, seconds: o.seconds, frame_bytes: o.frameBytes, node: process.version,
      expected, lost, reordered: sum('reordered'), duplicates: sum('duplicates'),
      misrouted: sum('misrouted'), malformed: sum('malformed'),
      'cpu.broker_s': brokerS, 'cpu.gateway_s': gatewayS, 'cpu.bench_s': clientS, 'cpu.wall_s': wallS,
    };
    // The share of the measured part in which some task of the machine waited for a CPU.
    if (stall0 !== null && stall1 !== null) r['machine.cpu_wait_measured'] = (stall1 - stall0) / 1e6 / wallS;
    for (const [prefix, summary] of [['latency', s], ['sender_lateness', late]]) {
      for (const [k, v] of Object.entries(summary)) r[`${prefix}.${k}`] = v;
    }
    if (o.json) writeFileSync(o.json, JSON.stringify(r, Object.keys(r).sort(), 2) + '\n');
    if (o.curve && all.length > 0) {
      // Latency by percentile on a "nines" scale, as the C++ bench's --curve.
      const lines = ['path,pairs,percentile,nines,latency_ms'];
      const maxNines = Math.log10(all.length);
      for (let x = 0; x <= Math.min(5, maxNines) + 1e-9; x += 0.02) {
        const p = 1 - 10 ** -x;
        lines.push(`${o.label},${o.pairs},${p * 100},${x},${quantileMs(all, p)}`);
      }
      lines.push(`${o.label},${o.pairs},100,${maxNines},${s.max_ms}`);
      writeFileSync(o.curve, lines.join('\n') + '\n');
    }
  } finally {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
  }
}

// ------------------------------------------------------------------ main

if (process.argv[2] === '--worker') {
  const o = JSON.parse(process.argv[3]);
  // A worker without its parent has nothing to report to.
  process.on('disconnect', () => process.exit(1));
  runWorker(o, o.first, o.last).then(
    (result) => process.send(result, () => process.exit(0)),
    (e) => { console.error(`latency worker: ${e?.stack ?? e}`); process.exit(1); },
  );
} else {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(e.message);
    process.exit(2);
  }
  runParent(o).then(
    () => process.exit(0),
    (e) => { console.error(`latency ${o.label}: ${e?.stack ?? e}`); process.exit(1); },
  );
}
