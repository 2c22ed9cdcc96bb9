import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

export type IssuerKey = Awaited<ReturnType<typeof generateKeyPair>> & { kid: string; alg: 'RS256' | 'ES256' | 'EdDSA' };

/**
 * A real OIDC issuer as far as a resource server can tell: a discovery document and a JWKS over HTTP, and keys
 * made by jose that sign tokens. Only the public halves are published.
 */
export interface TestIssuer {
  url: string;
  keys: IssuerKey[];
  /** Requests seen, by path, to show where the gateway looked for keys. */
  requests: string[];
  sign(claims: JWTPayload, opts?: { key?: IssuerKey; issuer?: string; audience?: string; expiresIn?: string | number }): Promise<string>;
  close(): Promise<void>;
}

export async function newKey(alg: IssuerKey['alg'], kid: string): Promise<IssuerKey> {
  const pair = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  return { ...pair, kid, alg };
}

export async function startTestIssuer(): Promise<TestIssuer> {
  const keys = [await newKey('RS256', 'rsa-1'), await newKey('ES256', 'ec-1'), await newKey('EdDSA', 'ed-1')];
  const jwks: { keys: JWK[] } = { keys: [] };
  for (const k of keys) jwks.keys.push({ ...(await exportJWK(k.publicKey)), kid: k.kid, alg: k.alg, use: 'sig' });
  const requests: string[] = [];
  let url = '';
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const send = (body: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/.well-known/openid-configuration') return send({ issuer: url, jwks_uri: `${url}/protocol/openid-connect/certs` });
    if (req.url === '/protocol/openid-connect/certs') return send(jwks);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    keys,
    requests,
    async sign(claims, opts = {}) {
      const key = opts.key ?? (keys[0] as IssuerKey);
      return new SignJWT(claims)
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
        .setIssuer(opts.issuer ?? url)
        .setAudience(opts.audience ?? 'changegate')
        .setIssuedAt()
        .setExpirationTime(opts.expiresIn ?? '5m')
        .sign(key.privateKey);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
