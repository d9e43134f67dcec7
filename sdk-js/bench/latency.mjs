// Round trips of the JS SDK against a private Mosquitto (TCP and WebSockets listeners) and the
// gateway (RTM_GATEWAY_BIN or build/gateway/rtm-gateway), one at a time:
//   node bench/latency.mjs [N]
// - request: client.request('ping') → answer (client → broker → gateway → broker → client);
// - frame: publishTopic → the subscriber's 'message' (publisher → broker → subscriber), paced
//   at 60 Hz as the coplay input stream.
import { Setup, uniqueId } from '../test/harness.mjs';

const n = Number(process.argv[2] ?? 500);
const FRAME_INTERVAL_MS = 1000 / 60;

function percentiles(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(s.length * q))].toFixed(3);
  return `p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${s.at(-1).toFixed(3)} ms (n=${s.length})`;
}

// The gateway's per-user request rate limit (50/s) would refuse a tight loop of pings.
const setup = await Setup.start({ extraYaml: 'requests:\n  rate_per_s: 1000000\n  burst: 1000000\n' });
try {
  for (const transport of ['tcp', 'ws']) {
    const a = await setup.login(uniqueId('bench-a'), transport);
    const b = await setup.login(uniqueId('bench-b'), transport);
    const rtt = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await a.request('ping');
      rtt.push(performance.now() - t0);
    }
    console.log(`${transport} request round trip: ${percentiles(rtt)}`);

    const channel = uniqueId('bench');
    await a.streamChannel(channel).join();
    await b.streamChannel(channel).join();
    await b.streamChannel(channel).joinTopic('input');
    await a.streamChannel(channel).subscribeTopic('input', [b.uid]);
    const sent = new Map();
    const frames = [];
    let done;
    const all = new Promise((r) => (done = r));
    a.on('message', (m) => {
      const t0 = sent.get(new TextDecoder().decode(m.payload));
      if (t0 !== undefined) frames.push(performance.now() - t0);
      if (frames.length === n) done();
    });
    const room = b.streamChannel(channel);
    for (let i = 0; i < n; i++) {
      const id = `f${i}`;
      sent.set(id, performance.now());
      await room.publishTopic('input', id);
      await new Promise((r) => setTimeout(r, FRAME_INTERVAL_MS));
    }
    await all;
    console.log(`${transport} 60 Hz frame publisher -> subscriber: ${percentiles(frames)}`);
    await a.close();
    await b.close();
  }
} finally {
  await setup.stop();
}
