"""etcdserverpb.KV over a `Member`: validate -> call -> map errors -> fill the header."""

from __future__ import annotations

import grpc

from kvorum.api import convert, validate
from kvorum.api.errors import abort
from kvorum.api.member import Member
from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.apply import payload

__all__ = ["KVServicer"]


class KVServicer(rpc_pb2_grpc.KVServicer):
    """Range, Put, DeleteRange, Txn and Compact, as etcd's v3rpc kvServer answers them."""

    def __init__(self, member: Member, limits: validate.Limits) -> None:
        self._member = member
        self._limits = limits

    async def Range(
        self, request: rpc_pb2.RangeRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.RangeResponse:
        try:
            validate.check_range(request)
            resp = await self._member.range(payload.range_from_pb(request), request.serializable)
        except Exception as exc:
            await abort(context, exc, "Range")
        return convert.range_response(resp, convert.header(self._member.header(), resp.revision))

    async def Put(
        self, request: rpc_pb2.PutRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.PutResponse:
        try:
            validate.check_put(request, self._limits)
            resp = await self._member.put(payload.put_from_pb(request))
        except Exception as exc:
            await abort(context, exc, "Put")
        return convert.put_response(resp, convert.header(self._member.header(), resp.revision))

    async def DeleteRange(
        self, request: rpc_pb2.DeleteRangeRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.DeleteRangeResponse:
        try:
            validate.check_delete_range(request, self._limits)
            resp = await self._member.delete_range(payload.delete_range_from_pb(request))
        except Exception as exc:
            await abort(context, exc, "DeleteRange")
        return convert.delete_range_response(
            resp, convert.header(self._member.header(), resp.revision)
        )

    async def Txn(
        self, request: rpc_pb2.TxnRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.TxnResponse:
        try:
            # Field checks come before conversion: conversion assumes known enum values.
            validate.check_txn_fields(request, self._limits)
            converted = payload.txn_from_pb(request)
            validate.check_txn(request, converted, self._limits)
            serializable = validate.is_txn_serializable(request)
            resp = await self._member.txn(converted, serializable)
        except Exception as exc:
            await abort(context, exc, "Txn")
        return convert.txn_response(resp, convert.header(self._member.header(), resp.revision))

    async def Compact(
        self, request: rpc_pb2.CompactionRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.CompactionResponse:
        try:
            validate.check_compact(request, self._limits)
            revision = await self._member.compact(request.revision, request.physical)
        except Exception as exc:
            await abort(context, exc, "Compact")
        return rpc_pb2.CompactionResponse(header=convert.header(self._member.header(), revision))
