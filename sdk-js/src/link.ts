// One MQTT connection to the broker, made the way the C++ SDK makes it (sdk/src/client_impl.cpp,
// try_connect): MQTT 3.1.1, clean session, client id "{uid}/{random}", the uid and token as
// username and password, a retained offline Will on P/presence/{uid} that names this
// connection, everything addressed to the user (and the session's filters) subscribed
// before anything is asked of the gateway, then the retained online presence.
// MQTT.js's own reconnect is off: the client reconnects itself, with a new Will each time.
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';

import { RtmError, rtmError } from './errors.js';
import { randomHex } from './wire.js';

/** Longest wait for a clean DISCONNECT (messages in flight first) before the socket is dropped. */
const CLOSE_TIMEOUT_MS = 2000;

export interface LinkOptions {
  brokerUrl: string;
  clientId: string;
  username?: string;
  password?: string;
  keepaliveS: number;
  connectTimeoutMs: number;
  presenceTopic: string;
  presencePayload: (online: boolean, connectionId: string) => string;
  filters: string[];
  onMessage: (topic: string, payload: Uint8Array, qos: 0 | 1, retained: boolean) => void;
  onLost: (link: Link, cause: string) => void;
}

/** A refused CONNECT (CONNACK 4 bad user name or password, 5 not authorized). */
export class ConnectRefused extends RtmError {
  constructor(message: string) {
    super(44, message, 'UNAVAILABLE');
  }
}

export class Link {
  readonly connectionId = randomHex(8);
  private client: MqttClient | null = null;
  private lost = false;

  private constructor(private readonly options: LinkOptions) {}

  /** Connects, subscribes and says online; rejects (ConnectRefused when the broker said no). */
  static async open(options: LinkOptions): Promise<Link> {
    const link = new Link(options);
    await link.connect();
    return link;
  }

  private connect(): Promise<void> {
    const o = this.options;
    const mqttOptions: IClientOptions = {
      protocolVersion: 4,
      clientId: o.clientId,
      clean: true,
      keepalive: o.keepaliveS,
      connectTimeout: o.connectTimeoutMs,
      reconnectPeriod: 0,
      queueQoSZero: false,
      resubscribe: false,
      will: {
        topic: o.presenceTopic,
        payload: o.presencePayload(false, this.connectionId) as never,
        qos: 1,
        retain: true,
      },
    };
    if (o.username !== undefined) mqttOptions.username = o.username;
    if (o.password) mqttOptions.password = o.password;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (e: RtmError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.lost = true;
        client.end(true);
        reject(e);
      };
      const timer = setTimeout(
        () => fail(rtmError('UNAVAILABLE', `no CONNACK from ${o.brokerUrl} within ${o.connectTimeoutMs} ms`)),
        o.connectTimeoutMs + 1000,
      );
      let client: MqttClient;
      try {
        client = mqtt.connect(o.brokerUrl, mqttOptions);
      } catch (e) {
        // An unusable URL (unknown protocol, ...): MQTT.js throws before any socket exists.
        settled = true;
        clearTimeout(timer);
        this.lost = true;
        reject(rtmError('INVALID_PARAMETER', `brokerUrl "${o.brokerUrl}": ${(e as Error).message}`));
        return;
      }
      this.client = client;
      client.on('error', (err: Error & { code?: number | string }) => {
        if (settled) return;
        const code = err.code;
        if (code === 4 || code === 5) {
          fail(new ConnectRefused(`the broker refused the connection: ${err.message} (CONNACK ${code})`));
        } else {
          fail(rtmError('UNAVAILABLE', `cannot connect to ${o.brokerUrl}: ${err.message}`));
        }
      });
      client.on('close', () => {
        if (!settled) {
          fail(rtmError('UNAVAILABLE', `cannot connect to ${o.brokerUrl}: connection closed`));
          return;
        }
        if (!this.lost) {
          this.lost = true;
          o.onLost(this, 'connection to the broker lost');
        }
      });
      client.on('message', (topic, payload, packet) => {
        if (this.lost) return;
        o.onMessage(topic, payload, packet.qos === 0 ? 0 : 1, packet.retain === true);
      });
      client.on('connect', () => {
        // Node's TCP socket: without TCP_NODELAY a request waits ~40 ms behind the previous
        // packet's ACK (Nagle + delayed ACK). Browsers' WebSockets have no such call.
        const stream = (client as unknown as { stream?: { setNoDelay?: (on: boolean) => void } }).stream;
        stream?.setNoDelay?.(true);
        const subscribed =
          o.filters.length === 0
            ? Promise.resolve()
            : client.subscribeAsync(o.filters, { qos: 1 }).then((granted) => {
                const refused = granted.filter((g) => g.qos === 128);
                if (refused.length > 0) {
                  throw new Error(`the broker refused ${refused.map((g) => g.topic).join(', ')}`);
                }
              });
        subscribed
          .then(() =>
            client.publishAsync(o.presenceTopic, o.presencePayload(true, this.connectionId), {
              qos: 1,
              retain: true,
            }),
          )
          .then(() => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve();
          })
          .catch((e: Error) => fail(rtmError('UNAVAILABLE', `connecting: ${e.message}`)));
      });
    });
  }

  get isOpen(): boolean {
    return !this.lost && this.client !== null && this.client.connected;
  }

  /** Hands the message to MQTT.js; throws UNAVAILABLE when the link is gone. */
  publish(topic: string, payload: Uint8Array | string, qos: 0 | 1): void {
    if (!this.isOpen) throw rtmError('UNAVAILABLE', 'not connected to the broker');
    this.client!.publish(topic, payload as never, { qos, retain: false }, (err) => {
      if (err) this.lostNow(`publish to ${topic} failed: ${err.message}`);
    });
  }

  subscribe(filters: string[]): void {
    if (filters.length === 0 || !this.isOpen) return;
    this.client!.subscribe(filters, { qos: 1 }, () => {}); // a lost link redoes it at reconnect
  }

  unsubscribe(filters: string[]): void {
    if (filters.length === 0 || !this.isOpen) return;
    this.client!.unsubscribe(filters, () => {});
  }

  /** Ends the connection; with `sayOffline`, the retained offline presence first (a clean
   *  DISCONNECT sends no Will), so that the gateway ends the session. */
  async close(sayOffline: boolean): Promise<void> {
    const client = this.client;
    if (!client) return;
    const wasOpen = this.isOpen;
    this.lost = true;
    let clean = wasOpen;
    if (wasOpen && sayOffline) {
      // The link may be dropping under us (its close not seen yet): stop waiting when it does.
      const closed = new Promise<never>((_, reject) => client.once('close', () => reject(new Error('closed'))));
      closed.catch(() => {});
      try {
        await withTimeout(
          Promise.race([
            client.publishAsync(this.options.presenceTopic, this.options.presencePayload(false, this.connectionId), {
              qos: 1,
              retain: true,
            }),
            closed,
          ]),
          this.options.connectTimeoutMs,
        );
      } catch {
        clean = false; // gone anyway: the Will says it
      }
    }
    // A clean end waits for messages in flight; a link that is gone is simply dropped.
    try {
      await withTimeout(new Promise<void>((resolve) => client.end(!clean, {}, () => resolve())), CLOSE_TIMEOUT_MS);
    } catch {
      this.kill(); // end() is waiting already: drop the socket under it
    }
  }

  /** Drops the connection as if the network failed (the Will is published). */
  kill(): void {
    const client = this.client;
    if (!client) return;
    const stream = (client as unknown as { stream?: { destroy?: () => void } }).stream;
    stream?.destroy?.();
  }

  private lostNow(cause: string): void {
    if (this.lost) return;
    this.lost = true;
    this.client?.end(true);
    this.options.onLost(this, cause);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timed out')), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
