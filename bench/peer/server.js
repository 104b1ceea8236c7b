// The peer of the side-by-side benchmark: node oidc-provider (pinned in package.json) with
// one confidential client allowed client_credentials, an RSA and an EC signing key like ours,
// production mode, its default in-memory adapter. PORT and BENCH_SECRET come from bench/run.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const key = (type, options) =>
  generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' });
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: 'bench',
      client_secret: process.env.BENCH_SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'scim:users',
    },
  ],
  scopes: ['scim:users'],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
  },
  cookies: { keys: [process.env.BENCH_SECRET] },
  jwks: {
    keys: [
      { ...key('rsa', { modulusLength: 2048 }), alg: 'RS256', use: 'sig', kid: 'rsa' },
      { ...key('ec', { namedCurve: 'P-256' }), alg: 'ES256', use: 'sig', kid: 'ec' },
    ],
  },
});
provider.listen(port, '127.0.0.1', () => console.log(`peer listening on ${port}`));
