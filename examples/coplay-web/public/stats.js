// Per-player bookkeeping of the host page, as coplay-host does it (examples/coplay/coplay_host.cpp):
// frames received, lost (gaps in seq), out of order, duplicates, one-way latency.
// No DOM here: the Node tests use it too.

// A seq this far below the first one seen is a new run of the player (it restarted).
const NEW_RUN_SEQ_GAP = 100000;
// Latencies kept for the whole-run percentiles (a ring: a long session stays bounded).
const MAX_KEPT_LATENCIES = 36000; // 10 minutes at 60 Hz
// Seconds of history for the chart.
export const HISTORY_SECONDS = 30;

export function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.round(p * (sorted.length - 1)))];
}

export class PlayerStats {
  constructor(uid) {
    this.uid = uid;
    this.reset();
    this.gone = false;
  }

  reset() {
    this.received = 0;
    this.outOfOrder = 0;
    this.duplicates = 0;
    this.firstSeq = -1;
    this.maxSeq = -1;
    this.seen = new Set(); // seq - firstSeq of the frames seen
    this.latencies = []; // ms, ring of MAX_KEPT_LATENCIES
    this.latencyAt = 0;
    this.windowReceived = 0;
    this.windowLatencies = [];
    this.fps = 0;
    this.windowP50 = null;
    this.windowP99 = null;
    this.totalP50 = null;
    this.totalP99 = null;
    this.maxLatency = null;
    this.history = []; // [{ t, fps, p50, p99 }] one per second
    this.last = null; // the last frame: { seq, buttons, axes, format }
    this.lastAt = 0;
  }

  // One frame, received at nowMs (ms since the epoch, same clock as the sender's sent_ns).
  add(frame, nowMs) {
    const seq = frame.seq;
    if (this.firstSeq < 0 || seq < this.firstSeq - NEW_RUN_SEQ_GAP) {
      this.reset();
      this.firstSeq = seq;
    }
    if (seq < this.firstSeq) return; // from before the first frame this page saw
    const index = seq - this.firstSeq;
    if (this.seen.has(index)) this.duplicates++;
    this.seen.add(index);
    if (seq < this.maxSeq) this.outOfOrder++;
    this.maxSeq = Math.max(this.maxSeq, seq);
    this.received++;
    this.windowReceived++;
    const latencyMs = nowMs - Number(frame.sent_ns) / 1e6;
    this.windowLatencies.push(latencyMs);
    if (this.latencies.length < MAX_KEPT_LATENCIES) {
      this.latencies.push(latencyMs);
    } else {
      this.latencies[this.latencyAt] = latencyMs;
      this.latencyAt = (this.latencyAt + 1) % MAX_KEPT_LATENCIES;
    }
    this.last = { seq, buttons: frame.buttons, axes: frame.axes, format: frame.format };
    this.lastAt = nowMs;
    this.gone = false;
  }

  get lost() {
    if (this.maxSeq < 0) return 0;
    const expected = this.maxSeq - this.firstSeq + 1;
    const distinct = this.received - this.duplicates;
    return Math.max(0, expected - distinct);
  }

  // Closes a one-second window: its frame count is the fps, its latencies the live p50/p99.
  tick(t) {
    this.fps = this.windowReceived;
    this.windowP50 = percentile(this.windowLatencies, 0.5);
    this.windowP99 = percentile(this.windowLatencies, 0.99);
    // Whole-run figures once a second too: sorting every kept latency is not for each render.
    this.totalP50 = percentile(this.latencies, 0.5);
    this.totalP99 = percentile(this.latencies, 0.99);
    this.maxLatency = this.latencies.length ? this.latencies.reduce((a, b) => Math.max(a, b)) : null;
    this.history.push({ t, fps: this.fps, p50: this.windowP50, p99: this.windowP99 });
    if (this.history.length > HISTORY_SECONDS) this.history.shift();
    this.windowReceived = 0;
    this.windowLatencies = [];
  }

  // Plain numbers for window.coplayStats and the table's data- attributes.
  snapshot() {
    const round = (v) => (v === null ? null : Math.round(v * 1000) / 1000);
    return {
      uid: this.uid,
      received: this.received,
      lost: this.lost,
      outOfOrder: this.outOfOrder,
      duplicates: this.duplicates,
      firstSeq: this.firstSeq,
      lastSeq: this.maxSeq,
      fps: this.fps,
      peakFps: this.history.reduce((a, h) => Math.max(a, h.fps), 0),
      p50Ms: round(this.windowP50),
      p99Ms: round(this.windowP99),
      totalP50Ms: round(this.totalP50),
      totalP99Ms: round(this.totalP99),
      maxMs: round(this.maxLatency),
      buttons: this.last ? this.last.buttons : 0,
      axes: this.last ? this.last.axes : [0, 0, 0, 0],
      format: this.last ? this.last.format : null,
      gone: this.gone,
    };
  }
}
