// Presence states: a member's temporary key/values in a channel (RTM 2's setState). They go
// when the member leaves or its session ends; the SDK sets them again after a restore.
import type { RtmClient } from './client.js';
import type { StateMap, UserState, WhoNowResult } from './types.js';
import { type Json, isObject, obj, str, stringMap, strings } from './wire.js';

export class PresenceApi {
  constructor(private readonly client: RtmClient) {}

  /** Merges `states` into this user's states in `channel`; answers all of them. */
  async setState(channel: string, states: StateMap): Promise<StateMap> {
    this.client.checkName('channel', channel);
    const r = await this.client.call('set_state', { channel, states }, `set_state ${channel}`);
    return this.keep(channel, r);
  }

  /** Removes `keys` (every state when empty); answers what is left. */
  async removeState(channel: string, keys: string[] = []): Promise<StateMap> {
    this.client.checkName('channel', channel);
    const body: Json = { channel };
    if (keys.length > 0) body.keys = keys;
    const r = await this.client.call('remove_state', body, `remove_state ${channel}`);
    return this.keep(channel, r);
  }

  /** `uid`'s states in `channel` (empty uid: this user's). */
  async getState(channel: string, uid = ''): Promise<UserState> {
    const who = uid || this.client.uid;
    this.client.checkName('channel', channel);
    this.client.checkName('uid', who);
    const r = await this.client.call('get_state', { channel, uid: who }, `get_state ${channel} ${who}`);
    return { channel: str(r, 'channel', channel), uid: str(r, 'uid', who), states: stringMap(r, 'states') };
  }

  /** The members of `channel`, and with includeState their states. */
  async whoNow(channel: string, includeState = true): Promise<WhoNowResult> {
    this.client.checkName('channel', channel);
    const body: Json = { channel };
    if (includeState) body.include_state = true;
    const r = await this.client.call('who_now', body, `who_now ${channel}`);
    const states: Record<string, StateMap> = {};
    for (const [uid, v] of Object.entries(obj(r, 'states'))) {
      if (isObject(v)) states[uid] = stringMap({ v }, 'v');
    }
    return { channel: str(r, 'channel', channel), members: strings(r, 'members'), states };
  }

  // This user's states after the call, also kept for a restore.
  private keep(channel: string, r: Json): StateMap {
    const now = stringMap(r, 'states');
    const ch = this.client.channels.get(channel);
    if (ch) ch.states = now;
    return now;
  }
}
