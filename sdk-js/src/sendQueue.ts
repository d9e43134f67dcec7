// The send queue (as the C++ SDK's, sdk/src/client_reconnect.cpp): channel publishes and
// peer messages made while reconnecting wait here and go out in order after the restore.
// Past either bound a QoS 0 message makes room by dropping the oldest QoS 0 ones (counted);
// a QoS 1 message that does not fit is refused with LIMIT_SEND_QUEUE.
import { rtmError } from './errors.js';

export const DEFAULT_MAX_SEND_QUEUE = 1000;
export const DEFAULT_MAX_SEND_QUEUE_BYTES = 1 << 20;

export interface QueuedMessage {
  topic: string;
  payload: Uint8Array;
  qos: 0 | 1;
}

export interface SendQueueStats {
  queued: number; // messages waiting for the restore
  queuedBytes: number; // their payload bytes
  sent: number; // sent after a restore, since the client was made
  dropped: number; // QoS 0 dropped past the bound, or left when the session ended
}

export class SendQueue {
  private items: QueuedMessage[] = [];
  private bytes = 0;
  private sent = 0;
  private dropped = 0;

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
    private readonly warn: (text: string) => void,
  ) {}

  get length(): number {
    return this.items.length;
  }

  stats(): SendQueueStats {
    return { queued: this.items.length, queuedBytes: this.bytes, sent: this.sent, dropped: this.dropped };
  }

  /** Queues the message; throws LIMIT_SEND_QUEUE for a QoS 1 message that does not fit. */
  push(message: QueuedMessage): void {
    const size = message.payload.length;
    const fits = () => this.items.length < this.maxMessages && this.bytes + size <= this.maxBytes;
    if (size > this.maxBytes || this.maxMessages === 0) {
      if (message.qos > 0) {
        throw rtmError(
          'LIMIT_SEND_QUEUE',
          `the message (${size} bytes) is larger than the send queue (maxSendQueueBytes ${this.maxBytes})`,
        );
      }
      this.dropped++;
      this.warn(`send queue: a QoS 0 message to ${message.topic} is larger than the queue; dropped`);
      return;
    }
    if (!fits() && message.qos > 0) {
      throw rtmError(
        'LIMIT_SEND_QUEUE',
        `the send queue is full while reconnecting (${this.items.length} messages, ${this.bytes} bytes; ` +
          `maxSendQueue ${this.maxMessages}, maxSendQueueBytes ${this.maxBytes})`,
      );
    }
    // QoS 0: the oldest QoS 0 messages make room; QoS 1 ones are never dropped for them.
    let droppedNow = 0;
    if (!fits()) {
      for (let i = 0; i < this.items.length && !fits(); ) {
        if (this.items[i].qos === 0) {
          this.bytes -= this.items[i].payload.length;
          this.items.splice(i, 1);
          droppedNow++;
        } else {
          i++;
        }
      }
    }
    if (!fits()) {
      this.dropped += droppedNow + 1; // only QoS 1 messages wait: this one goes instead
      this.warn('send queue full of QoS 1 messages: a QoS 0 message dropped');
      return;
    }
    if (droppedNow > 0) {
      this.dropped += droppedNow;
      this.warn(`send queue full: ${droppedNow} oldest QoS 0 message(s) dropped`);
    }
    this.bytes += size;
    this.items.push(message);
  }

  /** Everything queued, oldest first; the queue is empty after. */
  take(): QueuedMessage[] {
    const out = this.items;
    this.items = [];
    this.bytes = 0;
    return out;
  }

  /** Puts back what could not be sent, first in line. */
  putBack(messages: QueuedMessage[]): void {
    this.items = messages.concat(this.items);
    this.bytes = this.items.reduce((n, m) => n + m.payload.length, 0);
  }

  countSent(n: number): void {
    this.sent += n;
  }

  /** Drops everything (the session ended); answers how many were dropped. */
  clear(): number {
    const n = this.items.length;
    this.dropped += n;
    this.items = [];
    this.bytes = 0;
    return n;
  }
}
