// The pages' pure parts: the frame format (byte for byte as examples/coplay/coplay_common.hpp
// writes it) and the host's per-player bookkeeping (as coplay-host counts).
import assert from 'node:assert/strict';
import test from 'node:test';
import { decode, encodeBinary, encodeJson, FRAME_BYTES } from '../public/frame.js';
import { percentile, PlayerStats } from '../public/stats.js';

const hex = (bytes) => Buffer.from(bytes).toString('hex');

test('coplay frame: binary layout of coplay_common.hpp, and back', () => {
  const frame = { seq: 0x01020304, sent_ns: 0x1122334455667788n, buttons: 0x8005, axes: [-1, 2, -32768, 32767] };
  const bytes = encodeBinary(frame);
  assert.equal(bytes.length, FRAME_BYTES);
  // 'C' 'P' version flags | seq u32 LE | sent_ns u64 LE | buttons u16 LE | axes i16 LE x4 | reserved
  assert.equal(hex(bytes), '43500100' + '04030201' + '8877665544332211' + '0580' + 'ffff' + '0200' + '0080' + 'ff7f' + '0000');
  const back = decode(bytes);
  assert.deepEqual(back, { ...frame, format: 'binary' });
  // Longer payloads with the magic are frames too (coplay_common.hpp reads the first 28 bytes).
  assert.equal(decode(new Uint8Array([...bytes, 1, 2])).seq, frame.seq);
});

test('coplay frame: JSON form, 64-bit send times kept exact', () => {
  const frame = { seq: 7, sent_ns: 1796207542123456789n, buttons: 3, axes: [1, -2, 3, -4] };
  const text = encodeJson(frame);
  assert.equal(text, '{"seq":7,"sent_ns":1796207542123456789,"buttons":3,"axes":[1,-2,3,-4]}');
  assert.deepEqual(decode(new TextEncoder().encode(text)), { ...frame, format: 'json' });
  // The C++ player's JSON (same keys) and the README's mosquitto_pub frame.
  assert.equal(decode(new TextEncoder().encode('{"seq":0,"sent_ns":1700000000000000000,"buttons":1,"axes":[0,0,0,0]}')).buttons, 1);
  assert.deepEqual(decode(new TextEncoder().encode('{"seq":4,"sent_ns":5}')).axes, [0, 0, 0, 0]);
});

test('coplay frame: what is not a frame', () => {
  for (const payload of ['', 'A pressed', '{"seq":1}', '{"sent_ns":1}', '{"seq":-1,"sent_ns":1}', '{"seq":4294967296,"sent_ns":1}', 'CP']) {
    assert.equal(decode(new TextEncoder().encode(payload)), null, payload);
  }
  const wrongVersion = encodeBinary({ seq: 1, sent_ns: 1n, buttons: 0, axes: [] });
  wrongVersion[2] = 2;
  assert.equal(decode(wrongVersion), null);
  assert.equal(decode(encodeBinary({ seq: 1, sent_ns: 1n, buttons: 0 }).subarray(0, FRAME_BYTES - 1)), null);
});

function frames(stats, seqs, sentMs = 1000, nowMs = 1001) {
  for (const seq of seqs) stats.add({ seq, sent_ns: BigInt(sentMs) * 1000000n, buttons: 0, axes: [0, 0, 0, 0], format: 'binary' }, nowMs);
}

test('coplay host bookkeeping: received, lost, out of order, duplicates, as coplay-host', () => {
  const s = new PlayerStats('p1');
  frames(s, [10, 11, 13, 12, 12, 16]);
  // First seen 10, max 16: 7 expected, 5 distinct seen (10 11 12 13 16): 2 lost (14, 15).
  assert.equal(s.received, 6);
  assert.equal(s.duplicates, 1);
  assert.equal(s.outOfOrder, 2); // 12 after 13, and its duplicate
  assert.equal(s.lost, 2);
  assert.equal(s.firstSeq, 10);
  assert.equal(s.maxSeq, 16);
  // Frames from before the first one seen are not counted (they crossed before the subscription).
  frames(s, [3]);
  assert.equal(s.received, 6);
  // A player that starts again (seq far below the first one seen) starts a new count.
  const long = new PlayerStats('p2');
  frames(long, [150000, 150001]);
  frames(long, [0, 1, 2]);
  assert.equal(long.firstSeq, 0);
  assert.equal(long.received, 3);
  assert.equal(long.lost, 0);
});

test('coplay host bookkeeping: one-second windows and latency percentiles', () => {
  const s = new PlayerStats('p1');
  for (let seq = 0; seq < 100; seq++) s.add({ seq, sent_ns: 1000n * 1000000n, buttons: seq, axes: [seq, 0, 0, 0], format: 'json' }, 1000 + seq / 10);
  s.tick(1);
  const snap = s.snapshot();
  assert.equal(snap.fps, 100);
  assert.equal(snap.peakFps, 100);
  assert.ok(Math.abs(snap.p50Ms - 5) < 0.11, `p50 ${snap.p50Ms}`);
  assert.ok(Math.abs(snap.p99Ms - 9.8) < 0.11, `p99 ${snap.p99Ms}`);
  assert.equal(snap.totalP50Ms, snap.p50Ms);
  assert.equal(snap.buttons, 99);
  assert.deepEqual(snap.axes, [99, 0, 0, 0]);
  assert.equal(snap.format, 'json');
  s.tick(2);
  assert.equal(s.snapshot().fps, 0);
  assert.equal(s.snapshot().p50Ms, null);
  assert.equal(s.snapshot().totalP50Ms, snap.totalP50Ms); // the whole run's figures stay
  assert.equal(percentile([], 0.5), null);
  assert.equal(percentile([3, 1, 2], 0.5), 2);
});
