/**
 * The IAM API as every part of the aws-iam connector calls it: one SDK client, AWS's errors classified (transient or
 * refusal), "no such entity" as an answer where absence is one, paging, waiting out IAM's eventual consistency, and
 * the managed-path rule.
 */
import {
  IAMClient,
} from '@aws-sdk/client-iam';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectorRefusal, FailureType } from '../connector-errors';
import type { IamEntity } from './aws-iam-grammar';

/** What every part needs to reach IAM: the connector's options (region, endpoint, path, timeouts). */
export interface IamCallOptions {
  region: string;
  endpoint?: string;
  /** Users and roles the gateway manages live under this IAM path, e.g. `/changegate/`. */
  path: string;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** How long to wait for IAM's eventual consistency (a brand-new key not yet accepted or listed). Default 10 s. */
  consistencyWaitMs?: number;
}

/**
 * Error names AWS (and the SDK) use for "try again later"; 5xx and 429 are transient whatever their name.
 * EntityTemporarilyUnmodifiable (409) and ConcurrentModification are IAM saying another change to the same entity
 * is still in flight: the same request succeeds later.
 */
const TRANSIENT_NAMES = new Set([
  'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException', 'ServiceUnavailable',
  'ServiceUnavailableException', 'ServiceFailure', 'ServiceFailureException', 'InternalFailure', 'InternalError',
  'RequestTimeout', 'RequestTimeoutException', 'TimeoutError', 'ConcurrentModification', 'ConcurrentModificationException',
  'EntityTemporarilyUnmodifiable', 'EntityTemporarilyUnmodifiableException',
]);

/** AWS's words for one failed call, without anything from the request. */
export interface AwsFailure {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** One SDK client for a credential; Temporal owns retries. */
export function iamClientFor(opts: IamCallOptions, accessKeyId: string, secretAccessKey: string): IAMClient {
  return new IAMClient({
    region: opts.region,
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    credentials: { accessKeyId, secretAccessKey },
    // Temporal owns retries: one attempt per activity try, with deadlines short enough to fail over quickly.
    maxAttempts: 1,
    requestHandler: { connectionTimeout: opts.connectTimeoutMs ?? 5_000, requestTimeout: opts.requestTimeoutMs ?? 15_000 },
  });
}

/** Shared by the connector and its users, roles and access-keys parts: one client, one way of calling. */
export class IamCalls {
  constructor(
    readonly name: string,
    protected readonly opts: IamCallOptions,
    protected readonly client: IAMClient,
  ) {}

  protected iamClient(accessKeyId: string, secretAccessKey: string): IAMClient {
    return iamClientFor(this.opts, accessKeyId, secretAccessKey);
  }


  protected async pages<P extends { IsTruncated?: boolean; Marker?: string }, T>(
    op: string,
    fetch: (marker: string | undefined) => Promise<P>,
    items: (page: P) => T[],
  ): Promise<T[]> {
    const out: T[] = [];
    let marker: string | undefined;
    do {
      const page = await this.call(op, () => fetch(marker));
      out.push(...items(page));
      marker = page.IsTruncated ? page.Marker : undefined;
    } while (marker);
    return out;
  }

  protected async call<T>(op: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (raw) {
      throw this.failure(op, raw);
    }
  }

  /** Like `call`, but "no such entity" is an answer (null), not an error. */
  protected async maybe<T>(op: string, run: () => Promise<T>): Promise<T | null> {
    try {
      return await run();
    } catch (raw) {
      if (isNoSuchEntity(raw)) return null;
      throw this.failure(op, raw);
    }
  }

  /** A removal whose target is already gone has done its job: idempotent revokes. */
  protected async gone(op: string, run: () => Promise<unknown>): Promise<void> {
    await this.maybe(op, run);
  }

  /** Like `call`, but NoSuchEntity is retried until `consistencyWaitMs` has passed: the entity may be brand new. */
  protected async callFresh<T>(op: string, run: () => Promise<T>): Promise<T> {
    let last: unknown;
    const done = await this.settle(async () => {
      try {
        return { value: await run() };
      } catch (raw) {
        if (!isNoSuchEntity(raw)) throw this.failure(op, raw);
        last = raw;
        return undefined;
      }
    });
    if (done === undefined) throw this.failure(op, last);
    return done.value;
  }

  /** Re-runs `probe` until it answers (anything but undefined) or `consistencyWaitMs` has passed; then undefined. */
  protected async settle<T>(probe: () => Promise<T | undefined>): Promise<T | undefined> {
    const deadline = Date.now() + (this.opts.consistencyWaitMs ?? 10_000);
    for (let delay = 200; ; delay = Math.min(delay * 2, 2_000)) {
      const answer = await probe();
      if (answer !== undefined) return answer;
      if (Date.now() + delay > deadline) return undefined;
      await sleep(delay);
    }
  }

  protected failure(op: string, raw: unknown): Error {
    return awsFailure(this.name, op, raw);
  }

  protected managedPath(path: string | undefined): boolean {
    return (path ?? '/').startsWith(this.opts.path);
  }

  protected requireManaged(entity: IamEntity, path: string | undefined): void {
    if (!this.managedPath(path)) {
      throw new ConnectorRefusal(
        FailureType.TargetRefused,
        `${this.name}: ${entity.kind} '${entity.name}' has path '${path ?? '/'}', outside the managed path ${this.opts.path}; the gateway does not touch it`,
      );
    }
  }
}

/**
 * Rebuilds an SDK error from AWS's code and message only (AWS never echoes a secret key, but the SDK error also
 * carries the raw response; nothing of the request travels on), classified: transient (a plain Error with
 * `transient: true`, which Temporal retries) or AWS's refusal (ConnectorRefusal, final). No HTTP status means the
 * request did not complete: connection refused or reset, a timeout, and also the SDK's own failures before sending
 * (missing credentials, TLS trouble); those are configuration faults a retry will not fix, but they are kept
 * transient so a fixed deployment resumes rather than failing every change that was under way.
 */
export function awsFailure(connector: string, op: string, raw: unknown): Error {
  const err = raw as AwsFailure;
  const code = (err.name && err.name !== 'Error' ? err.name : err.code) ?? 'Error';
  const status = err.$metadata?.httpStatusCode;
  const message = err.message ?? 'unknown error';
  const cause = Object.assign(new Error(message), { code, status });
  const text = `${connector}: ${op} failed: ${code}: ${message}`;
  if (status === undefined || status >= 500 || status === 429 || TRANSIENT_NAMES.has(code)) {
    return Object.assign(new Error(text, { cause }), { transient: true });
  }
  return new ConnectorRefusal(FailureType.TargetRefused, text, { cause });
}

export function isNoSuchEntity(raw: unknown): boolean {
  const err = raw as AwsFailure & { Code?: string };
  return err.name === 'NoSuchEntityException' || err.name === 'NoSuchEntity' || err.Code === 'NoSuchEntity';
}
