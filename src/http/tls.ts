/**
 * TLS: the certificate and key behind https:// and wss:// (TLS_CERT_FILE, TLS_KEY_FILE), read and
 * checked at start-up, and read again on SIGHUP. A reload applies to new connections only
 * (`server.setSecureContext`); open ones keep the session they negotiated. A reload that fails
 * (unreadable file, not PEM, key and certificate not a pair) keeps the certificate in use.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

export interface Certificate {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The leaf certificate's SHA-256 fingerprint, subject and expiry, for the log. */
  readonly fingerprint: string;
  readonly subject: string;
  readonly validTo: string;
}

/** A certificate that cannot be used; `variable` names the setting whose file is at fault. */
export class CertificateError extends Error {
  constructor(
    readonly variable: 'TLS_CERT_FILE' | 'TLS_KEY_FILE',
    message: string,
  ) {
    super(message);
    this.name = 'CertificateError';
  }
}

function read(variable: 'TLS_CERT_FILE' | 'TLS_KEY_FILE', file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new CertificateError(variable, `cannot read ${file}: ${code}`);
  }
}

/** Reads both files and checks that they are PEM and belong together. Throws CertificateError. */
export function loadCertificate(certFile: string, keyFile: string): Certificate {
  const cert = read('TLS_CERT_FILE', certFile);
  const key = read('TLS_KEY_FILE', keyFile);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert); // the first certificate of a chain
  } catch {
    throw new CertificateError('TLS_CERT_FILE', `${certFile} holds no PEM certificate`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    const why = (error as Error).message;
    if (/mismatch/i.test(why)) {
      throw new CertificateError('TLS_KEY_FILE', `${keyFile} is not the key of the certificate in ${certFile}`);
    }
    throw new CertificateError('TLS_KEY_FILE', `${keyFile} holds no usable private key (${why})`);
  }
  const subject = leaf.subject.replace(/\n/g, ', ');
  return { cert, key, fingerprint: leaf.fingerprint256, subject, validTo: leaf.validTo };
}
