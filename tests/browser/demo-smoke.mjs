#!/usr/bin/env node
// The README's first command, as a new user runs it: a fresh clone of this repository, `make
// demo` in it (installing what it needs into the clone), then a demo user signs in through the
// demo's IdP in headless Chromium and lands on the portal's home, and Ctrl-C stops everything.
//
// Checks: /readyz answers; the log says the database folder was created (a fresh clone has
// none); alice signs in and sees her team; after Ctrl-C the portal, the IdP and the emulator
// are all gone. The clone is built into the same CARGO_TARGET_DIR as the suite (only the
// portal's own crate is rebuilt) and removed afterwards.
//
// Last line: `demo: passed` or `demo: failed: <why>`; exit status 0 only when it passed.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = process.env.STACKGATE_TEST_CHROMIUM || '/usr/bin/chromium';
const START_TIMEOUT_MS = 420_000; // installs into the clone, then builds the portal's crate
const STOP_TIMEOUT_MS = 30_000;

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

function listening(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stackgate-demo-'));
  const clone = path.join(dir, 'stackgate');
  let demo;
  let log = '';
  const t0 = Date.now();
  try {
    execFileSync('git', ['clone', '--quiet', ROOT, clone]);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = {
      ...process.env,
      STACKGATE_LISTEN: `127.0.0.1:${port}`,
      CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target'),
    };
    delete env.STACKGATE_DATABASE_URL;
    delete env.STACKGATE_CONFIG;
    // Its own process group, so Ctrl-C reaches make, the script and what it started.
    demo = spawn('make', ['demo'], { cwd: clone, env, detached: true });
    demo.stdout.on('data', (d) => { log += d; });
    demo.stderr.on('data', (d) => { log += d; });
    let exited = null;
    demo.on('exit', (code, signal) => { exited = { code, signal }; });

    for (;;) {
      if (exited) throw new Error(`make demo exited (${JSON.stringify(exited)}) before it answered`);
      if (Date.now() - t0 > START_TIMEOUT_MS) throw new Error('the demo did not answer /readyz in time');
      try {
        const r = await fetch(`${base}/readyz`);
        if (r.ok) break;
      } catch { /* not yet */ }
      await sleep(500);
    }
    console.log(`demo: answered /readyz ${((Date.now() - t0) / 1000).toFixed(0)} s after the clone`);
    if (!fs.existsSync(path.join(clone, 'data', 'demo.db'))) throw new Error('no data/demo.db in the clone');
    if (!/Created the database folder/.test(log)) throw new Error('the log does not say the database folder was created');

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'],
    });
    try {
      const page = await (await browser.newContext()).newPage();
      await page.goto(`${base}/login`);
      await page.getByRole('link', { name: 'Sign in with SSO' }).click();
      await page.locator('input[name="login"]').fill('alice');
      await page.locator('input[name="password"]').fill('any-password');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL((u) => u.origin === base && u.pathname === '/', { timeout: 15_000 });
      const heading = ((await page.locator('main h1').textContent()) ?? '').trim();
      if (!heading.includes('payments')) throw new Error(`home shows "${heading}", not team payments`);
      console.log(`demo: alice signed in and sees "${heading}"`);
    } finally {
      await browser.close();
    }

    // Ctrl-C: everything the demo started stops.
    const ports = ['moto.port', 'idp.url']
      .map((f) => path.join(clone, '.tools', 'run', f))
      .filter((f) => fs.existsSync(f))
      .map((f) => Number(new URL(fs.readFileSync(f, 'utf8').trim().replace(/^(\d+)$/, 'http://127.0.0.1:$1')).port));
    process.kill(-demo.pid, 'SIGINT');
    const stopBy = Date.now() + STOP_TIMEOUT_MS;
    while (!exited && Date.now() < stopBy) await sleep(200);
    if (!exited) throw new Error('the demo did not stop on Ctrl-C');
    for (const p of [port, ...ports]) {
      if (await listening(p)) throw new Error(`port ${p} still answers after Ctrl-C`);
    }
    console.log(`demo: stopped on Ctrl-C; portal, IdP and emulator gone (${ports.length + 1} ports checked)`);
    console.log('demo: passed');
  } catch (e) {
    if (demo && demo.exitCode === null) {
      try { process.kill(-demo.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    console.error(log.split('\n').slice(-40).join('\n'));
    console.log(`demo: failed: ${e.message}`);
    process.exitCode = 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
