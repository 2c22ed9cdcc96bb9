import { readBackRecord } from '../../activities/connector-activities';
import type { IdentityRef } from '../../src/actions/identity-action';
import {
  capabilityProblems, type Connector, type DesiredAccount, GONE, type ObservedAccount, REVOKE_MODES, type RevokeMode, type TwoPhaseRotator, verifyAccount,
} from '../../src/connectors/connector';
import { expireGrants, POLICY_LEAVES, revokeIdentity, type RevokeOutcome, revokeTarget } from '../../src/connectors/revoke-policy';
import { isManaged } from '../../src/kinds/mover/move-plan';
import { capabilitiesOf } from '../../src/connectors/registry';
import { ConnectorRefusal, FailureType } from '../../src/connectors/connector-errors';
import { Secret } from '../../src/connectors/secret';
import { assertNoSecrets, EvidenceRefusal } from '../../src/evidence/redaction';

/**
 * The contract every connector meets, run against its real server. A connector's test file supplies a harness
 * (how to reach the target as the gateway and as an administrator) and calls `describeConnectorContract`.
 */
export interface ContractHarness {
  /** The connector under test, built from its least-privilege credential, with this leaver policy (default delete). */
  connector(revokeMode?: RevokeMode): Connector;
  /** A name the target's grammar accepts and that does not exist yet. */
  freshIdentity(): IdentityRef;
  /** At least two grants the least-privilege credential may hand out, in the grammar's canonical text. */
  grants: [string, string, ...string[]];
  /**
   * Creates an identity behind the gateway's back (as an administrator), holding a credential of every kind the
   * target keeps for it (a password, keys, a certificate): discovery must report it, and its read-back is what the
   * evidence store sees of a real account.
   */
  seedOutOfBand(identity: IdentityRef): Promise<void>;
  /**
   * Credentials as the target itself stores or hands them out for an identity seedOutOfBand made (password hashes,
   * secret keys, private keys, tokens), read as an administrator. The evidence store must refuse each, wherever it is
   * nested.
   */
  storedSecrets(identity: IdentityRef): Promise<Array<{ what: string; value: string }>>;
  /**
   * Revoke policies the connector declares it cannot carry out as written for freshIdentity()'s kind, each with the
   * reason it must give (RevokeDeviation). Absent: both policies are carried out as written.
   */
  revokeDeviations?: Partial<Record<RevokeMode, RegExp>>;
  /** Everything identity-related the target holds, read as an administrator: equal before and after = unchanged. */
  snapshot(): Promise<unknown>;
  /** The gateway's own identity in the target: discovery must mark it protected. */
  ownIdentityName: string;
  /** Target-specific hostile names, on top of the common ones. */
  hostileNames?: string[];
  /** Target-specific hostile grants, on top of the common ones. */
  hostileGrants?: string[];
  /** A connector pointed at an endpoint nothing listens on. */
  unreachable(): Connector;
  /** An operation the target itself refuses (not the grammar): must fail fast with the target's words as `cause`. */
  targetRefusal(): Promise<{ run: () => Promise<unknown>; causeMatches: RegExp }>;
  /**
   * The target accepts a request but does not apply it (e.g. a grant on an object that does not exist, a disabled
   * LDAP account still in its groups). Returns what the step wanted; the connector's inspect must disagree.
   */
  acceptedButNotApplied(): Promise<{ identity: IdentityRef; desired: DesiredAccount }>;
  /** Removes whatever a test left behind, as an administrator. Must not fail when nothing is there. */
  cleanup(identity: IdentityRef): Promise<void>;
  /** Whether the target holds credentials this connector rotates: its type must declare rotation exactly then. */
  rotates: boolean;
}

/** Names that break naive string building somewhere: SQL, LDAP DNs and filters, ACL rules, SCIM filters, paths, logs. */
export const COMMON_HOSTILE_NAMES = [
  "o'brien", 'a"b', 'a`b', 'a;b', 'a\nb', 'a\rb', 'a\u0000b', 'a b', ' lead', 'trail ', '*', 'a*', '%', 'a%b',
  'a)(uid=*', '*)(|(objectClass=*)', 'cn=x,dc=y', 'a,b', 'a=b', 'a\\b', '../a', 'a/b', '#a', '-a', '>pw', '~*', '+@all',
  'userName eq "x" or "1" eq "1"', 'x'.repeat(300), '\u202eevil', '',
];

/** Grants that try to widen or smuggle: every target must refuse all of them. */
export const COMMON_HOSTILE_GRANTS = [
  '', ' ', '*', 'ALL', 'x\ny', "a'; DROP USER root; --", '%', '../../etc', 'a\u0000b', 'x'.repeat(5000),
];

const isRefusal = (err: unknown, type?: FailureType): boolean => err instanceof ConnectorRefusal && (type === undefined || err.type === type);

/**
 * The network failure an error carries, in itself or its causes (a Node socket error code, or the text a client
 * library puts it in): what makes it transient, as opposed to any other error that merely is not a refusal.
 */
const NETWORK = /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE|ENOTFOUND|EAI_AGAIN)\b/;
function networkFailure(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 8; depth++) {
    const { code, message, errors } = e as { code?: unknown; message?: unknown; errors?: unknown };
    for (const text of [code, message]) if (typeof text === 'string' && NETWORK.test(text)) return text;
    // AggregateError (a connect tried on several addresses) carries its causes in `errors`.
    if (Array.isArray(errors)) for (const inner of errors) if (networkFailure(inner)) return networkFailure(inner);
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * A read-back recorded exactly as the verifyAndRecord activity records it, passed through the check the evidence
 * store runs before every append: it must be accepted.
 */
function expectRecordable(identity: IdentityRef, desired: DesiredAccount, observed: ObservedAccount, outcome: 'granted' | 'revoked', applied?: RevokeOutcome): void {
  const now = new Date().toISOString();
  const record = readBackRecord(
    {
      ticketKey: 'contract:CHG0000001', stepId: `${outcome}:contract`, outcome, actionKind: outcome === 'revoked' ? 'leaver' : 'joiner', system: 'contract',
      identity, desired, applied: applied?.detail ?? 'seeded out of band', eventReceivedAt: now, startedAt: now,
    },
    observed,
    verifyAccount(desired, observed),
    'contract-test',
    now,
  );
  expect(() => assertNoSecrets(record)).not.toThrow();
}

/** The places a stored credential could end up in an evidence record. */
function nestings(value: string): Array<[string, unknown]> {
  return [
    ['an observed attribute', { observedState: { exists: true, attributes: { note: value } } }],
    ['a list inside a list', { observedState: { grants: ['x', ['y', value]] } }],
    ['the applied detail text', { verification: { applied: `revoked; the target answered: ${value}` } }],
    ['an object key', { observedState: { attributes: { [value]: true } } }],
  ];
}

export function describeConnectorContract(title: string, h: () => ContractHarness): void {
  describe(`${title}: connector contract`, () => {
    const made: IdentityRef[] = [];
    const fresh = (): IdentityRef => {
      const id = h().freshIdentity();
      made.push(id);
      return id;
    };
    afterAll(async () => {
      for (const id of made) await h().cleanup(id);
    });

    it('provisions, reads back exactly what was asked, and a second provision changes nothing', async () => {
      const c = h().connector();
      const id = fresh();
      const [g1, g2] = h().grants;
      const first = await c.provision(id, [g1, g2]);
      expect(first.created).toBe(true);
      const observed = await c.inspect(id);
      expect(verifyAccount({ exists: true, mustHave: [g1, g2] }, observed)).toEqual({ verified: true, mismatches: [] });
      const again = await c.provision(id, [g1, g2]);
      expect(again.created).toBe(false);
      expect(await c.inspect(id)).toEqual(observed);
    });

    for (const mode of REVOKE_MODES) {
      describe(`leaver under the ${mode} policy`, () => {
        it(`declares what a ${mode} leaves behind: the policy's own state, or a deviation with its reason`, () => {
          const c = h().connector(mode);
          const target = revokeTarget(c.grammar, h().freshIdentity(), mode);
          const deviation = h().revokeDeviations?.[mode];
          if (deviation) {
            expect(target.deviation?.reason).toMatch(deviation);
            expect(target.leaves).not.toEqual(POLICY_LEAVES[mode]);
          } else {
            expect(target.deviation).toBeUndefined();
            expect(target.leaves).toEqual(POLICY_LEAVES[mode]);
          }
        });

        it(`a provisioned identity is left exactly as declared, verified by read-back; a second ${mode} changes nothing`, async () => {
          const c = h().connector(mode);
          const id = fresh();
          await c.provision(id, [h().grants[0]]);
          // What the step verifies comes from the policy, never from the connector's report of its work.
          const { leaves } = revokeTarget(c.grammar, id, mode);
          const before = await h().snapshot();
          const out = await revokeIdentity(c, id, mode);
          expect(out).toMatchObject({ changed: true, expected: leaves });
          // The change it claims is there for an administrator to see, and its own read-back agrees with the policy.
          const after = await h().snapshot();
          expect(after).not.toEqual(before);
          expect(verifyAccount(leaves, await c.inspect(id))).toEqual({ verified: true, mismatches: [] });
          const again = await revokeIdentity(c, id, mode);
          expect(again).toMatchObject({ changed: false, expected: leaves });
          // "Nothing changed" is true for the administrator too.
          expect(await h().snapshot()).toEqual(after);
          expect(verifyAccount(leaves, await c.inspect(id))).toEqual({ verified: true, mismatches: [] });
        });

        it(`an identity holding real credentials: its read-back before and after a ${mode} is accepted by the evidence secret check`, async () => {
          const c = h().connector(mode);
          const id = fresh();
          await h().seedOutOfBand(id);
          const before = await c.inspect(id);
          expect(before.exists).toBe(true);
          expectRecordable(id, { exists: true }, before, 'granted');
          const out = await revokeIdentity(c, id, mode);
          expect(out.expected).toEqual(revokeTarget(c.grammar, id, mode).leaves);
          const after = await c.inspect(id);
          expect(verifyAccount(out.expected, after)).toEqual({ verified: true, mismatches: [] });
          expectRecordable(id, out.expected, after, 'revoked', out);
        });

        it(`an identity that was never there: a ${mode} is done with the shared already-absent outcome, and its read-back verifies and is recordable`, async () => {
          const c = h().connector(mode);
          const id = fresh();
          const out = await revokeIdentity(c, id, mode);
          expect(out).toEqual({ changed: false, detail: expect.stringMatching(/ was already absent$/), expected: GONE });
          const after = await c.inspect(id);
          expect(verifyAccount(out.expected, after)).toEqual({ verified: true, mismatches: [] });
          expectRecordable(id, out.expected, after, 'revoked', out);
        });
      });
    }

    it('what the target stores as credentials (hashes, keys, tokens) is refused by the evidence secret check wherever it is nested', async () => {
      const id = fresh();
      await h().seedOutOfBand(id);
      const secrets = await h().storedSecrets(id);
      expect(secrets.length).toBeGreaterThan(0);
      for (const { what, value } of secrets) {
        for (const [where, record] of nestings(value)) {
          let err: unknown = null;
          try {
            assertNoSecrets(record);
          } catch (e) {
            err = e;
          }
          if (!(err instanceof EvidenceRefusal)) throw new Error(`${what}, placed in ${where}, was accepted by the evidence secret check`);
          expect(err.message).not.toContain(value);
        }
      }
    });

    it('takes back exactly the expiring grants and leaves the others', async () => {
      const c = h().connector();
      const id = fresh();
      const [g1, g2] = h().grants;
      await c.provision(id, [g1, g2]);
      const before = await h().snapshot();
      const out = await expireGrants(c, id, [g1], false, 'delete');
      expect(out).toMatchObject({ changed: true, expected: { exists: true, mustNotHave: [g1] } });
      const after = await h().snapshot();
      expect(after).not.toEqual(before);
      const observed = await c.inspect(id);
      expect(verifyAccount(out.expected, observed)).toEqual({ verified: true, mismatches: [] });
      expect(verifyAccount({ exists: true, mustHave: [g2] }, observed)).toEqual({ verified: true, mismatches: [] });
      expect((await expireGrants(c, id, [g1], false, 'delete')).changed).toBe(false);
      expect(await h().snapshot()).toEqual(after);
    });

    it('expiry of grants on an identity that is already gone is done: the read-back expects it absent and verifies', async () => {
      const c = h().connector();
      const id = fresh();
      const out = await expireGrants(c, id, [h().grants[0]], false, 'delete');
      expect(out).toEqual({ changed: false, detail: expect.stringMatching(/ was already absent$/), expected: GONE });
      expect(verifyAccount(out.expected, await c.inspect(id))).toEqual({ verified: true, mismatches: [] });
    });

    it('every revoking primitive (ungrant, disable, remove) reports an absent identity as absent and changes nothing', async () => {
      const c = h().connector();
      const id = fresh();
      const before = await h().snapshot();
      for (const [name, op] of [['ungrant', () => c.ungrant(id, [h().grants[0]])], ['disable', () => c.disable(id)], ['remove', () => c.remove(id)]] as const) {
        const out = await op();
        if (out.absent !== true || out.changed) throw new Error(`${name} of an absent identity answered ${JSON.stringify(out)}`);
      }
      expect(await h().snapshot()).toEqual(before);
    });

    it('recognises every grant it hands out, as inspect reports it, as one it manages (what a mover may change)', async () => {
      const c = h().connector();
      const id = fresh();
      await c.provision(id, h().grants);
      const observed = await c.inspect(id);
      // The harness's grants are in the grammar's canonical text already: what inspect reports.
      for (const g of h().grants) {
        expect(observed.grants).toContain(g);
        if (!isManaged(c.grammar, g)) throw new Error(`${g}, which the connector granted, is not recognised as a grant it manages`);
      }
      for (const hostile of COMMON_HOSTILE_GRANTS) expect(isManaged(c.grammar, hostile)).toBe(false);
    });

    it('discovers identities created behind its back, and marks its own credential protected', async () => {
      const id = fresh();
      await h().seedOutOfBand(id);
      const found = await h().connector().discover();
      expect(found.find((d) => d.name === id.name)).toBeDefined();
      expect(found.find((d) => d.name === id.name)?.protected).toBeFalsy();
      expect(found.find((d) => d.name === h().ownIdentityName)?.protected).toBe(true);
      expect(JSON.stringify(found)).not.toMatch(/password|secret/i);
    });

    it('refuses hostile identifiers with a clear error (or handles them literally), and the target is unchanged', async () => {
      const c = h().connector();
      const grammar = c.grammar;
      const before = await h().snapshot();
      for (const name of [...COMMON_HOSTILE_NAMES, ...(h().hostileNames ?? [])]) {
        const id: IdentityRef = { type: 'service_account', name };
        const problems = grammar.validateIdentity(id);
        if (problems.length > 0) {
          expect(problems[0]?.message.length).toBeGreaterThan(5);
          // Defence in depth: the live connector re-checks, even when called without the API in front of it.
          for (const op of [() => c.inspect(id), () => c.provision(id, [h().grants[0]]), () => c.disable(id), () => c.remove(id), () => c.ungrant(id, [h().grants[0]])]) {
            const err = await op().then(() => null, (e: unknown) => e);
            if (!isRefusal(err, FailureType.InvalidIdentity)) throw new Error(`hostile name ${JSON.stringify(name)} was not refused: ${String(err)}`);
          }
        } else {
          // Accepted by the grammar: it must reach the target as exactly this literal name and nothing else.
          made.push(id);
          await c.provision(id, [h().grants[0]]);
          expect((await c.inspect(id)).exists).toBe(true);
          expect((await c.discover()).filter((d) => d.name === name)).toHaveLength(1);
          await revokeIdentity(c, id, 'delete');
          await h().cleanup(id);
        }
      }
      const valid = fresh();
      for (const grant of [...COMMON_HOSTILE_GRANTS, ...(h().hostileGrants ?? [])]) {
        const parsed = grammar.parseGrant(grant);
        if (!('problem' in parsed)) throw new Error(`hostile grant ${JSON.stringify(grant.slice(0, 60))} was accepted as ${parsed.canonical.join(', ')}`);
        const err = await c.provision(valid, [grant]).then(() => null, (e: unknown) => e);
        if (!isRefusal(err)) throw new Error(`hostile grant ${JSON.stringify(grant.slice(0, 60))} reached the target: ${String(err)}`);
      }
      expect(await h().snapshot()).toEqual(before);
    });

    it('takes every grant back in its own canonical form: what the inventory or evidence holds can be asked for again as it stands', () => {
      const { grammar } = h().connector();
      for (const grant of h().grants) {
        const parsed = grammar.parseGrant(grant);
        if ('problem' in parsed) throw new Error(`${JSON.stringify(grant)} was refused: ${parsed.problem}`);
        for (const canonical of parsed.canonical) {
          const again = grammar.parseGrant(canonical);
          if ('problem' in again) throw new Error(`canonical ${JSON.stringify(canonical)} (of ${JSON.stringify(grant)}) was refused: ${again.problem}`);
          expect(again.canonical).toEqual([canonical]);
        }
      }
    });

    it('treats an unreachable target as transient (retried), not as a refusal', async () => {
      const c = h().unreachable();
      try {
        const err = await c.inspect(h().freshIdentity()).then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(Error);
        expect(isRefusal(err)).toBe(false);
        // Transient because the network failed, not merely because it is some other error.
        expect(networkFailure(err)).toBeDefined();
      } finally {
        await c.close();
      }
    });

    it("fails fast on the target's own refusal, keeping the target's message as cause", async () => {
      const { run, causeMatches } = await h().targetRefusal();
      const err = await run().then(() => null, (e: unknown) => e);
      expect(isRefusal(err, FailureType.TargetRefused)).toBe(true);
      const cause = (err as Error).cause as Error | undefined;
      expect(cause?.message ?? String(cause)).toMatch(causeMatches);
    });

    it('catches a request the target accepted but did not apply as unverified', async () => {
      const { identity, desired } = await h().acceptedButNotApplied();
      made.push(identity);
      const verdict = verifyAccount(desired, await h().connector().inspect(identity));
      expect(verdict.verified).toBe(false);
      expect(verdict.mismatches.length).toBeGreaterThan(0);
    });

    it("does exactly what its type declares (rotation, secret sink), no more and no less", () => {
      const c = h().connector();
      const declared = capabilitiesOf(c.grammar.type);
      // The API refuses rotate actions for types that do not declare rotation: the harness knows which these are.
      expect(Boolean(declared.rotation)).toBe(h().rotates);
      expect(capabilityProblems(declared, c)).toEqual([]);
    });

    it('rotates a credential: the new one authenticates, the old one stops, and nothing prints the value', async () => {
      const c = h().connector();
      const declared = capabilitiesOf(c.grammar.type);
      if (!h().rotates) {
        expect(declared.rotation).toBeUndefined();
        return;
      }
      // What the registry hands out for a declared capability (capabilityProblems above holds it to the declaration).
      const rotator = c as unknown as TwoPhaseRotator;
      const id = fresh();
      await c.provision(id, [h().grants[0]]);
      // Two-phase targets (several credentials at once) retire the others only once the new one is delivered.
      const rotate = async () => {
        const r = await rotator.rotate(id);
        if (declared.rotation === 'two-phase') await rotator.retireOthers(id, r.credentialId ?? '');
        return r;
      };
      const first = await rotate();
      const second = await rotate();
      expect(second.secret.fingerprint).not.toBe(first.secret.fingerprint);
      expect(await rotator.authenticates(id, second.secret)).toBe(true);
      expect(await rotator.authenticates(id, first.secret)).toBe(false);
      expect(await rotator.authenticates(id, Secret.generate())).toBe(false);
      const printed = JSON.stringify(second) + String(second.secret) + second.detail;
      expect(printed).not.toContain(second.secret.reveal());
      expect(printed).toContain(second.secret.fingerprint);
    });
  });
}
