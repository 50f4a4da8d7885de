// verify.mjs: checks render-agent's metering records with jose, a JOSE library independent of ours.
// Usage: node verify.mjs (--cert CERT.pem | --spki PUBLIC_KEY.pem) < records
// Reads one flattened JWS per line (blank lines skipped); verifies each with jose.flattenedVerify
// (ES256 only) and recomputes the kid the record should carry on its own: the certificate's SHA-256
// thumbprint (x5t#S256), or the SHA-256 of the key's uncompressed point. Prints one JSON document:
// {"kid": expected, "results": [{"line": n, "ok": true, "kid": kid, "kid_ok": bool, "payload": text}
//                               | {"line": n, "ok": false, "error": text}]}
import { flattenedVerify, importSPKI, importX509 } from 'jose';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const sha256 = (buf) => createHash('sha256').update(buf).digest();

async function loadKey(argv) {
  const [flag, path] = argv;
  const pem = readFileSync(path, 'utf8');
  if (flag === '--cert') {
    return { key: await importX509(pem, 'ES256'), kid: b64url(sha256(new X509Certificate(pem).raw)) };
  }
  if (flag === '--spki') {
    const jwk = createPublicKey(pem).export({ format: 'jwk' });
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
    return { key: await importSPKI(pem, 'ES256'), kid: b64url(sha256(point)) };
  }
  process.stderr.write('usage: node verify.mjs (--cert CERT.pem | --spki PUBLIC_KEY.pem) < records\n');
  process.exit(2);
}

const { key, kid } = await loadKey(process.argv.slice(2));
const lines = readFileSync(0, 'utf8').split('\n');
const results = [];
for (let i = 0; i < lines.length; i++) {
  if (lines[i].trim() === '') continue;
  try {
    const jws = JSON.parse(lines[i]);
    const { payload, protectedHeader } = await flattenedVerify(jws, key, { algorithms: ['ES256'] });
    results.push({ line: i + 1, ok: true, kid: protectedHeader.kid, kid_ok: protectedHeader.kid === kid,
      payload: new TextDecoder('utf-8', { fatal: true }).decode(payload) });
  } catch (e) {
    results.push({ line: i + 1, ok: false, error: `${e.code || e.name}: ${e.message}` });
  }
}
process.stdout.write(JSON.stringify({ kid, results }) + '\n');
