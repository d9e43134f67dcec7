// The restore after a reconnect, as the C++ SDK's (sdk/src/client_impl.cpp, restore()): is
// the session still there (else log in again with the same token), then channels, topics,
// subscriptions, watches (and the presence changes missed), invitations, message channels,
// presence states and metadata subscriptions asserted again (idempotent at the gateway),
// then what subscribed streams with history missed while away is delivered (recovery.ts),
// then the send queue and the parked calls go out, and the state becomes RESTORED.
import { parseSnapshot, parseUsers } from './answers.js';
import type { RtmClient } from './client.js';
import { ErrorCode, RtmError, isTransportFailure } from './errors.js';
import { parseInvitation } from './invitations.js';
import { ConnectionChangeReason, ConnectionState } from './states.js';
import type { InvitationEvent } from './types.js';
import { type Json, num, objects, str } from './wire.js';

/** The first probe's timeout; probes double up to the request timeout (a gateway that is
 *  itself reconnecting to the broker loses requests sent before it subscribes again). */
const FIRST_PROBE_MS = 250;

export interface RestoreHooks {
  stillWanted(): boolean;
  token(): string;
  loggedInAgain(sessionId: string, expiresAt: number): void;
  fail(state: ConnectionState, reason: ConnectionChangeReason, message: string): void;
  /** Sends what waited and reports RESTORED; false when the link dropped again. */
  finish(summary: string): Promise<boolean>;
}

class Retry extends Error {}

export async function restoreSession(client: RtmClient, hooks: RestoreHooks): Promise<'done' | 'retry' | 'failed'> {
  const timeoutMs = client.config.requestTimeoutMs;
  const call = async (op: string, body: Json, what: string, t = timeoutMs): Promise<Json> => {
    if (!hooks.stillWanted()) throw new Retry();
    try {
      return await client.call(op, body, `${what} (restore)`, { internal: true, timeoutMs: t });
    } catch (e) {
      if (isTransportFailure(e)) throw new Retry();
      throw e;
    }
  };
  const problems: string[] = [];
  try {
    // 1. Is the session still there?
    let relogin = false;
    let attempt = Math.min(timeoutMs, FIRST_PROBE_MS);
    for (;;) {
      if (!hooks.stillWanted()) return 'retry';
      try {
        await client.call('where_now', { uid: client.uid }, 'where_now (restore)', { internal: true, timeoutMs: attempt });
        break;
      } catch (e) {
        if (e instanceof RtmError && e.code === ErrorCode.TIMEOUT) {
          attempt = Math.min(timeoutMs, attempt * 2);
          continue;
        }
        if (e instanceof RtmError && e.code === ErrorCode.UNAVAILABLE) return 'retry';
        relogin = true; // NOT_LOGGED_IN: the session ended while we were away
        break;
      }
    }
    if (relogin) {
      let r: Json;
      try {
        r = await call('login', { token: hooks.token() }, 'login');
      } catch (e) {
        if (e instanceof Retry) throw e;
        const err = e as RtmError;
        hooks.fail(
          ConnectionState.FAILED,
          err.code === ErrorCode.TOKEN_EXPIRED ? ConnectionChangeReason.TOKEN_EXPIRED : ConnectionChangeReason.LOGIN_FAILURE,
          `the session could not be restored: login refused: ${err.toString()}`,
        );
        return 'failed';
      }
      hooks.loggedInAgain(str(r, 'session_id'), num(r, 'expires_at'));
    }

    // 2. Channels, topics, subscriptions.
    let nTopics = 0;
    let nSubscriptions = 0;
    for (const [name, ch] of [...client.channels]) {
      const body: Json = { channel: name };
      if (relogin && ch.token) body.token = ch.token;
      let joined: Json;
      try {
        joined = await call('join', body, `join ${name}`);
      } catch (e) {
        if (e instanceof Retry) throw e;
        problems.push(`join ${name}: ${String(e)}`);
        client.forgetChannel(name);
        continue;
      }
      client.emit('channelEvent', {
        type: 'snapshot',
        channel: name,
        uid: '',
        reason: 'restored',
        ts: Date.now(),
        snapshot: parseSnapshot(joined, name),
      });
      for (const topic of [...ch.topics.keys()]) {
        try {
          await call('join_topic', { channel: name, topic }, `join_topic ${name}/${topic}`);
          nTopics++;
        } catch (e) {
          if (e instanceof Retry) throw e;
          problems.push(`join_topic ${name}/${topic}: ${String(e)}`);
          ch.topics.delete(topic);
        }
      }
      for (const [topic, users] of [...ch.subscribed]) {
        if (users.size === 0) continue;
        try {
          const r = await call('subscribe', { channel: name, topic, users: [...users] }, `subscribe ${name}/${topic}`);
          for (const u of parseUsers(r)) {
            if (u.ok) {
              nSubscriptions++;
            } else {
              problems.push(`subscribe ${name}/${topic} ${u.uid}: ${String(u.error)}`);
              users.delete(u.uid);
              const t = client.dataTopic(name, topic, u.uid);
              client.dataTopics.delete(t);
              client.mqttUnsubscribe([t]);
            }
          }
        } catch (e) {
          if (e instanceof Retry) throw e;
          problems.push(`subscribe ${name}/${topic}: ${String(e)}`);
        }
      }
      for (const topic of [...ch.all.keys()]) {
        try {
          const r = await call('subscribe', { channel: name, topic }, `subscribe ${name}/${topic}`);
          nSubscriptions++;
          ch.all.set(topic, new Set(parseUsers(r).filter((u) => !u.ok).map((u) => u.uid)));
        } catch (e) {
          if (e instanceof Retry) throw e;
          problems.push(`subscribe ${name}/${topic} (every publisher): ${String(e)}`);
          ch.all.delete(topic);
          const f = client.dataTopic(name, topic, '+');
          client.allFilters.delete(f);
          client.mqttUnsubscribe([f]);
        }
      }
    }

    // 3. Watches, and the presence changes missed while away.
    if (client.watched.size > 0) {
      try {
        const r = await call('watch', { users: [...client.watched.keys()] }, 'watch');
        const now: Array<[string, boolean]> = [];
        for (const u of parseUsers(r)) {
          if (u.ok) {
            now.push([u.uid, u.state === 'online']);
          } else {
            problems.push(`watch ${u.uid}: ${String(u.error)}`);
            client.watched.delete(u.uid);
          }
        }
        client.reportPresenceChanges(now);
      } catch (e) {
        if (e instanceof Retry) throw e;
        problems.push(`watch: ${String(e)}`);
      }
    }

    // 4. Invitations that changed (or ended) while away.
    await recheckInvitations(client, call, relogin, problems);

    // 5. Message channels, presence states, metadata subscriptions.
    for (const [name, mc] of [...client.messageChannels]) {
      const body: Json = { channel: name, with_presence: mc.withPresence };
      if (mc.token) body.token = mc.token;
      try {
        await call('subscribe_channel', body, `subscribe_channel ${name}`);
      } catch (e) {
        if (e instanceof Retry) throw e;
        problems.push(`subscribe_channel ${name}: ${String(e)}`);
        client.messageChannels.delete(name);
        client.mqttUnsubscribe(client.messageChannelFilters(name, true));
      }
    }
    for (const [name, ch] of [...client.channels]) {
      if (Object.keys(ch.states).length === 0) continue;
      try {
        await call('set_state', { channel: name, states: ch.states }, `set_state ${name}`);
      } catch (e) {
        if (e instanceof Retry) throw e;
        problems.push(`set_state ${name}: ${String(e)}`);
        ch.states = {};
      }
    }
    let nMetadata = 0;
    for (const uid of [...client.metadataSubscriptions]) {
      try {
        await call('subscribe_user_metadata', { uid }, `subscribe_user_metadata ${uid}`);
        nMetadata++;
      } catch (e) {
        if (e instanceof Retry) throw e;
        problems.push(`subscribe_user_metadata ${uid}: ${String(e)}`);
        client.metadataSubscriptions.delete(uid);
      }
    }

    // 6. What subscribed streams with history missed while away.
    await client.streams.recover(
      {
        call: (op, body, what) => call(op, body, what),
        isTransportFailure: (e) => e instanceof Retry,
        emitMessage: (ev) => client.emit('message', ev),
        emitRecovery: (ev) => client.emit('recovery', ev),
        subscribed: (channel, topic) => client.streamSubscribed(channel, topic),
      },
      problems,
    );

    let summary =
      `${relogin ? 'logged in again' : 'session kept'}; ${client.channels.size} channel(s), ${nTopics} topic(s), ` +
      `${nSubscriptions} subscription(s), ${client.watched.size} watch(es), ${nMetadata} metadata subscription(s) restored`;
    for (const p of problems) summary += `; failed: ${p}`;
    return (await hooks.finish(summary)) ? 'done' : 'retry';
  } catch (e) {
    if (e instanceof Retry) return 'retry';
    throw e;
  }
}

async function recheckInvitations(
  client: RtmClient,
  call: (op: string, body: Json, what: string) => Promise<Json>,
  relogin: boolean,
  problems: string[],
): Promise<void> {
  const before = new Map(client.invitationsInFlight);
  let r: Json;
  try {
    r = await call('invitations', {}, 'invitations');
  } catch (e) {
    if (e instanceof RtmError && e.code === ErrorCode.UNKNOWN_OPERATION) return; // a gateway without invitations
    if (e instanceof RtmError) {
      problems.push(`invitations: ${String(e)}`);
      return;
    }
    throw e;
  }
  const now = new Map<string, InvitationEvent>();
  for (const v of objects(r, 'invitations')) {
    const e = parseInvitation(v);
    if (e.id) now.set(e.id, e);
  }
  const events: InvitationEvent[] = [];
  const toAck: string[] = [];
  for (const [id, old] of before) {
    if (now.has(id)) continue;
    // Ended while this client was away; its event was lost with the connection.
    const e: InvitationEvent = { ...old, ended: true, ts: Date.now() };
    if (relogin) {
      // This session ended meanwhile, and the gateway ended its invitations with it.
      if (e.side === 'local') Object.assign(e, { state: 'CANCELED', stateCode: 5, reason: 'OK', reasonCode: 0 });
      else Object.assign(e, { state: 'FAILURE', stateCode: 5, reason: 'PEER_OFFLINE', reasonCode: 4 });
    } else {
      // How it ended is not known any more (answered, canceled, expired, ...).
      Object.assign(e, { state: 'FAILURE', stateCode: e.side === 'local' ? 6 : 5, reason: 'OTHER', reasonCode: 1 });
    }
    events.push(e);
  }
  for (const [id, e] of now) {
    const old = before.get(id);
    if (old && old.state === e.state) continue;
    // Changed meanwhile (RECEIVED_BY_REMOTE), or received while away.
    if (e.side === 'remote' && e.state === 'RECEIVED') toAck.push(id);
    events.push(e);
  }
  client.invitationsInFlight.clear();
  for (const [id, e] of now) client.invitationsInFlight.set(id, e);
  for (const id of toAck) {
    try {
      await call('ack_invitation', { id }, `ack_invitation ${id}`);
    } catch (e) {
      if (!(e instanceof RtmError)) throw e;
    }
  }
  for (const e of events) client.emit('invitation', e);
}
