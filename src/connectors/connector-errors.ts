/**
 * Failure types a connector (or the evidence store) raises. A refusal is final (the target said no, or the request can never work);
 * anything else is treated as transient and retried by Temporal.
 */
export const FailureType = {
  TargetRefused: 'TargetRefused',
  InvalidIdentity: 'InvalidIdentity',
  UnknownSystem: 'UnknownSystem',
  VerificationFailed: 'VerificationFailed',
  TicketRefused: 'TicketRefused',
  /** The evidence store refused a record (it would hold a secret): the same record is refused every time. */
  EvidenceRefused: 'EvidenceRefused',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

export class ConnectorRefusal extends Error {
  constructor(
    readonly type: FailureType,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ConnectorRefusal';
  }
}
