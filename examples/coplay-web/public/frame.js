// The coplay input frame, as examples/coplay/coplay_common.hpp defines it (the C++ host and
// player read and write the same bytes). Used by the pages and by the Node tests.
//
// Binary, 28 bytes, little-endian:
//   0  'C' 'P'       magic
//   2  u8  version   1
//   3  u8  flags     0
//   4  u32 seq       0, 1, 2, ... per player run
//   8  u64 sent_ns   send time, ns since the Unix epoch
//  16  u16 buttons   bit mask
//  18  i16 axes[4]   left x/y, right x/y
//  26  u16 reserved
// or JSON: {"seq":1,"sent_ns":...,"buttons":5,"axes":[0,0,0,0]}

export const FRAME_BYTES = 28;
const VERSION = 1;
export const AXIS_MAX = 32767;

// Buttons of the demo's keyboard and gamepad mapping (bit = the standard gamepad's button index).
export const BUTTONS = ['A', 'B', 'X', 'Y', 'LB', 'RB', 'LT', 'RT', 'Back', 'Start', 'LS', 'RS',
  'Up', 'Down', 'Left', 'Right'];

// ns since the Unix epoch as a BigInt. Date.now() has ms resolution; performance.timeOrigin +
// performance.now() gives sub-ms resolution on the same clock (same machine: comparable).
export function nowNs() {
  const ms = performance.timeOrigin + performance.now();
  return BigInt(Math.round(ms * 1000)) * 1000n;
}

export function encodeBinary(frame) {
  const bytes = new Uint8Array(FRAME_BYTES);
  const view = new DataView(bytes.buffer);
  bytes[0] = 0x43; // 'C'
  bytes[1] = 0x50; // 'P'
  bytes[2] = VERSION;
  view.setUint32(4, frame.seq >>> 0, true);
  view.setBigUint64(8, BigInt(frame.sent_ns), true);
  view.setUint16(16, frame.buttons & 0xffff, true);
  for (let i = 0; i < 4; i++) view.setInt16(18 + 2 * i, clampAxis(frame.axes?.[i] ?? 0), true);
  return bytes;
}

export function encodeJson(frame) {
  const axes = [0, 1, 2, 3].map((i) => clampAxis(frame.axes?.[i] ?? 0));
  // sent_ns is written as a plain integer (beyond 2^53: JSON.stringify cannot take a BigInt).
  return `{"seq":${frame.seq >>> 0},"sent_ns":${BigInt(frame.sent_ns)},"buttons":${frame.buttons & 0xffff},` +
    `"axes":[${axes.join(',')}]}`;
}

export function encode(frame, format) {
  return format === 'json' ? encodeJson(frame) : encodeBinary(frame);
}

// A frame from a payload (Uint8Array), or null when it is not a coplay frame.
// Returns { seq, sent_ns (BigInt), buttons, axes: [4], format }.
export function decode(payload) {
  if (!(payload instanceof Uint8Array)) payload = new TextEncoder().encode(String(payload));
  if (payload.length >= FRAME_BYTES && payload[0] === 0x43 && payload[1] === 0x50 && payload[2] === VERSION) {
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    return {
      seq: view.getUint32(4, true),
      sent_ns: view.getBigUint64(8, true),
      buttons: view.getUint16(16, true),
      axes: [0, 1, 2, 3].map((i) => view.getInt16(18 + 2 * i, true)),
      format: 'binary',
    };
  }
  if (payload.length > 0 && payload[0] === 0x7b /* { */) {
    const text = new TextDecoder().decode(payload);
    // sent_ns needs 64 bits: read it from the text, not through JSON.parse's doubles.
    const seq = jsonInteger(text, 'seq');
    const sent = jsonInteger(text, 'sent_ns');
    if (seq === null || sent === null || seq < 0n || seq > 0xffffffffn || sent < 0n) return null;
    let axes = [0, 0, 0, 0];
    const match = /"axes"\s*:\s*\[([^\]]*)\]/.exec(text);
    if (match) {
      const values = match[1].split(',').map((v) => Number.parseInt(v, 10));
      axes = [0, 1, 2, 3].map((i) => (Number.isFinite(values[i]) ? clampAxis(values[i]) : 0));
    }
    const buttons = jsonInteger(text, 'buttons');
    return {
      seq: Number(seq),
      sent_ns: sent,
      buttons: buttons === null ? 0 : Number(buttons & 0xffffn),
      axes,
      format: 'json',
    };
  }
  return null;
}

function jsonInteger(text, key) {
  const match = new RegExp(`"${key}"\\s*:\\s*(-?\\d+)`).exec(text);
  return match ? BigInt(match[1]) : null;
}

function clampAxis(v) {
  return Math.max(-AXIS_MAX - 1, Math.min(AXIS_MAX, Math.round(Number(v) || 0)));
}
