// The gateway's error codes (docs/protocol.md, the code table), shared with the C++ SDK
// (sdk/src/types.cpp). Local failures use the same codes: TIMEOUT when no answer came in
// time, UNAVAILABLE when the broker link is down, LIMIT_SEND_QUEUE for the send queue.
export const ErrorCode = {
  OK: 0,
  INTERNAL: 1,
  BAD_REQUEST: 2,
  NOT_JOINED: 3,
  NOT_LOGGED_IN: 4,
  UNKNOWN_OPERATION: 5,
  MISSING_MSG_ID: 6,
  BAD_JSON: 7,
  INVALID_NAME: 8,
  PAYLOAD_TOO_LARGE: 9,
  DUPLICATE_PARAMETER: 10,
  MISSING_PARAMETER: 11,
  INVALID_PARAMETER: 12,
  INVALID_URI: 13,
  MSG_ID_REUSED: 14,
  NOT_SUBSCRIBED: 15,
  NOT_WATCHED: 16,
  NOT_PUBLISHER: 17,
  FORBIDDEN: 18,
  TOPIC_TOO_LONG: 19,
  TOKEN_INVALID: 20,
  TOKEN_BAD_SIGNATURE: 21,
  TOKEN_EXPIRED: 22,
  TOKEN_UID_MISMATCH: 23,
  TOKEN_UNSUPPORTED_ALG: 24,
  TOKEN_NOT_YET_VALID: 25,
  LIMIT_CHANNELS: 30,
  LIMIT_TOPICS: 31,
  LIMIT_MEMBERS: 32,
  LIMIT_SUBSCRIPTIONS: 33,
  LIMIT_WATCH: 34,
  NO_ROUTE: 40,
  TIMEOUT: 41,
  BACKEND_ERROR: 42,
  RATE_LIMITED: 43,
  UNAVAILABLE: 44,
  MAJOR_REVISION_MISMATCH: 45,
  ITEM_REVISION_MISMATCH: 46,
  ITEM_NOT_FOUND: 47,
  LIMIT_METADATA: 48,
  LIMIT_METADATA_SUBSCRIPTIONS: 49,
  LIMIT_STATE: 50,
  LOCK_NOT_FOUND: 51,
  LOCK_EXISTS: 52,
  LOCK_HELD: 53,
  NOT_LOCK_HOLDER: 54,
  LIMIT_LOCKS: 55,
  PEER_OFFLINE: 56,
  LIMIT_INBOX: 57,
  NO_HISTORY: 58,
  INVITATION_NOT_FOUND: 59,
  INVITATION_WRONG_SIDE: 60,
  LIMIT_INVITATIONS: 61,
  // Local to the SDKs, never answered by the gateway: a QoS 1 message does not fit in the
  // send queue while reconnecting (maxSendQueue, maxSendQueueBytes).
  LIMIT_SEND_QUEUE: 62,
  CHANNEL_TOKEN_REQUIRED: 66,
  TOKEN_CHANNEL_MISMATCH: 67,
} as const;

export type ErrorCodeName = keyof typeof ErrorCode;
export type ErrorCodeValue = (typeof ErrorCode)[ErrorCodeName];

const namesByCode = new Map<number, string>(
  Object.entries(ErrorCode).map(([name, code]) => [code, name]),
);

/** "NOT_JOINED" for 3; "UNKNOWN" for a code this SDK does not know. */
export function errorName(code: number): string {
  return namesByCode.get(code) ?? 'UNKNOWN';
}

/** Every failed call rejects with an RtmError: the gateway's code and name, or a local one. */
export class RtmError extends Error {
  readonly code: number;
  readonly codeName: string;

  constructor(code: number, message: string, codeName?: string) {
    super(message);
    this.name = 'RtmError';
    this.code = code;
    this.codeName = codeName || errorName(code);
  }

  /** True when this error carries `code` (a number, or a name such as 'NOT_JOINED'). */
  is(code: number | ErrorCodeName): boolean {
    return this.code === (typeof code === 'number' ? code : ErrorCode[code]);
  }

  /** "NOT_JOINED (3): alice has not joined channel room-42". */
  override toString(): string {
    return `${this.codeName} (${this.code})${this.message ? ': ' + this.message : ''}`;
  }
}

export function rtmError(name: ErrorCodeName, message: string): RtmError {
  return new RtmError(ErrorCode[name], message, name);
}

/** A failure of the link rather than an answer: a restore retries after it. */
export function isTransportFailure(e: unknown): boolean {
  return e instanceof RtmError && (e.code === ErrorCode.TIMEOUT || e.code === ErrorCode.UNAVAILABLE);
}
