// @rtm-mqtt-gateway/sdk: the RTM programming model over MQTT and rtm-mqtt-gateway.
export { RtmClient, type ReceiveStats } from './client.js';
export { StreamChannel, MAX_SUBSCRIBED_PUBLISHERS } from './streamChannel.js';
export { StorageApi } from './storage.js';
export { PresenceApi } from './presence.js';
export { LocksApi } from './locks.js';
export { InvitationsApi } from './invitations.js';
export { RtmError, ErrorCode, errorName, type ErrorCodeName } from './errors.js';
export { ConnectionState, ConnectionChangeReason, connectionStateName, connectionReasonName } from './states.js';
export { nameError } from './names.js';
export type { SendQueueStats } from './sendQueue.js';
export * from './types.js';
