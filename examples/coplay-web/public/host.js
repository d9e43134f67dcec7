// The host page: joins the room, subscribes to every player's `input` as it appears, and
// measures each player's frames (as coplay-host does). window.coplayStats holds the figures
// for machines (the browser test reads them); the table carries them as data- attributes too.
import { connect, describe, nameError, param, renewals, stateWords } from './connect.js';
import { decode, BUTTONS, AXIS_MAX } from './frame.js';
import { PlayerStats, HISTORY_SECONDS } from './stats.js';

const room = param('room', 'room-42');
const uid = param('uid', 'host');
const topic = param('topic', 'input');
const MAX_EVENTS_SHOWN = 12;
const RENDER_INTERVAL_MS = 100; // counters and sticks; fps and percentiles change once a second
const COLORS = ['#2f6fdf', '#d9480f', '#2b8a3e', '#9c36b5', '#e67700', '#0b7285', '#c2255c', '#5c940d'];

const players = new Map(); // uid -> PlayerStats
const subscribed = new Set();
const events = [];
const stats = {
  room, uid, topic,
  state: 'idle',
  joined: false,
  badFrames: 0,
  ticks: 0, // one-second windows closed so far
  players: {},
  subscribed: [],
  events,
  error: null,
  tokenRenewals: renewals,
};
window.coplayStats = stats;

const $ = (id) => document.getElementById(id);
$('title').textContent = `— room ${room} as ${uid}`;
$('player-link').href = `/player.html?room=${encodeURIComponent(room)}`;

function nowMs() {
  return performance.timeOrigin + performance.now();
}

function logEvent(text) {
  events.push({ t: Date.now(), text });
  if (events.length > 100) events.shift();
  const list = $('events');
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  list.prepend(item);
  while (list.children.length > MAX_EVENTS_SHOWN) list.lastChild.remove();
}

function showMessage(text, isError = false) {
  $('message').textContent = text;
  $('message').className = isError ? 'message error' : 'message';
}

function setState(state, detail) {
  stats.state = state;
  $('state').textContent = state;
  $('state').dataset.state = state;
  if (detail) $('state').title = detail;
}

function player(id) {
  let p = players.get(id);
  if (!p) {
    p = new PlayerStats(id);
    p.color = COLORS[players.size % COLORS.length];
    players.set(id, p);
  }
  return p;
}

async function subscribe(channel, ids) {
  const fresh = ids.filter((id) => id !== uid && !subscribed.has(id));
  if (fresh.length === 0) return;
  fresh.forEach((id) => subscribed.add(id));
  try {
    const result = await channel.subscribeTopic(topic, fresh);
    for (const r of result.users) {
      if (r.ok) {
        player(r.uid);
      } else {
        subscribed.delete(r.uid);
        logEvent(`subscribe ${r.uid}: ${describe(r.error)}`);
      }
    }
    if (result.succeeded.length) logEvent(`subscribed to ${result.succeeded.join(', ')} on ${topic}`);
  } catch (e) {
    fresh.forEach((id) => subscribed.delete(id));
    logEvent(`subscribe ${fresh.join(', ')}: ${describe(e)}`);
  }
  stats.subscribed = [...subscribed];
}

// The publishers of `topic` in a join snapshot ({ members, publishers: { topic: [uids] } }).
function snapshotPublishers(snapshot) {
  return snapshot.publishers[topic] || [];
}

async function main() {
  for (const [what, name] of [['room', room], ['topic', topic]]) {
    const why = nameError(name, what);
    if (why) throw new Error(why);
  }
  showMessage('connecting…');
  const { client } = await connect(uid);
  const channel = client.streamChannel(room);

  client.on('connectionState', (event) => {
    const e = stateWords(event);
    setState(e.state, `${e.reason} ${e.message}`.trim());
    if (e.state !== 'connecting') logEvent(`[${e.state}] ${e.reason}${e.message ? `: ${e.message}` : ''}`);
  });
  client.on('message', (e) => {
    if (e.channel !== room || e.topic !== topic) return;
    const at = nowMs();
    const frame = decode(e.payload);
    if (!frame) {
      stats.badFrames++;
      return;
    }
    player(e.publisher).add(frame, at);
  });
  client.on('channelEvent', (e) => {
    if (e.channel !== room) return;
    if (e.type === 'publisher_joined' && e.topic === topic && e.uid !== uid) {
      logEvent(`+ ${e.uid} publishes ${topic}`);
      subscribe(channel, [e.uid]);
    } else if (e.type === 'publisher_left' && e.topic === topic) {
      logEvent(`- ${e.uid} left ${topic}`);
      subscribed.delete(e.uid);
      stats.subscribed = [...subscribed];
      if (players.has(e.uid)) players.get(e.uid).gone = true;
    } else if (e.type === 'snapshot' && e.snapshot) {
      // After a reconnect the SDK restores the session and reports the channel as it is now:
      // players who started publishing meanwhile are subscribed to here.
      logEvent(`restored ${room}: ${e.snapshot.members.length} member(s)`);
      subscribe(channel, snapshotPublishers(e.snapshot));
    } else if (e.type === 'member_joined') {
      logEvent(`+ ${e.uid} joined ${room}`);
    } else if (e.type === 'member_left' || e.type === 'member_timed_out') {
      logEvent(`- ${e.uid} ${e.type === 'member_left' ? 'left' : 'timed out of'} ${room}`);
    }
  });

  await client.login();
  const snapshot = await channel.join();
  stats.joined = true;
  const already = snapshotPublishers(snapshot).filter((id) => id !== uid);
  logEvent(`joined ${room}: ${snapshot.members.length} member(s), ${already.length} publishing ${topic}`);
  showMessage(`Hosting ${room}. Players appear here when they publish on topic "${topic}".`);
  await subscribe(channel, already);
  window.addEventListener('pagehide', () => client.close());
}

// ---- rendering ----

function cell(row, key, text) {
  const td = row.querySelector(`[data-key="${key}"]`);
  if (td.textContent !== text) td.textContent = text;
}

function ms(v) {
  if (v === null || v === undefined) return '–';
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ms`;
}

function buttonNames(mask) {
  const names = BUTTONS.filter((_, bit) => mask & (1 << bit));
  return names.length ? names.join(' ') : '–';
}

function drawSticks(canvas, axes, color) {
  const g = canvas.getContext('2d');
  const r = canvas.height / 2 - 3;
  g.clearRect(0, 0, canvas.width, canvas.height);
  for (let s = 0; s < 2; s++) {
    const cx = r + 3 + s * (2 * r + 10);
    const cy = canvas.height / 2;
    g.strokeStyle = '#aab';
    g.beginPath();
    g.arc(cx, cy, r, 0, 2 * Math.PI);
    g.stroke();
    g.fillStyle = color;
    g.beginPath();
    g.arc(cx + (axes[2 * s] / AXIS_MAX) * r, cy + (axes[2 * s + 1] / AXIS_MAX) * r, 4, 0, 2 * Math.PI);
    g.fill();
  }
}

function renderTable() {
  const body = document.querySelector('#players tbody');
  for (const [id, p] of players) {
    const s = p.snapshot();
    stats.players[id] = s;
    let row = body.querySelector(`tr[data-uid="${CSS.escape(id)}"]`);
    if (!row) {
      row = document.createElement('tr');
      row.dataset.uid = id;
      row.innerHTML = '<td data-key="uid"></td><td data-key="fps"></td><td data-key="received"></td>' +
        '<td data-key="lost"></td><td data-key="outOfOrder"></td><td data-key="p50Ms"></td>' +
        '<td data-key="p99Ms"></td><td data-key="totalP50Ms"></td><td data-key="totalP99Ms"></td>' +
        '<td data-key="buttons"></td><td><canvas width="84" height="36"></canvas></td>';
      row.querySelector('[data-key="uid"]').style.borderLeft = `6px solid ${p.color}`;
      body.append(row);
    }
    for (const key of ['received', 'lost', 'outOfOrder', 'fps', 'p50Ms', 'p99Ms', 'totalP50Ms', 'totalP99Ms', 'lastSeq']) {
      row.dataset[key] = s[key] === null ? '' : String(s[key]);
    }
    row.classList.toggle('gone', s.gone);
    row.classList.toggle('bad', s.lost > 0 || s.outOfOrder > 0);
    cell(row, 'uid', id + (s.gone ? ' (left)' : ''));
    cell(row, 'fps', String(s.fps));
    cell(row, 'received', String(s.received));
    cell(row, 'lost', String(s.lost));
    cell(row, 'outOfOrder', String(s.outOfOrder));
    cell(row, 'p50Ms', ms(s.p50Ms));
    cell(row, 'p99Ms', ms(s.p99Ms));
    cell(row, 'totalP50Ms', ms(s.totalP50Ms));
    cell(row, 'totalP99Ms', ms(s.totalP99Ms));
    cell(row, 'buttons', buttonNames(s.buttons));
    drawSticks(row.querySelector('canvas'), s.axes, p.color);
  }
  $('waiting').hidden = players.size > 0;
}

// A line chart of one value per second for each player, over the last HISTORY_SECONDS.
function drawChart(canvas, series, { unit, minTop }) {
  const g = canvas.getContext('2d');
  const W = canvas.width;
  const H = canvas.height;
  const left = 44;
  const bottom = 20;
  g.clearRect(0, 0, W, H);
  const values = series.flatMap((s) => s.points.map((pt) => pt.v)).filter((v) => v !== null);
  const top = niceTop(Math.max(minTop, ...values));
  g.font = '11px sans-serif';
  g.fillStyle = '#667';
  g.strokeStyle = '#e3e5ea';
  for (let i = 0; i <= 4; i++) {
    const y = 6 + ((H - bottom - 6) * i) / 4;
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(W - 6, y);
    g.stroke();
    g.fillText(formatTick(top * (1 - i / 4)) + unit, 2, y + 4);
  }
  g.fillText(`last ${HISTORY_SECONDS} s`, W - 70, H - 4);
  const now = Math.floor(Date.now() / 1000);
  const x = (t) => left + ((W - left - 6) * (t - (now - HISTORY_SECONDS))) / HISTORY_SECONDS;
  const y = (v) => 6 + (H - bottom - 6) * (1 - Math.min(v, top) / top);
  for (const s of series) {
    g.strokeStyle = s.color;
    g.lineWidth = 2;
    g.setLineDash(s.dashed ? [5, 4] : []);
    g.beginPath();
    let drawing = false;
    for (const pt of s.points) {
      if (pt.v === null) {
        drawing = false;
        continue;
      }
      if (drawing) g.lineTo(x(pt.t), y(pt.v));
      else g.moveTo(x(pt.t), y(pt.v));
      drawing = true;
    }
    g.stroke();
  }
  g.setLineDash([]);
  g.lineWidth = 1;
}

// A chart's top: a value whose quarters are round numbers.
function niceTop(v) {
  const tops = [1, 2, 4, 8, 12, 20, 40, 60, 80, 100, 200, 400, 800, 1000, 2000, 4000];
  return tops.find((top) => top >= v) || Math.ceil(v);
}

function formatTick(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function renderCharts() {
  const latency = [];
  const fps = [];
  for (const p of players.values()) {
    latency.push({ color: p.color, points: p.history.map((h) => ({ t: h.t, v: h.p50 })) });
    latency.push({ color: p.color, dashed: true, points: p.history.map((h) => ({ t: h.t, v: h.p99 })) });
    fps.push({ color: p.color, points: p.history.map((h) => ({ t: h.t, v: h.fps })) });
  }
  drawChart($('latency-chart'), latency, { unit: '', minTop: 1 });
  drawChart($('fps-chart'), fps, { unit: '', minTop: 61 }); // 60 Hz below the top line
}

setInterval(() => {
  const t = Math.floor(Date.now() / 1000);
  for (const p of players.values()) p.tick(t);
  stats.ticks++;
  renderTable();
  renderCharts();
}, 1000);
setInterval(renderTable, RENDER_INTERVAL_MS);
renderCharts();

main().catch((e) => {
  stats.error = describe(e);
  setState('failed');
  showMessage(describe(e), true);
});
