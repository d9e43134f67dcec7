// A small Aedes MQTT 3.1.1 broker to run rtm-mqtt-gateway beside (see README.md).
//
//   node broker.mjs [--port 1883] [--host 127.0.0.1] [--no-nodelay] [--verbose]
//
// The port and host may also come from AEDES_PORT and AEDES_HOST; --port 0 takes a free port.
// Everything is kept in memory (Aedes' default persistence and emitter): retained messages,
// persistent sessions (clean session off) and their queued QoS 1 messages live as long as this
// process, and a restart of the broker loses them (the gateway copes: docs/protocol.md#presence).
// It prints one line when it listens, and exits with status 0 on SIGTERM or SIGINT.
import net from 'node:net';
import process from 'node:process';
import createBroker from 'aedes';

function usage(message) {
  if (message) console.error(`broker.mjs: ${message}`);
  console.error('usage: node broker.mjs [--port N] [--host ADDRESS] [--no-nodelay] [--verbose]');
  process.exit(2);
}

const options = {
  port: process.env.AEDES_PORT ?? '1883',
  host: process.env.AEDES_HOST ?? '127.0.0.1',
  noDelay: true,
  verbose: false,
};
const args = process.argv.slice(2);
for (let i = 0; i < args.length; ++i) {
  const arg = args[i];
  const value = () => {
    if (i + 1 >= args.length) usage(`${arg} needs a value`);
    return args[++i];
  };
  if (arg === '--port') options.port = value();
  else if (arg === '--host') options.host = value();
  else if (arg === '--no-nodelay') options.noDelay = false; // for measuring Nagle's cost only
  else if (arg === '--verbose') options.verbose = true;
  else if (arg === '--help' || arg === '-h') usage();
  else usage(`unknown argument ${arg}`);
}
const port = Number(options.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`bad port ${options.port}`);

const broker = createBroker();
if (options.verbose) {
  broker.on('client', (client) => console.log(`connected ${client.id}`));
  broker.on('clientDisconnect', (client) => console.log(`disconnected ${client.id}`));
  broker.on('clientError', (client, err) => console.log(`client ${client.id}: ${err.message}`));
}

const server = net.createServer((socket) => {
  // TCP_NODELAY on every client socket. Node leaves Nagle's algorithm on, and Aedes writes
  // each MQTT packet on its own: a PUBLISH written right after a PUBACK then waits for the
  // peer's (delayed) ACK, ~40 ms on Linux. The gateway's answers are such small packets: a
  // request's round trip took 44 ms instead of under a millisecond. Mosquitto's
  // `set_tcp_nodelay true` is the same setting.
  if (options.noDelay) socket.setNoDelay(true);
  broker.handle(socket);
});
server.on('error', (err) => {
  console.error(`aedes: ${err.message}`);
  process.exit(1);
});
server.listen(port, options.host, () => {
  const address = server.address();
  console.log(`aedes ${broker.id} listening on ${address.address}:${address.port} ` +
              `(noDelay ${options.noDelay ? 'on' : 'off'}, in-memory persistence)`);
});

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  // Stop accepting, close every client connection (Aedes publishes their Wills as for dropped
  // connections, to whoever is still connected), then leave.
  server.close();
  broker.close(() => {
    console.log(`aedes stopped (${signal})`);
    process.exit(0);
  });
  // Never hang on a stuck connection.
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
