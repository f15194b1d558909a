/**
 * Self-signed certificates for the TLS tests, made by Debian's `openssl` (never checked in): an EC P-256
 * key and a certificate for `localhost` and 127.0.0.1, in a temporary directory.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findBinary } from './binaries';

/** The openssl binary ($OPENSSL first), or undefined when none is installed. */
export function findOpenssl(): string | undefined {
  return findBinary([process.env.OPENSSL, '/usr/bin/openssl', 'openssl'], ['version']);
}

export interface TestCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  /** The PEM certificate (our client's `ca`, NODE_EXTRA_CA_CERTS). */
  readonly pem: string;
  /** SHA-256 fingerprint as Node prints it (AA:BB:...). */
  readonly fingerprint: string;
  /** base64 SHA-256 of the public key (SubjectPublicKeyInfo), for Chromium's SPKI allow-list. */
  readonly spki: string;
}

/** Makes `<name>.crt` and `<name>.key` in `dir`. */
export function makeCertificate(openssl: string, dir: string, name: string, commonName = 'localhost'): TestCertificate {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  execFileSync(
    openssl,
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${commonName}`,
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const pem = readFileSync(certFile, 'utf8');
  const x509 = new X509Certificate(pem);
  const der = x509.publicKey.export({ type: 'spki', format: 'der' });
  const spki = createHash('sha256').update(der).digest('base64');
  return { certFile, keyFile, pem, fingerprint: x509.fingerprint256, spki };
}
