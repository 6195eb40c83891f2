"""Who the request being served comes from, for the member's proposals to carry along.

The API layer sets `CALLER` around each client call while auth is enabled (`ANONYMOUS` when
the call has no token); the member then proposes its writes as that user (`AsUser`), and the
applier checks them against the auth state each entry sees. The member's own proposals (lease
expiry, alarms, publishing) run outside any client call, carry no user and are not checked.
"""

from __future__ import annotations

from contextvars import ContextVar

from kvorum.auth.types import AuthInfo

__all__ = ["ANONYMOUS", "CALLER"]

#: a client call without a token: any check with it fails as "user name is empty".
ANONYMOUS = AuthInfo("", 0)

CALLER: ContextVar[AuthInfo | None] = ContextVar("kvorum_auth_caller", default=None)
