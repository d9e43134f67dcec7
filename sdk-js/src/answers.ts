// The gateway's answers and events as SDK values (docs/protocol.md), shared by the client,
// its handles and the restore. Bounded and lenient as wire.ts: a missing field is a default.
import { ErrorCode, RtmError, errorName } from './errors.js';
import type { ChannelSnapshot, HistoryPage, InboxMessage, UserResult } from './types.js';
import { type Json, base64Decode, bool, num, obj, objects, str, strings, utf8 } from './wire.js';

/** {"users":[{"uid":"bob","ok":true,"state":..},{"uid":"x","ok":false,"code":..,"error":..,"message":..}]} */
export function parseUsers(result: Json): Array<UserResult & { state: string }> {
  return objects(result, 'users').map((u) => {
    const ok = bool(u, 'ok');
    const out: UserResult & { state: string } = { uid: str(u, 'uid'), ok, state: str(u, 'state') };
    if (!ok) {
      const code = num(u, 'code', ErrorCode.INTERNAL);
      out.error = new RtmError(code, str(u, 'message'), str(u, 'error', errorName(code)));
    }
    return out;
  });
}

/** The snapshot of a join answer: members (in join order) and, per topic, its publishers. */
export function parseSnapshot(result: Json, channel: string): ChannelSnapshot {
  const snapshot = obj(result, 'snapshot');
  const publishers: Record<string, string[]> = {};
  for (const t of objects(snapshot, 'topics')) {
    const topic = str(t, 'topic');
    if (topic) publishers[topic] = strings(t, 'publishers');
  }
  const out: ChannelSnapshot = { channel: str(result, 'channel', channel), members: strings(snapshot, 'members'), publishers };
  const expires = num(result, 'token_expires_at');
  if (expires) out.tokenExpiresAt = expires;
  return out;
}

/** A `message` event (and an inbox_history entry); undefined when a binary message's base64 does not decode. */
export function parsePeerMessage(v: Json): InboxMessage | undefined {
  const binary = str(v, 'type') === 'binary';
  const message = str(v, 'message');
  const payload = binary ? base64Decode(message) : new TextEncoder().encode(message);
  if (!payload) return undefined;
  return {
    from: str(v, 'from'),
    payload,
    text: binary ? utf8(payload) : message,
    qos: 1,
    id: str(v, 'id'),
    type: binary ? 'binary' : 'text',
    serverTs: num(v, 'ts'),
    offline: bool(v, 'offline'),
  };
}

/** A `history` answer (a payload that is not UTF-8 comes as base64 with "encoding":"base64"). */
export function parseHistoryPage(r: Json): HistoryPage {
  return {
    epoch: str(r, 'epoch'),
    top: num(r, 'top'),
    oldest: num(r, 'oldest'),
    complete: bool(r, 'complete', true),
    more: bool(r, 'more'),
    messages: objects(r, 'messages').map((m) => {
      const text = str(m, 'message');
      const payload =
        str(m, 'encoding') === 'base64' ? (base64Decode(text) ?? new Uint8Array()) : new TextEncoder().encode(text);
      return {
        offset: num(m, 'offset'),
        publisher: str(m, 'publisher'),
        seq: num(m, 'seq'),
        ts: num(m, 'ts'),
        payload,
        tooLarge: bool(m, 'too_large'),
      };
    }),
  };
}
