// History recovery of subscribed streams (docs/protocol.md, "History"), as the C++ SDK's
// (sdk/src/client_recovery.cpp). The data plane is raw bytes, so the SDK cannot read offsets
// off messages: it counts each publisher's messages from a baseline the gateway gives (the
// `history` of a subscribe answer) and keeps the hash of the last payload. While the link is
// down, live messages of those streams are held; after the restore it asks `history` for
// what came after those positions, delivers it (`recovered`), then the held live messages
// minus those the history already returned (told apart by payload hash at the end of each
// publisher's history), and reports a 'recovery' event per stream.
import { parseHistoryPage } from './answers.js';
import type { HistoryMessage, MessageEvent, RecoveryEvent } from './types.js';
import { type Json, isObject, num, obj, str } from './wire.js';

/** A stream that missed more pages than this is left incomplete rather than holding its live messages for ever. */
const MAX_RECOVERY_PAGES = 100;
/** Messages per page when recovering (the gateway caps it at history.max_page and by size). */
const RECOVERY_PAGE_SIZE = 1000;
/** Messages per publisher remembered between a subscribe and its answer. */
const MAX_BEFORE_BASELINE = 1024;
/** Live messages held per stream while it recovers; beyond it the oldest go (incomplete). */
export const MAX_RECOVERY_BUFFER = 100_000;

const FNV_OFFSET = 14695981039346656037n;
const FNV_PRIME = 1099511628211n;
const MASK_64 = (1n << 64n) - 1n;

/** FNV-1a 64 of the payload, as the gateway's `hash` (docs/protocol.md, history `positions`). */
export function payloadHash(payload: Uint8Array): bigint {
  let h = FNV_OFFSET;
  for (const b of payload) h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK_64;
  return h;
}

function hashHex(h: bigint): string {
  return h.toString(16).padStart(16, '0');
}

function parseHashHex(text: string): bigint | undefined {
  return /^[0-9a-f]{16}$/.test(text) ? BigInt('0x' + text) : undefined;
}

interface Position {
  seq?: number;
  hash?: bigint;
}

interface Top {
  seq: number;
  hash: bigint;
}

interface Stream {
  epoch: string;
  since: number;
  baseline: boolean;
  recovering: boolean;
  publishers: Map<string, Position>;
  beforeBaseline: Map<string, bigint[]>;
  held: MessageEvent[];
  overflowed: boolean;
}

type HistoryEntry = HistoryMessage;

/** A history answer, and each publisher's newest entry at the gateway (`publishers`). */
function parsePage(r: Json) {
  const tops = new Map<string, Top>();
  for (const [name, v] of Object.entries(obj(r, 'publishers'))) {
    if (!isObject(v)) continue;
    tops.set(name, { seq: num(v, 'seq'), hash: parseHashHex(str(v, 'hash')) ?? 0n });
  }
  return { ...parseHistoryPage(r), tops };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const key = (channel: string, topic: string) => `${channel}\u0000${topic}`;

export interface RecoveryHost {
  /** A request of the restore (throws on failure; a transport failure makes the restore retry). */
  call(op: string, body: Json, what: string): Promise<Json>;
  isTransportFailure(e: unknown): boolean;
  emitMessage(ev: MessageEvent): void;
  emitRecovery(ev: RecoveryEvent): void;
  /** Is this stream still subscribed (by name or every publisher)? */
  subscribed(channel: string, topic: string): boolean;
}

export class StreamRecovery {
  private readonly streams = new Map<string, Stream>();

  constructor(private readonly enabled: boolean) {}

  /** Every-publisher subscribe: the stream is followed from before the answer. */
  expect(channel: string, topic: string): void {
    if (this.enabled && !this.streams.has(key(channel, topic))) this.streams.set(key(channel, topic), newStream());
  }

  /** A subscribe answer: its `history` is the stream's baseline (no history: not followed). */
  track(channel: string, topic: string, result: Json): void {
    if (!this.enabled) return;
    const k = key(channel, topic);
    let s = this.streams.get(k);
    const h = result.history;
    if (!isObject(h)) {
      if (s && !s.baseline) this.streams.delete(k); // no history here
      return;
    }
    if (!s) this.streams.set(k, (s = newStream()));
    const page = parsePage(h);
    if (s.baseline) {
      // Subscribed to more publishers: those new to the stream start at the gateway's count.
      if (page.epoch !== s.epoch) return; // the next recovery sorts it out
      for (const [name, top] of page.tops) if (!s.publishers.has(name)) s.publishers.set(name, { seq: top.seq, hash: top.hash });
      return;
    }
    s.epoch = page.epoch;
    s.since = page.top;
    // What arrived before this answer may be before or after the gateway's count: placed by
    // the hash of the gateway's newest message of each publisher among them.
    for (const [name, top] of page.tops) {
      const hashes = s.beforeBaseline.get(name);
      if (!hashes || hashes.length === 0) {
        s.publishers.set(name, { seq: top.seq, hash: top.hash });
        continue;
      }
      let after = hashes.length; // all of them came after the gateway's newest
      for (let i = hashes.length - 1; i >= 0; i--) {
        if (hashes[i] === top.hash) {
          after = hashes.length - 1 - i;
          break;
        }
      }
      s.publishers.set(name, { seq: top.seq + after, hash: hashes[hashes.length - 1] });
    }
    for (const [name, hashes] of s.beforeBaseline) {
      if (!page.tops.has(name) && hashes.length > 0) {
        s.publishers.set(name, { seq: hashes.length, hash: hashes[hashes.length - 1] });
      }
    }
    s.beforeBaseline.clear();
    s.baseline = true;
  }

  /** Forgets the streams of `channel` no longer subscribed. */
  untrack(channel: string, subscribed: (topic: string) => boolean): void {
    for (const k of [...this.streams.keys()]) {
      const [c, topic] = k.split('\u0000');
      if (c === channel && !subscribed(topic)) this.streams.delete(k);
    }
  }

  /** A live message: false when it is held (its stream recovers). Counts it otherwise. */
  onMessage(ev: MessageEvent, retained: boolean): boolean {
    const s = this.streams.get(key(ev.channel, ev.topic));
    if (!s || retained) return true; // a retained copy is not counted
    if (!s.baseline && !s.recovering) {
      let hashes = s.beforeBaseline.get(ev.publisher);
      if (!hashes) s.beforeBaseline.set(ev.publisher, (hashes = []));
      if (hashes.length >= MAX_BEFORE_BASELINE) hashes.shift();
      hashes.push(payloadHash(ev.payload));
      return true;
    }
    if (s.recovering) {
      if (s.held.length >= MAX_RECOVERY_BUFFER) {
        s.held.shift();
        s.overflowed = true;
      }
      s.held.push(ev);
      return false;
    }
    const p = s.publishers.get(ev.publisher) ?? {};
    p.seq = p.seq !== undefined ? p.seq + 1 : s.epoch ? 1 : undefined;
    p.hash = payloadHash(ev.payload);
    s.publishers.set(ev.publisher, p);
    return true;
  }

  /** The link dropped: live messages wait for the recovery. */
  hold(): void {
    for (const s of this.streams.values()) s.recovering = true;
  }

  clear(): void {
    this.streams.clear();
  }

  /** After the restore: recovers every followed stream. Throws what `host.call` throws on a transport failure. */
  async recover(host: RecoveryHost, problems: string[]): Promise<void> {
    const keys: string[] = [];
    for (const [k, s] of [...this.streams]) {
      const [channel, topic] = k.split('\u0000');
      // Streams no longer subscribed to (unsubscribed, left, or lost at the restore) go.
      if (!host.subscribed(channel, topic)) {
        this.streams.delete(k);
        for (const ev of s.held) host.emitMessage(ev);
        continue;
      }
      keys.push(k);
    }
    for (const k of keys) {
      const [channel, topic] = k.split('\u0000');
      const s0 = this.streams.get(k);
      if (!s0) continue;
      const epoch = s0.epoch;
      const since = s0.since;
      const positions = new Map(s0.publishers);
      const missed: HistoryEntry[] = [];
      const tops = new Map<string, Top>();
      let newEpoch = epoch;
      let top = since;
      let complete = true;
      let reason = '';
      let after: number | undefined;
      const unknownBaseline = epoch === '';
      for (let page = 0; ; page++) {
        if (page === MAX_RECOVERY_PAGES) {
          complete = false;
          reason = `more than ${MAX_RECOVERY_PAGES} pages were missed`;
          break;
        }
        const body: Json = { channel, topic, limit: RECOVERY_PAGE_SIZE };
        if (!unknownBaseline) {
          body.epoch = epoch;
          body.since = since;
          if (positions.size > 0) {
            const pos: Json = {};
            for (const [name, p] of positions) {
              const entry: Json = {};
              if (p.seq !== undefined) entry.seq = p.seq;
              if (p.hash !== undefined) entry.hash = hashHex(p.hash);
              pos[name] = entry;
            }
            body.positions = pos;
          }
        } else {
          body.limit = 0; // no baseline yet: only where the stream is now
        }
        if (after !== undefined) body.after = after;
        let r: Json;
        try {
          r = await host.call('history', body, `history ${channel}/${topic} (recover)`);
        } catch (e) {
          if (host.isTransportFailure(e)) throw e;
          problems.push(`history ${channel}/${topic}: ${String(e)}`);
          complete = false;
          reason = String(e);
          break;
        }
        const parsed = parsePage(r);
        newEpoch = parsed.epoch;
        top = parsed.top;
        if (unknownBaseline) {
          // Subscribed while the gateway could not answer: from now on, nothing to recover.
          complete = false;
          reason = "no baseline: the stream's position was not known before the disconnect";
          for (const [name, t] of parsed.tops) tops.set(name, t);
          break;
        }
        if (!parsed.complete && complete) {
          complete = false;
          reason =
            parsed.epoch !== epoch
              ? `the stream's history restarted (epoch ${epoch} -> ${parsed.epoch})`
              : 'messages missed were no longer kept';
        }
        for (const [name, t] of parsed.tops) tops.set(name, t);
        for (const m of parsed.messages) {
          after = m.offset;
          missed.push(m);
        }
        if (!parsed.more || parsed.messages.length === 0) break;
      }

      // Deliver: the missed messages, then the held live ones the history did not hold.
      const s = this.streams.get(k);
      if (!s) continue;
      const missedBy = new Map<string, HistoryEntry[]>();
      for (const m of missed) {
        if (!missedBy.has(m.publisher)) missedBy.set(m.publisher, []);
        missedBy.get(m.publisher)!.push(m);
      }
      const heldBy = new Map<string, MessageEvent[]>();
      for (const ev of s.held) {
        if (!heldBy.has(ev.publisher)) heldBy.set(ev.publisher, []);
        heldBy.get(ev.publisher)!.push(ev);
      }
      const skip = new Map<string, number>(); // leading held messages per publisher to drop
      for (const [name, held] of heldBy) {
        const t = tops.get(name);
        if (!t) continue; // the history holds nothing of it: all are new
        // The shortest run of held messages that ends in the gateway's newest one and agrees
        // with the end of what the history returned.
        const fromHistory = missedBy.get(name) ?? [];
        for (let i = 0; i < held.length; i++) {
          if (payloadHash(held[i].payload) !== t.hash) continue;
          let agrees = true;
          for (let j = 0; j < i && agrees; j++) {
            const back = i - j;
            if (back < fromHistory.length) {
              agrees = sameBytes(fromHistory[fromHistory.length - 1 - back].payload, held[j].payload);
            }
          }
          if (agrees) {
            skip.set(name, i + 1);
            break;
          }
        }
      }
      if (s.overflowed && complete) {
        complete = false;
        reason = 'more live messages arrived during the recovery than the recovery buffer holds';
      }
      const position = (name: string) => {
        let p = s.publishers.get(name);
        if (!p) s.publishers.set(name, (p = {}));
        return p;
      };
      for (const m of missed) {
        const p = position(m.publisher);
        p.seq = m.seq;
        p.hash = payloadHash(m.payload);
        host.emitMessage({
          channel,
          topic,
          publisher: m.publisher,
          payload: m.payload,
          qos: 0,
          recovered: true,
          offset: m.offset,
          ts: m.ts,
        });
      }
      const seen = new Map<string, number>();
      const held = s.held;
      s.held = [];
      s.recovering = false;
      for (const ev of held) {
        const n = seen.get(ev.publisher) ?? 0;
        seen.set(ev.publisher, n + 1);
        if (n < (skip.get(ev.publisher) ?? 0)) continue;
        const p = position(ev.publisher);
        const t = tops.get(ev.publisher);
        if (t && (p.seq === undefined || p.seq < t.seq)) p.seq = t.seq; // the history's newest was held live
        p.seq = p.seq !== undefined ? p.seq + 1 : 1;
        p.hash = payloadHash(ev.payload);
        host.emitMessage(ev);
      }
      for (const [name, t] of tops) {
        const p = position(name);
        if (p.seq === undefined && p.hash === undefined) s.publishers.set(name, { seq: t.seq, hash: t.hash });
      }
      s.overflowed = false;
      s.epoch = newEpoch;
      s.since = top;
      host.emitRecovery({ channel, topic, complete, recovered: missed.length, reason });
    }
  }
}

function newStream(): Stream {
  return {
    epoch: '',
    since: 0,
    baseline: false,
    recovering: false,
    publishers: new Map(),
    beforeBaseline: new Map(),
    held: [],
    overflowed: false,
  };
}
