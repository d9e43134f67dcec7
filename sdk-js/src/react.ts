// React bindings (the '@rtm-mqtt-gateway/sdk/react' entry point; React is an optional peer):
//   const { client, state, error } = useRtm({ brokerUrl, uid, token });
//   useRtmEvent(client, 'message', (m) => ...);
// useRtm creates a client, logs in, and closes it on unmount (or when the config's broker,
// uid or token change).
import { useEffect, useRef, useState } from 'react';

import { RtmClient } from './client.js';
import type { RtmError } from './errors.js';
import { ConnectionState } from './states.js';
import type { ClientEventName, ClientEvents, RtmClientConfig } from './types.js';

export interface UseRtmResult {
  /** The client once made (null before the first effect and after unmount). */
  client: RtmClient | null;
  state: ConnectionState;
  /** Why the login failed (or the last error of the session). */
  error: RtmError | null;
}

export function useRtm(config: RtmClientConfig | null): UseRtmResult {
  const [client, setClient] = useState<RtmClient | null>(null);
  const [state, setState] = useState<ConnectionState>(ConnectionState.DISCONNECTED);
  const [error, setError] = useState<RtmError | null>(null);
  const configRef = useRef(config);
  configRef.current = config;
  const key = config ? `${config.brokerUrl}|${config.uid}|${config.token ?? ''}|${config.prefix ?? ''}` : '';

  useEffect(() => {
    const current = configRef.current;
    if (!current) return undefined;
    let live = true;
    const c = new RtmClient(current);
    const off = c.on('connectionState', (e) => {
      if (live) setState(e.state);
    });
    setClient(c);
    setError(null);
    c.login().catch((e: RtmError) => {
      if (live) setError(e);
    });
    return () => {
      live = false;
      off();
      setClient(null);
      void c.close();
    };
  }, [key]);

  return { client, state, error };
}

/** Subscribes `handler` to the client's event `name` while mounted (the latest handler is called). */
export function useRtmEvent<K extends ClientEventName>(
  client: RtmClient | null,
  name: K,
  handler: (event: ClientEvents[K]) => void,
): void {
  const handlerRef = useRef(handler);
  handlerRef.current = handler;
  useEffect(() => {
    if (!client) return undefined;
    return client.on(name, (e) => handlerRef.current(e));
  }, [client, name]);
}
