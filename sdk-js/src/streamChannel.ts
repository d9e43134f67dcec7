// A stream channel by name (RTM 2's StreamChannel): join / leave, topics the user publishes
// in, subscriptions to publishers (by name, at most 64 per topic, or every publisher), and
// the stream's history. Data goes straight to P/ch/{channel}/{topic}/{publisher}.
import type { ChannelState, RtmClient } from './client.js';
import { parseHistoryPage, parseSnapshot, parseUsers } from './answers.js';
import { ErrorCode, RtmError, rtmError } from './errors.js';
import type { ChannelSnapshot, Data, HistoryPage, HistoryQuery, PublishOptions, SubscribeResult } from './types.js';
import { type Json, str, strings } from './wire.js';

/** The gateway's limit of publishers per (subscriber, channel, topic). */
export const MAX_SUBSCRIBED_PUBLISHERS = 64;

export class StreamChannel {
  constructor(
    private readonly client: RtmClient,
    readonly name: string,
  ) {}

  /** True after join() until leave() (or the session ends). */
  get joined(): boolean {
    return this.client.channels.has(this.name);
  }

  /** Joins the channel and follows its events ('channelEvent'); answers the members and topic publishers. */
  async join(token?: string): Promise<ChannelSnapshot> {
    const c = this.client;
    c.checkName('channel', this.name);
    const events = c.eventsTopic(this.name);
    // Subscribed before the request goes out (the broker keeps one connection's packets in
    // order), so no event after the snapshot is missed.
    const subscribeNow = c.linkOpen && !c.channels.has(this.name);
    if (subscribeNow) c.mqttSubscribe([events]);
    const body: Json = { channel: this.name };
    if (token) body.token = token;
    let r: Json;
    try {
      r = await c.call('join', body, `join ${this.name}`);
    } catch (e) {
      if (subscribeNow && !c.channels.has(this.name)) c.mqttUnsubscribe([events]);
      throw e;
    }
    const ch = this.state();
    if (token) ch.token = token;
    return parseSnapshot(r, this.name);
  }

  /** Leaves the channel, its topics and its subscriptions. */
  async leave(): Promise<void> {
    const c = this.client;
    c.checkName('channel', this.name);
    try {
      await c.call('leave', { channel: this.name }, `leave ${this.name}`);
    } catch (e) {
      if (e instanceof RtmError && e.code === ErrorCode.NOT_JOINED) c.forgetChannel(this.name);
      throw e;
    }
    c.forgetChannel(this.name);
  }

  /** Becomes a publisher of `topic` (needed before publishTopic). */
  async joinTopic(topic: string): Promise<void> {
    const c = this.client;
    c.checkName('channel', this.name);
    c.checkName('topic', topic);
    const r = await c.call('join_topic', { channel: this.name, topic }, `join_topic ${this.name}/${topic}`);
    const fresh = !c.channels.has(this.name);
    this.state().topics.set(topic, str(r, 'publish_to', c.dataTopic(this.name, topic, c.uid)));
    if (fresh) c.mqttSubscribe([c.eventsTopic(this.name)]);
  }

  async leaveTopic(topic: string): Promise<void> {
    const c = this.client;
    c.checkName('channel', this.name);
    c.checkName('topic', topic);
    try {
      await c.call('leave_topic', { channel: this.name, topic }, `leave_topic ${this.name}/${topic}`);
    } catch (e) {
      if (e instanceof RtmError && (e.code === ErrorCode.NOT_PUBLISHER || e.code === ErrorCode.NOT_JOINED)) {
        c.channels.get(this.name)?.topics.delete(topic);
      }
      throw e;
    }
    c.channels.get(this.name)?.topics.delete(topic);
  }

  /** Publishes straight to P/ch/{channel}/{topic}/{uid} on the broker (QoS 0 by default);
   *  while reconnecting the message waits in the send queue. */
  async publishTopic(topic: string, data: Data, options: PublishOptions = {}): Promise<void> {
    const qos = options.qos ?? 0;
    if (qos !== 0 && qos !== 1) throw rtmError('INVALID_PARAMETER', 'qos must be 0 or 1');
    const to = this.client.channels.get(this.name)?.topics.get(topic);
    if (!to) {
      throw rtmError(
        'NOT_JOINED',
        `${this.client.uid} has not joined topic ${topic} of channel ${this.name} (call joinTopic first)`,
      );
    }
    this.client.publishOrQueue(to, typeof data === 'string' ? new TextEncoder().encode(data) : data, qos);
  }

  /** Subscribes to publishers of `topic` (at most 64), or without `users` to every publisher
   *  but this user, now and later. Messages arrive as 'message' events. */
  async subscribeTopic(topic: string, users?: string[]): Promise<SubscribeResult> {
    return users === undefined ? this.subscribeAll(topic, false) : this.subscribeUsers(topic, users, false);
  }

  /** Unsubscribes from `users`, or without `users` ends every subscription of `topic`. */
  async unsubscribeTopic(topic: string, users?: string[]): Promise<SubscribeResult> {
    return users === undefined ? this.subscribeAll(topic, true) : this.subscribeUsers(topic, users, true);
  }

  /** Who this user subscribes to in `topic`. */
  async subscribedUsers(topic: string): Promise<string[]> {
    const c = this.client;
    c.checkName('channel', this.name);
    c.checkName('topic', topic);
    const r = await c.call('subscribed', { channel: this.name, topic }, `subscribed ${this.name}/${topic}`);
    return strings(r, 'users');
  }

  /** The members of the channel. */
  async whoNow(): Promise<string[]> {
    return this.client.whoNow(this.name);
  }

  /** The stream's history (a topic the gateway keeps history for: history.streams). */
  async history(topic: string, query: HistoryQuery = {}): Promise<HistoryPage> {
    const c = this.client;
    c.checkName('channel', this.name);
    c.checkName('topic', topic);
    const body: Json = { channel: this.name, topic, limit: query.limit ?? 100 };
    if (query.since !== undefined) body.since = query.since;
    if (query.sinceTs !== undefined) body.since_ts = query.sinceTs;
    if (query.epoch) body.epoch = query.epoch;
    if (query.publishers?.length) body.publishers = query.publishers;
    if (query.reverse) body.reverse = true;
    if (query.after !== undefined) body.after = query.after;
    if (query.before !== undefined) body.before = query.before;
    return parseHistoryPage(await c.call('history', body, `history ${this.name}/${topic}`));
  }

  // ------------------------------------------------------------------ internals

  private state(): ChannelState {
    let ch = this.client.channels.get(this.name);
    if (!ch) {
      ch = { topics: new Map(), subscribed: new Map(), all: new Map(), states: {} };
      this.client.channels.set(this.name, ch);
    }
    return ch;
  }

  private async subscribeUsers(topic: string, users: string[], unsubscribe: boolean): Promise<SubscribeResult> {
    const c = this.client;
    c.checkName('channel', this.name);
    c.checkName('topic', topic);
    if (!Array.isArray(users)) throw rtmError('INVALID_PARAMETER', 'users must be an array');
    for (const u of users) c.checkName('uid', u);
    // Subscribing: the data topics are subscribed before the request goes out, so they are
    // in place at the broker when the answer comes back (the every-publisher wildcard
    // brings them already).
    const fresh: string[] = [];
    if (!unsubscribe && c.linkOpen) {
      const covered = c.channels.get(this.name)?.all.has(topic) ?? false;
      for (const u of users) {
        const t = c.dataTopic(this.name, topic, u);
        if (!covered && !c.dataTopics.has(t)) {
          c.dataTopics.add(t);
          fresh.push(t);
        }
      }
      c.mqttSubscribe(fresh);
    }
    const op = unsubscribe ? 'unsubscribe' : 'subscribe';
    let r: Json;
    try {
      r = await c.call(op, { channel: this.name, topic, users }, `${op} ${this.name}/${topic}`);
    } catch (e) {
      for (const t of fresh) c.dataTopics.delete(t);
      c.mqttUnsubscribe(fresh);
      throw e;
    }
    const add: string[] = [];
    const drop: string[] = [];
    let ch = c.channels.get(this.name);
    if (!ch && !unsubscribe) {
      ch = this.state(); // joined through another client of this uid
      add.push(c.eventsTopic(this.name));
    }
    const all = ch?.all.get(topic);
    const result: SubscribeResult = { channel: this.name, topic, users: [], all: all !== undefined, succeeded: [] };
    for (const u of parseUsers(r)) {
      const t = c.dataTopic(this.name, topic, u.uid);
      if (!unsubscribe) {
        if (u.ok) {
          let set = ch!.subscribed.get(topic);
          if (!set) ch!.subscribed.set(topic, (set = new Set()));
          set.add(u.uid);
          if (all) {
            all.delete(u.uid);
          } else if (!c.dataTopics.has(t)) {
            c.dataTopics.add(t);
            add.push(t);
          }
        } else if (fresh.includes(t)) {
          c.dataTopics.delete(t);
          drop.push(t);
        }
      } else if (u.ok || u.error?.code === ErrorCode.NOT_SUBSCRIBED) {
        const set = ch?.subscribed.get(topic);
        if (set) {
          set.delete(u.uid);
          if (set.size === 0) ch!.subscribed.delete(topic);
        }
        // The wildcard still brings this publisher: keep it out until it joins again.
        if (u.ok && all) all.add(u.uid);
        if (c.dataTopics.delete(t)) drop.push(t);
      }
      result.users.push({ uid: u.uid, ok: u.ok, ...(u.error ? { error: u.error } : {}) });
      if (u.ok) result.succeeded.push(u.uid);
    }
    c.mqttSubscribe(add);
    c.mqttUnsubscribe(drop);
    if (!unsubscribe) c.streams.track(this.name, topic, r);
    else c.streams.untrack(this.name, (t) => c.streamSubscribed(this.name, t));
    return result;
  }

  private async subscribeAll(topic: string, unsubscribe: boolean): Promise<SubscribeResult> {
    const c = this.client;
    c.checkName('channel', this.name);
    c.checkName('topic', topic);
    // The wildcard is subscribed before the request goes out, so it is in place at the
    // broker before the gateway adds any publisher: no message of theirs can slip through.
    const filter = c.dataTopic(this.name, topic, '+');
    let fresh = false;
    if (!unsubscribe && c.linkOpen && !c.allFilters.has(filter)) {
      c.allFilters.add(filter);
      fresh = true;
      c.mqttSubscribe([filter]);
    }
    if (!unsubscribe) c.streams.expect(this.name, topic);
    const op = unsubscribe ? 'unsubscribe' : 'subscribe';
    let r: Json;
    try {
      r = await c.call(op, { channel: this.name, topic }, `${op} ${this.name}/${topic} (every publisher)`);
    } catch (e) {
      if (fresh && !c.channels.get(this.name)?.all.has(topic)) {
        c.allFilters.delete(filter);
        c.mqttUnsubscribe([filter]);
      }
      throw e;
    }
    const parsed = parseUsers(r);
    const add: string[] = [];
    const drop: string[] = [];
    let ch = c.channels.get(this.name);
    if (!ch && !unsubscribe) {
      ch = this.state(); // joined through another client of this uid
      add.push(c.eventsTopic(this.name));
    }
    const byName = ch?.subscribed.get(topic);
    if (!unsubscribe) {
      const refused = new Set(parsed.filter((u) => !u.ok).map((u) => u.uid));
      ch!.all.set(topic, refused);
      if (!c.allFilters.has(filter)) {
        c.allFilters.add(filter);
        add.push(filter);
      }
      // The wildcard covers those subscribed to by name: their own filters go.
      for (const u of byName ?? []) {
        const t = c.dataTopic(this.name, topic, u);
        if (c.dataTopics.delete(t)) drop.push(t);
      }
    } else if (ch) {
      ch.all.delete(topic);
      for (const u of byName ?? []) {
        const t = c.dataTopic(this.name, topic, u);
        if (c.dataTopics.delete(t)) drop.push(t);
      }
      ch.subscribed.delete(topic);
      if (c.allFilters.delete(filter)) drop.push(filter);
    }
    c.mqttSubscribe(add);
    c.mqttUnsubscribe(drop);
    if (!unsubscribe) c.streams.track(this.name, topic, r);
    else c.streams.untrack(this.name, (t) => c.streamSubscribed(this.name, t));
    return {
      channel: this.name,
      topic,
      all: !unsubscribe,
      users: parsed.map((u) => ({ uid: u.uid, ok: u.ok, ...(u.error ? { error: u.error } : {}) })),
      succeeded: parsed.filter((u) => u.ok).map((u) => u.uid),
    };
  }
}


