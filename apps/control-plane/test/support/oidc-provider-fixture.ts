import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

/**
 * A real OpenID provider (`oidc-provider`) on a loopback port, for the sign-in tests, behind a
 * small forwarding proxy that can tamper with the token endpoint's answer (a forged ID token
 * cannot be produced otherwise: it travels server to server). The issuer is the proxy's URL, so
 * the control plane and the test driver both talk through it.
 *
 * Accounts are test fixtures: `accounts[id]` holds the claims the provider asserts for `id`.
 * `authorize` plays the browser: it follows the provider's redirects, logs the account in and
 * consents through the provider's own (development) interaction forms, and returns the URL the
 * provider redirects to — the control plane's callback with `code`, `state` and `iss`.
 */
export interface TestAccount {
  email: string;
  email_verified: boolean;
  name?: string;
}

export interface OidcProviderFixture {
  issuer: string;
  clientId: string;
  clientSecret: string;
  accounts: Map<string, TestAccount>;
  /** when set, the token endpoint's id_token is altered on its way back (signature no longer matches) */
  tamperIdToken: boolean;
  authorize(authorizationUrl: string, accountId: string): Promise<string>;
  close(): Promise<void>;
}

const listen = (server: Server): Promise<number> =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));

export async function startOidcProvider(options: { redirectUri: string }): Promise<OidcProviderFixture> {
  const clientId = 'arca-dashboard';
  const clientSecret = 'test-client-secret-0123456789abcdef';
  const accounts = new Map<string, TestAccount>();
  let target = 0;
  const fixture = { tamperIdToken: false } as OidcProviderFixture;

  const proxy = createServer((req, res) => {
    const upstream = httpRequest({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers }, (up) => {
      const chunks: Buffer[] = [];
      up.on('data', (c: Buffer) => chunks.push(c));
      up.on('end', () => {
        let body = Buffer.concat(chunks);
        if (fixture.tamperIdToken && req.url?.startsWith('/token') && up.statusCode === 200) {
          const json = JSON.parse(body.toString()) as { id_token: string };
          const [header, payload, signature] = json.id_token.split('.');
          const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
          claims.sub = 'someone-else';
          json.id_token = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
          body = Buffer.from(JSON.stringify(json));
        }
        const headers = { ...up.headers, 'content-length': String(body.length) };
        res.writeHead(up.statusCode ?? 502, headers).end(body);
      });
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  const proxyPort = await listen(proxy);
  const issuer = `http://127.0.0.1:${proxyPort}`;

  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId, client_secret: clientSecret, redirect_uris: [options.redirectUri],
      grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
    }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    findAccount: (_ctx, id) => {
      const account = accounts.get(id);
      return account == null ? undefined : { accountId: id, claims: () => ({ sub: id, ...account }) };
    },
    pkce: { required: () => true },
    cookies: { keys: ['arca-test-cookie-key-0123456789'] },
    // quiet: the provider otherwise prints development warnings for every one of these
    renderError: (ctx, out) => { ctx.type = 'json'; ctx.body = out; },
  });
  const handle = provider.callback();
  const server = createServer((req, res) => void handle(req, res));
  target = await listen(server);

  return Object.assign(fixture, {
    issuer,
    clientId,
    clientSecret,
    accounts,
    async authorize(authorizationUrl: string, accountId: string): Promise<string> {
      const jar = new Map<string, string>();
      let url = authorizationUrl;
      let body: string | undefined;
      for (let step = 0; step < 20; step++) {
        const response = await fetch(url, {
          method: body == null ? 'GET' : 'POST',
          redirect: 'manual',
          headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '), ...(body == null ? {} : { 'content-type': 'application/x-www-form-urlencoded' }) },
          body,
        });
        for (const cookie of response.headers.getSetCookie()) {
          const [pair] = cookie.split(';');
          const eq = pair!.indexOf('=');
          jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
        }
        const location = response.headers.get('location');
        if (response.status >= 300 && response.status < 400 && location != null) {
          const next = new URL(location, url).href;
          await response.arrayBuffer();
          if (next.startsWith(options.redirectUri)) return next;
          [url, body] = [next, undefined];
          continue;
        }
        const html = await response.text();
        const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
        if (response.status !== 200 || prompt == null) throw new Error(`unexpected answer ${response.status} from the provider at ${url}: ${html.slice(0, 500)}`);
        body = prompt === 'login' ? new URLSearchParams({ prompt, login: accountId, password: 'unused' }).toString() : new URLSearchParams({ prompt }).toString();
      }
      throw new Error('too many redirects at the provider');
    },
    async close() {
      const closed = Promise.all([new Promise((r) => server.close(r)), new Promise((r) => proxy.close(r))]);
      server.closeAllConnections();
      proxy.closeAllConnections();
      await closed;
    },
  });
}
