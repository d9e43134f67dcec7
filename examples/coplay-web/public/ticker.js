// The player page's 60 Hz clock, in a worker: posts one message per period (drift-corrected:
// each due time is start + n * period), and after a stall skips the late ticks instead of
// bursting them. Why a worker: a page's own timer chain raises the browser's timer nesting
// level, which clamps every setTimeout(0) made inside it to 4 ms, and MQTT.js's browser build
// sends through setTimeout(0) (its process.nextTick); a message from a worker starts a fresh
// task. Workers also keep their timers in a background tab, where a page's are slowed to 1 Hz.
const STALL_PERIODS = 10;
let timer = null;

self.onmessage = ({ data }) => {
  clearTimeout(timer);
  if (data.command !== 'start') return;
  const period = 1000 / data.rate;
  let next = performance.now();
  let n = 0;
  const tick = () => {
    const now = performance.now();
    if (now - next > STALL_PERIODS * period) next = now;
    self.postMessage(n++);
    next += period;
    timer = setTimeout(tick, Math.max(0, next - performance.now()));
  };
  tick();
};
