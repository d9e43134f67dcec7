// Value types of the SDK: configuration, results and events, as the C++ SDK's
// (sdk/include/rtm/sdk/types.hpp) in camelCase. Payloads are bytes (Uint8Array).
import type { ConnectionChangeReason, ConnectionState } from './states.js';
import type { RtmError } from './errors.js';

export type Qos = 0 | 1;
export type Data = Uint8Array | string;

export interface RtmClientConfig {
  /** mqtt://host:port (Node), ws://host:port, wss://host:port. */
  brokerUrl: string;
  uid: string;
  /** The login token (JWT); may be given to login() instead. It is also the MQTT password. */
  token?: string;
  /** The gateway's topics.prefix. Default 'rtm'. */
  prefix?: string;
  /** Longest wait for an answer of the gateway (and for a restore, for calls made meanwhile). */
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  keepaliveS?: number;
  /** Reconnect and restore the session after a lost link. Default true. */
  reconnect?: boolean;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Send queue bounds while reconnecting (messages, payload bytes). */
  maxSendQueue?: number;
  maxSendQueueBytes?: number;
  /** MQTT client id; default "{uid}/{random}" (what the broker's auth plugin accepts). */
  clientId?: string;
  /** Send uid and token as MQTT username and password. Default true. */
  brokerCredentials?: boolean;
  /** After a reconnect, deliver what subscribed streams with history missed ('recovery' events). Default true. */
  recoverStreams?: boolean;
  /** Called with the SDK's own log lines (warnings about skipped messages, reconnects). */
  logger?: (level: 'debug' | 'info' | 'warn' | 'error', text: string) => void;
}

export interface PublishOptions {
  qos?: Qos;
}

export interface LoginInfo {
  uid: string;
  sessionId: string;
  /** The token's exp, seconds since the Unix epoch. */
  expiresAt: number;
}

export interface ChannelSnapshot {
  channel: string;
  /** In join order. */
  members: string[];
  /** Per topic, its publishers. */
  publishers: Record<string, string[]>;
  /** The channel token's expiry (seconds) when one was given. */
  tokenExpiresAt?: number;
}

/** One user's part of a subscribe / unsubscribe / watch answer. */
export interface UserResult {
  uid: string;
  ok: boolean;
  error?: RtmError;
}

export interface SubscribeResult {
  channel: string;
  topic: string;
  users: UserResult[];
  /** Every-publisher mode (subscribeTopic without users). */
  all: boolean;
  /** The users subscribed (or unsubscribed) successfully. */
  succeeded: string[];
}

export interface UserPresence extends UserResult {
  online: boolean;
}

// ------------------------------------------------------------------ events

export interface ConnectionStateEvent {
  state: ConnectionState;
  reason: ConnectionChangeReason;
  message: string;
}

export interface MessageEvent {
  channel: string;
  topic: string;
  publisher: string;
  payload: Uint8Array;
  qos: Qos;
  /** Missed while disconnected, read back from the stream's history (then offset and ts are set). */
  recovered?: boolean;
  offset?: number;
  ts?: number;
}

/** After a reconnect, per subscribed stream with history: what was missed has been delivered
 *  (MessageEvent.recovered) before any newer live message, and whether that was everything. */
export interface RecoveryEvent {
  channel: string;
  topic: string;
  /** false: messages were lost (history too short, a gateway restart, ...): `reason` says why. */
  complete: boolean;
  recovered: number;
  reason: string;
}

export type ChannelEventType =
  | 'snapshot'
  | 'member_joined'
  | 'member_left'
  | 'member_timed_out'
  | 'publisher_joined'
  | 'publisher_left'
  | 'subscription_refused';

export interface ChannelEvent {
  type: ChannelEventType | string;
  channel: string;
  topic?: string;
  uid: string;
  /** left, logged_out, token_expired, replaced, connection_lost, restored, ... */
  reason?: string;
  ts: number;
  /** type 'snapshot' (after a restore): the channel as it is now. */
  snapshot?: ChannelSnapshot;
  /** About a message channel's presence subscribers. */
  messageChannel?: boolean;
}

export type PeerMessageType = 'text' | 'binary' | 'raw';

/** A peer message: raw (published straight to the inbox) or through send_message. */
export interface InboxMessage {
  from: string;
  payload: Uint8Array;
  /** The payload as text (UTF-8 decoded). */
  text: string;
  qos: Qos;
  id: string;
  type: PeerMessageType;
  serverTs: number;
  offline: boolean;
}

export type DeliveryStatus = 'delivered' | 'stored';

export interface SendMessageOptions {
  type?: 'text' | 'binary';
  receipt?: boolean;
  store?: boolean;
}

export interface SendResult {
  id: string;
  ts: number;
  status: DeliveryStatus;
}

export interface ReceiptEvent {
  id: string;
  to: string;
  status: DeliveryStatus;
  ts: number;
}

export interface InboxHistoryOptions {
  limit?: number;
  after?: string;
  ack?: string;
}

export interface InboxHistory {
  messages: InboxMessage[];
  more: boolean;
}

export interface PresenceEvent {
  uid: string;
  online: boolean;
  ts: number;
}

export interface TokenEvent {
  state: 'will_expire' | 'expired';
  expiresAt: number;
  /** A channel token's event: its channel and 'stream' or 'message'. */
  channel?: string;
  channelType?: string;
}

export interface SessionEvent {
  state: string; // logged_in, replaced, ended
  reason: string;
  reasonCode: ConnectionChangeReason;
  connectionState: ConnectionState;
  sessionId: string;
  /** It is about this client's session. */
  current: boolean;
}

export type MessageType = 'binary' | 'string';

export interface ChannelMessageEvent {
  channel: string;
  publisher: string;
  payload: Uint8Array;
  type: MessageType;
  qos: Qos;
}

export interface SubscribeChannelOptions {
  withPresence?: boolean;
  token?: string;
}

export interface MessageChannelInfo {
  channel: string;
  withPresence: boolean;
  members: string[];
  tokenExpiresAt: number;
}

export interface HistoryQuery {
  since?: number;
  sinceTs?: number;
  epoch?: string;
  publishers?: string[];
  limit?: number;
  reverse?: boolean;
  after?: number;
  before?: number;
}

export interface HistoryMessage {
  offset: number;
  publisher: string;
  seq: number;
  ts: number;
  payload: Uint8Array;
  tooLarge: boolean;
}

export interface HistoryPage {
  epoch: string;
  top: number;
  oldest: number;
  complete: boolean;
  more: boolean;
  messages: HistoryMessage[];
}

// ---- storage, presence states, locks

export interface MetadataItem {
  key: string;
  value?: string;
  /** In a write: -1 checks nothing, 0 only if absent, else must equal the item's revision. */
  revision?: number;
  author?: string;
  updatedAt?: number;
}

export interface Metadata {
  majorRevision: number;
  items: MetadataItem[];
}

export interface MetadataOptions {
  /** -1 checks nothing, 0 only if never written, else must equal the major revision. */
  majorRevision?: number;
  recordAuthor?: boolean;
  recordTs?: boolean;
  /** Channel metadata only: write only while holding this lock. */
  lock?: string;
}

export type StateMap = Record<string, string>;

export interface UserState {
  channel: string;
  uid: string;
  states: StateMap;
}

export interface WhoNowResult {
  channel: string;
  members: string[];
  states: Record<string, StateMap>;
}

export interface StorageEvent {
  scope: 'user' | 'channel';
  type: 'snapshot' | 'set' | 'update' | 'remove';
  uid: string;
  channel: string;
  by: string;
  metadata: Metadata;
  ts: number;
}

export interface PresenceStateEvent {
  channel: string;
  uid: string;
  states: StateMap;
  written: string[];
  removed: string[];
  ts: number;
}

export interface LockEvent {
  type: 'set' | 'removed' | 'acquired' | 'released' | 'expired';
  channel: string;
  lock: string;
  uid: string;
  ttl: number;
  ts: number;
}

export interface AcquireLockOptions {
  /** Wait in the lock's queue until this user holds it (or waitMs passes: TIMEOUT). */
  retry?: boolean;
  waitMs?: number;
}

export type AcquireStatus = 'acquired' | 'already_held';

export interface LockInfo {
  name: string;
  ttl: number;
  owner: string;
  waiters: string[];
  expiresAt: number;
}

// ---- invitations

export interface InvitationEvent {
  id: string;
  side: 'local' | 'remote';
  state: string;
  stateCode: number;
  reason: string;
  reasonCode: number;
  caller: string;
  callee: string;
  content: string;
  channelId: string;
  response: string;
  ts: number;
  /** The invitation ended with this event. */
  ended: boolean;
}

export interface ClientEvents {
  connectionState: ConnectionStateEvent;
  message: MessageEvent;
  channelEvent: ChannelEvent;
  inbox: InboxMessage;
  receipt: ReceiptEvent;
  presence: PresenceEvent;
  token: TokenEvent;
  session: SessionEvent;
  invitation: InvitationEvent;
  channelMessage: ChannelMessageEvent;
  storageEvent: StorageEvent;
  lockEvent: LockEvent;
  presenceState: PresenceStateEvent;
  recovery: RecoveryEvent;
}

export type ClientEventName = keyof ClientEvents;
