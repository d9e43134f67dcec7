// Call invitations (anyRTC's LocalInvitation / RemoteInvitation): send, cancel, accept,
// refuse, list. Every state change of both sides arrives as an 'invitation' event; the
// SDK acknowledges a received invitation itself before the app sees it.
import type { RtmClient } from './client.js';
import type { InvitationEvent } from './types.js';
import { type Json, num, str } from './wire.js';

const LIVE_STATES = new Set(['SENT_TO_REMOTE', 'RECEIVED_BY_REMOTE', 'RECEIVED']);

export class InvitationsApi {
  constructor(private readonly client: RtmClient) {}

  /** Invites `callee`; answers the local invitation (SENT_TO_REMOTE, or FAILURE / PEER_OFFLINE). */
  async send(callee: string, content = '', channelId = ''): Promise<InvitationEvent> {
    this.client.checkName('uid', callee);
    const body: Json = { callee, content };
    if (channelId) body.channel_id = channelId;
    const r = await this.client.call('invite', body, 'invite');
    const state = str(r, 'state');
    return {
      id: str(r, 'id'),
      side: 'local',
      state,
      stateCode: 0,
      reason: str(r, 'reason', 'OK'),
      reasonCode: 0,
      caller: this.client.uid,
      callee,
      content,
      channelId,
      response: '',
      ts: Date.now(),
      ended: !LIVE_STATES.has(state),
    };
  }

  async cancel(id: string): Promise<void> {
    await this.client.call('cancel_invitation', { id }, `cancel_invitation ${id}`);
  }

  async accept(id: string, response = ''): Promise<void> {
    await this.client.call('accept_invitation', { id, response }, `accept_invitation ${id}`);
  }

  async refuse(id: string, response = ''): Promise<void> {
    await this.client.call('refuse_invitation', { id, response }, `refuse_invitation ${id}`);
  }

  /** The invitations in flight this user sent or received, with their current states. */
  async list(): Promise<InvitationEvent[]> {
    const r = await this.client.call('invitations', {}, 'invitations');
    const list = Array.isArray(r.invitations) ? r.invitations : [];
    return list.filter((v): v is Json => typeof v === 'object' && v !== null).map(parseInvitation);
  }
}

export function parseInvitation(v: Json): InvitationEvent {
  const state = str(v, 'state');
  return {
    id: str(v, 'id'),
    side: str(v, 'side') === 'remote' ? 'remote' : 'local',
    state,
    stateCode: num(v, 'state_code'),
    reason: str(v, 'reason', 'OK'),
    reasonCode: num(v, 'reason_code'),
    caller: str(v, 'caller'),
    callee: str(v, 'callee'),
    content: str(v, 'content'),
    channelId: str(v, 'channel_id'),
    response: str(v, 'response'),
    ts: num(v, 'ts'),
    ended: !LIVE_STATES.has(state),
  };
}
