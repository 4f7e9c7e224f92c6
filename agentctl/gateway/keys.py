"""Every `web.AppKey` of the gateway app, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from agentctl.gateway.runtime import Gateway

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
