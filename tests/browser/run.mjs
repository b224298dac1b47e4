#!/usr/bin/env node
// The browser test: one request's whole journey through the portal's pages in headless Chromium.
//
// alice (payments requester) signs in through the IdP's form, opens "New environment", sees the
// inline field errors htmx swaps in as she types, fixes them, previews (resources, policy checks)
// and submits; bob (payments approver) finds the request in his inbox, reads the rendered template
// and approves; the deployment panel then updates itself (htmx polling) until the stack is
// deployed with a VpcId output. On every page: no console errors (CSP violations land there),
// a <title>, every form control labelled, no duplicate ids.
//
// Needs the harness's components: STACKGATE_TEST_AWS_ENDPOINT (moto launcher) and
// STACKGATE_TEST_OIDC_ISSUER (tests/harness/idp.mjs), plus a built `stackgate` binary in
// ${CARGO_TARGET_DIR:-target}/debug. Starts its own portal on a free loopback port with a fresh
// SQLite database. Writes artifacts/screenshots/*.png and artifacts/browser/portal.log.
// Last line: `browser: N passed, M failed`; exit status 0 only when nothing failed.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOTS = path.join(ROOT, 'artifacts', 'screenshots');
const LOG_DIR = path.join(ROOT, 'artifacts', 'browser');
const CHROMIUM = process.env.STACKGATE_TEST_CHROMIUM || '/usr/bin/chromium';
const TOTAL_BUDGET_MS = 150_000; // hard stop; the journey normally takes well under a minute
const DEPLOY_TIMEOUT_MS = 90_000;
const ACTION_TIMEOUT_MS = 15_000;
const T0 = Date.now();

// ---------------------------------------------------------------------------------------------
// Small helpers

function die(message) {
  console.error(`browser: ${message}`);
  console.log('browser: 0 passed, 1 failed');
  process.exit(2);
}

class CheckError extends Error {}
function check(cond, message) {
  if (!cond) throw new CheckError(message);
}

const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function tail(file, lines = 30) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------------
// Environment

const AWS_ENDPOINT = process.env.STACKGATE_TEST_AWS_ENDPOINT;
const OIDC_ISSUER = process.env.STACKGATE_TEST_OIDC_ISSUER;
if (!AWS_ENDPOINT || !OIDC_ISSUER) {
  die(
    'STACKGATE_TEST_AWS_ENDPOINT and STACKGATE_TEST_OIDC_ISSUER must be set (the moto launcher ' +
      'and the test IdP started by tests/harness/run-tests.sh, or by hand: see tests/harness/lib.sh)',
  );
}
const TARGET_DIR = process.env.CARGO_TARGET_DIR
  ? path.resolve(ROOT, process.env.CARGO_TARGET_DIR)
  : path.join(ROOT, 'target');
const BINARY = path.join(TARGET_DIR, 'debug', 'stackgate');
if (!fs.existsSync(BINARY)) die(`no portal binary at ${BINARY}: run \`cargo build --bin stackgate\` first`);
if (!fs.existsSync(CHROMIUM)) die(`no Chromium at ${CHROMIUM}: apt-get install -y chromium`);

fs.mkdirSync(SHOTS, { recursive: true });
fs.mkdirSync(LOG_DIR, { recursive: true });
// Only the files this test writes, so a stale image is never mistaken for this run's.
const SHOT_NAMES = [
  '01-login.png', '02-home-alice.png', '03-form-errors.png', '04-preview.png',
  '05-request-pending.png', '06-inbox-bob.png', '07-request-approve.png', '08-deployed.png',
  '09-home-deployed.png', 'failure.png',
];
for (const f of SHOT_NAMES) fs.rmSync(path.join(SHOTS, f), { force: true });

// ---------------------------------------------------------------------------------------------
// Steps: each one a group of assertions; the first failure stops the journey.

let passed = 0;
let failed = 0;
let currentPage = null; // the page a failure screenshot is taken of
const notes = new Set();

async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`  ok   ${name} (${secs(Date.now() - t)})`);
  } catch (e) {
    failed += 1;
    console.log(`  FAIL ${name} (${secs(Date.now() - t)})`);
    console.error(`browser: step "${name}" failed: ${e instanceof CheckError ? e.message : e.stack || e}`);
    if (currentPage && !currentPage.isClosed()) {
      const file = path.join(SHOTS, 'failure.png');
      await currentPage.screenshot({ path: file, ...SHOT_OPTIONS }).catch(() => {});
      console.error(`browser: page at failure: ${currentPage.url()} (screenshot ${path.relative(ROOT, file)})`);
    }
    e.counted = true;
    throw e;
  }
}

// caret: 'initial' — Playwright's default caret hiding leaves `style=""` on every input, which
// htmx then copies onto the swapped-in form (settle), and the portal's CSP rightly blocks that.
const SHOT_OPTIONS = { fullPage: true, caret: 'initial', animations: 'allow' };
async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name), ...SHOT_OPTIONS });
}

// ---------------------------------------------------------------------------------------------
// The portal

let portal = null;
let portalExited = null;
let tmpDir = null;
const portalLog = path.join(LOG_DIR, 'portal.log');

async function startPortal() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stackgate-browser-'));
  const logFd = fs.openSync(portalLog, 'w');
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    STACKGATE_LISTEN: `127.0.0.1:${port}`,
    STACKGATE_PUBLIC_URL: base,
    STACKGATE_DATABASE_URL: `sqlite://${path.join(tmpDir, 'browser.db')}`,
    STACKGATE_CONFIG: path.join(ROOT, 'config', 'demo.toml'),
    STACKGATE_OIDC_ISSUER: OIDC_ISSUER,
    STACKGATE_OIDC_CLIENT_ID: 'stackgate',
    STACKGATE_OIDC_CLIENT_SECRET: 'stackgate-test-secret',
    STACKGATE_AWS_ENDPOINT_URL: AWS_ENDPOINT,
    STACKGATE_WORKER_POLL_MS: '200',
    STACKGATE_LOG_FORMAT: 'pretty',
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: 'us-east-1',
  };
  if (process.env.STACKGATE_LOG) env.STACKGATE_LOG = process.env.STACKGATE_LOG;
  portal = spawn(BINARY, ['serve'], { cwd: ROOT, env, stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  portalExited = new Promise((resolve) => portal.once('exit', (code, signal) => resolve({ code, signal })));
  let exited = null;
  portalExited.then((x) => { exited = x; });

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      throw new CheckError(`the portal exited (${exited.code ?? exited.signal}) before it was ready:\n${tail(portalLog)}`);
    }
    try {
      const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return base;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new CheckError(`GET /readyz was not 200 within 30 s:\n${tail(portalLog)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function stopPortal() {
  if (!portal || portal.exitCode !== null || portal.signalCode !== null) return;
  portal.kill('SIGTERM');
  const done = await Promise.race([portalExited, new Promise((r) => setTimeout(() => r(null), 5000))]);
  if (!done) {
    portal.kill('SIGKILL');
    await portalExited;
  }
}

// ---------------------------------------------------------------------------------------------
// Per-page instrumentation and checks

// Runs in every page before its scripts: CSP violations and htmx errors become console errors
// (which the test collects), and the deployment panel's swaps are counted.
const INIT_SCRIPT = () => {
  window.__sg = { panelSwaps: 0 };
  document.addEventListener('securitypolicyviolation', (e) => {
    const on = e.target instanceof Element ? ` on ${e.target.outerHTML.slice(0, 100)}` : '';
    console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}${on}`);
  });
  for (const name of ['htmx:responseError', 'htmx:sendError', 'htmx:swapError', 'htmx:targetError', 'htmx:onLoadError']) {
    document.addEventListener(name, (e) => console.error(`${name} on ${e.detail?.requestConfig?.path ?? e.detail?.pathInfo?.requestPath ?? '?'}`));
  }
  document.addEventListener('htmx:afterSwap', (e) => {
    if (e.detail?.elt?.id === 'deployment-panel' || e.target?.id === 'deployment-panel') window.__sg.panelSwaps += 1;
  });
};

/** A browser context for one user, with a console/network error log. */
async function newUser(browser, base, login) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(ACTION_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
  await context.addInitScript(INIT_SCRIPT);
  const page = await context.newPage();
  const errors = [];
  const hx = { inflight: 0, last: Date.now() }; // htmx requests of the request form
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    // The browser's own request for /favicon.ico is not the page's doing; noted once, not failed.
    const from = msg.location()?.url ?? '';
    if (/^https?:\/\/[^/]+\/favicon\.ico$/.test(from)) {
      const origin = new URL(from).origin;
      if (!notes.has(origin)) {
        const who = origin === base ? 'the portal' : 'the IdP';
        console.log(`       note: GET ${origin}/favicon.ico is 404 (${who} serves no icon); ignored`);
      }
      notes.add(origin);
      return;
    }
    errors.push(`console error on ${page.url()}: ${msg.text()}${msg.location()?.url ? ` [${msg.location().url}]` : ''}`);
  });
  page.on('pageerror', (err) => errors.push(`uncaught exception on ${page.url()}: ${err.message}`));
  page.on('response', (res) => {
    if (res.url().startsWith(base) && res.status() >= 500) {
      errors.push(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
    }
  });
  const isFormHx = (req) => req.url().startsWith(`${base}/requests/new/preview`) && req.headers()['hx-request'];
  page.on('request', (req) => { if (isFormHx(req)) { hx.inflight += 1; hx.last = Date.now(); } });
  const done = (req) => { if (isFormHx(req)) { hx.inflight = Math.max(0, hx.inflight - 1); hx.last = Date.now(); } };
  page.on('requestfinished', done);
  page.on('requestfailed', done);
  return { login, context, page, errors, hx };
}

/**
 * Waits until the request form is quiet: no htmx request in flight, none started or finished
 * for 750 ms (longer than the form's 600 ms input delay, so a delayed trigger has fired), and no
 * swap settling. Not a fixed sleep: it returns as soon as the form has been quiet that long.
 */
async function settle(user, timeout = ACTION_TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  user.hx.last = Math.max(user.hx.last, Date.now()); // the action just taken counts as activity
  for (;;) {
    const quiet = user.hx.inflight === 0 && Date.now() - user.hx.last > 750;
    if (quiet) {
      const swapping = await user.page.evaluate(
        () => document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling') !== null,
      );
      if (!swapping) return;
    }
    if (Date.now() > deadline) throw new CheckError('the request form did not settle (htmx request still running)');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The checks every page gets: title, labels, unique ids, no errors so far. */
async function pageChecks(user, what) {
  const { page } = user;
  const info = await page.evaluate(() => {
    const title = document.querySelector('head > title')?.textContent?.trim() ?? '';
    const controls = [...document.querySelectorAll('input, select, textarea')];
    const unlabelled = controls
      .filter((el) => !['hidden', 'submit', 'button', 'reset', 'image'].includes((el.getAttribute('type') || '').toLowerCase()))
      .filter((el) => {
        const byLabel = [...(el.labels ?? [])].some((l) => l.textContent.trim() !== '');
        const byAria = (el.getAttribute('aria-label') ?? '').trim() !== '';
        const byRef = (el.getAttribute('aria-labelledby') ?? '')
          .split(/\s+/)
          .some((id) => id && document.getElementById(id)?.textContent.trim());
        return !(byLabel || byAria || byRef);
      })
      .map((el) => el.outerHTML.slice(0, 120));
    const ids = [...document.querySelectorAll('[id]')].map((el) => el.id);
    const dupIds = [...new Set(ids.filter((id, i) => ids.indexOf(id) !== i))];
    const buttonsWithoutName = [...document.querySelectorAll('button, a[href]')]
      .filter((el) => !(el.textContent.trim() || el.getAttribute('aria-label')))
      .map((el) => el.outerHTML.slice(0, 120));
    return { title, unlabelled, dupIds, buttonsWithoutName, lang: document.documentElement.lang };
  });
  check(info.title !== '', `${what}: the page has no <title>`);
  check(info.unlabelled.length === 0, `${what}: form controls without a label: ${info.unlabelled.join(' | ')}`);
  check(info.dupIds.length === 0, `${what}: duplicate ids: ${info.dupIds.join(', ')}`);
  check(info.buttonsWithoutName.length === 0, `${what}: buttons/links without text: ${info.buttonsWithoutName.join(' | ')}`);
  check(user.errors.length === 0, `${what}: ${user.errors.join('\n  ')}`);
  return info;
}

async function text(locator) {
  return ((await locator.textContent()) ?? '').replace(/\s+/g, ' ').trim();
}

// ---------------------------------------------------------------------------------------------
// The journey

async function signIn(user, base, idpOrigin, name) {
  const { page } = user;
  await page.goto(`${base}/login`);
  await pageChecks(user, `${user.login}: /login`);
  const button = page.getByRole('link', { name: 'Sign in with SSO' });
  check(await button.isVisible(), 'no "Sign in with SSO" button on /login');
  if (user.login === 'alice') await shot(page, '01-login.png');
  await button.click();
  await page.waitForURL((u) => u.origin === idpOrigin);
  await page.locator('input[name="login"]').fill(user.login);
  await page.locator('input[name="password"]').fill('any-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((u) => u.origin === base && u.pathname === '/');
  const who = await text(page.locator('header .who'));
  check(who === name, `${user.login}: header shows "${who}", expected "${name}"`);
  await pageChecks(user, `${user.login}: home`);
}

async function main() {
  const idpOrigin = new URL(OIDC_ISSUER).origin;
  let base;
  let browser;
  const users = [];
  const suffix = crypto.randomBytes(3).toString('hex');
  const envName = `web-${suffix}`;
  let requestUrl;
  let requestId;

  try {
    await step('portal starts (GET /readyz 200)', async () => {
      base = await startPortal();
    });

    await step('Chromium launches', async () => {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--no-sandbox', '--disable-gpu', '--disable-background-networking',
          '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic',
        ],
      });
    });

    const alice = await newUser(browser, base, 'alice');
    const bob = await newUser(browser, base, 'bob');
    users.push(alice, bob);

    // --- alice: sign in, home --------------------------------------------------------------
    currentPage = alice.page;
    await step('alice signs in through the IdP form and lands on home', async () => {
      await signIn(alice, base, idpOrigin, 'Alice Anders');
      const h1 = await text(alice.page.locator('main h1'));
      check(h1.includes('payments'), `home heading "${h1}" does not name her team payments`);
      check(await alice.page.getByRole('link', { name: 'New environment' }).isVisible(), 'no "New environment" link on home');
      check(await alice.page.getByRole('heading', { name: 'Environments' }).isVisible(), 'no Environments section on home');
      await shot(alice.page, '02-home-alice.png');
    });

    // --- alice: the form, inline errors ------------------------------------------------------
    await step('alice opens "New environment": the network form', async () => {
      const { page } = alice;
      await page.getByRole('link', { name: 'New environment' }).click();
      await page.waitForURL((u) => u.pathname === '/requests/new');
      const h1 = await text(page.locator('main h1'));
      check(h1.startsWith('New request: Three-tier network'), `form heading is "${h1}"`);
      for (const id of ['account_id', 'region', 'name', 'param-vpc-cidr', 'param-az-count']) {
        check(await page.locator(`#${id}`).count() === 1, `the form has no #${id}`);
      }
      check(await page.getByRole('button', { name: 'Preview' }).isVisible(), 'no Preview button');
      check(await page.getByRole('button', { name: 'Submit for approval' }).isVisible(), 'no "Submit for approval" button');
      await pageChecks(alice, 'new request form');
    });

    await step('alice picks the dev account and eu-west-2 (form re-renders via htmx)', async () => {
      const { page } = alice;
      const devValue = await page.locator('#account_id option', { hasText: /^dev \(dev\)/ }).getAttribute('value');
      check(devValue, 'no "dev (dev)" option in the account select');
      await page.selectOption('#account_id', devValue);
      await settle(alice);
      await page.selectOption('#region', 'eu-west-2');
      await settle(alice);
      check(await page.locator('#account_id').inputValue() === devValue, 'the account choice did not survive the swap');
      check(await page.locator('#region').inputValue() === 'eu-west-2', 'the region choice did not survive the swap');
      await pageChecks(alice, 'form after account/region');
    });

    await step('bad name and bad CIDR show inline field errors next to their fields', async () => {
      const { page } = alice;
      await page.locator('#name').fill('Bad Name');
      await settle(alice);
      await page.locator('#param-vpc-cidr').fill('10.0.0.0/8');
      await settle(alice);
      const nameError = page.locator('#name-error');
      const cidrError = page.locator('#param-vpc-cidr-error');
      await nameError.waitFor({ state: 'visible' });
      await cidrError.waitFor({ state: 'visible' });
      for (const [input, err] of [['#name', '#name-error'], ['#param-vpc-cidr', '#param-vpc-cidr-error']]) {
        const placed = await page.evaluate(([i, e]) => {
          const field = document.querySelector(i)?.closest('.field');
          return {
            sameField: !!field && field.contains(document.querySelector(e)),
            invalidClass: !!field && field.classList.contains('invalid'),
            ariaInvalid: document.querySelector(i)?.getAttribute('aria-invalid'),
            describedBy: (document.querySelector(i)?.getAttribute('aria-describedby') ?? '').split(/\s+/).includes(e.slice(1)),
            value: document.querySelector(i)?.value,
          };
        }, [input, err]);
        check(placed.sameField, `${err} is not inside the field of ${input}`);
        // While typing only the feedback is refreshed (the input itself is never replaced, so
        // nothing typed is lost); the field is marked invalid through CSS :has() on its error.
        check(await page.evaluate((e) => getComputedStyle(document.querySelector(e)).display !== 'none', err), `${err} is hidden`);
        check(placed.describedBy, `${input} is not aria-describedby ${err}`);
        check(placed.value === (input === '#name' ? 'Bad Name' : '10.0.0.0/8'), `${input} lost what was typed (now "${placed.value}")`);
      }
      const nameMsg = await text(nameError);
      const cidrMsg = await text(cidrError);
      check(nameMsg.length > 0 && cidrMsg.length > 0, 'an inline error is empty');
      console.log(`       name error: "${nameMsg}"`);
      console.log(`       CIDR error: "${cidrMsg}"`);
      check(await page.getByRole('button', { name: 'Submit for approval' }).isDisabled(), '"Submit for approval" is enabled while fields are invalid');
      check(await page.locator('#preview-h').count() === 0, 'a preview is shown for an invalid request');
      await pageChecks(alice, 'form with errors');
      await shot(page, '03-form-errors.png');
    });

    await step('fixing both fields clears the errors and shows the live preview', async () => {
      const { page } = alice;
      // Type the name in two bursts with a pause longer than the form's 500 ms check delay, so a
      // check is in flight while the second burst is typed: nothing typed may be lost.
      await page.locator('#name').fill('');
      await page.locator('#name').pressSequentially(envName.slice(0, 3), { delay: 30 });
      await page.waitForTimeout(560);
      await page.locator('#name').pressSequentially(envName.slice(3), { delay: 30 });
      await settle(alice);
      const typed = await page.locator('#name').inputValue();
      check(typed === envName, `typing was lost while the form checked itself: "${typed}" instead of "${envName}"`);
      await page.locator('#param-vpc-cidr').fill('10.77.0.0/16');
      await settle(alice);
      await page.locator('#preview-h').waitFor({ state: 'visible' });
      // Error slots stay in the page (empty, hidden) so htmx can fill them in place.
      const fieldErrors = (await page.locator('.field-error').allTextContents()).filter((t) => t.trim() !== '');
      check(fieldErrors.length === 0, `field errors remain: ${fieldErrors.join(' | ')}`);
      const summaryErrors = await page.locator('.error-summary').allTextContents();
      check(summaryErrors.length === 0, `error summary shown: ${summaryErrors.join(' | ').replace(/\s+/g, ' ')}`);
      check(await page.getByRole('button', { name: 'Submit for approval' }).isEnabled(), '"Submit for approval" is still disabled');
      await pageChecks(alice, 'form fixed');
    });

    await step('Preview: resources by type and "all passed" policy checks', async () => {
      const { page } = alice;
      await Promise.all([
        page.waitForURL((u) => u.pathname === '/requests/new/preview'),
        page.getByRole('button', { name: 'Preview' }).click(),
      ]);
      const preview = page.locator('section.preview');
      await preview.waitFor({ state: 'visible' });
      const types = await preview.locator('table tbody tr td:first-child').allTextContents();
      check(types.length > 0, 'the preview lists no resources');
      check(types.some((t) => t.trim() === 'AWS::EC2::VPC'), `no AWS::EC2::VPC in the preview: ${types.join(', ')}`);
      const summary = await text(preview.locator('p').first());
      check(summary.includes(`stackgate-`) || summary.includes(envName), `stack line "${summary}" does not name the stack`);
      const checksHead = await text(preview.locator('h3', { hasText: 'Policy checks' }));
      check(checksHead.includes('all passed'), `policy heading is "${checksHead}"`);
      check(await preview.locator('ul.checks li.fail').count() === 0, 'a policy check failed');
      check(await preview.locator('ul.checks li.pass').count() > 0, 'no policy checks listed');
      check(await page.locator('#name').inputValue() === envName, 'the name was lost by the preview');
      check(await page.locator('#param-vpc-cidr').inputValue() === '10.77.0.0/16', 'the CIDR was lost by the preview');
      console.log(`       ${summary} (${types.length} types)`);
      await pageChecks(alice, 'preview page');
      await shot(page, '04-preview.png');
    });

    await step('alice submits: request page shows "pending approval", no Approve for her', async () => {
      const { page } = alice;
      await Promise.all([
        page.waitForURL((u) => /^\/requests\/(?!new\b)[^/]+$/.test(u.pathname)),
        page.getByRole('button', { name: 'Submit for approval' }).click(),
      ]);
      requestUrl = page.url();
      requestId = new URL(requestUrl).pathname.split('/').pop();
      // The change set is prepared first; the page follows the request by itself (htmx) until
      // it is ready for review.
      const first = await text(page.locator('.request-head .status').first());
      check(['preparing the change set', 'pending approval'].includes(first), `status badge is "${first}"`);
      await page.locator('.request-head .status-pending_approval').waitFor({ timeout: 60000 });
      const status = await text(page.locator('.request-head .status').first());
      check(status === 'pending approval', `status badge is "${status}"`);
      check(await page.locator('.request-head .status-pending_approval').count() === 1, 'badge lacks the pending colour class');
      const h1 = await text(page.locator('main h1'));
      check(h1.includes(envName), `request title "${h1}" does not name ${envName}`);
      check(await page.getByRole('button', { name: 'Approve', exact: true }).count() === 0, 'alice sees an Approve button on her own request');
      check(await page.getByRole('button', { name: 'Reject', exact: true }).count() === 0, 'alice sees a Reject button on her own request');
      check(await page.getByRole('button', { name: 'Cancel request' }).isVisible(), 'the requester has no "Cancel request"');
      const timeline = await text(page.locator('ol.timeline'));
      check(timeline.includes('submitted the request'), `timeline: "${timeline}"`);
      check(timeline.includes('the change set is ready for review'), `timeline: "${timeline}"`);
      console.log(`       ${h1} → ${new URL(requestUrl).pathname}`);
      await pageChecks(alice, 'request page (alice, pending)');
      await shot(page, '05-request-pending.png');
    });

    // --- bob: inbox, review, approve ---------------------------------------------------------
    currentPage = bob.page;
    await step('bob signs in and finds the request in /approvals', async () => {
      await signIn(bob, base, idpOrigin, 'Bob Brandt');
      const { page } = bob;
      const waiting = await text(page.locator('#waiting-h'));
      check(/\((\d+)\)/.test(waiting) && !waiting.includes('(0)'), `home says "${waiting}"`);
      await Promise.all([
        page.waitForURL((u) => u.pathname === '/approvals'),
        page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: /^Approvals/ }).click(),
      ]);
      const row = page.locator(`a[href="/requests/${requestId}"]`);
      check(await row.count() === 1, `the inbox has no link to /requests/${requestId}`);
      check((await text(row)).includes(envName), 'the inbox row does not name the environment');
      await pageChecks(bob, 'approvals inbox');
      await shot(page, '06-inbox-bob.png');
    });

    await step('bob opens it and reads the rendered template', async () => {
      const { page } = bob;
      await Promise.all([
        page.waitForURL((u) => u.pathname === `/requests/${requestId}`),
        page.locator(`a[href="/requests/${requestId}"]`).click(),
      ]);
      const status = await text(page.locator('.request-head .status').first());
      check(status === 'pending approval', `status badge is "${status}"`);
      const changes = page.locator('section', { has: page.locator('h2#changes') });
      const summary = changes.locator('details > summary', { hasText: 'Rendered template' });
      check(await summary.count() === 1, 'no "Rendered template" in the Changes section');
      const pre = changes.locator('pre.template');
      check(!(await pre.isVisible()), 'the rendered template is not folded by default');
      await summary.click();
      await pre.waitFor({ state: 'visible' });
      const body = await pre.textContent();
      check(body.includes('AWS::EC2::VPC'), 'the rendered template has no AWS::EC2::VPC');
      check(body.includes('10.77.0.0/16'), 'the rendered template does not carry the chosen CIDR');
      const changeSet = await text(page.locator('#change-set'));
      check(changeSet.includes('AWS::EC2::VPC') && changeSet.includes('Add'), `the change set is not shown: "${changeSet.slice(0, 200)}"`);
      check(await page.getByRole('button', { name: 'Approve', exact: true }).isVisible(), 'bob has no Approve button');
      await pageChecks(bob, 'request page (bob)');
    });

    await step('bob approves with a comment', async () => {
      const { page } = bob;
      const comment = `Looks good (browser test ${suffix})`;
      await page.getByLabel('Comment (optional)').fill(comment);
      await shot(page, '07-request-approve.png');
      await Promise.all([
        page.waitForURL((u) => u.pathname === `/requests/${requestId}`),
        page.waitForEvent('load'),
        page.getByRole('button', { name: 'Approve', exact: true }).click(),
      ]);
      const actionError = await page.locator('#action-error').allTextContents();
      check(actionError.length === 0, `approval refused: ${actionError.join(' ')}`);
      const approvals = await text(page.locator('ul.approvals'));
      check(approvals.includes('approved by Bob Brandt'), `side panel: "${approvals}"`);
      check(approvals.includes(comment), 'the comment is not shown with the approval');
      const status = await text(page.locator('.request-head .status').first());
      check(['approved', 'deploying', 'deployed'].includes(status), `status after approval is "${status}"`);
      check(await page.getByRole('button', { name: 'Approve', exact: true }).count() === 0, 'Approve is still offered after approving');
      await pageChecks(bob, 'request page after approval');
    });

    await step('the request page follows the deployment by itself until the stack is deployed', async () => {
      const { page } = bob;
      const panel = page.locator('#deployment-panel');
      const wasLive = (await panel.getAttribute('hx-get')) !== null;
      check(wasLive, 'the request page is not watching for changes after the approval');
      // htmx polls the panel and reloads the page when the request moves on (approved ->
      // deploying -> deployed), so poll the DOM across those reloads until a terminal status.
      const deadline = Date.now() + DEPLOY_TIMEOUT_MS;
      let cls = '';
      while (Date.now() < deadline) {
        cls = await page.locator('#deployment-panel .status').first().getAttribute('class', { timeout: 1000 }).catch(() => '') ?? '';
        if (/status-(succeeded|failed|rolled_back|needs_attention|cancelled)\b/.test(cls)) break;
        await page.waitForTimeout(250);
      }
      check(/status-(succeeded|failed|rolled_back|needs_attention|cancelled)\b/.test(cls), `no terminal deployment status within ${DEPLOY_TIMEOUT_MS / 1000} s: ${tail(portalLog, 10)}`);
      await page.waitForLoadState('load');
      const label = await text(panel.locator('.status').first());
      if (label !== 'deployed') {
        const error = await panel.locator('.error').textContent().catch(() => '');
        const reasons = (await panel.locator('table.events tbody tr').evaluateAll((trs) =>
          trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent.replace(/\s+/g, ' ').trim()).join(' | '))))
          .filter((r) => /FAILED/.test(r)).slice(0, 5);
        throw new CheckError(`deployment ended "${label}", not deployed: ${error?.trim()}\n  ${reasons.join('\n  ')}`);
      }
      const header = await text(page.locator('.request-head .status').first());
      check(header === 'deployed', `the header badge says "${header}" while the panel says deployed`);
      check(await panel.getAttribute('hx-get') === null, 'the panel keeps polling after the deployment finished');
      console.log(`       the page followed the request to "${label}" without a manual reload`);
    });

    currentPage = alice.page;
    await step('alice sees "deployed" and the VpcId output on her request page', async () => {
      const { page } = alice;
      // alice's page was left on her pending request: it follows the request by itself (htmx
      // reloads it when the status moves), so wait for it rather than reloading over it.
      const deadline = Date.now() + DEPLOY_TIMEOUT_MS;
      let badge = '';
      while (Date.now() < deadline) {
        badge = (await page.locator('.request-head .status').first().textContent({ timeout: 1000 }).catch(() => '')) ?? '';
        if (badge.trim() === 'deployed') break;
        await page.waitForTimeout(250);
      }
      await page.waitForLoadState('load');
      const status = await text(page.locator('.request-head .status').first());
      check(status === 'deployed', `status badge is "${status}"`);
      const rows = await page.locator('#deployment-panel table.outputs tbody tr').evaluateAll((trs) =>
        trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent.trim())));
      const vpc = rows.find(([k]) => k === 'VpcId');
      check(vpc, `no VpcId output: ${JSON.stringify(rows)}`);
      check(/^vpc-[0-9a-f]+$/.test(vpc[1]), `VpcId is "${vpc[1]}"`);
      const timeline = await text(page.locator('ol.timeline'));
      check(timeline.includes('deployed the stack'), `the conversation lacks the deployment: "${timeline}"`);
      console.log(`       VpcId = ${vpc[1]}`);
      await pageChecks(alice, 'request page (alice, deployed)');
      await shot(page, '08-deployed.png');
    });

    await step('alice\'s home lists the new environment as deployed', async () => {
      const { page } = alice;
      await page.goto(`${base}/`);
      const row = page.locator('section[aria-labelledby="env-h"] tbody tr', { hasText: envName });
      check(await row.count() === 1, `home's Environments table has no row for ${envName}`);
      const status = await text(row.locator('.status'));
      check(status === 'deployed', `the environment's status on home is "${status}"`);
      await pageChecks(alice, 'home after deployment');
      await shot(page, '09-home-deployed.png');
    });

    await step('no console errors on any page', async () => {
      for (const u of users) check(u.errors.length === 0, `${u.login}: ${u.errors.join('\n  ')}`);
    });
  } finally {
    for (const u of users) await u.context.close().catch(() => {});
    if (browser) await browser.close().catch(() => {});
    await stopPortal();
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

const watchdog = setTimeout(() => {
  console.error(`browser: the test took longer than ${TOTAL_BUDGET_MS / 1000} s; stopping`);
  if (portal && portal.exitCode === null) portal.kill('SIGKILL');
  console.log(`browser: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, TOTAL_BUDGET_MS);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (portal && portal.exitCode === null) portal.kill('SIGKILL');
    process.exit(130);
  });
}
process.on('exit', () => {
  if (portal && portal.exitCode === null && portal.signalCode === null) portal.kill('SIGKILL');
});

console.log(`browser: portal ${path.relative(ROOT, BINARY) || BINARY}, log ${path.relative(ROOT, portalLog)}`);
let ok = true;
try {
  await main();
} catch (e) {
  ok = false;
  if (!e?.counted) {
    failed += 1;
    console.error(`browser: ${e?.stack || e}`);
  }
}
clearTimeout(watchdog);
console.log(`browser: screenshots in ${path.relative(ROOT, SHOTS)}/, took ${secs(Date.now() - T0)}`);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(ok && failed === 0 ? 0 : 1);
