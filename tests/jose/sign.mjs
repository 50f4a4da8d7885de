// sign.mjs: signs payloads with jose's FlattenedSign, so render-agent's verifier is checked against
// records it did not make. Usage: node sign.mjs --key PKCS8.pem --kid KID < payloads
// Reads one payload per line (the line's bytes, without the newline) and prints one flattened JWS
// per line with the protected header {"alg":"ES256","kid":KID}, as jose serializes it.
import { FlattenedSign, importPKCS8 } from 'jose';
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : undefined;
};
const keyPath = opt('--key');
const kid = opt('--kid');
if (!keyPath || !kid) {
  process.stderr.write('usage: node sign.mjs --key PKCS8.pem --kid KID < payloads\n');
  process.exit(2);
}
const key = await importPKCS8(readFileSync(keyPath, 'utf8'), 'ES256');
const lines = readFileSync(0, 'utf8').split('\n');
if (lines[lines.length - 1] === '') lines.pop();
for (const line of lines) {
  const jws = await new FlattenedSign(new TextEncoder().encode(line)).setProtectedHeader({ alg: 'ES256', kid }).sign(key);
  process.stdout.write(JSON.stringify(jws) + '\n');
}
