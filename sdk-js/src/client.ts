// The RTM client: the programming model of Agora RTM 2 over plain MQTT 3.1.1 and the
// rtm-mqtt-gateway (docs/protocol.md), as the C++ SDK (sdk/include/rtm/sdk/client.hpp).
// Requests go to P/req/{uid}/{op}?msg_id=N and are answered on P/u/{uid}/res/...; data
// (channel topics, peer inboxes, message channels) goes straight through the broker.
import { parsePeerMessage, parseUsers } from './answers.js';
import { Emitter } from './emitter.js';
import { ErrorCode, RtmError, errorName, rtmError } from './errors.js';
import { InvitationsApi, parseInvitation } from './invitations.js';
import { ConnectRefused, Link } from './link.js';
import { LocksApi, parseLockEvent } from './locks.js';
import { nameError } from './names.js';
import { PresenceApi } from './presence.js';
import { StreamRecovery } from './recovery.js';
import { restoreSession } from './restore.js';
import { DEFAULT_MAX_SEND_QUEUE, DEFAULT_MAX_SEND_QUEUE_BYTES, SendQueue, type SendQueueStats } from './sendQueue.js';
import { ConnectionChangeReason, ConnectionState, connectionReasonName, connectionStateName } from './states.js';
import { StorageApi, parseStorageEvent } from './storage.js';
import { StreamChannel } from './streamChannel.js';
import type {
  ChannelEvent,
  ChannelMessageEvent,
  ClientEventName,
  ClientEvents,
  Data,
  InboxHistory,
  InboxHistoryOptions,
  InboxMessage,
  InvitationEvent,
  LoginInfo,
  MessageChannelInfo,
  MessageEvent,
  MessageType,
  PublishOptions,
  Qos,
  RtmClientConfig,
  SendMessageOptions,
  SendResult,
  StateMap,
  SubscribeChannelOptions,
  UserPresence,
} from './types.js';
import {
  type Json,
  base64Encode,
  bool,
  isObject,
  num,
  objects,
  parseObject,
  randomHex,
  str,
  stringMap,
  strings,
  toBytes,
  utf8,
} from './wire.js';

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_KEEPALIVE_S = 30;
export const DEFAULT_RECONNECT_MIN_MS = 100;
export const DEFAULT_RECONNECT_MAX_MS = 5_000;
/** The URI of a request (the topic levels after P/req/{uid}/), as the gateway's default limit. */
export const MAX_URI_BYTES = 900;

/** @internal What the client keeps of a stream channel, to restore it after a reconnect. */
export interface ChannelState {
  token?: string;
  topics: Map<string, string>; // topics this user publishes in -> the topic to publish to
  subscribed: Map<string, Set<string>>; // topic -> publishers subscribed to by name
  all: Map<string, Set<string>>; // every-publisher topics -> publishers refused / unsubscribed
  states: StateMap; // this user's presence states, set again after a restore
}

/** @internal */
export interface MessageChannelState {
  withPresence: boolean;
  token?: string;
}

interface Pending {
  resolve: (result: Json) => void;
  reject: (e: RtmError) => void;
  what: string;
  timer: ReturnType<typeof setTimeout>;
  parked: boolean; // waits for the restore; sent from flush
  topic?: string;
  body?: string;
}

/** @internal Options of one request. */
export interface CallOptions {
  /** Sent now even while restoring (the restore's own requests, login). */
  internal?: boolean;
  timeoutMs?: number;
}

/** Counters of what arrived from the broker and was skipped. */
export interface ReceiveStats {
  received: number;
  malformed: number;
}

export class RtmClient {
  readonly uid: string;
  readonly prefix: string;

  /** @internal */ readonly config: Required<Omit<RtmClientConfig, 'token' | 'logger' | 'clientId' | 'recoverStreams'>> & {
    clientId?: string;
  };
  /** @internal */ readonly channels = new Map<string, ChannelState>();
  /** @internal */ readonly messageChannels = new Map<string, MessageChannelState>();
  /** @internal */ readonly watched = new Map<string, boolean | undefined>(); // uid -> online
  /** @internal */ readonly metadataSubscriptions = new Set<string>();
  /** @internal */ readonly invitationsInFlight = new Map<string, InvitationEvent>();
  /** @internal */ readonly dataTopics = new Set<string>(); // P/ch/c/t/p subscribed by name
  /** @internal */ readonly allFilters = new Set<string>(); // P/ch/c/t/+ of every-publisher topics
  /** @internal */ readonly lockWaits = new Map<string, Set<(e?: RtmError) => void>>();
  /** @internal */ readonly streams: StreamRecovery;

  private readonly emitter: Emitter<ClientEvents>;
  private readonly logger?: RtmClientConfig['logger'];
  private readonly base: string;
  private readonly userBase: string;
  private readonly reqBase: string;
  private readonly msgIdPrefix = randomHex(4) + '-';
  private msgCounter = 0;
  private token: string;
  private tokenExpiresAt = 0;
  private link: Link | null = null;
  private connecting: Promise<void> | null = null;
  private currentState = ConnectionState.DISCONNECTED;
  private session = '';
  private wantOnline = false;
  private loggedIn = false;
  private ready = false; // connected and restored: requests go out at once
  private flushing = false;
  private needRestore = false;
  private maintaining = false;
  private closed = false;
  private loginInFlight = 0;
  private loggingOut = false;
  private readonly pending = new Map<string, Pending>();
  private readonly parked: string[] = [];
  private readonly sendQueue: SendQueue;
  private readonly sleepers = new Set<() => void>();
  private readonly receive: ReceiveStats = { received: 0, malformed: 0 };

  constructor(config: RtmClientConfig) {
    const uidProblem = nameError('uid', config.uid);
    if (uidProblem) throw rtmError('INVALID_NAME', uidProblem);
    const prefix = config.prefix ?? 'rtm';
    if (!prefix || /[+#]/.test(prefix)) {
      throw rtmError('INVALID_PARAMETER', `prefix must be a non-empty MQTT topic without wildcards, got "${prefix}"`);
    }
    if (!config.brokerUrl) throw rtmError('INVALID_PARAMETER', 'brokerUrl is required');
    this.config = {
      brokerUrl: config.brokerUrl,
      uid: config.uid,
      prefix,
      requestTimeoutMs: positive(config.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS),
      connectTimeoutMs: positive(config.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS),
      keepaliveS: positive(config.keepaliveS, DEFAULT_KEEPALIVE_S),
      reconnect: config.reconnect ?? true,
      reconnectMinMs: positive(config.reconnectMinMs, DEFAULT_RECONNECT_MIN_MS),
      reconnectMaxMs: positive(config.reconnectMaxMs, DEFAULT_RECONNECT_MAX_MS),
      maxSendQueue: config.maxSendQueue ?? DEFAULT_MAX_SEND_QUEUE,
      maxSendQueueBytes: config.maxSendQueueBytes ?? DEFAULT_MAX_SEND_QUEUE_BYTES,
      brokerCredentials: config.brokerCredentials ?? true,
      clientId: config.clientId,
    };
    this.uid = config.uid;
    this.prefix = prefix;
    this.token = config.token ?? '';
    this.logger = config.logger;
    this.base = prefix + '/';
    this.userBase = 'u/' + this.uid + '/';
    this.reqBase = this.base + 'req/' + this.uid + '/';
    this.emitter = new Emitter<ClientEvents>((name, e) => this.log('error', `a ${name} handler threw: ${String(e)}`));
    this.streams = new StreamRecovery(config.recoverStreams ?? true);
    this.sendQueue = new SendQueue(this.config.maxSendQueue, this.config.maxSendQueueBytes, (t) => this.log('warn', t));
  }

  // ------------------------------------------------------------------ state

  get state(): ConnectionState {
    return this.currentState;
  }

  get sessionId(): string {
    return this.session;
  }

  /** The send queue that holds publishes while reconnecting. */
  sendQueueStats(): SendQueueStats {
    return this.sendQueue.stats();
  }

  /** What arrived from the broker, and how much of it was malformed and skipped. */
  receiveStats(): ReceiveStats {
    return { ...this.receive };
  }

  /** Adds a handler; the returned function removes it. */
  on<K extends ClientEventName>(name: K, handler: (event: ClientEvents[K]) => void): () => void {
    return this.emitter.on(name, handler);
  }

  // ------------------------------------------------------------------ session

  /** Connects (presence Will set, online published) and logs in with the configured token or `token`. */
  async login(token?: string): Promise<LoginInfo> {
    if (this.closed) throw rtmError('UNAVAILABLE', 'the client is closed');
    if (token) this.token = token;
    if (!this.token) throw rtmError('MISSING_PARAMETER', 'no token: set config.token or pass one to login()');
    if (this.loggedIn && this.wantOnline && !this.ready) {
      throw rtmError('UNAVAILABLE', 'reconnecting: the session is being restored');
    }
    this.loginInFlight++;
    try {
      if (!this.link?.isOpen) {
        this.wantOnline = true;
        this.setState(ConnectionState.CONNECTING, ConnectionChangeReason.LOGIN, `connecting to ${this.config.brokerUrl}`);
        try {
          await this.connect();
        } catch (e) {
          const err = asRtmError(e);
          this.wantOnline = false;
          this.setState(
            ConnectionState.FAILED,
            e instanceof ConnectRefused ? ConnectionChangeReason.LOGIN_FAILURE : ConnectionChangeReason.LOGIN_TIMEOUT,
            err.message,
          );
          throw err;
        }
      }
      let result: Json;
      try {
        result = await this.call('login', { token: this.token }, 'login', { internal: true });
      } catch (e) {
        const err = asRtmError(e);
        if (!this.loggedIn && this.wantOnline) {
          this.wantOnline = false;
          this.setState(
            ConnectionState.FAILED,
            err.code === ErrorCode.TIMEOUT ? ConnectionChangeReason.LOGIN_TIMEOUT : ConnectionChangeReason.LOGIN_FAILURE,
            `login failed: ${err.toString()}`,
          );
          await this.dropLink(true);
        }
        throw err;
      }
      this.loggedIn = true;
      this.ready = true;
      this.session = str(result, 'session_id');
      this.tokenExpiresAt = num(result, 'expires_at');
      this.setState(ConnectionState.CONNECTED, ConnectionChangeReason.LOGIN_SUCCESS, `logged in as ${this.uid}`);
      return { uid: str(result, 'uid', this.uid), sessionId: this.session, expiresAt: this.tokenExpiresAt };
    } finally {
      this.loginInFlight--;
    }
  }

  /** Logs out (leaving every channel), marks the user offline and disconnects. */
  async logout(): Promise<void> {
    if (this.closed) throw rtmError('UNAVAILABLE', 'the client is closed');
    this.loggingOut = true;
    let failure: RtmError | undefined;
    try {
      if (this.link?.isOpen && this.loggedIn) {
        await this.call('logout', {}, 'logout', { internal: true }).catch((e) => {
          failure = asRtmError(e);
        });
      }
    } finally {
      this.loggingOut = false;
    }
    this.forgetSession('logged out');
    this.wantOnline = false;
    await this.dropLink(true);
    this.failAll(rtmError('UNAVAILABLE', 'logged out'));
    this.setState(ConnectionState.DISCONNECTED, ConnectionChangeReason.LOGOUT, 'logged out');
    if (failure) throw failure;
  }

  /** Leaves cleanly (the user is marked offline, so the gateway ends the session) and disconnects for good. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const wasLoggedIn = this.loggedIn;
    this.wantOnline = false;
    this.wakeSleepers();
    this.failAll(rtmError('UNAVAILABLE', 'the client is closed'));
    await this.dropLink(wasLoggedIn);
    this.forgetSession('the client is closed');
    if (this.currentState !== ConnectionState.DISCONNECTED && this.currentState !== ConnectionState.FAILED) {
      this.setState(ConnectionState.DISCONNECTED, ConnectionChangeReason.LOGOUT, 'the client is closed');
    }
    this.emitter.clear();
  }

  /** Moves the session's expiry; the new token is also used for later reconnects. Answers the new expires_at. */
  async renewToken(token: string): Promise<number> {
    if (!token) throw rtmError('MISSING_PARAMETER', 'renewToken needs a token');
    const r = await this.call('renew_token', { token }, 'renew_token');
    this.token = token;
    this.tokenExpiresAt = num(r, 'expires_at');
    return this.tokenExpiresAt;
  }

  // ------------------------------------------------------------------ stream channels

  streamChannel(name: string): StreamChannel {
    return new StreamChannel(this, name);
  }

  // ------------------------------------------------------------------ peer-to-peer

  /** Raw bytes straight to P/u/{user}/inbox/{uid} on the broker (no gateway hop). QoS 1 by default. */
  async publish(user: string, data: Data, options?: PublishOptions): Promise<void>;
  /** A message channel message straight to P/mc/{channel}/{uid}[/string]. QoS 0 by default. */
  async publish(channel: string, data: Data, type: MessageType, options?: PublishOptions): Promise<void>;
  async publish(
    target: string,
    data: Data,
    typeOrOptions?: MessageType | PublishOptions,
    options?: PublishOptions,
  ): Promise<void> {
    if (typeof typeOrOptions === 'string') {
      this.checkName('channel', target);
      const qos = checkQos(options?.qos ?? 0);
      if (typeOrOptions !== 'string' && typeOrOptions !== 'binary') {
        throw rtmError('INVALID_PARAMETER', `a message type is 'string' or 'binary', got "${typeOrOptions}"`);
      }
      const to = `${this.base}mc/${target}/${this.uid}${typeOrOptions === 'string' ? '/string' : ''}`;
      this.publishOrQueue(to, toBytes(data), qos);
      return;
    }
    this.checkName('uid', target);
    const qos = checkQos(typeOrOptions?.qos ?? 1);
    this.publishOrQueue(`${this.base}u/${target}/inbox/${this.uid}`, toBytes(data), qos);
  }

  /** A peer message through the gateway: an id, a type, receipts, kept for an offline peer. */
  async sendMessage(user: string, data: Data, options: SendMessageOptions = {}): Promise<SendResult> {
    this.checkName('uid', user);
    const binary = options.type === 'binary' || (options.type === undefined && typeof data !== 'string');
    const body: Json = {
      to: user,
      message: binary ? base64Encode(toBytes(data)) : typeof data === 'string' ? data : utf8(data),
      type: binary ? 'binary' : 'text',
      receipt: options.receipt ?? false,
      store: options.store ?? true,
    };
    const r = await this.call('send_message', body, `send_message to ${user}`);
    return { id: str(r, 'id'), ts: num(r, 'ts'), status: str(r, 'status') === 'stored' ? 'stored' : 'delivered' };
  }

  /** The messages kept for this user (inbox_history), for apps that pull them. */
  async inboxHistory(options: InboxHistoryOptions = {}): Promise<InboxHistory> {
    const body: Json = { limit: options.limit ?? 50 };
    if (options.after) body.after = options.after;
    if (options.ack) body.ack = options.ack;
    const r = await this.call('inbox_history', body, 'inbox_history');
    const messages: InboxMessage[] = [];
    for (const m of objects(r, 'messages')) {
      const parsed = parsePeerMessage(m);
      if (parsed) messages.push(parsed);
    }
    return { messages, more: bool(r, 'more') };
  }

  // ------------------------------------------------------------------ presence

  async watch(users: string[]): Promise<UserPresence[]> {
    return this.watchOp(users, false);
  }

  async unwatch(users: string[]): Promise<UserPresence[]> {
    return this.watchOp(users, true);
  }

  /** The members of a channel. */
  async whoNow(channel: string): Promise<string[]> {
    this.checkName('channel', channel);
    return strings(await this.call('who_now', { channel }, `who_now ${channel}`), 'members');
  }

  /** The channels of a user. */
  async whereNow(uid: string): Promise<string[]> {
    this.checkName('uid', uid);
    return strings(await this.call('where_now', { uid }, `where_now ${uid}`), 'channels');
  }

  // ------------------------------------------------------------------ any request

  /** A built-in operation ("ping") or module RPC ("im://modulus/x"); answers the result object. */
  async request(uri: string, body: Json = {}): Promise<Json> {
    const escaped = dotsEscaped(uri);
    if (!escaped || /[+#]/.test(escaped) || escaped.startsWith('/') || escaped.length > MAX_URI_BYTES) {
      throw rtmError(
        'INVALID_URI',
        `the URI must be 1-${MAX_URI_BYTES} bytes, must not start with '/' and must not contain '+' or '#', got "${uri}"`,
      );
    }
    if (escaped.includes('msg_id=')) throw rtmError('INVALID_PARAMETER', 'the SDK adds msg_id itself');
    if (!isObject(body)) throw rtmError('BAD_JSON', 'the body must be a JSON object');
    return this.call(escaped, body, uri);
  }

  // ------------------------------------------------------------------ message channels

  /** Reads a message channel (no join): its messages arrive as 'channelMessage' events. */
  async subscribeChannel(channel: string, options: SubscribeChannelOptions = {}): Promise<MessageChannelInfo> {
    this.checkName('channel', channel);
    const filters = this.messageChannelFilters(channel, options.withPresence ?? false);
    // In place before the request goes out, so nothing after the answer is missed.
    if (this.link?.isOpen) this.link.subscribe(filters);
    const body: Json = { channel, with_presence: options.withPresence ?? false };
    if (options.token) body.token = options.token;
    let r: Json;
    try {
      r = await this.call('subscribe_channel', body, `subscribe_channel ${channel}`);
    } catch (e) {
      if (!this.messageChannels.has(channel)) this.link?.unsubscribe(filters);
      throw e;
    }
    const before = this.messageChannels.get(channel);
    if (before?.withPresence && !options.withPresence) this.link?.unsubscribe([`${this.base}mcevents/${channel}`]);
    this.messageChannels.set(channel, {
      withPresence: options.withPresence ?? false,
      token: options.token || before?.token,
    });
    return {
      channel,
      withPresence: bool(r, 'with_presence'),
      members: strings(r, 'members'),
      tokenExpiresAt: num(r, 'token_expires_at'),
    };
  }

  async unsubscribeChannel(channel: string): Promise<void> {
    this.checkName('channel', channel);
    try {
      await this.call('unsubscribe_channel', { channel }, `unsubscribe_channel ${channel}`);
    } catch (e) {
      if (asRtmError(e).code === ErrorCode.NOT_SUBSCRIBED) this.forgetMessageChannel(channel);
      throw e;
    }
    this.forgetMessageChannel(channel);
  }

  /** A new channel token for a joined stream channel and/or subscribed message channel; answers its expires_at. */
  async renewChannelToken(channel: string, token: string): Promise<number> {
    this.checkName('channel', channel);
    const r = await this.call('renew_channel_token', { channel, token }, `renew_channel_token ${channel}`);
    const ch = this.channels.get(channel);
    if (ch) ch.token = token;
    const mc = this.messageChannels.get(channel);
    if (mc) mc.token = token;
    return num(r, 'expires_at');
  }

  // ------------------------------------------------------------------ handles

  storage(): StorageApi {
    return new StorageApi(this);
  }

  presence(): PresenceApi {
    return new PresenceApi(this);
  }

  lock(): LocksApi {
    return new LocksApi(this);
  }

  invitations(): InvitationsApi {
    return new InvitationsApi(this);
  }

  // ================================================================== internals

  /** @internal */
  log(level: 'debug' | 'info' | 'warn' | 'error', text: string): void {
    this.logger?.(level, `rtm sdk: ${this.uid}: ${text}`);
  }

  /** @internal */
  emit<K extends ClientEventName>(name: K, event: ClientEvents[K]): void {
    this.emitter.emit(name, event);
  }

  /** @internal Throws INVALID_NAME when `name` breaks the naming rules. */
  checkName(what: string, name: string): void {
    const problem = nameError(what, name);
    if (problem) throw rtmError('INVALID_NAME', problem);
  }

  /** @internal */
  eventsTopic(channel: string): string {
    return `${this.base}events/${channel}`;
  }

  /** @internal */
  dataTopic(channel: string, topic: string, publisher: string): string {
    return `${this.base}ch/${channel}/${topic}/${publisher}`;
  }

  /** @internal */
  messageChannelFilters(channel: string, withPresence: boolean): string[] {
    const filters = [`${this.base}mc/${channel}/#`];
    if (withPresence) filters.push(`${this.base}mcevents/${channel}`);
    return filters;
  }

  /** @internal The link is up (MQTT subscriptions can be made now). */
  get linkOpen(): boolean {
    return this.link?.isOpen ?? false;
  }

  /** @internal */
  mqttSubscribe(filters: string[]): void {
    this.link?.subscribe(filters);
  }

  /** @internal */
  mqttUnsubscribe(filters: string[]): void {
    this.link?.unsubscribe(filters);
  }

  /** @internal Forgets a stream channel's data subscriptions; answers the MQTT filters to drop. */
  channelFilters(channel: string, ch: ChannelState): string[] {
    const drop: string[] = [];
    for (const [topic, users] of ch.subscribed) {
      for (const u of users) {
        const t = this.dataTopic(channel, topic, u);
        if (this.dataTopics.delete(t)) drop.push(t);
      }
    }
    for (const topic of ch.all.keys()) {
      const f = this.dataTopic(channel, topic, '+');
      if (this.allFilters.delete(f)) drop.push(f);
    }
    return drop;
  }

  /** @internal Forgets a stream channel and unsubscribes what it brought. */
  forgetChannel(channel: string): void {
    const ch = this.channels.get(channel);
    if (!ch) return;
    const drop = this.channelFilters(channel, ch);
    drop.push(this.eventsTopic(channel));
    this.channels.delete(channel);
    this.streams.untrack(channel, () => false);
    this.mqttUnsubscribe(drop);
  }

  private forgetMessageChannel(channel: string): void {
    if (this.messageChannels.delete(channel)) this.mqttUnsubscribe(this.messageChannelFilters(channel, true));
  }

  private nextMsgId(): string {
    return this.msgIdPrefix + ++this.msgCounter;
  }

  /** @internal Sends a request and answers its result; rejects with the gateway's code,
   *  TIMEOUT, or UNAVAILABLE. While reconnecting, a call waits for the restore (within its timeout). */
  call(op: string, body: Json, what: string, options: CallOptions = {}): Promise<Json> {
    return new Promise<Json>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.config.requestTimeoutMs;
      if (this.closed) return reject(rtmError('UNAVAILABLE', 'the client is closed'));
      const id = this.nextMsgId();
      const topic = `${this.reqBase}${op}${op.includes('?') ? '&' : '?'}msg_id=${id}`;
      const payload = JSON.stringify(body);
      const reconnecting = this.wantOnline && this.loggedIn && (!this.link?.isOpen || !this.ready || this.parked.length > 0);
      if (!options.internal && reconnecting) {
        if (this.parked.length >= this.config.maxSendQueue) {
          return reject(
            rtmError('UNAVAILABLE', `reconnecting, and maxSendQueue (${this.config.maxSendQueue}) calls wait for the restore already`),
          );
        }
        const timer = setTimeout(() => {
          const i = this.parked.indexOf(id);
          if (i >= 0) this.parked.splice(i, 1);
          this.settle(id, rtmError('TIMEOUT', `still reconnecting after ${timeoutMs} ms: ${what} was not sent`));
        }, timeoutMs);
        this.pending.set(id, { resolve, reject, what, timer, parked: true, topic, body: payload });
        this.parked.push(id);
        this.log('debug', `${what} waits for the restore`);
        return;
      }
      if (!this.link?.isOpen) {
        return reject(
          this.wantOnline
            ? rtmError('UNAVAILABLE', `not connected to the broker (${ConnectionState[this.currentState].toLowerCase()})`)
            : rtmError('NOT_LOGGED_IN', 'not logged in: call login() first'),
        );
      }
      const timer = setTimeout(
        () => this.settle(id, rtmError('TIMEOUT', `no answer from the gateway within ${timeoutMs} ms to ${what}`)),
        timeoutMs,
      );
      this.pending.set(id, { resolve, reject, what, timer, parked: false });
      try {
        this.link.publish(topic, payload, 1);
      } catch (e) {
        this.settle(id, asRtmError(e));
      }
    });
  }

  private settle(id: string, outcome: RtmError | Json): void {
    const p = this.pending.get(id);
    if (!p) return; // late (after a timeout), or someone else's
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (outcome instanceof RtmError) p.reject(outcome);
    else p.resolve(outcome);
  }

  /** Fails every request waiting for an answer (and, unless keepParked, those waiting for the restore). */
  private failAll(error: RtmError, keepParked = false): void {
    for (const [id, p] of [...this.pending]) {
      if (keepParked && p.parked) continue;
      this.settle(id, error);
    }
    if (!keepParked) this.parked.length = 0;
  }

  /** @internal Publishes on the data plane, or queues while reconnecting (LIMIT_SEND_QUEUE when full). */
  publishOrQueue(topic: string, payload: Uint8Array, qos: Qos): void {
    if (this.queuePublishes()) {
      this.sendQueue.push({ topic, payload, qos });
      return;
    }
    if (!this.link?.isOpen) {
      throw this.wantOnline
        ? rtmError('UNAVAILABLE', 'not connected to the broker')
        : rtmError('NOT_LOGGED_IN', 'not logged in: call login() first');
    }
    this.link.publish(topic, payload, qos);
  }

  private queuePublishes(): boolean {
    return (
      this.wantOnline &&
      this.loggedIn &&
      !this.closed &&
      (!this.link?.isOpen || !this.ready || this.flushing || this.sendQueue.length > 0)
    );
  }

  private setState(state: ConnectionState, reason: ConnectionChangeReason, message: string): void {
    this.currentState = state;
    this.log('info', `${connectionStateName(state)} (${connectionReasonName(reason)}): ${message}`);
    this.emit('connectionState', { state, reason, message });
  }

  // ------------------------------------------------------------------ connection

  private connect(): Promise<void> {
    if (this.connecting) return this.connecting;
    const filters = [this.base + this.userBase + '#', ...this.sessionFilters()];
    this.connecting = Link.open({
      brokerUrl: this.config.brokerUrl,
      clientId: this.config.clientId || `${this.uid}/${randomHex(6)}`,
      username: this.config.brokerCredentials ? this.uid : undefined,
      password: this.config.brokerCredentials ? this.token : undefined,
      keepaliveS: this.config.keepaliveS,
      connectTimeoutMs: this.config.connectTimeoutMs,
      presenceTopic: `${this.base}presence/${this.uid}`,
      presencePayload: (online, connection) => JSON.stringify({ state: online ? 'online' : 'offline', session: connection }),
      filters,
      onMessage: (topic, payload, qos, retained) => this.onMessage(topic, payload, qos, retained),
      onLost: (link, cause) => this.onLinkLost(link, cause),
    })
      .then(async (link) => {
        if (this.closed || !this.wantOnline) {
          await link.close(false);
          throw rtmError('UNAVAILABLE', this.closed ? 'the client is closed' : 'login was cancelled');
        }
        this.link = link;
        this.log('debug', `connected to ${this.config.brokerUrl} (connection ${link.connectionId})`);
      })
      .finally(() => {
        this.connecting = null;
      });
    return this.connecting;
  }

  /** The MQTT filters the session holds: channel events, data topics, message channels. */
  private sessionFilters(): string[] {
    const filters: string[] = [];
    for (const name of this.channels.keys()) filters.push(this.eventsTopic(name));
    filters.push(...this.dataTopics, ...this.allFilters);
    for (const [name, mc] of this.messageChannels) filters.push(...this.messageChannelFilters(name, mc.withPresence));
    return filters;
  }

  private async dropLink(sayOffline: boolean): Promise<void> {
    const link = this.link;
    this.link = null;
    this.ready = false;
    if (link) await link.close(sayOffline);
  }

  private onLinkLost(link: Link, cause: string): void {
    if (link !== this.link) return;
    this.link = null;
    this.ready = false;
    this.streams.hold();
    const restoring = this.wantOnline && this.loggedIn && !this.closed;
    if (restoring && this.tokenExpired()) {
      // A broker that enforces sessions closes the connection at expiry, maybe before the
      // gateway's `session` event arrived: reconnecting would only be refused.
      this.endSession(ConnectionState.FAILED, ConnectionChangeReason.TOKEN_EXPIRED, 'the login token expired; the broker closed the connection');
      this.failAll(rtmError('UNAVAILABLE', 'connection to the broker lost'));
      return;
    }
    this.failAll(rtmError('UNAVAILABLE', 'connection to the broker lost'), restoring);
    if (!restoring) return;
    if (!this.config.reconnect) {
      this.endSession(ConnectionState.FAILED, ConnectionChangeReason.INTERRUPTED, `${cause} (reconnect is off)`);
      return;
    }
    this.needRestore = true;
    this.setState(ConnectionState.RECONNECTING, ConnectionChangeReason.INTERRUPTED, cause);
    void this.maintain();
  }

  private tokenExpired(): boolean {
    return this.tokenExpiresAt > 0 && Date.now() / 1000 >= this.tokenExpiresAt;
  }

  /** Reconnects with backoff and restores the session, until it is back or over. */
  private async maintain(): Promise<void> {
    if (this.maintaining) return;
    this.maintaining = true;
    let backoff = this.config.reconnectMinMs;
    try {
      while (this.wantOnline && this.loggedIn && !this.closed) {
        if (!this.link?.isOpen) {
          try {
            await this.connect();
            backoff = this.config.reconnectMinMs;
          } catch (e) {
            if (e instanceof ConnectRefused && this.wantOnline && this.loggedIn) {
              // The broker will not take this client back: retrying changes nothing.
              const expired = this.tokenExpired();
              this.endSession(
                ConnectionState.FAILED,
                expired ? ConnectionChangeReason.TOKEN_EXPIRED : ConnectionChangeReason.BANNED_BY_SERVER,
                `the broker refused the reconnect: ${asRtmError(e).message}${expired ? ' (the login token expired)' : ''}`,
              );
              return;
            }
            this.log('debug', `reconnect to ${this.config.brokerUrl} failed: ${asRtmError(e).message}`);
            await this.sleep(backoff);
            backoff = Math.min(backoff * 2, this.config.reconnectMaxMs);
            continue;
          }
          this.needRestore = true;
        }
        if (!this.needRestore) break;
        this.needRestore = false;
        this.ready = false;
        let outcome: 'done' | 'retry' | 'failed';
        try {
          outcome = await restoreSession(this, this.restoreHooks);
        } catch (e) {
          // A bug of the restore must not end the process (maintain() runs unawaited).
          this.log('error', `restore failed: ${String(e)}`);
          outcome = 'retry';
        }
        if (outcome === 'retry' && this.link?.isOpen && this.wantOnline && this.loggedIn) {
          this.needRestore = true;
          await this.sleep(backoff);
          backoff = Math.min(backoff * 2, this.config.reconnectMaxMs);
        }
      }
    } finally {
      this.maintaining = false;
    }
  }

  /** @internal What the restore needs of the client's private parts. */
  private readonly restoreHooks = {
    stillWanted: () => !this.closed && this.wantOnline && (this.link?.isOpen ?? false),
    token: () => this.token,
    loggedInAgain: (sessionId: string, expiresAt: number) => {
      this.session = sessionId;
      this.tokenExpiresAt = expiresAt;
    },
    fail: (state: ConnectionState, reason: ConnectionChangeReason, message: string) =>
      this.endSession(state, reason, message),
    finish: async (summary: string): Promise<boolean> => {
      if (!this.restoreHooks.stillWanted()) return false;
      this.ready = true;
      this.flushing = true;
      const sent = this.flushAfterRestore();
      if (sent === undefined) return false;
      this.setState(ConnectionState.RESTORED, ConnectionChangeReason.RESTORED, summary + sent);
      return true;
    },
  };

  /** Sends the queued messages, then the parked requests, in order; undefined when the link dropped again. */
  private flushAfterRestore(): string | undefined {
    let messages = 0;
    let requests = 0;
    const link = this.link;
    if (!link?.isOpen) return undefined;
    const queued = this.sendQueue.take();
    for (let i = 0; i < queued.length; i++) {
      try {
        link.publish(queued[i].topic, queued[i].payload, queued[i].qos);
        messages++;
      } catch {
        // The link dropped again: what is left waits for the next restore, first in line.
        this.sendQueue.putBack(queued.slice(i));
        this.sendQueue.countSent(messages);
        this.flushing = false;
        return undefined;
      }
    }
    this.sendQueue.countSent(messages);
    for (const id of this.parked.splice(0)) {
      const p = this.pending.get(id);
      if (!p || !p.parked || !p.topic) continue;
      p.parked = false;
      try {
        link.publish(p.topic, p.body ?? '{}', 1);
        requests++;
      } catch (e) {
        this.settle(id, asRtmError(e));
      }
    }
    this.flushing = false;
    let report = '';
    if (messages + requests > 0) {
      report = `; sent after the restore: ${messages} queued message(s), ${requests} waiting request(s)`;
    }
    const dropped = this.sendQueue.stats().dropped;
    if (dropped > 0) report += `; ${dropped} message(s) dropped from the send queue so far`;
    return report;
  }

  /** The session is over for good (replaced, expired, refused at restore): forget it and disconnect. */
  private endSession(state: ConnectionState, reason: ConnectionChangeReason, message: string): void {
    this.forgetSession(message);
    this.wantOnline = false;
    this.needRestore = false;
    this.failAll(rtmError('UNAVAILABLE', `not sent: ${message}`));
    this.setState(state, reason, message);
    // No offline presence: the gateway has dealt with it already, and after a replacement
    // the newer connection is the one online.
    this.dropLink(false).catch(() => {});
    this.wakeSleepers();
  }

  private forgetSession(why: string): void {
    const dropped = this.sendQueue.clear();
    if (dropped > 0) this.log('warn', `${dropped} queued message(s) dropped: ${why}`);
    this.flushing = false;
    this.loggedIn = false;
    this.ready = false;
    this.session = '';
    this.channels.clear();
    this.messageChannels.clear();
    this.watched.clear();
    this.metadataSubscriptions.clear();
    this.invitationsInFlight.clear();
    this.dataTopics.clear();
    this.allFilters.clear();
    this.streams.clear();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  private wakeSleepers(): void {
    for (const wake of [...this.sleepers]) wake();
  }

  // ------------------------------------------------------------------ what arrives

  private onMessage(topic: string, payload: Uint8Array, qos: Qos, retained: boolean): void {
    this.receive.received++;
    try {
      if (!this.dispatch(topic, payload, qos, retained)) {
        this.receive.malformed++;
        this.log('debug', `skipped a malformed message on ${topic.slice(0, 200)}`);
      }
    } catch (e) {
      this.receive.malformed++;
      this.log('warn', `skipped a message on ${topic.slice(0, 200)}: ${String(e)}`);
    }
  }

  /** Routes one message; false when it is malformed. */
  private dispatch(topic: string, payload: Uint8Array, qos: Qos, retained: boolean): boolean {
    if (!topic.startsWith(this.base)) return true;
    const t = topic.slice(this.base.length);
    if (t.startsWith('ch/')) return this.onStreamMessage(topic, t.slice(3), payload, qos, retained);
    if (t.startsWith(this.userBase)) {
      const rest = t.slice(this.userBase.length);
      if (rest.startsWith('res/') || rest === 'res') return this.onResponse(payload);
      if (rest.startsWith('events/')) return this.onPersonalEvent(rest.slice(7), payload);
      if (rest.startsWith('inbox/')) {
        const from = rest.slice(6);
        if (nameError('uid', from)) return false;
        this.emit('inbox', {
          from,
          payload,
          text: utf8(payload),
          qos,
          id: '',
          type: 'raw',
          serverTs: 0,
          offline: false,
        });
      }
      return true;
    }
    if (t.startsWith('events/')) return this.onChannelEvent(payload);
    if (t.startsWith('mc/')) return this.onMessageChannelMessage(t.slice(3), payload, qos);
    if (t.startsWith('mcevents/')) return this.onMessageChannelEvent(payload);
    return true;
  }

  private onStreamMessage(topic: string, rest: string, payload: Uint8Array, qos: Qos, retained: boolean): boolean {
    const parts = rest.split('/');
    if (parts.length !== 3 || parts.some((p) => p.length === 0)) return false;
    const [channel, name, publisher] = parts;
    if (!this.wanted(topic, channel, name, publisher)) return true;
    const ev: MessageEvent = { channel, topic: name, publisher, payload, qos };
    if (!this.streams.onMessage(ev, retained)) return true; // held: its stream recovers
    this.emit('message', ev);
    return true;
  }

  /** @internal Is (channel, topic) subscribed, by name or every publisher? */
  streamSubscribed(channel: string, topic: string): boolean {
    const ch = this.channels.get(channel);
    if (!ch) return false;
    return ch.all.has(topic) || (ch.subscribed.get(topic)?.size ?? 0) > 0;
  }

  /** A channel message is delivered when its publisher is subscribed to by name, or when its
   *  topic is in every-publisher mode and that publisher is not excluded (never the user's
   *  own messages, which the wildcard brings back, unless subscribed to by name). */
  private wanted(mqttTopic: string, channel: string, topic: string, publisher: string): boolean {
    if (this.dataTopics.has(mqttTopic)) return true;
    const ch = this.channels.get(channel);
    const excluded = ch?.all.get(topic);
    if (!ch || !excluded || excluded.has(publisher)) return false;
    if (publisher !== this.uid) return true;
    return ch.subscribed.get(topic)?.has(publisher) ?? false;
  }

  private onResponse(payload: Uint8Array): boolean {
    const doc = parseObject(payload);
    if (!doc) return false;
    const id = str(doc, 'msg_id');
    if (!id) return false;
    const code = num(doc, 'code', ErrorCode.INTERNAL);
    if (code !== 0) {
      this.settle(id, new RtmError(code, str(doc, 'message'), str(doc, 'error', errorName(code))));
    } else {
      const result = doc.result;
      this.settle(id, isObject(result) ? result : {});
    }
    return true;
  }

  private onPersonalEvent(kind: string, payload: Uint8Array): boolean {
    const doc = parseObject(payload);
    if (!doc) return false;
    switch (kind) {
      case 'session':
        this.onSessionEvent(doc);
        return true;
      case 'token':
        this.onTokenEvent(doc);
        return true;
      case 'subscription':
        this.onSubscriptionRefused(doc);
        return true;
      case 'metadata': {
        const ev = parseStorageEvent(doc, 'user');
        if (!ev) return false;
        this.emit('storageEvent', ev);
        return true;
      }
      case 'message': {
        const ev = parsePeerMessage(doc);
        if (!ev) return false;
        this.emit('inbox', ev);
        return true;
      }
      case 'receipt':
        this.emit('receipt', {
          id: str(doc, 'id'),
          to: str(doc, 'to'),
          status: str(doc, 'status') === 'stored' ? 'stored' : 'delivered',
          ts: num(doc, 'ts'),
        });
        return true;
      case 'invitation':
        return this.onInvitationEvent(doc);
      case 'presence': {
        const uid = str(doc, 'uid');
        if (!uid) return false;
        const online = str(doc, 'state') === 'online';
        if (this.watched.has(uid)) this.watched.set(uid, online);
        this.emit('presence', { uid, online, ts: num(doc, 'ts') });
        return true;
      }
      default:
        return true; // a kind this SDK does not know yet
    }
  }

  private onSessionEvent(doc: Json): void {
    const ev = {
      state: str(doc, 'state'),
      reason: str(doc, 'reason'),
      sessionId: str(doc, 'session_id'),
      reasonCode: num(doc, 'reason_code') as ConnectionChangeReason,
      connectionState: num(doc, 'connection_state', ConnectionState.DISCONNECTED) as ConnectionState,
      current: false,
    };
    const ours = this.session !== '' && ev.sessionId === this.session;
    ev.current = ours || (ev.state === 'logged_in' && this.loginInFlight > 0);
    this.emit('session', ev);
    if (!ours || this.loginInFlight > 0 || this.loggingOut) return;
    if (ev.state === 'replaced') {
      this.endSession(ConnectionState.FAILED, ConnectionChangeReason.REMOTE_LOGIN, `replaced: ${ev.reason || 'logged in elsewhere'}`);
    } else if (ev.state === 'ended') {
      if (ev.reason === 'connection_lost') {
        // An older connection's Will ended the session: log in again and restore.
        if (this.link?.isOpen && this.wantOnline) {
          this.needRestore = true;
          this.ready = false;
          this.setState(ConnectionState.RECONNECTING, ConnectionChangeReason.SESSION_LOST, 'the gateway ended the session (connection_lost); restoring it');
          void this.maintain();
        }
        return;
      }
      let reason = ev.reasonCode;
      if (!reason) {
        reason =
          ev.reason === 'token_expired'
            ? ConnectionChangeReason.TOKEN_EXPIRED
            : ev.reason === 'kicked'
              ? ConnectionChangeReason.KICKED
              : ConnectionChangeReason.LOGOUT;
      }
      this.endSession(ConnectionState.FAILED, reason, `session ended: ${ev.reason}`);
    }
  }

  private onTokenEvent(doc: Json): void {
    const state = str(doc, 'state') === 'expired' ? 'expired' : 'will_expire';
    const channel = str(doc, 'channel');
    const channelType = str(doc, 'channel_type');
    if (channel && state === 'expired') {
      // The gateway has left the channel (or ended the subscription): forget it here too.
      if (channelType === 'message') this.forgetMessageChannel(channel);
      else this.forgetChannel(channel);
    }
    this.emit('token', {
      state,
      expiresAt: num(doc, 'expires_at'),
      ...(channel ? { channel, channelType } : {}),
    });
  }

  private onSubscriptionRefused(doc: Json): void {
    // A new publisher the every-publisher subscription had no room for.
    const channel = str(doc, 'channel');
    const topic = str(doc, 'topic');
    const uid = str(doc, 'uid');
    this.channels.get(channel)?.all.get(topic)?.add(uid);
    const code = num(doc, 'code', ErrorCode.INTERNAL);
    this.emit('channelEvent', {
      type: 'subscription_refused',
      channel,
      topic,
      uid,
      reason: new RtmError(code, str(doc, 'message'), str(doc, 'error', errorName(code))).toString(),
      ts: num(doc, 'ts'),
    });
  }

  private onChannelEvent(payload: Uint8Array): boolean {
    const doc = parseObject(payload);
    if (!doc) return false;
    const name = str(doc, 'event');
    const channel = str(doc, 'channel');
    switch (name) {
      case 'metadata_changed': {
        const ev = parseStorageEvent(doc, 'channel');
        if (ev) this.emit('storageEvent', ev);
        return ev !== undefined;
      }
      case 'state_changed': {
        const ev = {
          channel,
          uid: str(doc, 'uid'),
          states: stringMap(doc, 'states'),
          written: strings(doc, 'written'),
          removed: strings(doc, 'removed'),
          ts: num(doc, 'ts'),
        };
        if (ev.uid === this.uid) {
          // also what another client of this uid set
          const ch = this.channels.get(channel);
          if (ch) ch.states = ev.states;
        }
        this.emit('presenceState', ev);
        return true;
      }
      case 'lock': {
        const ev = parseLockEvent(doc);
        if (!ev) return true;
        this.emit('lockEvent', ev);
        if (ev.type === 'acquired' && ev.uid === this.uid) this.finishLockWaits(ev.channel, ev.lock);
        if (ev.type === 'removed') {
          this.finishLockWaits(
            ev.channel,
            ev.lock,
            rtmError('LOCK_NOT_FOUND', `lock ${ev.lock} of channel ${ev.channel} was removed while waiting for it`),
          );
        }
        return true;
      }
    }
    if (!CHANNEL_EVENT_TYPES.has(name)) {
      this.log('debug', `unknown channel event ${name}`);
      return true;
    }
    const ev: ChannelEvent = {
      type: name,
      channel,
      uid: str(doc, 'uid'),
      ts: num(doc, 'ts'),
    };
    const topic = str(doc, 'topic');
    if (topic) ev.topic = topic;
    const reason = str(doc, 'reason');
    if (reason) ev.reason = reason;
    if (name === 'publisher_joined' || name === 'publisher_left') {
      // A publisher that (re)joins is added to every-publisher subscriptions that have room
      // (a refusal, if any, comes right after this event); one that leaves is nobody's.
      this.channels.get(channel)?.all.get(topic)?.delete(ev.uid);
    }
    this.emit('channelEvent', ev);
    return true;
  }

  private finishLockWaits(channel: string, lock: string, error?: RtmError): void {
    const waits = this.lockWaits.get(`${channel}/${lock}`);
    if (!waits) return;
    for (const finish of [...waits]) finish(error);
  }

  // rest: "{channel}/{publisher}" or "{channel}/{publisher}/string"
  private onMessageChannelMessage(rest: string, payload: Uint8Array, qos: Qos): boolean {
    const parts = rest.split('/');
    if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) return false;
    if (parts.length === 3 && parts[2] !== 'string') return false; // not a message of the tree
    const [channel, publisher] = parts;
    if (publisher === this.uid || !this.messageChannels.has(channel)) return true; // own messages come back
    const ev: ChannelMessageEvent = { channel, publisher, payload, type: parts.length === 3 ? 'string' : 'binary', qos };
    this.emit('channelMessage', ev);
    return true;
  }

  private onMessageChannelEvent(payload: Uint8Array): boolean {
    const doc = parseObject(payload);
    if (!doc) return false;
    const name = str(doc, 'event');
    // A message channel has members, not publishers.
    if (!CHANNEL_EVENT_TYPES.has(name) || name.startsWith('publisher_')) return true;
    const channel = str(doc, 'channel');
    if (!this.messageChannels.get(channel)?.withPresence) return true;
    const ev: ChannelEvent = { type: name, channel, uid: str(doc, 'uid'), ts: num(doc, 'ts'), messageChannel: true };
    const reason = str(doc, 'reason');
    if (reason) ev.reason = reason;
    this.emit('channelEvent', ev);
    return true;
  }

  private onInvitationEvent(doc: Json): boolean {
    const ev = parseInvitation(doc);
    if (!ev.id) return false;
    if (ev.ended) this.invitationsInFlight.delete(ev.id);
    else this.invitationsInFlight.set(ev.id, ev);
    if (ev.side === 'remote' && ev.state === 'RECEIVED') {
      // Receipt first, before the app sees it (it may answer at once: the gateway takes the
      // answer after the acknowledgement, in order).
      this.call('ack_invitation', { id: ev.id }, `ack_invitation ${ev.id}`).catch((e) =>
        this.log('warn', `ack_invitation ${ev.id}: ${String(e)}`),
      );
    }
    this.emit('invitation', ev);
    return true;
  }

  private async watchOp(users: string[], unwatch: boolean): Promise<UserPresence[]> {
    if (!Array.isArray(users)) throw rtmError('INVALID_PARAMETER', 'users must be an array');
    for (const u of users) this.checkName('uid', u);
    const op = unwatch ? 'unwatch' : 'watch';
    const r = await this.call(op, { users }, op);
    const out: UserPresence[] = [];
    for (const u of parseUsers(r)) {
      const online = u.state === 'online';
      if (u.ok) {
        if (unwatch) this.watched.delete(u.uid);
        else this.watched.set(u.uid, online);
      }
      out.push({ uid: u.uid, ok: u.ok, error: u.error, online });
    }
    return out;
  }

  /** @internal After a restore's watch: tells the app of the changes it missed while away. */
  reportPresenceChanges(now: Array<[string, boolean]>): void {
    for (const [uid, online] of now) {
      if (!this.watched.has(uid)) continue;
      const before = this.watched.get(uid);
      this.watched.set(uid, online);
      if (before === undefined || before === online) continue; // nothing said before, or no change
      this.emit('presence', { uid, online, ts: Date.now() });
    }
  }

  /** @internal For tests: drops the connection as a network failure would. */
  simulateLinkFailure(): void {
    this.link?.kill();
  }
}

const CHANNEL_EVENT_TYPES = new Set([
  'member_joined',
  'member_left',
  'member_timed_out',
  'publisher_joined',
  'publisher_left',
]);

function positive(v: number | undefined, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : fallback;
}

function checkQos(qos: number): Qos {
  if (qos !== 0 && qos !== 1) throw rtmError('INVALID_PARAMETER', 'qos must be 0 or 1');
  return qos;
}

/** @internal */
export function asRtmError(e: unknown): RtmError {
  if (e instanceof RtmError) return e;
  return new RtmError(ErrorCode.INTERNAL, e instanceof Error ? e.message : String(e));
}




// The URI with every '.' after the scheme and host written %2E: on RabbitMQ a '.' in a
// topic becomes a level separator, and the gateway decodes %2E in paths and queries on
// every broker (docs/protocol.md#names-per-broker).
function dotsEscaped(uri: string): string {
  let from = 0;
  const schemeEnd = uri.indexOf('://');
  if (schemeEnd >= 0 && uri.search(/[/?]/) > schemeEnd) {
    const rest = uri.slice(schemeEnd + 3).search(/[/?]/);
    from = rest < 0 ? uri.length : schemeEnd + 3 + rest;
  }
  return uri.slice(0, from) + uri.slice(from).replaceAll('.', '%2E');
}

