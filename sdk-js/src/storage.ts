// User and channel metadata (RTM 2 storage): key/value items with revisions, written with
// compare-and-set (options.majorRevision, item.revision). An empty uid is this client's own.
// As the C++ SDK's Storage (sdk/src/client_storage.cpp).
import type { RtmClient } from './client.js';
import { rtmError } from './errors.js';
import type { Metadata, MetadataItem, MetadataOptions, StorageEvent } from './types.js';
import { type Json, num, objects, str } from './wire.js';

type Scope = 'user' | 'channel';
type Write = 'set' | 'update' | 'remove';

export class StorageApi {
  constructor(private readonly client: RtmClient) {}

  /** Adds new keys and overwrites the keys named; other items stay. */
  setUserMetadata(uid: string, items: MetadataItem[], options: MetadataOptions = {}): Promise<Metadata> {
    return this.write('user', uid, 'set', items, options);
  }
  /** Overwrites existing keys only (ITEM_NOT_FOUND for a new one). */
  updateUserMetadata(uid: string, items: MetadataItem[], options: MetadataOptions = {}): Promise<Metadata> {
    return this.write('user', uid, 'update', items, options);
  }
  /** Removes the keys of `items` (revisions checked), or every item when empty; answers what was removed. */
  removeUserMetadata(uid: string, items: MetadataItem[] = [], options: MetadataOptions = {}): Promise<Metadata> {
    return this.write('user', uid, 'remove', items, options);
  }
  /** The items of `keys`, or every item when empty. */
  getUserMetadata(uid: string, keys: string[] = []): Promise<Metadata> {
    return this.get('user', uid, keys);
  }
  /** Changes of `uid`'s metadata arrive as 'storageEvent' (first a snapshot); renewed after a restore. */
  async subscribeUserMetadata(uid: string): Promise<void> {
    const target = uid || this.client.uid;
    this.client.checkName('uid', target);
    await this.client.call('subscribe_user_metadata', { uid: target }, `subscribe_user_metadata ${target}`);
    this.client.metadataSubscriptions.add(target);
  }
  async unsubscribeUserMetadata(uid: string): Promise<void> {
    const target = uid || this.client.uid;
    this.client.checkName('uid', target);
    await this.client.call('unsubscribe_user_metadata', { uid: target }, `unsubscribe_user_metadata ${target}`);
    this.client.metadataSubscriptions.delete(target);
  }

  setChannelMetadata(channel: string, items: MetadataItem[], options: MetadataOptions = {}): Promise<Metadata> {
    return this.write('channel', channel, 'set', items, options);
  }
  updateChannelMetadata(channel: string, items: MetadataItem[], options: MetadataOptions = {}): Promise<Metadata> {
    return this.write('channel', channel, 'update', items, options);
  }
  removeChannelMetadata(channel: string, items: MetadataItem[] = [], options: MetadataOptions = {}): Promise<Metadata> {
    return this.write('channel', channel, 'remove', items, options);
  }
  getChannelMetadata(channel: string, keys: string[] = []): Promise<Metadata> {
    return this.get('channel', channel, keys);
  }

  private async write(scope: Scope, targetIn: string, kind: Write, items: MetadataItem[], options: MetadataOptions) {
    const user = scope === 'user';
    const target = user && !targetIn ? this.client.uid : targetIn;
    this.client.checkName(user ? 'uid' : 'channel', target);
    if (user && options.lock) throw rtmError('INVALID_PARAMETER', 'MetadataOptions.lock guards channel metadata only');
    const op = `${kind}_${scope}_metadata`;
    const body: Json = { [user ? 'uid' : 'channel']: target };
    if (items.length > 0) {
      body.items = items.map((item) => {
        const out: Json = { key: item.key };
        if (kind !== 'remove') out.value = item.value ?? '';
        if (item.revision !== undefined && item.revision !== -1) out.revision = item.revision;
        return out;
      });
    }
    if (options.majorRevision !== undefined && options.majorRevision !== -1) body.major_revision = options.majorRevision;
    if (kind !== 'remove') {
      if (options.recordAuthor) body.record_author = true;
      if (options.recordTs) body.record_ts = true;
    }
    if (options.lock) body.lock = options.lock;
    return parseMetadata(await this.client.call(op, body, `${op} ${target}`));
  }

  private async get(scope: Scope, targetIn: string, keys: string[]) {
    const user = scope === 'user';
    const target = user && !targetIn ? this.client.uid : targetIn;
    this.client.checkName(user ? 'uid' : 'channel', target);
    const op = `get_${scope}_metadata`;
    const body: Json = { [user ? 'uid' : 'channel']: target };
    if (keys.length > 0) body.keys = keys;
    return parseMetadata(await this.client.call(op, body, `${op} ${target}`));
  }
}

export function parseMetadata(v: Json): Metadata {
  return {
    majorRevision: num(v, 'major_revision'),
    items: objects(v, 'items').map((i) => {
      const item: MetadataItem = { key: str(i, 'key'), value: str(i, 'value'), revision: num(i, 'revision') };
      if (typeof i.author === 'string') item.author = i.author;
      if (typeof i.updated_at === 'number') item.updatedAt = i.updated_at;
      return item;
    }),
  };
}

const STORAGE_EVENT_KINDS = new Set(['snapshot', 'set', 'update', 'remove']);

/** A personal `metadata` event (uid: whose, by: the writer) or a channel's `metadata_changed`
 *  (uid: the writer); undefined for a kind this SDK does not know. */
export function parseStorageEvent(doc: Json, scope: Scope): StorageEvent | undefined {
  const kind = str(doc, 'kind');
  if (!STORAGE_EVENT_KINDS.has(kind)) return undefined;
  const user = scope === 'user';
  return {
    scope,
    type: kind as StorageEvent['type'],
    uid: user ? str(doc, 'uid') : '',
    channel: user ? '' : str(doc, 'channel'),
    by: user ? str(doc, 'by') : str(doc, 'uid'),
    metadata: parseMetadata(doc),
    ts: num(doc, 'ts'),
  };
}
