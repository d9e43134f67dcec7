// Connection states and the reasons they change: the numbers and names of
// tokens/include/rtm/gateway/connection_states.hpp (anyRTC's where they fit), which the
// gateway's `session` events carry too. FAILED is the table's ABORTED.
export enum ConnectionState {
  DISCONNECTED = 1, // not connected: before login, after logout
  CONNECTING = 2, // login in progress
  CONNECTED = 3, // logged in, ready
  RECONNECTING = 4, // the link or the session was lost; the SDK is getting it back
  FAILED = 5, // the session is over and will not come back by itself (ABORTED)
  RESTORED = 6, // connected again, the session restored
}

export enum ConnectionChangeReason {
  NONE = 0,
  LOGIN = 1,
  LOGIN_SUCCESS = 2,
  LOGIN_FAILURE = 3,
  LOGIN_TIMEOUT = 4,
  INTERRUPTED = 5,
  LOGOUT = 6,
  BANNED_BY_SERVER = 7,
  REMOTE_LOGIN = 8,
  TOKEN_EXPIRED = 9,
  KICKED = 10,
  RESTORED = 11,
  SESSION_LOST = 12,
}

/** The table's name of a state: "RECONNECTING", "ABORTED" for FAILED. */
export function connectionStateName(state: ConnectionState): string {
  return state === ConnectionState.FAILED ? 'ABORTED' : (ConnectionState[state] ?? 'UNKNOWN');
}

/** "TOKEN_EXPIRED"; "UNKNOWN" for a number this SDK does not know. */
export function connectionReasonName(reason: ConnectionChangeReason): string {
  return ConnectionChangeReason[reason] ?? 'UNKNOWN';
}
