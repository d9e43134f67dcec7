// MQTT.js's browser bundle (dist/mqtt.esm.js) has a default export only; Node's `mqtt` has named
// exports too. This module offers both, so that the SDK's `import mqtt from 'mqtt'` and
// `import { connect } from 'mqtt'` work in the browser alike (the import map points "mqtt" here).
import mqtt from '/vendor/mqtt.esm.js';

export default mqtt;
export const {
  Client, connect, connectAsync, MqttClient, Store, DefaultMessageIdProvider,
  UniqueMessageIdProvider, ReasonCodes, ErrorWithReasonCode,
} = mqtt;
