// Reading what the broker delivers: JSON answers and events, bounded. Anything malformed
// is reported as undefined (the client counts it and skips it); nothing here throws.

/** Larger JSON payloads are not parsed (a join snapshot of a huge channel stays far below). */
export const MAX_JSON_BYTES = 8 * 1024 * 1024;
/** Longest list taken from one answer or event (members, users, items, ...). */
export const MAX_LIST_ITEMS = 100_000;

export type Json = Record<string, unknown>;

const textDecoder = new TextDecoder('utf-8', { fatal: false });
const textEncoder = new TextEncoder();

export function utf8(bytes: Uint8Array): string {
  return textDecoder.decode(bytes);
}

export function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === 'string' ? textEncoder.encode(data) : data;
}

/** The payload as a JSON object, or undefined when it is too big, not JSON or not an object. */
export function parseObject(payload: Uint8Array): Json | undefined {
  if (payload.length > MAX_JSON_BYTES) return undefined;
  try {
    const value: unknown = JSON.parse(utf8(payload));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function str(o: Json | undefined, key: string, fallback = ''): string {
  const v = o?.[key];
  return typeof v === 'string' ? v : fallback;
}

export function num(o: Json | undefined, key: string, fallback = 0): number {
  const v = o?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

export function bool(o: Json | undefined, key: string, fallback = false): boolean {
  const v = o?.[key];
  return typeof v === 'boolean' ? v : fallback;
}

export function obj(o: Json | undefined, key: string): Json {
  const v = o?.[key];
  return isObject(v) ? v : {};
}

/** An array of objects (bounded); other elements are skipped. */
export function objects(o: Json | undefined, key: string): Json[] {
  const v = o?.[key];
  if (!Array.isArray(v)) return [];
  return v.slice(0, MAX_LIST_ITEMS).filter(isObject);
}

/** An array of strings (bounded); other elements are skipped. */
export function strings(o: Json | undefined, key: string): string[] {
  const v = o?.[key];
  if (!Array.isArray(v)) return [];
  return v.slice(0, MAX_LIST_ITEMS).filter((x): x is string => typeof x === 'string');
}

/** A JSON object of string values (presence states). */
export function stringMap(o: Json | undefined, key: string): Record<string, string> {
  const out: Record<string, string> = {};
  const v = obj(o, key);
  let n = 0;
  for (const [k, value] of Object.entries(v)) {
    if (++n > MAX_LIST_ITEMS) break;
    if (typeof value === 'string') out[k] = value;
  }
  return out;
}

export function randomHex(bytes: number): string {
  const buf = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(buf);
  return Array.from(buf, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Base64 without Node's Buffer (browsers): binary peer messages travel as base64 in JSON.
export function base64Encode(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export function base64Decode(text: string): Uint8Array | undefined {
  try {
    const s = atob(text);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  } catch {
    return undefined;
  }
}
