"""A help-desk workflow through the bypass-idp SCIM API, with a client generated from
openapi/openapi.json by openapi-python-client: get a token, create a user, enrol TOTP,
generate a bypass code that expires in 1 day and is usable 3 times, list it, email it,
revoke it, and manage a group.

    BYPASS_IDP_URL=http://127.0.0.1:8080 BYPASS_IDP_CLIENT_ID=bootstrap-admin \\
    BYPASS_IDP_CLIENT_SECRET=... python main.py

Any unexpected answer raises, and the process exits non-zero. Failures name the operation and
the HTTP status (and a SCIM error's scimType), never a response body: one can hold a bypass
code's plaintext or a TOTP secret.
"""

import os
import re
import sys
import time
import traceback
from typing import TypeVar

import httpx
import pyotp

from bypass_idp_client import AuthenticatedClient, errors
from bypass_idp_client.api.bypass_codes import (
    create_bypass_code,
    get_bypass_code,
    list_bypass_codes,
    notify_bypass_code,
    revoke_bypass_code,
)
from bypass_idp_client.api.groups import create_group, delete_group, get_group, patch_group
from bypass_idp_client.api.two_step_verification import (
    confirm_totp_enrollment,
    start_totp_enrollment,
)
from bypass_idp_client.api.users import create_user, delete_user
from bypass_idp_client.models import (
    BypassCodeRequest,
    ExpiresIn,
    GroupMemberRequest,
    GroupRequest,
    GroupRequestSchemasItem,
    NotifyRequest,
    PatchOperation,
    PatchRequest,
    PatchRequestSchemasItem,
    ScimError,
    TotpConfirmation,
    UserEmailRequest,
    UserName,
    UserRequest,
    UserRequestSchemasItem,
)
from bypass_idp_client.types import Response

T = TypeVar("T")


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"set {name}")
    return value


class CallFailed(RuntimeError):
    """An answer other than success: the operation, the status and the SCIM error's scimType,
    never the body."""

    def __init__(self, what: str, status: int, parsed: object) -> None:
        message = f"{what}: HTTP {status}"
        if isinstance(parsed, ScimError) and isinstance(parsed.scim_type, str):
            # A keyword such as invalidValue; anything else is not printed.
            if re.fullmatch(r"[A-Za-z]{1,40}", parsed.scim_type):
                message += f" scimType={parsed.scim_type}"
        super().__init__(message)


def ok(what: str, response: Response[T | ScimError]) -> T:
    """The parsed body of a successful answer; fails with the status otherwise."""
    parsed = response.parsed
    if response.status_code >= 300 or parsed is None or isinstance(parsed, ScimError):
        raise CallFailed(what, int(response.status_code), response.parsed)
    return parsed


def done(what: str, response: Response[object]) -> None:
    """The same for answers without a body (204)."""
    if response.status_code >= 300:
        raise CallFailed(what, int(response.status_code), response.parsed)


class Unexpected(RuntimeError):
    """A successful answer that is not the expected one; the message is the program's own."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Unexpected(f"unexpected: {what}")


def failure(error: Exception) -> str:
    """What to print for a failure. The client's UnexpectedStatus, and exceptions raised while
    parsing an answer, carry the body in their message: only the status, or the exception's
    type, and the generated module (one per operation) that raised it are printed."""
    if isinstance(error, (CallFailed, Unexpected)):
        return str(error)
    if isinstance(error, httpx.HTTPStatusError):
        return f"token: HTTP {error.response.status_code}"
    frames = traceback.walk_tb(error.__traceback__)
    modules = [str(frame.f_globals.get("__name__")) for frame, _ in frames]
    api = "bypass_idp_client.api."
    calls = [name.rsplit(".", 1)[-1] for name in modules if name.startswith(api)]
    where = calls[-1] if calls else "main"
    if isinstance(error, errors.UnexpectedStatus):
        return f"{where}: HTTP {error.status_code} (a status the document does not list)"
    return f"{where}: {type(error).__name__}"


def access_token(base: str, client_id: str, secret: str) -> str:
    """An access token for the client (OAuth 2.0 client credentials, RFC 6749 §4.4)."""
    answer = httpx.post(
        f"{base}/oauth2/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def main() -> None:
    base = env("BYPASS_IDP_URL")
    token = access_token(base, env("BYPASS_IDP_CLIENT_ID"), env("BYPASS_IDP_CLIENT_SECRET"))
    scim = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)

    # A user.
    user_name = f"py.example.{time.time_ns()}@example.com"
    user = ok(
        "create user",
        create_user.sync_detailed(
            client=scim,
            body=UserRequest(
                schemas=[UserRequestSchemasItem.URNIETFPARAMSSCIMSCHEMASCORE2_0USER],
                user_name=user_name,
                name=UserName(given_name="Katherine", family_name="Johnson"),
                emails=[UserEmailRequest(value=user_name, type_="work", primary=True)],
            ),
        ),
    )
    print(f"created user {user.user_name} ({user.id})")

    # TOTP: start, then confirm with the authenticator's current code.
    enrolment = ok("start TOTP", start_totp_enrollment.sync_detailed(user.id, client=scim))
    totp = pyotp.parse_uri(enrolment.otpauth_uri)
    if not isinstance(totp, pyotp.TOTP):
        raise RuntimeError("the enrolment URI is not a TOTP URI")
    state = ok(
        "confirm TOTP",
        confirm_totp_enrollment.sync_detailed(
            user.id, client=scim, body=TotpConfirmation(code=totp.now())
        ),
    )
    check(state.status == "enrolled", f"TOTP state is {state.status}")
    print("TOTP enrolled")

    # A bypass code: expires in 1 day, usable 3 times.
    created = ok(
        "generate bypass code",
        create_bypass_code.sync_detailed(
            user.id,
            client=scim,
            body=BypassCodeRequest(expires_in=ExpiresIn(days=1), max_usage_count=3),
        ),
    )
    check(isinstance(created.code, str) and created.max_usage_count == 3, "the code, 3 uses")
    check(isinstance(created.expires_at, str), "an expiry")
    print(f"generated bypass code {created.id}, expires {created.expires_at}")

    active = ok(
        "list bypass codes",
        list_bypass_codes.sync_detailed(user.id, client=scim, filter_='status eq "active"'),
    )
    check(
        any(c.id == created.id and not isinstance(c.code, str) for c in active.resources),
        "listed, without its plaintext",
    )
    print(f"listed {active.total_results} active code(s)")

    emailed = ok(
        "email bypass code",
        notify_bypass_code.sync_detailed(
            user.id, created.id, client=scim, body=NotifyRequest(code=str(created.code))
        ),
    )
    sent = emailed.notifications[-1]
    check(sent.status == "sent", f"the email was {sent.status}: {sent.detail}")
    print(f"emailed: {sent.detail}")

    done("revoke", revoke_bypass_code.sync_detailed(user.id, created.id, client=scim))
    revoked = ok("get bypass code", get_bypass_code.sync_detailed(user.id, created.id, client=scim))
    check(revoked.status == "revoked", f"status is {revoked.status}")
    print("revoked")

    # A group: create with the user, take the user out, delete it.
    group = ok(
        "create group",
        create_group.sync_detailed(
            client=scim,
            body=GroupRequest(
                schemas=[GroupRequestSchemasItem.URNIETFPARAMSSCIMSCHEMASCORE2_0GROUP],
                display_name=f"Python example {time.time_ns()}",
                members=[GroupMemberRequest(value=user.id)],
            ),
        ),
    )
    check(isinstance(group.members, list) and len(group.members) == 1, "one member")
    done(
        "remove member",
        patch_group.sync_detailed(
            group.id,
            client=scim,
            body=PatchRequest(
                schemas=[PatchRequestSchemasItem.URNIETFPARAMSSCIMAPIMESSAGES2_0PATCHOP],
                operations=[PatchOperation(op="remove", path=f'members[value eq "{user.id}"]')],
            ),
        ),
    )
    after = ok("get group", get_group.sync_detailed(group.id, client=scim))
    check(not isinstance(after.members, list) or not after.members, "no members left")
    done("delete group", delete_group.sync_detailed(group.id, client=scim))
    done("delete user", delete_user.sync_detailed(user.id, client=scim))
    print(f"managed group {group.display_name}; cleaned up")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - any failure ends the run, without a body
        print(failure(error), file=sys.stderr)
        sys.exit(1)
