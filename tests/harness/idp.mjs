#!/usr/bin/env node
// A real OpenID Connect provider for stackgate's tests: npm `oidc-provider` (panva, OpenID
// Certified) on 127.0.0.1, configured the way a production IdP would be for a confidential web
// client, so the login flow is tested against a strict implementation (PKCE enforced, client
// secret checked, codes single-use, ID tokens signed with RS256).
//
// Usage:
//   node tests/harness/idp.mjs --port 0 --users tests/harness/users.json --ready-file /tmp/idp.url
//
// Flags (environment fallbacks in brackets):
//   --port N             port to listen on, 0 = any free port            [STACKGATE_IDP_PORT, 0]
//   --users FILE         users JSON file                                 [STACKGATE_IDP_USERS,
//                                                                          tests/harness/users.json]
//   --ready-file PATH    once listening, write the issuer URL there      [STACKGATE_IDP_READY_FILE]
//   --client-id ID       the portal's client id                          [STACKGATE_IDP_CLIENT_ID, stackgate]
//   --client-secret S    the portal's client secret                      [STACKGATE_IDP_CLIENT_SECRET,
//                                                                          stackgate-test-secret]
//   --redirect-uri URI   an extra exact redirect URI (repeatable)        [STACKGATE_IDP_REDIRECT_URI]
//
// Login without a browser: GET the authorization URL -> 303 to /interaction/<uid> -> POST
// `login=<user>&password=<anything>` (form-urlencoded; `prompt=login` optional) to
// /interaction/<uid> -> 303 chain back to the client's redirect URI with `code` and `state`.
// With `login_hint=<user>` on the authorization request the form is skipped for a known user.
// Unknown users get 403. The IdP keeps an SSO session in its cookies: use a fresh cookie jar
// (or `prompt=login`) to switch users.
//
// On stdout it prints exactly one line when ready: `stackgate-idp ready <issuer>`.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    users: { type: 'string' },
    'ready-file': { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
  },
  strict: true,
});

const env = process.env;
const port = Number(args.port ?? env.STACKGATE_IDP_PORT ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  fail(`invalid --port ${args.port}`);
}
const usersFile = args.users ?? env.STACKGATE_IDP_USERS
  ?? path.join(path.dirname(new URL(import.meta.url).pathname), 'users.json');
const readyFile = args['ready-file'] ?? env.STACKGATE_IDP_READY_FILE;
const clientId = args['client-id'] ?? env.STACKGATE_IDP_CLIENT_ID ?? 'stackgate';
const clientSecret = args['client-secret'] ?? env.STACKGATE_IDP_CLIENT_SECRET ?? 'stackgate-test-secret';
const extraRedirectUris = [
  ...(args['redirect-uri'] ?? []),
  ...(env.STACKGATE_IDP_REDIRECT_URI ? [env.STACKGATE_IDP_REDIRECT_URI] : []),
];

function fail(message) {
  process.stderr.write(`stackgate-idp: ${message}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

/** @type {{login: string, sub: string, email?: string, name?: string, groups?: string[],
 *           amr?: string[], acr?: string}[]} */
let users;
try {
  const parsed = JSON.parse(fs.readFileSync(usersFile, 'utf8'));
  users = Array.isArray(parsed) ? parsed : parsed.users;
  if (!Array.isArray(users)) throw new Error('expected {"users": [...]} or an array');
  for (const u of users) {
    if (typeof u.login !== 'string' || typeof u.sub !== 'string' || !u.login || !u.sub) {
      throw new Error(`every user needs a non-empty "login" and "sub": ${JSON.stringify(u)}`);
    }
  }
} catch (err) {
  fail(`cannot read users file ${usersFile}: ${err.message}`);
}
const usersBySub = new Map(users.map((u) => [u.sub, u]));
const usersByLogin = new Map(users.map((u) => [u.login, u]));
if (usersBySub.size !== users.length || usersByLogin.size !== users.length) {
  fail('users file: duplicate "sub" or "login"');
}

// ---------------------------------------------------------------------------------------------
// Provider configuration
// ---------------------------------------------------------------------------------------------

// A fresh RS256 signing key per run: nothing signed by an earlier run verifies against this one.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `stackgate-test-${crypto.randomBytes(6).toString('hex')}`,
  alg: 'RS256',
  use: 'sig',
};

// The portal under test listens on random loopback ports. RFC 8252 §7.3 (loopback interface
// redirection) lets an authorization server accept any port on a loopback redirect URI; the
// provider implements that only for `application_type: native`, and our client is a
// confidential web client, so the rule is applied here by hand. It admits exactly
// `http://127.0.0.1:<port>/auth/callback` and `http://localhost:<port>/auth/callback` (no query,
// fragment, userinfo or other path) for our client, plus the exact URIs registered below.
const LOOPBACK_CALLBACK = /^http:\/\/(?:127\.0\.0\.1|localhost):([1-9][0-9]{0,4})\/auth\/callback$/;
function isLoopbackCallback(uri) {
  const m = typeof uri === 'string' ? LOOPBACK_CALLBACK.exec(uri) : null;
  return m !== null && Number(m[1]) <= 65535;
}

const registeredRedirectUris = [
  'http://127.0.0.1/auth/callback',
  'http://localhost/auth/callback',
  ...extraRedirectUris,
];

// What a user's sign-in reports: `amr` from the users file (default `["pwd"]`), and `acr` from
// the file or else derived from `amr`.
const ACR_PWD = 'urn:stackgate:acr:pwd';
const ACR_MFA = 'urn:stackgate:acr:mfa';
function authMethods(user) {
  const amr = Array.isArray(user.amr) && user.amr.length ? user.amr : ['pwd'];
  const acr = typeof user.acr === 'string' ? user.acr : (amr.includes('mfa') ? ACR_MFA : ACR_PWD);
  return { amr, acr };
}

const configuration = {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    client_name: 'stackgate (test)',
    application_type: 'web',
    redirect_uris: registeredRedirectUris,
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
    // auth_time in every ID token, so the portal can enforce recency for sensitive actions.
    require_auth_time: true,
  }],
  clientAuthMethods: ['client_secret_basic'],
  responseTypes: ['code'],
  // PKCE for every authorization request; oidc-provider 9 supports S256 only (plain is refused).
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // `amr` and `acr` in every ID token (not only when the client asks with the claims parameter
  // or acr_values), as IdPs that do MFA commonly send them: the portal's step-up checks read them.
  claims: {
    openid: ['sub', 'amr', 'acr'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  // Put the scope-requested claims (email, name, groups) in the ID token too, not only userinfo.
  conformIdTokenClaims: false,
  findAccount(ctx, sub) {
    const user = usersBySub.get(sub);
    if (!user) return undefined;
    return {
      accountId: user.sub,
      async claims() {
        return {
          sub: user.sub,
          email: user.email,
          email_verified: user.email !== undefined ? true : undefined,
          name: user.name,
          preferred_username: user.login,
          groups: user.groups ?? [],
        };
      },
    };
  },
  // First-party client: no consent screen. Grant whatever the (validated) request asked for.
  async loadExistingGrant(ctx) {
    const { client, session, params } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
    if (!grant) {
      grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    }
    if (params.scope) grant.addOIDCScope(String(params.scope));
    const requestedClaims = [...ctx.oidc.requestParamClaims];
    if (requestedClaims.length) grant.addOIDCClaims(requestedClaims);
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    // We serve our own minimal interactions below (unknown users rejected, no consent step).
    devInteractions: { enabled: false },
    introspection: { enabled: false },
    revocation: { enabled: false },
    userinfo: { enabled: true },
  },
  // Assurance levels the IdP reports in `acr`: level 2 for a sign-in with MFA, 1 otherwise.
  acrValues: [ACR_PWD, ACR_MFA],
  enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    IdToken: 600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
};

let provider;
let server;

async function main() {
  server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const issuer = `http://127.0.0.1:${server.address().port}`;

  provider = new Provider(issuer, configuration);
  const originalRedirectUriAllowed = provider.Client.prototype.redirectUriAllowed;
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
    if (originalRedirectUriAllowed.call(this, value)) return true;
    return this.clientId === clientId && isLoopbackCallback(value);
  };
  provider.on('server_error', (ctx, err) => {
    process.stderr.write(`stackgate-idp: server_error: ${err.stack ?? err}\n`);
  });

  const oidcHandler = provider.callback();
  server.on('request', (req, res) => {
    const url = new URL(req.url, issuer);
    // Test control: PUT /test/users/<login>/groups with a JSON array changes what the IdP reports
    // for that user from now on (ID tokens and userinfo), as a directory change would.
    const groupsMatch = /^\/test\/users\/([a-z0-9_-]+)\/groups$/.exec(url.pathname);
    if (groupsMatch && req.method === 'PUT') {
      setGroups(req, res, groupsMatch[1]).catch((err) => send(res, 400, err.message));
      return;
    }
    const match = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/login)?$/.exec(url.pathname);
    if (match) {
      interaction(req, res).catch((err) => {
        if (!res.headersSent) send(res, 400, `interaction failed: ${err.message}`);
        else res.end();
      });
      return;
    }
    oidcHandler(req, res);
  });

  if (readyFile) {
    const tmp = `${readyFile}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, issuer);
    fs.renameSync(tmp, readyFile);
  }
  process.stdout.write(`stackgate-idp ready ${issuer}\n`);
}

// ---------------------------------------------------------------------------------------------
// Interactions: a login form, no consent step.
// ---------------------------------------------------------------------------------------------

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt, params } = details;

  if (prompt.name === 'consent') {
    // Reached only if loadExistingGrant did not cover the request: grant it (first party).
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  if (prompt.name !== 'login') {
    send(res, 501, `unsupported prompt ${prompt.name}`);
    return;
  }

  if (req.method === 'GET') {
    const hinted = typeof params.login_hint === 'string' ? usersByLogin.get(params.login_hint) : undefined;
    if (hinted) {
      await finishLogin(req, res, hinted);
      return;
    }
    res.statusCode = 200;
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.end(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign in (test IdP)</title></head>
<body><form method="post" action="/interaction/${encodeURIComponent(uid)}">
<input type="hidden" name="prompt" value="login">
<label>Login <input name="login" autofocus required></label>
<label>Password <input name="password" type="password" required></label>
<button type="submit">Sign in</button></form></body></html>\n`);
    return;
  }
  if (req.method !== 'POST') {
    send(res, 405, 'method not allowed');
    return;
  }

  const form = new URLSearchParams(await readBody(req));
  if (form.has('prompt') && form.get('prompt') !== 'login') {
    send(res, 400, 'expected prompt=login');
    return;
  }
  const user = usersByLogin.get(form.get('login') ?? '');
  // Any password is accepted for a known user; an empty one is not.
  if (!user || !form.get('password')) {
    send(res, 403, 'unknown user or missing password');
    return;
  }
  await finishLogin(req, res, user);
}

async function finishLogin(req, res, user) {
  await provider.interactionFinished(req, res, {
    login: { accountId: user.sub, ...authMethods(user) },
  }, { mergeWithLastSubmission: false });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 64 * 1024) {
        reject(new Error('body too large'));
        req.destroy();
      }
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

async function setGroups(req, res, login) {
  const user = usersByLogin.get(login);
  if (!user) return send(res, 404, `unknown user ${login}`);
  const groups = JSON.parse(await readBody(req));
  if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string')) {
    return send(res, 400, 'expected a JSON array of group names');
  }
  user.groups = groups;
  return send(res, 204, '');
}

function send(res, status, message) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(`${message}\n`);
}

// ---------------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------------

function shutdown(signal) {
  process.stderr.write(`stackgate-idp: ${signal}, shutting down\n`);
  if (readyFile) {
    try { fs.unlinkSync(readyFile); } catch { /* already gone */ }
  }
  if (!server) process.exit(0);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

main().catch((err) => fail(err.stack ?? String(err)));
