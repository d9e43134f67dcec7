// The player page: logs in, joins the room, becomes a publisher of topic `input`, and sends an
// input frame (examples/coplay's format) `rate` times a second from the keyboard or a gamepad.
// URL parameters: room, uid, frames (stop after this many; 0: never), format (binary|json),
// rate (frames/s), qos (0|1), auto=1 (made-up input while no key or gamepad is used, as
// coplay-player sends), start=button (wait for the start button instead of sending at once).
// window.coplayPlayer holds the counters for machines.
import { connect, describe, nameError, param, renewals, stateWords } from './connect.js';
import { encode, nowNs, AXIS_MAX, BUTTONS } from './frame.js';

const MAX_RATE = 240;
const DEADZONE = 0.08; // of a gamepad stick's range: resting sticks read a little off centre
const RENDER_INTERVAL_MS = 100;

const room = param('room', 'room-42');
const uid = param('uid', `web-${Math.floor(Math.random() * 0x10000).toString(16)}`);
const frameLimit = Math.max(0, Number.parseInt(param('frames', '0'), 10) || 0);
const format = param('format', 'binary') === 'json' ? 'json' : 'binary';
const rate = Math.min(MAX_RATE, Math.max(1, Number(param('rate', '60')) || 60));
const qos = param('qos', '0') === '1' ? 1 : 0;
const auto = param('auto', '0') === '1';
const startOnButton = param('start', 'now') === 'button';
const topic = 'input';

const player = {
  uid, room, format, rate, qos, frameLimit,
  state: 'idle',
  sent: 0, // frames handed to the SDK
  queued: 0, // of those, waiting in the SDK's send queue (while reconnecting)
  dropped: 0, // dropped by the SDK's send queue (past its bound, or the session ended)
  failed: 0,
  ready: false, // joined the room and topic: sending, or waiting for the start button
  sending: false,
  done: false, // the frame limit was reached, or stop was pressed
  error: null,
  input: 'keyboard',
  tokenRenewals: renewals,
};
window.coplayPlayer = player;

const $ = (id) => document.getElementById(id);
$('title').textContent = `— ${uid} in room ${room}`;
$('rate').textContent = `${rate} frames/s${frameLimit ? `, ${frameLimit} frames` : ''}${qos ? ', QoS 1' : ''}`;
$('format').textContent = format;

// ---- input ----

const held = new Set();
const KEY_BUTTONS = { Space: 0, Enter: 0, ShiftLeft: 1, ShiftRight: 1, KeyQ: 2, KeyE: 3, Tab: 9 };
const STICK_KEYS = {
  left: { x: [['ArrowLeft', 'KeyA'], ['ArrowRight', 'KeyD']], y: [['ArrowUp', 'KeyW'], ['ArrowDown', 'KeyS']] },
  right: { x: [['KeyJ'], ['KeyL']], y: [['KeyI'], ['KeyK']] },
};
const isGameKey = (code) => code in KEY_BUTTONS || Object.values(STICK_KEYS).some((s) =>
  [...s.x.flat(), ...s.y.flat()].includes(code));

window.addEventListener('keydown', (e) => {
  if (!isGameKey(e.code)) return;
  e.preventDefault(); // no scrolling, no focus moves
  held.add(e.code);
});
window.addEventListener('keyup', (e) => held.delete(e.code));
window.addEventListener('blur', () => held.clear());

function keyAxis([minus, plus]) {
  return (plus.some((k) => held.has(k)) ? AXIS_MAX : 0) - (minus.some((k) => held.has(k)) ? AXIS_MAX : 0);
}

function gamepad() {
  const pads = navigator.getGamepads ? [...navigator.getGamepads()] : [];
  return pads.find((p) => p && p.connected) || null;
}

function padAxis(v) {
  return Math.abs(v) < DEADZONE ? 0 : Math.round(v * AXIS_MAX);
}

// { buttons, axes } from the keyboard, a gamepad, or the made-up input.
function readInput(seq) {
  let buttons = 0;
  for (const [code, bit] of Object.entries(KEY_BUTTONS)) if (held.has(code)) buttons |= 1 << bit;
  let axes = [STICK_KEYS.left.x, STICK_KEYS.left.y, STICK_KEYS.right.x, STICK_KEYS.right.y].map(keyAxis);
  const pad = gamepad();
  player.input = pad ? `gamepad: ${pad.id}` : auto ? 'keyboard (auto input while idle)' : 'keyboard';
  if (pad) {
    pad.buttons.slice(0, 16).forEach((b, bit) => {
      if (b.pressed) buttons |= 1 << bit;
    });
    if (axes.every((a) => a === 0)) axes = [0, 1, 2, 3].map((i) => padAxis(pad.axes[i] || 0));
  }
  if (auto && buttons === 0 && axes.every((a) => a === 0)) {
    // As coplay-player: A toggles every half second, the left stick turns in a circle.
    const t = seq / rate;
    buttons = Math.floor(t * 2) % 2 ? 0x1 : 0;
    axes = [Math.round(AXIS_MAX * Math.cos(t)), Math.round(AXIS_MAX * Math.sin(t)), 0, 0];
  }
  return { buttons, axes };
}

// ---- sending ----

let last = { buttons: 0, axes: [0, 0, 0, 0] };

let ticker = null;

function startSending(channel) {
  if (player.sending || player.done) return;
  player.sending = true;
  $('start').disabled = true;
  showMessage(`Publishing ${topic} in ${room}.`);
  let seq = 0;
  ticker = new Worker('/ticker.js');
  ticker.onmessage = () => {
    if (player.done) return;
    const input = readInput(seq);
    last = input;
    const payload = encode({ seq, sent_ns: nowNs(), ...input }, format);
    seq++;
    player.sent++;
    // Sent at once, or queued by the SDK while it reconnects: the promise settles either way.
    channel.publishTopic(topic, payload, { qos }).catch((e) => {
      if (player.failed++ === 0) showMessage(`publish failed: ${describe(e)}`, true);
    });
    if (frameLimit && player.sent >= frameLimit) stop(`sent ${player.sent} frames`);
  };
  ticker.postMessage({ command: 'start', rate });
}

function stop(why) {
  if (player.done) return;
  player.done = true;
  if (ticker) ticker.terminate();
  showMessage(`Stopped: ${why}.`);
}

// ---- page ----

function showMessage(text, isError = false) {
  $('message').textContent = text;
  $('message').className = isError ? 'message error' : 'message';
}

function setState(state) {
  player.state = state;
  $('state').textContent = state;
  $('state').dataset.state = state;
}

function drawSticks() {
  const canvas = $('sticks');
  const g = canvas.getContext('2d');
  const r = 40;
  g.clearRect(0, 0, canvas.width, canvas.height);
  for (let s = 0; s < 2; s++) {
    const cx = 55 + s * 110;
    const cy = 50;
    g.strokeStyle = '#aab';
    g.beginPath();
    g.arc(cx, cy, r, 0, 2 * Math.PI);
    g.stroke();
    g.fillStyle = '#2f6fdf';
    g.beginPath();
    g.arc(cx + (last.axes[2 * s] / AXIS_MAX) * r, cy + (last.axes[2 * s + 1] / AXIS_MAX) * r, 7, 0, 2 * Math.PI);
    g.fill();
  }
}

let client = null;

function render() {
  if (client) {
    const q = client.sendQueueStats();
    player.queued = q.queued;
    player.dropped = q.dropped;
  }
  $('dropped').textContent = String(player.dropped);
  $('sent').textContent = String(player.sent);
  $('queued').textContent = String(player.queued);
  $('failed').textContent = String(player.failed);
  $('input').textContent = player.input;
  const names = BUTTONS.filter((_, bit) => last.buttons & (1 << bit));
  $('buttons').textContent = names.length ? names.join(' ') : '–';
  drawSticks();
}
setInterval(render, RENDER_INTERVAL_MS);
$('stop').addEventListener('click', () => stop('stop pressed'));
$('start').disabled = true;

async function main() {
  const why = nameError(room, 'room');
  if (why) throw new Error(why);
  showMessage('connecting…');
  ({ client } = await connect(uid));
  client.on('connectionState', (event) => {
    const e = stateWords(event);
    setState(e.state);
    if (e.state === 'reconnecting' || e.state === 'disconnected') showMessage(`${e.state}: ${e.reason} ${e.message}`);
  });
  await client.login();
  const channel = client.streamChannel(room);
  await channel.join();
  await channel.joinTopic(topic);
  window.addEventListener('pagehide', () => client.close());
  player.ready = true;
  $('start').addEventListener('click', () => startSending(channel));
  if (startOnButton) {
    $('start').disabled = false;
    showMessage(`Joined ${room} as a publisher of ${topic}: press start.`);
  } else {
    startSending(channel);
  }
}

main().catch((e) => {
  player.error = describe(e);
  setState('failed');
  showMessage(describe(e), true);
});
