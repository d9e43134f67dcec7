// The naming rules of uids, channels and topics (docs/protocol.md, "Names"): checked
// before anything is sent, with the same messages as the C++ SDK.
export const MAX_NAME_BYTES = 64;
const FORBIDDEN_CHARACTERS = '/+#$"\\*';

/** Why `name` is not a valid `what` (uid, channel, topic); undefined when it is valid. */
export function nameError(what: string, name: unknown): string | undefined {
  if (typeof name !== 'string') return `${what} must be a string`;
  if (name.length === 0 || name.length > MAX_NAME_BYTES) {
    return `${what} must be 1-${MAX_NAME_BYTES} bytes, got ${name.length}`;
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) {
      const hex = c.toString(16).padStart(2, '0');
      return `${what} contains byte 0x${hex} (not printable ASCII) at byte ${i}`;
    }
    if (FORBIDDEN_CHARACTERS.includes(name[i])) {
      return `${what} "${name}" contains '${name[i]}' at byte ${i}`;
    }
  }
  return undefined;
}
