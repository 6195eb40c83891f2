"""etcdserverpb.Auth over an `AuthMember`, and `AuthInterceptor`: auth on every other call.

Who asks is the simple token in the request's metadata (`token`, or `authorization` as etcd's
gateway sends it); a token that names nobody fails the call with "invalid auth token" before
anything else happens, as etcd's AuthInfoFromCtx does, whether or not auth is enabled.
Authenticate itself needs no token. Passwords are handed to the member and never logged.

`AuthInterceptor` is the one place the other services are checked (see docs/security.md):
each method has a rule (`RULES`) saying whether the token is read, whether the root role is
needed, and which reads are checked here; writes are checked by the applier, which gets the
caller through `kvorum.auth.context.CALLER` (the member proposes them as that user). Lock and
Election run as the caller too (`Rule.LOCAL_CLIENT`): their `LocalClient` checks the reads it
makes against the same `CALLER`.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc

from kvorum.api import convert
from kvorum.api.errors import abort
from kvorum.api.member import AuthMember
from kvorum.api.pb.authpb import auth_pb2
from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.apply import payload
from kvorum.auth import (
    AuthError,
    AuthInfo,
    AuthOldRevisionError,
    InvalidAuthTokenError,
    Permission,
    PermissionDeniedError,
    PermType,
    UserEmptyError,
)
from kvorum.auth.check import check_needs, needs_of
from kvorum.auth.context import ANONYMOUS, CALLER
from kvorum.mvcc.types import DeleteRangeRequest, PutRequest, TxnRequest

__all__ = [
    "RULES",
    "TOKEN_METADATA_KEYS",
    "AuthInterceptor",
    "AuthServicer",
    "Rule",
    "caller_of",
    "token_of",
    "watch_cancel_reason",
]

#: etcd's rpctypes.TokenFieldNameGRPC, then TokenFieldNameSwagger.
TOKEN_METADATA_KEYS = ("token", "authorization")


def token_of(context: grpc.aio.ServicerContext) -> str | None:
    """The request's token, if it carries one."""
    metadata = context.invocation_metadata() or ()
    for wanted in TOKEN_METADATA_KEYS:
        for key, value in metadata:
            if key == wanted:
                return value if isinstance(value, str) else value.decode()
    return None


def _common_name(context: Any) -> str | None:
    """The common name of the client's verified certificate, if the call came with one."""
    try:
        names = context.auth_context().get("x509_common_name") or ()
    except Exception:  # no TLS on this call
        return None
    for name in names:
        return name.decode() if isinstance(name, bytes) else str(name)
    return None


async def caller_of(member: AuthMember, context: Any) -> AuthInfo | None:
    """Who a call comes from: its token's user; without a token, the client certificate's
    common name when the store allows it (etcd's AuthInfoFromCtx, then AuthInfoFromTLS).
    An invalid token raises `InvalidAuthTokenError`."""
    who = await member.auth_info(token_of(context))
    store = member.auth
    if who is None and store is not None and store.cn_as_user:
        name = _common_name(context)
        if name:
            who = AuthInfo(name, store.revision)
    return who


def _permission(perm: auth_pb2.Permission) -> Permission:
    return Permission(PermType(perm.permType), perm.key, perm.range_end)


class AuthServicer(rpc_pb2_grpc.AuthServicer):
    """The sixteen Auth calls (etcd 3.4's; AuthStatus is 3.5's and stays unimplemented)."""

    def __init__(self, member: AuthMember) -> None:
        self._member = member

    async def _who(self, context: grpc.aio.ServicerContext) -> AuthInfo | None:
        return await caller_of(self._member, context)

    def _header(self) -> rpc_pb2.ResponseHeader:
        return convert.header(self._member.header())

    async def AuthEnable(
        self, request: rpc_pb2.AuthEnableRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthEnableResponse:
        try:
            await self._member.auth_enable(await self._who(context))
        except Exception as exc:
            await abort(context, exc, "AuthEnable")
        return rpc_pb2.AuthEnableResponse(header=self._header())

    async def AuthDisable(
        self, request: rpc_pb2.AuthDisableRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthDisableResponse:
        try:
            await self._member.auth_disable(await self._who(context))
        except Exception as exc:
            await abort(context, exc, "AuthDisable")
        return rpc_pb2.AuthDisableResponse(header=self._header())

    async def Authenticate(
        self, request: rpc_pb2.AuthenticateRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthenticateResponse:
        try:
            token = await self._member.authenticate(request.name, request.password)
        except Exception as exc:
            await abort(context, exc, "Authenticate")
        return rpc_pb2.AuthenticateResponse(header=self._header(), token=token)

    async def UserAdd(
        self, request: rpc_pb2.AuthUserAddRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthUserAddResponse:
        try:
            no_password = request.HasField("options") and request.options.no_password
            await self._member.user_add(
                await self._who(context), request.name, request.password, no_password
            )
        except Exception as exc:
            await abort(context, exc, "UserAdd")
        return rpc_pb2.AuthUserAddResponse(header=self._header())

    async def UserGet(
        self, request: rpc_pb2.AuthUserGetRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthUserGetResponse:
        try:
            roles = await self._member.user_get(await self._who(context), request.name)
        except Exception as exc:
            await abort(context, exc, "UserGet")
        return rpc_pb2.AuthUserGetResponse(header=self._header(), roles=list(roles))

    async def UserList(
        self, request: rpc_pb2.AuthUserListRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthUserListResponse:
        try:
            users = await self._member.user_list(await self._who(context))
        except Exception as exc:
            await abort(context, exc, "UserList")
        return rpc_pb2.AuthUserListResponse(header=self._header(), users=list(users))

    async def UserDelete(
        self, request: rpc_pb2.AuthUserDeleteRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthUserDeleteResponse:
        try:
            await self._member.user_delete(await self._who(context), request.name)
        except Exception as exc:
            await abort(context, exc, "UserDelete")
        return rpc_pb2.AuthUserDeleteResponse(header=self._header())

    async def UserChangePassword(
        self, request: rpc_pb2.AuthUserChangePasswordRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthUserChangePasswordResponse:
        try:
            await self._member.user_change_password(
                await self._who(context), request.name, request.password
            )
        except Exception as exc:
            await abort(context, exc, "UserChangePassword")
        return rpc_pb2.AuthUserChangePasswordResponse(header=self._header())

    async def UserGrantRole(
        self, request: rpc_pb2.AuthUserGrantRoleRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthUserGrantRoleResponse:
        try:
            await self._member.user_grant_role(await self._who(context), request.user, request.role)
        except Exception as exc:
            await abort(context, exc, "UserGrantRole")
        return rpc_pb2.AuthUserGrantRoleResponse(header=self._header())

    async def UserRevokeRole(
        self, request: rpc_pb2.AuthUserRevokeRoleRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthUserRevokeRoleResponse:
        try:
            await self._member.user_revoke_role(
                await self._who(context), request.name, request.role
            )
        except Exception as exc:
            await abort(context, exc, "UserRevokeRole")
        return rpc_pb2.AuthUserRevokeRoleResponse(header=self._header())

    async def RoleAdd(
        self, request: rpc_pb2.AuthRoleAddRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthRoleAddResponse:
        try:
            await self._member.role_add(await self._who(context), request.name)
        except Exception as exc:
            await abort(context, exc, "RoleAdd")
        return rpc_pb2.AuthRoleAddResponse(header=self._header())

    async def RoleGet(
        self, request: rpc_pb2.AuthRoleGetRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthRoleGetResponse:
        try:
            perms = await self._member.role_get(await self._who(context), request.role)
        except Exception as exc:
            await abort(context, exc, "RoleGet")
        return rpc_pb2.AuthRoleGetResponse(
            header=self._header(),
            perm=[
                auth_pb2.Permission(permType=p.perm_type.name, key=p.key, range_end=p.range_end)
                for p in perms
            ],
        )

    async def RoleList(
        self, request: rpc_pb2.AuthRoleListRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthRoleListResponse:
        try:
            roles = await self._member.role_list(await self._who(context))
        except Exception as exc:
            await abort(context, exc, "RoleList")
        return rpc_pb2.AuthRoleListResponse(header=self._header(), roles=list(roles))

    async def RoleDelete(
        self, request: rpc_pb2.AuthRoleDeleteRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthRoleDeleteResponse:
        try:
            await self._member.role_delete(await self._who(context), request.role)
        except Exception as exc:
            await abort(context, exc, "RoleDelete")
        return rpc_pb2.AuthRoleDeleteResponse(header=self._header())

    async def RoleGrantPermission(
        self, request: rpc_pb2.AuthRoleGrantPermissionRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthRoleGrantPermissionResponse:
        try:
            await self._member.role_grant_permission(
                await self._who(context), request.name, _permission(request.perm)
            )
        except Exception as exc:
            await abort(context, exc, "RoleGrantPermission")
        return rpc_pb2.AuthRoleGrantPermissionResponse(header=self._header())

    async def RoleRevokePermission(
        self, request: rpc_pb2.AuthRoleRevokePermissionRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AuthRoleRevokePermissionResponse:
        try:
            await self._member.role_revoke_permission(
                await self._who(context), request.role, request.key, request.range_end
            )
        except Exception as exc:
            await abort(context, exc, "RoleRevokePermission")
        return rpc_pb2.AuthRoleRevokePermissionResponse(header=self._header())


# --- the interceptor -------------------------------------------------------------------------


class Rule(enum.Enum):
    """What a method asks of its caller while auth is enabled (etcd 3.4's v3rpc/v3_server)."""

    #: nothing: the token is not even read (Status, MemberList, keep-alives, ...).
    OPEN = "open"
    #: the token is read (an invalid one fails); writes are checked where applied.
    CALLER = "caller"
    #: the caller's user must hold the root role (membership changes).
    ADMIN = "admin"
    #: the same for maintenance; etcd 3.4 sends these refusals untranslated: UNKNOWN status
    #: with the auth package's own text ("auth: permission denied"), and clients see that.
    ADMIN_RAW = "admin-raw"
    #: read permission on the request's range, checked here (Range).
    RANGE = "range"
    #: a txn without writes is served here, so checked here; one with writes is applied.
    TXN = "txn"
    #: each watch created needs read permission on its range; a refused one is answered
    #: created-and-canceled, and the stream goes on (etcd's recvLoop).
    WATCH = "watch"
    #: Lock and Election: served through etcd's in-process client carrying the caller's
    #: token, so the caller's reads (`LocalClient`) and writes (the applier) are checked;
    #: a refused token reaches the wire as that client's error: UNKNOWN, etcd's text.
    LOCAL_CLIENT = "local-client"


_KV = "/etcdserverpb.KV/"
_MAINTENANCE = "/etcdserverpb.Maintenance/"
_CLUSTER = "/etcdserverpb.Cluster/"
_LEASE = "/etcdserverpb.Lease/"
_LOCK = "/v3lockpb.Lock/"
_ELECTION = "/v3electionpb.Election/"

#: method path -> rule. Methods not listed (Auth's own) pass through the interceptor
#: unchanged: Auth checks itself.
RULES: dict[str, Rule] = {
    _KV + "Range": Rule.RANGE,
    _KV + "Txn": Rule.TXN,
    _KV + "Put": Rule.CALLER,
    _KV + "DeleteRange": Rule.CALLER,
    _KV + "Compact": Rule.CALLER,
    _LEASE + "LeaseGrant": Rule.CALLER,
    _LEASE + "LeaseRevoke": Rule.CALLER,
    _LEASE + "LeaseKeepAlive": Rule.OPEN,
    _LEASE + "LeaseTimeToLive": Rule.OPEN,
    _LEASE + "LeaseLeases": Rule.OPEN,
    _CLUSTER + "MemberAdd": Rule.ADMIN,
    _CLUSTER + "MemberRemove": Rule.ADMIN,
    _CLUSTER + "MemberUpdate": Rule.ADMIN,
    _CLUSTER + "MemberPromote": Rule.ADMIN,
    _CLUSTER + "MemberList": Rule.OPEN,
    _MAINTENANCE + "Alarm": Rule.CALLER,
    _MAINTENANCE + "Status": Rule.OPEN,
    _MAINTENANCE + "Defragment": Rule.ADMIN_RAW,
    _MAINTENANCE + "Hash": Rule.ADMIN_RAW,
    _MAINTENANCE + "HashKV": Rule.ADMIN_RAW,
    _MAINTENANCE + "Snapshot": Rule.ADMIN_RAW,
    _MAINTENANCE + "MoveLeader": Rule.OPEN,
    "/etcdserverpb.Watch/Watch": Rule.WATCH,
    _LOCK + "Lock": Rule.LOCAL_CLIENT,
    _LOCK + "Unlock": Rule.LOCAL_CLIENT,
    _ELECTION + "Campaign": Rule.LOCAL_CLIENT,
    _ELECTION + "Proclaim": Rule.LOCAL_CLIENT,
    _ELECTION + "Leader": Rule.LOCAL_CLIENT,
    _ELECTION + "Observe": Rule.LOCAL_CLIENT,
    _ELECTION + "Resign": Rule.LOCAL_CLIENT,
}

#: the errors a refused watch names in its cancel_reason; any other is "permission denied".
_WATCH_REASONS: tuple[type[AuthError], ...] = (
    InvalidAuthTokenError,
    AuthOldRevisionError,
    UserEmptyError,
)


def watch_cancel_reason(exc: AuthError) -> str:
    """etcd's cancel_reason for a refused watch: the Go string of the gRPC error."""
    spec = (exc if isinstance(exc, _WATCH_REASONS) else PermissionDeniedError()).spec
    go_code = "".join(part.capitalize() for part in spec.grpc_code.split("_"))
    return f"rpc error: code = {go_code} desc = {spec.grpc_text}"


def _no_lease_keys(_lease_id: int) -> tuple[bytes, ...]:
    return ()


def _read_only_txn(request: rpc_pb2.TxnRequest) -> TxnRequest | None:
    """The txn as kvorum's dataclass if it has no write anywhere (the member then serves it
    locally, so nothing checks it later); None otherwise, or if it does not convert (the
    servicer then refuses it with etcd's validation error)."""
    try:
        txn = payload.txn_from_pb(request)
    except Exception:
        return None

    def writes(t: TxnRequest) -> bool:
        return any(
            isinstance(op, PutRequest | DeleteRangeRequest)
            or (isinstance(op, TxnRequest) and writes(op))
            for op in (*t.success, *t.failure)
        )

    return None if writes(txn) else txn


class _SerializedWrites:
    """A stream's context whose writes take turns: the watch servicer writes from its sender
    while the interceptor answers refused creates from the receiving side."""

    def __init__(self, context: Any) -> None:
        self._context = context
        self._lock = asyncio.Lock()

    async def write(self, message: Any) -> None:
        async with self._lock:
            await self._context.write(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


async def _refuse(context: Any, exc: AuthError, rule: Rule, method: str) -> NoReturn:
    if rule is Rule.ADMIN_RAW:
        await context.abort(grpc.StatusCode.UNKNOWN, exc.spec.text)
        raise AssertionError("context.abort returned")
    if rule is Rule.LOCAL_CLIENT:
        await context.abort(grpc.StatusCode.UNKNOWN, exc.spec.grpc_text)
        raise AssertionError("context.abort returned")
    await abort(context, exc, method)


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Applies `RULES` to every call of a listed method; see the module docstring.

    While auth is disabled a call only has its token (if any) checked, as etcd does; nothing
    is proposed as a user then, so writes cost nothing extra.
    """

    def __init__(self, member: AuthMember) -> None:
        self._member = member

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        return self.wrap(handler_call_details.method, await continuation(handler_call_details))

    def wrap(self, method: str, handler: Any) -> Any:
        """`handler` of `method` with its rule applied. `build_server` calls this once per
        method when the services are registered, so a call pays no grpc.aio interceptor
        machinery (a chain of coroutines per call), only the wrapper's own check."""
        rule = RULES.get(method)
        if handler is None or rule is None or rule is Rule.OPEN:
            return handler
        if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
            return handler._replace(unary_unary=self._unary(handler.unary_unary, rule, method))
        if rule is Rule.WATCH and inspect.iscoroutinefunction(handler.stream_stream):
            return handler._replace(stream_stream=self._watch(handler.stream_stream))
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            return handler._replace(
                unary_stream=self._streaming(handler.unary_stream, rule, method)
            )
        return handler

    async def _admit(self, request: Any, context: Any, rule: Rule) -> AuthInfo | None:
        """Check the call; returns who to propose its writes as (None: auth is off)."""
        who = await caller_of(self._member, context)
        store = self._member.auth
        if store is None or not store.enabled:
            return None
        if rule in (Rule.ADMIN, Rule.ADMIN_RAW):
            store.check_admin(who)
        elif rule is Rule.RANGE:
            store.check_permitted(who, request.key, request.range_end, write=False)
        elif rule is Rule.TXN:
            txn = _read_only_txn(request)
            if txn is not None:
                check_needs(store, who, needs_of(txn, _no_lease_keys))
        return who if who is not None else ANONYMOUS

    def _unary(
        self, behavior: Callable[[Any, Any], Awaitable[Any]], rule: Rule, method: str
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        member = self._member

        async def checked(request: Any, context: Any) -> Any:
            store = member.auth
            if store is None or (not store.enabled and token_of(context) is None):
                # The common case, auth off and no token: `_admit` would find nobody and
                # return None, and CALLER is None already (each call runs in a task whose
                # context is copied from the server's, where it is never set).
                return await behavior(request, context)
            try:
                caller = await self._admit(request, context, rule)
            except AuthError as exc:
                await _refuse(context, exc, rule, method)
            reset = CALLER.set(caller)
            try:
                return await behavior(request, context)
            finally:
                CALLER.reset(reset)

        return checked

    async def _watch_refusal(self, context: Any, create: rpc_pb2.WatchCreateRequest) -> str | None:
        """Why the watch may not be created (its cancel_reason), or None."""
        store = self._member.auth
        if store is None or not store.enabled:
            return None
        try:
            who = await caller_of(self._member, context)
            # etcd reads an empty key as "\0", the smallest key. (etcd 3.4 then checks a
            # watch from a key onwards as that one key only, a known gap: the whole range
            # is checked here.)
            store.check_permitted(who, create.key or b"\0", create.range_end, write=False)
        except AuthError as exc:
            return watch_cancel_reason(exc)
        return None

    def _watch(
        self, behavior: Callable[[Any, Any], Awaitable[Any]]
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        async def checked(request_iterator: AsyncIterator[Any], context: Any) -> Any:
            stream = _SerializedWrites(context)

            async def permitted() -> AsyncIterator[rpc_pb2.WatchRequest]:
                async for request in request_iterator:
                    if request.WhichOneof("request_union") == "create_request":
                        create = request.create_request
                        reason = await self._watch_refusal(context, create)
                        if reason is not None:
                            await stream.write(
                                rpc_pb2.WatchResponse(
                                    header=convert.header(self._member.header()),
                                    watch_id=create.watch_id,
                                    created=True,
                                    canceled=True,
                                    cancel_reason=reason,
                                )
                            )
                            continue
                    yield request

            return await behavior(permitted(), stream)

        return checked

    def _streaming(
        self, behavior: Callable[[Any, Any], AsyncIterator[Any]], rule: Rule, method: str
    ) -> Callable[[Any, Any], AsyncIterator[Any]]:
        async def checked(request: Any, context: Any) -> AsyncIterator[Any]:
            try:
                caller = await self._admit(request, context, rule)
            except AuthError as exc:
                await _refuse(context, exc, rule, method)
            # The stream's task serves only this call, so the caller stays set for all of
            # it (Observe's reads are checked as it goes); nothing to reset afterwards.
            CALLER.set(caller)
            async for response in behavior(request, context):
                yield response

        return checked
