// What both pages do first: read the demo server's settings (the broker's WebSockets URL, the
// topic prefix), get a login token for the uid, and make the SDK's client.
import { RtmClient, connectionStateName, connectionReasonName } from '@rtm-mqtt-gateway/sdk';

// Names the demo server issues tokens for (a subset of the gateway's names that every broker
// profile takes: no '.').
export const UID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

// A channel or topic name as the gateway takes it (BRIEF: 1-64 printable ASCII bytes without
// space, '/', '+', '#', '$', '"', '\\' or '*').
export function nameError(name, what) {
  if (!/^[\x21-\x7e]{1,64}$/.test(name) || /[/+#$"\\*]/.test(name)) {
    return `${what} "${name}": use 1-64 printable ASCII characters without space, / + # $ " \\ or *`;
  }
  return null;
}

export function param(name, fallback) {
  const value = new URLSearchParams(location.search).get(name);
  return value === null || value === '' ? fallback : value;
}

export class SetupError extends Error {}

// Token renewals of this page (shown in window.coplayStats / window.coplayPlayer).
export const renewals = { count: 0, error: null };

// { client, uid, settings, renewals }, or a SetupError that says what to do.
export async function connect(uid) {
  if (!UID_PATTERN.test(uid)) {
    throw new SetupError(`uid "${uid}": use 1-64 letters, digits, '-' or '_'`);
  }
  const settings = await getJson('/config.json');
  if (!settings.brokerUrl) throw new SetupError(settings.help || 'the demo server knows no broker WebSockets URL');
  // A real app gets its token from its own backend; the demo server signs short ones (an
  // hour, or the page's ttl parameter), and the pages renew them before they expire.
  const tokenUrl = `/token?uid=${encodeURIComponent(uid)}${param('ttl', '') ? `&ttl=${encodeURIComponent(param('ttl'))}` : ''}`;
  const { token } = await getJson(tokenUrl);
  const client = new RtmClient({
    brokerUrl: settings.brokerUrl,
    uid,
    token,
    prefix: settings.prefix,
    requestTimeoutMs: 10000,
  });
  // The gateway warns before the login token expires (auth.token_warn_before_s): renew it.
  client.on('token', async (e) => {
    if (e.state !== 'will_expire' || e.channel) return;
    try {
      await client.renewToken((await getJson(tokenUrl)).token);
      renewals.count++;
    } catch (error) {
      renewals.error = describe(error);
    }
  });
  return { client, uid, settings, renewals };
}

async function getJson(url) {
  let response;
  try {
    response = await fetch(url, { cache: 'no-store' });
  } catch (e) {
    throw new SetupError(`the demo server does not answer (${e.message}): is examples/coplay-web/server.mjs running?`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new SetupError(body.error || `${url}: HTTP ${response.status}`);
  return body;
}

// An error as one line for the page.
export function describe(error) {
  if (error && error.codeName) return `${error.codeName}: ${error.message}`;
  return error && error.message ? error.message : String(error);
}

// A connectionState event as words: { state: 'connected', reason: 'login_success', message }.
export function stateWords(e) {
  return {
    state: connectionStateName(e.state).toLowerCase(),
    reason: connectionReasonName(e.reason).toLowerCase(),
    message: e.message || '',
  };
}
