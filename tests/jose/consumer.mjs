// consumer.mjs: a central metering consumer for test_billing_faults, independent of render-agent's
// code: MQTT.js over TLS with a client certificate, MQTT 5, a persistent session (clean start off,
// a session expiry), a QoS 1 subscription to one node's metering topic. Each record is appended to
// a file and fsync'ed BEFORE its PUBACK goes out (customHandleAcks), so a record the broker counts
// as delivered is on this machine's disk, whenever this process is killed. It checks nothing: the
// test reads the file and judges.
//
// Usage: node consumer.mjs --url mqtts://localhost:PORT --ca CA --cert CERT --key KEY
//                          --client-id ID --topic TOPIC --out FILE
// FILE gets one JSON line per PUBLISH received: {"recv_ms": wall-clock ms, "dup": bool, "topic":
// topic, "payload": the payload as text}. Stdout gets one line per event ("connected
// session_present=…", "subscribed", "error …"), for the test to wait on.
import mqtt from 'mqtt';
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';

function args(argv) {
  const want = ['url', 'ca', 'cert', 'key', 'client-id', 'topic', 'out'];
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!want.includes(k) || i + 1 >= argv.length) {
      process.stderr.write(`consumer.mjs: unknown or incomplete argument "${argv[i]}" (want --${want.join(' --')})\n`);
      process.exit(2);
    }
    out[k] = argv[i + 1];
  }
  for (const k of want) {
    if (!(k in out)) {
      process.stderr.write(`consumer.mjs: --${k} is required\n`);
      process.exit(2);
    }
  }
  return out;
}

const a = args(process.argv.slice(2));
const say = (line) => process.stdout.write(line + '\n');

// A run killed in the middle of a write leaves a line without its newline: end it, so that the
// next record starts a line of its own (the torn line is the test's to skip; its record was never
// acknowledged, so the broker sends it again).
const fd = openSync(a.out, 'a+');
const size = fstatSync(fd).size;
if (size > 0) {
  const last = Buffer.alloc(1);
  readSync(fd, last, 0, 1, size - 1);
  if (last[0] !== 0x0a) {
    writeSync(fd, '\n');
    fsyncSync(fd);
  }
}

function store(topic, message, packet) {
  const line = JSON.stringify({ recv_ms: Date.now(), dup: !!packet.dup, topic, payload: message.toString('utf8') });
  writeSync(fd, line + '\n');
  fsyncSync(fd);
}

const client = mqtt.connect(a.url, {
  protocolVersion: 5,
  clientId: a['client-id'],
  clean: false,
  properties: {
    sessionExpiryInterval: 3600,
    // As many unacknowledged records in flight to us as the broker will send: what the broker has
    // acknowledged to the agent is then already on its way to this socket, not queued in the
    // broker's memory.
    receiveMaximum: 65535,
  },
  keepalive: 4,
  reconnectPeriod: 300,
  connectTimeout: 5000,
  resubscribe: false,
  ca: readFileSync(a.ca),
  cert: readFileSync(a.cert),
  key: readFileSync(a.key),
  rejectUnauthorized: true,
  customHandleAcks: (topic, message, packet, done) => {
    try {
      store(topic, message, packet);
    } catch (e) {
      // Not stored: no PUBACK. The session keeps the record, and the broker sends it again.
      say(`error storing a record: ${e.message}; exiting`);
      process.exit(1);
    }
    done(0);
  },
});

client.on('connect', (connack) => {
  say(`connected session_present=${!!connack.sessionPresent}`);
  if (connack.sessionPresent) {
    say('subscribed');
    return;
  }
  // A broker that lost our session (restarted without persistence) has no subscription for us.
  client.subscribe(a.topic, { qos: 1 }, (err, granted) => {
    if (err || !granted || granted.length !== 1 || granted[0].qos !== 1) {
      say(`error subscribing to ${a.topic}: ${err ? err.message : JSON.stringify(granted)}`);
      client.end(true);
      return;
    }
    say('subscribed');
  });
});
client.on('error', (e) => say(`error ${e.message}`));
client.on('close', () => say('closed'));
// The payload is in the file: the message event is not needed.
process.on('SIGTERM', () => {
  client.end(false, {}, () => {
    closeSync(fd);
    process.exit(0);
  });
});
