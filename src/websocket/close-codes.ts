/**
 * RFC 6455 §7.4.1 close codes, and the rule (§7.4.2, IANA registry) for which codes may be sent on the wire.
 */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  /** §7.4.1: reserved, never sent; reported locally when a close frame had no code. */
  NoStatus: 1005,
  /** §7.4.1: reserved, never sent; reported locally when TCP closed without a close frame. */
  Abnormal: 1006,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  MandatoryExtension: 1010,
  InternalError: 1011,
  ServiceRestart: 1012,
  TryAgainLater: 1013,
  BadGateway: 1014,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * May this code appear in a close frame? §7.4.1/§7.4.2: 1000-1003 and 1007-1011 are defined,
 * 1012-1014 were registered with IANA later; 1004-1006 and 1015 are reserved and never sent;
 * 3000-3999 are for libraries/frameworks, 4000-4999 for applications; everything else is invalid.
 */
export function isValidCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1003) ||
    (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999)
  );
}
