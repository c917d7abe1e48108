// Verifies an access token of the authorization server with the jose
// library, as a Node.js resource server would: keys from the issuer's
// JWKS, then signature, typ, iss, aud and lifetime checks (RFC 9068 §4).
//
// Environment:
//   ISSUER    issuer URL of the server (required)
//   TOKEN     access token that must verify (required)
//   TAMPERED  token that must be rejected (optional)
//   AUDIENCE  required aud value (default quanux-api)
//
// Exit status: 0 when TOKEN verifies and TAMPERED, if set, is rejected;
// 1 when TOKEN is rejected; 2 when TAMPERED verifies; 3 on a usage error.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const { ISSUER: issuer, TOKEN: token, TAMPERED: tampered } = process.env;
const audience = process.env.AUDIENCE || 'quanux-api';
if (!issuer || !token) {
  console.error('verify.mjs: set ISSUER and TOKEN (and optionally TAMPERED, AUDIENCE)');
  process.exit(3);
}

const jwks = createRemoteJWKSet(new URL(issuer + '/.well-known/jwks.json'));
const options = {
  issuer,
  audience,
  typ: 'at+jwt',
  algorithms: ['RS256', 'ES256', 'EdDSA'],
  requiredClaims: ['exp', 'iat', 'sub', 'client_id', 'jti'],
};

try {
  const { payload, protectedHeader } = await jwtVerify(token, jwks, options);
  console.log(JSON.stringify({ token: 'valid', alg: protectedHeader.alg, kid: protectedHeader.kid, sub: payload.sub, scope: payload.scope }));
} catch (err) {
  console.error(`TOKEN rejected: ${err.code || err.name}: ${err.message}`);
  process.exit(1);
}

if (tampered) {
  try {
    await jwtVerify(tampered, jwks, options);
    console.error('TAMPERED verified, but it must be rejected');
    process.exit(2);
  } catch (err) {
    console.log(JSON.stringify({ tampered: 'rejected', code: err.code || err.name }));
  }
}
