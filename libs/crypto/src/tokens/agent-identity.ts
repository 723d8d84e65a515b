import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

/**
 * An agent's identity: an Ed25519 key pair generated on the agent, whose private half never
 * leaves it. The control plane binds job tokens to the public key's RFC 7638 thumbprint
 * (`cnf.jkt`) and the key proxy demands a proof signed by the private key on every request.
 */
export interface Ed25519PublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
}

export interface AgentIdentity {
  privateKey: KeyObject;
  publicJwk: Ed25519PublicJwk;
  /** RFC 7638 SHA-256 thumbprint of publicJwk, base64url */
  thumbprint: string;
}

export function generateAgentIdentity(): AgentIdentity {
  const { privateKey } = generateKeyPairSync('ed25519');
  return agentIdentityFromPrivateKey(privateKey);
}

export function agentIdentityFromPrivateKey(privateKey: KeyObject): AgentIdentity {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new Error('an agent key must be an Ed25519 private key');
  }
  const publicJwk = publicJwkOf(createPublicKey(privateKey));
  return { privateKey, publicJwk, thumbprint: jwkThumbprint(publicJwk) };
}

/** Parse a PKCS#8 PEM private key (as written by exportAgentPrivateKey). */
export function agentIdentityFromPem(pem: string | Buffer): AgentIdentity {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new Error('the agent key is not a PEM-encoded private key', { cause: err });
  }
  return agentIdentityFromPrivateKey(key);
}

export function exportAgentPrivateKey(identity: AgentIdentity): string {
  return identity.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export function publicJwkOf(publicKey: KeyObject): Ed25519PublicJwk {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('not an Ed25519 public key');
  return { kty: 'OKP', crv: 'Ed25519', x: jwk.x };
}

/** RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace. */
export function jwkThumbprint(jwk: Ed25519PublicJwk): string {
  const canonical = `{"crv":"${jwk.crv}","kty":"${jwk.kty}","x":"${jwk.x}"}`;
  return createHash('sha256').update(canonical).digest('base64url');
}
