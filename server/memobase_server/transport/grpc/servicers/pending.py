"""Handlers for RPCs that are in the contract but whose behaviour lands in a later release:
they answer UNIMPLEMENTED and say which part of the product brings them."""

from __future__ import annotations

from typing import Any

from memobase_server.domain.errors import NotImplementedYet


def pending(rpc: str, arrives_with: str) -> Any:
    """A servicer method (typed Any: it stands in for any generated signature)."""

    async def handler(self: Any, request: Any, context: Any) -> Any:
        raise NotImplementedYet(f"{rpc} is not implemented yet; it arrives with {arrives_with}")

    handler.__name__ = rpc
    return handler
