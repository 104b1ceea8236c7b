// A help-desk workflow through the bypass-idp SCIM API, with a client generated from
// openapi/openapi.json by openapi-typescript and called through openapi-fetch:
// get a token, create a user, enrol TOTP, generate a bypass code that expires in 1 day and
// is usable 3 times, list it, email it, revoke it, and manage a group.
//
//   BYPASS_IDP_URL=http://127.0.0.1:8080 BYPASS_IDP_CLIENT_ID=bootstrap-admin \
//   BYPASS_IDP_CLIENT_SECRET=... npm start
//
// Any unexpected answer throws, and the process exits non-zero. Failures name the operation and
// the HTTP status (and a SCIM error's scimType), never a response body: one can hold a bypass
// code's plaintext or a TOTP secret.

import createClient from "openapi-fetch";
import * as OTPAuth from "otpauth";

import type { components, paths } from "./schema.js";

type ScimError = components["schemas"]["ScimError"];

/** An error whose message this program wrote (an operation, a status, a check), never a body. */
class Failure extends Error {}

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Failure(`set ${name}`);
  }
  return value;
}

/** The error member `name` of a body when it is a keyword (scimType, an OAuth error); else "". */
function keyword(body: unknown, name: string): string {
  const value = typeof body === "object" && body !== null ? (body as Record<string, unknown>)[name] : undefined;
  return typeof value === "string" && /^[A-Za-z_]{1,40}$/.test(value) ? ` ${name}=${value}` : "";
}

/** The parsed body of a successful answer; fails with the status and scimType otherwise. */
function ok<T>(what: string, result: { data?: T; error?: ScimError | unknown; response: Response }): T {
  if (result.data === undefined || !result.response.ok) {
    throw new Failure(`${what}: HTTP ${result.response.status}${keyword(result.error, "scimType")}`);
  }
  return result.data;
}

/** The same for answers without a body (204). */
function done(what: string, result: { error?: unknown; response: Response }): void {
  if (!result.response.ok) {
    throw new Failure(`${what}: HTTP ${result.response.status}${keyword(result.error, "scimType")}`);
  }
}

function check(condition: boolean, what: string): void {
  if (!condition) {
    throw new Failure(`unexpected: ${what}`);
  }
}

/** What to print for a failure. Other errors (an answer that does not parse as JSON, say) can
 * quote the body in their message: only their name and where in this program they surfaced. */
function failure(error: unknown): string {
  if (error instanceof Failure) {
    return error.message;
  }
  if (error instanceof Error) {
    const at = (error.stack ?? "").split("\n").slice(1).find((line) => line.includes("main.js"));
    return at === undefined ? error.name : `${error.name} ${at.trim()}`;
  }
  return "failed";
}

/** An access token for the client (OAuth 2.0 client credentials, RFC 6749 §4.4). */
async function accessToken(base: string, clientId: string, secret: string): Promise<string> {
  const response = await fetch(`${base}/oauth2/token`, {
    method: "POST",
    headers: {
      Authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString("base64")}`,
      "Content-Type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ grant_type: "client_credentials" }),
  });
  const body = (await response.json()) as { access_token?: string; error?: string };
  if (!response.ok || !body.access_token) {
    throw new Failure(`token: HTTP ${response.status}${keyword(body, "error")}`);
  }
  return body.access_token;
}

async function main(): Promise<void> {
  const base = env("BYPASS_IDP_URL");
  const token = await accessToken(base, env("BYPASS_IDP_CLIENT_ID"), env("BYPASS_IDP_CLIENT_SECRET"));
  const scim = createClient<paths>({ baseUrl: base, headers: { Authorization: `Bearer ${token}` } });

  // A user.
  const userName = `ts.example.${Date.now()}@example.com`;
  const user = ok(
    "create user",
    await scim.POST("/scim/v2/Users", {
      body: {
        schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"],
        userName,
        name: { givenName: "Grace", familyName: "Hopper" },
        emails: [{ value: userName, type: "work", primary: true }],
      },
    }),
  );
  console.log(`created user ${user.userName} (${user.id})`);
  const id = { path: { id: user.id } };

  // TOTP: start, then confirm with the authenticator's current code.
  const enrolment = ok("start TOTP", await scim.POST("/scim/v2/Users/{id}/totp", { params: id }));
  const totp = OTPAuth.URI.parse(enrolment.otpauthUri);
  check(totp instanceof OTPAuth.TOTP, "the enrolment URI is a TOTP URI");
  const state = ok(
    "confirm TOTP",
    await scim.POST("/scim/v2/Users/{id}/totp/confirmation", {
      params: id,
      body: { code: (totp as OTPAuth.TOTP).generate() },
    }),
  );
  check(state.status === "enrolled", `TOTP state is ${state.status}`);
  console.log("TOTP enrolled");

  // A bypass code: expires in 1 day, usable 3 times.
  const created = ok(
    "generate bypass code",
    await scim.POST("/scim/v2/Users/{id}/bypassCodes", {
      params: id,
      body: { expiresIn: { days: 1 }, maxUsageCount: 3 },
    }),
  );
  check(created.code !== undefined && created.maxUsageCount === 3, "the code and its 3 uses");
  check(created.expiresAt !== null && created.expiresAt !== undefined, "an expiry");
  console.log(`generated bypass code ${created.id}, expires ${created.expiresAt}`);
  const code = { path: { id: user.id, code_id: created.id } };

  const active = ok(
    "list bypass codes",
    await scim.GET("/scim/v2/Users/{id}/bypassCodes", {
      params: { path: { id: user.id }, query: { filter: 'status eq "active"' } },
    }),
  );
  check(active.Resources.some((c) => c.id === created.id && c.code === undefined), "listed, without its plaintext");
  console.log(`listed ${active.totalResults} active code(s)`);

  const emailed = ok(
    "email bypass code",
    await scim.POST("/scim/v2/Users/{id}/bypassCodes/{code_id}/notifications", {
      params: code,
      body: { code: created.code ?? "" },
    }),
  );
  const sent = emailed.notifications.at(-1);
  check(sent?.status === "sent", `the email was ${sent?.status}: ${sent?.detail}`);
  console.log(`emailed: ${sent?.detail}`);

  done("revoke bypass code", await scim.DELETE("/scim/v2/Users/{id}/bypassCodes/{code_id}", { params: code }));
  const revoked = ok("get bypass code", await scim.GET("/scim/v2/Users/{id}/bypassCodes/{code_id}", { params: code }));
  check(revoked.status === "revoked", `status is ${revoked.status}`);
  console.log("revoked");

  // A group: create with the user, take the user out, delete it.
  const group = ok(
    "create group",
    await scim.POST("/scim/v2/Groups", {
      body: {
        schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        displayName: `TS example ${Date.now()}`,
        members: [{ value: user.id }],
      },
    }),
  );
  check(group.members?.length === 1, "one member");
  const groupId = { path: { id: group.id } };
  done(
    "remove member",
    await scim.PATCH("/scim/v2/Groups/{id}", {
      params: groupId,
      body: {
        schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        Operations: [{ op: "remove", path: `members[value eq "${user.id}"]` }],
      },
    }),
  );
  const after = ok("get group", await scim.GET("/scim/v2/Groups/{id}", { params: groupId }));
  check((after.members ?? []).length === 0, "no members left");
  done("delete group", await scim.DELETE("/scim/v2/Groups/{id}", { params: groupId }));
  done("delete user", await scim.DELETE("/scim/v2/Users/{id}", { params: id }));
  console.log(`managed group ${group.displayName}; cleaned up`);
}

main().catch((error: unknown) => {
  console.error(failure(error));
  process.exit(1);
});
