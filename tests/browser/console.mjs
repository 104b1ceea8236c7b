// The help-desk console in a real browser (Debian's chromium driven by playwright-core),
// against a real server started here: the flows of issue "Help-desk console", an axe check
// of every console page, and a screenshot of each step under target/browser/.
//
// Env: BYPASS_IDP_BIN (the server binary, required), DATABASE_URL / REDIS_URL (optional:
// PostgreSQL + Redis), CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR.

import { spawn, execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import AxeBuilder from "@axe-core/playwright";
import jsQR from "jsqr";
import { PNG } from "pngjs";

const BIN = process.env.BYPASS_IDP_BIN;
if (!BIN) throw new Error("set BYPASS_IDP_BIN to the server binary");
const SHOTS = path.resolve(process.env.SCREENSHOT_DIR ?? "target/browser");
const PASSWORD = "correct horse battery staple";
const RP_REDIRECT = "http://127.0.0.1:9/callback";
// A bypass code as people see it, not the groups of a UUID.
const CODE = /(?<![\w-])\d{4}-\d{4}-\d{4}(?![\w-])/;
fs.mkdirSync(SHOTS, { recursive: true });

const failures = [];
const check = (ok, what) => {
  if (!ok) failures.push(what);
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
};

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// RFC 6238 TOTP (SHA-1, 30 s, 6 digits) from a base32 secret.
function totp(base32, at = Date.now() / 1000) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30)));
  const mac = crypto.createHmac("sha1", key).update(counter).digest();
  const offset = mac[19] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

const b64url = (buffer) => buffer.toString("base64url");

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "bypass-idp-browser-"));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const env = {
  PATH: process.env.PATH,
  BYPASS_IDP_DATA_DIR: dataDir,
  BYPASS_IDP_LISTEN: `127.0.0.1:${port}`,
  BYPASS_IDP_LOG: "warn",
  BYPASS_IDP_REDIS_PREFIX: `browser-${process.pid}`,
};
for (const name of ["DATABASE_URL", "REDIS_URL"]) if (process.env[name]) env[name] = process.env[name];
const server = spawn(BIN, ["serve"], { env, stdio: ["ignore", "inherit", "inherit"] });
let browser;
try {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  const admin = JSON.parse(fs.readFileSync(path.join(dataDir, "bootstrap-admin.json"), "utf8"));
  const tokenResponse = await fetch(`${base}/oauth2/token`, {
    method: "POST",
    headers: { Authorization: "Basic " + Buffer.from(`${admin.client_id}:${admin.client_secret}`).toString("base64") },
    body: new URLSearchParams({ grant_type: "client_credentials" }),
  });
  const adminToken = (await tokenResponse.json()).access_token;
  const scim = async (method, p, body) => {
    const response = await fetch(`${base}/scim/v2${p}`, {
      method,
      headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/scim+json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (response.status >= 400) throw new Error(`${method} ${p}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const user = async (userName) => {
    const created = await scim("POST", "/Users", {
      schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"],
      userName,
      name: { givenName: userName.split(".")[0], familyName: "Example" },
      emails: [{ value: `${userName}@example.com`, primary: true }],
      password: PASSWORD,
    });
    const enrollment = await scim("POST", `/Users/${created.id}/totp`);
    await scim("POST", `/Users/${created.id}/totp/confirmation`, { code: totp(enrollment.secret) });
    return { id: created.id, userName, secret: enrollment.secret };
  };
  const desk = await user("hd.alice");
  const caller = await user("lost.phone");
  const plain = await user("no.role");
  const self = await user("self.service");
  const sec = await user("sec.admin");
  await scim("POST", "/Groups", {
    schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"],
    displayName: "Help desk administrators",
    members: [{ value: desk.id }],
  });
  await scim("POST", "/Groups", {
    schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"],
    displayName: "Security administrators",
    members: [{ value: sec.id }],
  });
  const rp = JSON.parse(
    execFileSync(BIN, ["client", "add", "--redirect-uri", RP_REDIRECT, "--public", "--require-mfa"], { env }).toString(),
  ).client_id;

  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
  const axeViolations = [];
  const audit = async (page, name) => {
    const result = await new AxeBuilder({ page }).analyze();
    const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    for (const v of bad) axeViolations.push(`${name}: ${v.id} (${v.impact}) ${v.nodes.map((n) => n.target).join(" ")}`);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    check(wide <= 400, `${name}: fits 400 px (scrollWidth ${wide})`);
  };
  const shot = async (page, name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const fresh = async () => {
    const context = await browser.newContext({ viewport: { width: 400, height: 900 } });
    return context.newPage();
  };
  // Password, then the authenticator code (a step ahead, so it is never a replay).
  const signInWithTotp = async (page, who) => {
    await page.getByLabel("Username").fill(who.userName);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByLabel("Code").fill(totp(who.secret, Date.now() / 1000 + 30));
    await page.getByRole("button", { name: "Verify" }).click();
  };
  // A relying party's sign-in with a bypass code; the ID token's claims, or the page's text.
  const rpSignIn = async (who, code, name) => {
    const page = await fresh();
    let redirected = null;
    await page.route(`${RP_REDIRECT}**`, (route) => {
      redirected = route.request().url();
      return route.fulfill({ status: 200, contentType: "text/plain", body: "back at the relying party" });
    });
    const verifier = b64url(crypto.randomBytes(32));
    const challenge = b64url(crypto.createHash("sha256").update(verifier).digest());
    const query = new URLSearchParams({
      response_type: "code", client_id: rp, redirect_uri: RP_REDIRECT, scope: "openid",
      state: b64url(crypto.randomBytes(16)), nonce: b64url(crypto.randomBytes(16)),
      code_challenge: challenge, code_challenge_method: "S256",
    });
    await page.goto(`${base}/oauth2/authorize?${query}`);
    await page.getByLabel("Username").fill(who.userName);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByRole("link", { name: "Use a bypass code" }).click();
    await page.getByLabel("Bypass code").fill(code);
    await page.getByRole("button", { name: "Verify" }).click();
    await page.waitForURL((u) => u.href.startsWith(RP_REDIRECT) || u.pathname === "/oauth2/signin/bypass");
    // An accepted code offers to set up a new authenticator app: "Not now" goes on to the client.
    const later = page.locator("button[name=choice][value=later]");
    if (await later.count()) {
      await later.click();
      await page.waitForURL((u) => u.href.startsWith(RP_REDIRECT) || u.pathname === "/oauth2/signin/replace");
    }
    if (page.url().startsWith(RP_REDIRECT)) redirected = page.url();
    if (!redirected) {
      await shot(page, name);
      const text = await page.locator("main").innerText();
      await page.context().close();
      return { text };
    }
    const returned = new URL(redirected).searchParams;
    const tokens = await (
      await fetch(`${base}/oauth2/token`, {
        method: "POST",
        body: new URLSearchParams({
          grant_type: "authorization_code", code: returned.get("code"), redirect_uri: RP_REDIRECT,
          code_verifier: verifier, client_id: rp,
        }),
      })
    ).json();
    await page.context().close();
    return { claims: JSON.parse(Buffer.from(tokens.id_token.split(".")[1], "base64url").toString()) };
  };

  // 1. The help desk signs in to the console and finds the user.
  const desk_page = await fresh();
  await desk_page.goto(`${base}/console`);
  await shot(desk_page, "01-sign-in");
  check((await desk_page.locator("main").innerText()).includes("bypass-idp console"), "the sign-in page names the console");
  await signInWithTotp(desk_page, desk);
  await desk_page.waitForURL(`${base}/console/users`);
  await audit(desk_page, "users");
  await desk_page.getByLabel("Find a user by username, name or email").fill("lost");
  await desk_page.getByRole("button", { name: "Search" }).click();
  await shot(desk_page, "02-users-search");
  await desk_page.getByRole("link", { name: "lost.phone" }).click();
  await audit(desk_page, "user");
  check((await desk_page.locator("main").innerText()).includes("Enrolled (authenticator app)"), "the user page shows 2-step status");
  await desk_page.getByText("More actions").click();
  await shot(desk_page, "03-user-more-actions");
  await desk_page.getByRole("link", { name: "Generate bypass code" }).click();
  await audit(desk_page, "generate");
  check((await desk_page.locator("main").innerText()).includes("For lost.phone."), "the dialog names the user it is for");
  // Keyboard: the dialog's controls are reached with Tab.
  const focused = new Set();
  for (let i = 0; i < 30; i++) {
    await desk_page.keyboard.press("Tab");
    focused.add(await desk_page.evaluate(() => {
      const el = document.activeElement;
      return el?.id || (el?.tagName === "BUTTON" ? el.textContent.trim() : el?.tagName);
    }));
  }
  check(["days", "hours", "minutes", "times", "reason", "starts", "Generate"].every((id) => focused.has(id)), `keyboard reaches every field (${[...focused].join(", ")})`);
  // 2. Expires in 1 hour, usable 2 times.
  await desk_page.getByLabel("Expires in").check();
  await desk_page.getByLabel("Days").fill("0");
  await desk_page.getByLabel("Hours").fill("1");
  await desk_page.getByLabel("Minutes").fill("0");
  await desk_page.getByLabel("Number of times").check();
  await desk_page.getByLabel("Times", { exact: true }).fill("2");
  await desk_page.getByLabel("Reason or ticket").fill("INC-4711 phone lost on a trip");
  await shot(desk_page, "04-generate-dialog");
  await desk_page.setViewportSize({ width: 1280, height: 900 });
  await shot(desk_page, "04-generate-dialog-desktop");
  await desk_page.setViewportSize({ width: 400, height: 900 });
  await desk_page.getByRole("button", { name: "Generate" }).click();
  await audit(desk_page, "code window");
  const code = await desk_page.locator("#code").inputValue();
  check(/^\d{4}(-\d{4}){2}$/.test(code), `the code window shows a grouped code (${code.replace(/\d/g, "•")})`);
  const window = await desk_page.locator("main").innerText();
  check(window.includes("For lost.phone:") && window.includes("usable 2 times"), "the code window names the user and says usable 2 times");
  check(window.includes("Reason: INC-4711 phone lost on a trip"), "the code window shows the reason");
  await shot(desk_page, "05-code-window");
  await desk_page.setViewportSize({ width: 1280, height: 900 });
  await shot(desk_page, "05-code-window-desktop");
  await desk_page.setViewportSize({ width: 400, height: 900 });
  await desk_page.getByRole("button", { name: "Email" }).click();
  const emailed = await desk_page.locator("main").innerText();
  check(emailed.includes("Emailed to lost.phone@example.com"), "Email confirms to whom");
  await shot(desk_page, "06-emailed");
  const outbox = fs.readdirSync(path.join(dataDir, "outbox")).map((f) => fs.readFileSync(path.join(dataDir, "outbox", f), "utf8").replace(/=\r?\n/g, ""));
  const fromMail = outbox.map((m) => m.match(CODE)?.[0]).find(Boolean);
  check(fromMail === code, "the outbox holds the code");
  // 3. The user signs in at a relying party twice with it, then it is used up.
  for (const round of [1, 2]) {
    const result = await rpSignIn(caller, fromMail, `07-rp-${round}`);
    check(result.claims?.amr?.includes("bypass_code"), `relying-party sign-in ${round} succeeds with amr bypass_code`);
  }
  const third = await rpSignIn(caller, fromMail, "08-rp-used-up");
  check(third.text?.includes("used up"), "the third use is refused: used up");

  // 4. Never expires + Unlimited, starting a minute from now: under the default policy it
  // waits for a second person (approved below by the security administrator).
  await desk_page.goto(`${base}/console/users/${caller.id}/generate`);
  await desk_page.getByLabel("Never expires").check();
  await desk_page.getByLabel("Unlimited").check();
  await desk_page.getByLabel("Reason or ticket").fill("INC-4712 travelling for a month");
  await desk_page.getByLabel("Valid from (optional, UTC)").fill("2001-01-01T09:00");
  await desk_page.getByRole("button", { name: "Generate" }).click();
  const startError = await desk_page.locator("#starts-error").innerText();
  check(startError.includes("Valid from") && startError.includes("past"), `a start in the past is a field error (${startError})`);
  await audit(desk_page, "generate with a start error");
  await shot(desk_page, "09-start-in-the-past");
  await desk_page.getByLabel("Valid from (optional, UTC)").fill("");
  await desk_page.getByRole("button", { name: "Generate" }).click();
  const waiting = await desk_page.locator("main").innerText();
  check(waiting.includes("Sent for approval") && !CODE.test(waiting), "never expires + unlimited is sent for approval, with no code");
  await audit(desk_page, "sent for approval");
  await shot(desk_page, "09-sent-for-approval");
  await desk_page.setViewportSize({ width: 1280, height: 900 });
  await shot(desk_page, "09-sent-for-approval-desktop");
  await desk_page.setViewportSize({ width: 400, height: 900 });
  check((await desk_page.goto(`${base}/console/approvals`)).status() === 403, "the help desk has no Approvals page");

  // 5. A policy limit shows as a field error.
  await scim("PUT", "/BypassCodeSettings", { helpDeskMaxUsage: 3 });
  await desk_page.goto(`${base}/console/users/${caller.id}/generate`);
  await desk_page.getByLabel("Never expires").check();
  await desk_page.getByLabel("Unlimited").check();
  await desk_page.getByRole("button", { name: "Generate" }).click();
  const fieldError = await desk_page.locator("#usage-error").innerText();
  check(fieldError.includes("Unlimited is not allowed") && fieldError.includes("at most 3 uses"), `the usage field says why (${fieldError})`);
  await audit(desk_page, "generate with a field error");
  await shot(desk_page, "11-field-error");
  await scim("PUT", "/BypassCodeSettings", {});

  // 7. Someone without a role: a clear 403.
  const plain_page = await fresh();
  await plain_page.goto(`${base}/console`);
  await signInWithTotp(plain_page, plain);
  await plain_page.waitForLoadState();
  const heading = await plain_page.locator("h1").innerText();
  check(heading === "No access", `no role: "${heading}"`);
  await audit(plain_page, "no access");
  await shot(plain_page, "15-no-access");
  // The user's audit trail: generated, emailed, used, failed.
  await desk_page.goto(`${base}/console/users/${caller.id}/audit`);
  const trail = await desk_page.locator("main").innerText();
  check(["generated", "emailed", "used", "failed"].every((e) => trail.includes(e)), "the audit trail shows generated, emailed, used and failed");
  await audit(desk_page, "audit");
  await shot(desk_page, "16-audit");

  // A security administrator: the policy page, and Reset 2-step verification with a confirmation.
  const sec_page = await fresh();
  await sec_page.goto(`${base}/console/policy`);
  await signInWithTotp(sec_page, sec);
  await sec_page.waitForURL(`${base}/console/policy`);
  // Approvals: the request from step 4, with where the code will go; Approve mails it to the
  // user, and only the user's mail holds it.
  await sec_page.getByRole("link", { name: "Approvals" }).click();
  const requests = await sec_page.locator("main").innerText();
  check(requests.includes("lost.phone") && requests.includes("INC-4712 travelling for a month") && requests.includes("Sent to") && requests.includes("lost.phone@example.com"), "Approvals lists the request, its reason and where the code goes");
  await audit(sec_page, "approvals");
  await shot(sec_page, "27-approvals");
  await sec_page.setViewportSize({ width: 1280, height: 900 });
  await shot(sec_page, "27-approvals-desktop");
  await sec_page.setViewportSize({ width: 400, height: 900 });
  const before = new Set(fs.readdirSync(path.join(dataDir, "outbox")));
  await sec_page.getByRole("button", { name: "Approve the code for lost.phone" }).click();
  const approved = await sec_page.locator("main").innerText();
  check(approved.includes("Approved") && !CODE.test(approved), "Approve answers without showing the code");
  await shot(sec_page, "28-approved");
  const approvedMail = fs.readdirSync(path.join(dataDir, "outbox")).filter((f) => !before.has(f))
    .map((f) => fs.readFileSync(path.join(dataDir, "outbox", f), "utf8").replace(/=\r?\n/g, ""));
  const forever = approvedMail.map((m) => m.match(CODE)?.[0]).find(Boolean);
  check(approvedMail.length === 1 && Boolean(forever), "the approved code is mailed to the user, once");
  const again = await rpSignIn(caller, forever, "10-rp-unlimited");
  check(again.claims?.amr?.includes("bypass_code"), "the approved unlimited code signs in");
  await sec_page.goto(`${base}/console/policy`);
  await audit(sec_page, "policy");
  await sec_page.getByLabel("Most uses per code (empty: no limit)").first().fill("4");
  await sec_page.getByRole("button", { name: "Save policy" }).click();
  check((await sec_page.locator("main").innerText()).includes("The policy is saved."), "the policy page saves");
  await shot(sec_page, "17-policy");
  // The audit log: the policy change just made, with who made it.
  await sec_page.getByRole("link", { name: "Audit log" }).click();
  await sec_page.getByLabel("Event", { exact: true }).selectOption("policy_changed");
  await sec_page.getByRole("button", { name: "Show" }).click();
  await audit(sec_page, "audit log");
  const log = await sec_page.locator("main").innerText();
  check(log.includes("policy changed") && log.includes("user:"), "the audit log shows the policy change and who made it");
  await shot(sec_page, "17-audit-log");
  await sec_page.setViewportSize({ width: 1280, height: 900 });
  await shot(sec_page, "17-audit-log-desktop");
  await sec_page.setViewportSize({ width: 400, height: 900 });
  await sec_page.goto(`${base}/console/users/${plain.id}`);
  await sec_page.getByText("More actions").click();
  await sec_page.getByRole("link", { name: "Reset 2-step verification" }).click();
  await audit(sec_page, "reset confirmation");
  await shot(sec_page, "18-reset-confirm");
  await sec_page.getByRole("button", { name: "Reset 2-step verification" }).click();
  check((await sec_page.locator("main").innerText()).includes("Not enrolled"), "after the reset the user is not enrolled");

  // 6. Self-service on My security.
  const self_page = await fresh();
  await self_page.goto(`${base}/account`);
  await signInWithTotp(self_page, self);
  await self_page.waitForURL(`${base}/account`);
  await audit(self_page, "my security");
  await shot(self_page, "12-my-security");
  await self_page.getByRole("link", { name: "Generate bypass code" }).click();
  await self_page.getByRole("button", { name: "Generate" }).click();
  const own = await self_page.locator("#code").inputValue();
  check(/^\d{4}(-\d{4}){2}$/.test(own), "self-service generates a code");
  await shot(self_page, "13-my-code");
  const ownUse = await rpSignIn(self, own, "14-rp-own-code");
  check(ownUse.claims?.amr?.includes("bypass_code"), "the self-service code signs in");
  // Codes to print: a set shown once, on a page that prints without the console around it.
  await self_page.goto(`${base}/account`);
  await self_page.getByRole("button", { name: "Generate a set of codes to print" }).click();
  const printed = await self_page.locator("ol.codes li").allInnerTexts();
  check(printed.length === 10 && printed.every((c) => /^\d{4}-\d{4}-\d{4}$/.test(c.trim())), `a set of 10 codes to print (${printed.length})`);
  await audit(self_page, "codes to print");
  await shot(self_page, "29-codes-to-print");
  await self_page.emulateMedia({ media: "print" });
  check(!(await self_page.locator("header.bar").isVisible()) && (await self_page.locator(".saved-set").isVisible()), "printed, the page shows the codes without the console around them");
  await shot(self_page, "29-codes-to-print-printed");
  await self_page.emulateMedia({ media: "screen" });
  const saved = await rpSignIn(self, printed[3].trim(), "30-rp-saved-code");
  check(saved.claims?.amr?.includes("bypass_code"), "a printed code signs in");
  await self_page.setViewportSize({ width: 1280, height: 900 });
  await self_page.goto(`${base}/account`);
  await self_page.getByRole("button", { name: "Generate a set of codes to print" }).click();
  await shot(self_page, "29-codes-to-print-desktop");
  await self_page.setViewportSize({ width: 400, height: 900 });
  // With no offer of a new authenticator, the sign-in stops to say the set is running out.
  await scim("PUT", "/BypassCodeSettings", { authenticatorReplacement: "off", selfServiceSetSize: 2 });
  await self_page.goto(`${base}/account`);
  await self_page.getByRole("button", { name: "Generate a set of codes to print" }).click();
  const pair = await self_page.locator("ol.codes li").allInnerTexts();
  const low = await rpSignIn(self, pair[0].trim(), "31-saved-codes-low");
  check(low.text?.includes("You have 1 saved code left"), "the sign-in says one saved code is left");
  await scim("PUT", "/BypassCodeSettings", {});

  const csp = (await self_page.goto(`${base}/account`)).headers()["content-security-policy"] ?? "";
  check(csp.includes("default-src 'none'") && !csp.includes("unsafe-inline"), `strict CSP (${csp})`);

  // 7. Sign-in sessions: My security lists this browser's session and the relying party's
  // (another browser), the help desk sees them on the user's page, and Sign out everywhere
  // ends them all.
  await self_page.goto(`${base}/account`);
  const sessions = await self_page.locator("main").innerText();
  check(sessions.includes("Sign-in sessions") && sessions.includes("(this browser)"), "My security lists the sessions, this browser's marked");
  check(sessions.includes("bypass-idp console") && sessions.includes(rp), "each session names the applications it signed in to");
  check(sessions.includes("password and bypass code") && sessions.includes("password and authenticator app"), "each session says how it was opened");
  await audit(self_page, "my sessions");
  await self_page.locator("#sessions").scrollIntoViewIfNeeded();
  await shot(self_page, "19-my-sessions");
  await self_page.setViewportSize({ width: 1280, height: 900 });
  await shot(self_page, "19-my-sessions-desktop");
  await self_page.setViewportSize({ width: 400, height: 900 });
  await desk_page.goto(`${base}/console/users/${self.id}`);
  const seen = await desk_page.locator("main").innerText();
  check(seen.includes("Sign-in sessions") && seen.includes(rp), "the help desk sees the user's sessions");
  await audit(desk_page, "user sessions");
  await shot(desk_page, "20-user-sessions");
  await self_page.getByRole("button", { name: "Sign out everywhere" }).click();
  check((await self_page.locator("main").innerText()).includes("Signed out everywhere"), "Sign out everywhere answers");
  await shot(self_page, "21-signed-out-everywhere");
  await self_page.goto(`${base}/account`);
  check(new URL(self_page.url()).pathname === "/oauth2/signin", "after Sign out everywhere the account asks to sign in again");
  await desk_page.goto(`${base}/console/users/${self.id}`);
  check((await desk_page.locator("main").innerText()).includes("No open sign-in sessions"), "the help desk sees no session left");

  // 8. The lost-phone journey: the help desk generates a code in the console and emails it;
  // the user signs in with it at a relying party, sets up a new authenticator app from the
  // page (reading the key from it, as a person types it), and lands at the relying party.
  // The old authenticator's code is refused, the new one's works, and the user is told.
  await desk_page.goto(`${base}/console/users/${caller.id}/generate`);
  await desk_page.getByLabel("Expires in").check();
  await desk_page.getByLabel("Days").fill("1");
  await desk_page.getByLabel("Once").check();
  await desk_page.getByRole("button", { name: "Generate" }).click();
  const lostCode = await desk_page.locator("#code").inputValue();
  await desk_page.getByRole("button", { name: "Email" }).click();
  const rpPage = async () => {
    const page = await fresh();
    const landed = { url: null };
    await page.route(`${RP_REDIRECT}**`, (route) => {
      landed.url = route.request().url();
      return route.fulfill({ status: 200, contentType: "text/plain", body: "back at the relying party" });
    });
    const verifier = b64url(crypto.randomBytes(32));
    const query = new URLSearchParams({
      response_type: "code", client_id: rp, redirect_uri: RP_REDIRECT, scope: "openid",
      state: b64url(crypto.randomBytes(16)), nonce: b64url(crypto.randomBytes(16)),
      code_challenge: b64url(crypto.createHash("sha256").update(verifier).digest()), code_challenge_method: "S256",
    });
    await page.goto(`${base}/oauth2/authorize?${query}`);
    await page.getByLabel("Username").fill(caller.userName);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Next" }).click();
    return { page, landed, verifier };
  };
  const lost = await rpPage();
  await lost.page.getByRole("link", { name: "Use a bypass code" }).click();
  await lost.page.getByLabel("Bypass code").fill(lostCode);
  await lost.page.getByRole("button", { name: "Verify" }).click();
  const offer = await lost.page.locator("main").innerText();
  check(offer.includes("Set up a new authenticator app") && offer.includes("Not now"), "after a bypass code the sign-in offers a new authenticator app");
  await audit(lost.page, "replace offer");
  await shot(lost.page, "22-replace-offer");
  await lost.page.setViewportSize({ width: 1280, height: 900 });
  await shot(lost.page, "22-replace-offer-desktop");
  await lost.page.setViewportSize({ width: 400, height: 900 });
  await lost.page.getByRole("button", { name: "Set up a new authenticator app" }).click();
  const qr = lost.page.locator("img.qr");
  check((await qr.count()) === 1 && (await qr.evaluate((img) => img.complete && img.naturalWidth > 0)), "the set-up page shows a QR code (loaded within the page's CSP)");
  const newKey = (await lost.page.locator("#secret").innerText()).trim();
  check(/^[A-Z2-7]{16,}$/.test(newKey) && newKey !== caller.secret, "the set-up page shows a new key");
  // The QR code as a phone's camera reads it: the image as drawn on the page, decoded.
  const drawn = PNG.sync.read(await qr.screenshot());
  const scanned = jsQR(new Uint8ClampedArray(drawn.data), drawn.width, drawn.height);
  const scannedUri = scanned ? new URL(scanned.data) : null;
  check(
    scannedUri?.protocol === "otpauth:" && scannedUri.searchParams.get("secret") === newKey.replace(/\s/g, ""),
    `the QR code scans to an otpauth link of the key the page shows (${scanned?.data ?? "nothing read"})`,
  );
  await audit(lost.page, "replace set-up");
  await shot(lost.page, "23-replace-setup");
  await lost.page.setViewportSize({ width: 1280, height: 900 });
  await shot(lost.page, "23-replace-setup-desktop");
  await lost.page.setViewportSize({ width: 400, height: 900 });
  await lost.page.getByLabel("Code from the new app").fill(totp(newKey));
  await lost.page.getByRole("button", { name: "Replace my authenticator" }).click();
  await lost.page.waitForURL((u) => u.href.startsWith(RP_REDIRECT));
  const landedAt = new URL(lost.page.url()).searchParams;
  const replacedTokens = await (
    await fetch(`${base}/oauth2/token`, {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "authorization_code", code: landedAt.get("code"), redirect_uri: RP_REDIRECT,
        code_verifier: lost.verifier, client_id: rp,
      }),
    })
  ).json();
  const replacedClaims = JSON.parse(Buffer.from(replacedTokens.id_token.split(".")[1], "base64url").toString());
  check(replacedClaims.amr?.includes("bypass_code"), "after the set-up the user lands at the relying party, signed in with the code");
  await lost.page.context().close();
  // The old authenticator's code is refused; the new one's works.
  const withOld = await rpPage();
  await withOld.page.getByLabel("Code").fill(totp(caller.secret, Date.now() / 1000 + 30));
  await withOld.page.getByRole("button", { name: "Verify" }).click();
  check((await withOld.page.locator("main").innerText()).includes("not right"), "the old authenticator's code is refused");
  await shot(withOld.page, "24-old-authenticator-refused");
  await withOld.page.getByLabel("Code").fill(totp(newKey, Date.now() / 1000 + 30));
  await withOld.page.getByRole("button", { name: "Verify" }).click();
  await withOld.page.waitForURL((u) => u.href.startsWith(RP_REDIRECT));
  check(withOld.page.url().startsWith(RP_REDIRECT), "the new authenticator's code signs in");
  await withOld.page.context().close();
  const mails = fs.readdirSync(path.join(dataDir, "outbox")).map((f) => fs.readFileSync(path.join(dataDir, "outbox", f), "utf8").replace(/=\r?\n/g, ""));
  check(mails.some((m) => m.includes("Your authenticator app was replaced")), "the user is emailed that the authenticator was replaced");
  await desk_page.goto(`${base}/console/users/${caller.id}/audit`);
  check((await desk_page.locator("main").innerText()).includes("authenticator replaced"), "the audit trail says authenticator replaced");

  // My security → Replace authenticator app, for someone who still has the old phone: the
  // help-desk user signed in a minute ago with the app, so the set-up opens; confirming it
  // keeps this browser signed in.
  await desk_page.goto(`${base}/account`);
  await desk_page.getByRole("link", { name: "Replace authenticator app" }).click();
  await audit(desk_page, "replace from my security");
  await desk_page.getByRole("button", { name: "Set up a new authenticator app" }).click();
  const deskKey = (await desk_page.locator("#secret").innerText()).trim();
  check(/^[A-Z2-7]{16,}$/.test(deskKey), "My security shows a new key to set up");
  await audit(desk_page, "replace set-up from my security");
  await shot(desk_page, "25-account-replace-setup");
  await desk_page.getByLabel("Code from the new app").fill(totp(deskKey));
  await desk_page.getByRole("button", { name: "Replace my authenticator" }).click();
  check((await desk_page.locator("main").innerText()).includes("new authenticator app is set up"), "My security replaces the authenticator and stays signed in");
  await shot(desk_page, "26-account-replaced");

  check(axeViolations.length === 0, `axe: no serious or critical violation${axeViolations.length ? "\n  " + axeViolations.join("\n  ") : ""}`);
} finally {
  await browser?.close();
  server.kill("SIGTERM");
}
console.log(`screenshots: ${SHOTS}`);
if (failures.length) {
  console.error(`${failures.length} failed:\n  ${failures.join("\n  ")}`);
  process.exit(1);
}
