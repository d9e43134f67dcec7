// Named locks of a channel (RTM 2's lock API): one holder, a FIFO queue of waiters, a ttl
// that keeps the lock for a holder whose session ended. Changes arrive as 'lockEvent'.
import type { RtmClient } from './client.js';
import { RtmError, rtmError } from './errors.js';
import type { AcquireLockOptions, AcquireStatus, LockEvent, LockInfo } from './types.js';
import { type Json, num, objects, str, strings } from './wire.js';

export class LocksApi {
  constructor(private readonly client: RtmClient) {}

  async setLock(channel: string, name: string, ttlS: number): Promise<void> {
    await this.op('set_lock', channel, name, { ttl: ttlS });
  }

  /** Without retry: 'acquired', 'already_held', or LOCK_HELD. With retry the call waits in
   *  the lock's queue until this user holds it (LOCK_NOT_FOUND if removed meanwhile,
   *  TIMEOUT after waitMs: the SDK then leaves the queue). */
  async acquireLock(channel: string, name: string, options: AcquireLockOptions = {}): Promise<AcquireStatus> {
    const c = this.client;
    c.checkName('channel', channel);
    if (!name) throw rtmError('MISSING_PARAMETER', 'a lock needs a name');
    const what = `acquire_lock ${channel}/${name}`;
    if (!options.retry) {
      const r = await c.call('acquire_lock', { channel, lock: name, retry: false }, what);
      return str(r, 'status') === 'already_held' ? 'already_held' : 'acquired';
    }
    // The wait begins before the request goes out: the `lock` event may come before the answer.
    const key = `${channel}/${name}`;
    let finish!: (e?: RtmError) => void;
    const waited = new Promise<void>((resolve, reject) => {
      finish = (e) => (e ? reject(e) : resolve());
    });
    let waits = c.lockWaits.get(key);
    if (!waits) c.lockWaits.set(key, (waits = new Set()));
    waits.add(finish);
    const waitMs = options.waitMs ?? 60_000;
    const timer = setTimeout(
      () => finish(rtmError('TIMEOUT', `${what}: not acquired within ${waitMs} ms`)),
      waitMs,
    );
    try {
      const r = await c.call('acquire_lock', { channel, lock: name, retry: true }, what);
      const status = str(r, 'status');
      if (status === 'acquired' || status === 'already_held') return status;
      await waited; // queued: the `lock` event (acquired, or removed) decides
      return 'acquired';
    } catch (e) {
      if (e instanceof RtmError && e.codeName === 'TIMEOUT') {
        // Given up: leave the queue (or let go of a lock that came too late).
        this.op('release_lock', channel, name, {}).catch(() => {});
      }
      throw e;
    } finally {
      clearTimeout(timer);
      waits.delete(finish);
      if (waits.size === 0) c.lockWaits.delete(key);
    }
  }

  /** Releases the lock (or leaves its queue); the next waiter gets it. */
  async releaseLock(channel: string, name: string): Promise<void> {
    await this.op('release_lock', channel, name, {});
  }

  /** Takes the lock from its holder `uid`. */
  async revokeLock(channel: string, name: string, uid: string): Promise<void> {
    this.client.checkName('uid', uid);
    await this.op('revoke_lock', channel, name, { uid });
  }

  async getLocks(channel: string): Promise<LockInfo[]> {
    this.client.checkName('channel', channel);
    const r = await this.client.call('get_locks', { channel }, `get_locks ${channel}`);
    return objects(r, 'locks').map((l) => ({
      name: str(l, 'lock'),
      ttl: num(l, 'ttl'),
      owner: str(l, 'owner'),
      waiters: strings(l, 'waiters'),
      expiresAt: num(l, 'expires_at'),
    }));
  }

  async removeLock(channel: string, name: string): Promise<void> {
    await this.op('remove_lock', channel, name, {});
  }

  private async op(op: string, channel: string, name: string, extra: Json): Promise<Json> {
    this.client.checkName('channel', channel);
    if (!name) throw rtmError('MISSING_PARAMETER', 'a lock needs a name');
    return this.client.call(op, { channel, lock: name, ...extra }, `${op} ${channel}/${name}`);
  }
}

const LOCK_EVENT_KINDS = new Set(['set', 'removed', 'acquired', 'released', 'expired']);

export function parseLockEvent(doc: Json): LockEvent | undefined {
  const kind = str(doc, 'kind');
  if (!LOCK_EVENT_KINDS.has(kind)) return undefined;
  return {
    type: kind as LockEvent['type'],
    channel: str(doc, 'channel'),
    lock: str(doc, 'lock'),
    uid: str(doc, 'uid'),
    ttl: num(doc, 'ttl'),
    ts: num(doc, 'ts'),
  };
}
