"""A loopback stand-in for Discord's gateway and REST API, for tests of the real bot process.

    async with DiscordStandIn() as discord_:
        env["DISCORD_API_BASE"] = discord_.api_base          # the bot's real API-proxy setting
        ...start `python -m bot`...
        await discord_.ready.wait()
        token = discord_.slash_command("compose", bars=4, candidates=2)
        await discord_.wait_for(lambda: discord_.callbacks(token))

It speaks just enough of both for one guild and one channel per shard (`shard_count`, 1 by
default; guild ids chosen so that Discord's rule, (guild id >> 22) % shard count, puts one on
each shard): the gateway's JSON ops (HELLO, IDENTIFY with its shard -> READY + GUILD_CREATE of
that shard's guild, heartbeat -> ACK, INTERACTION_CREATE pushed by the test to the shard of its
guild, or to another one on purpose, and the close code the bot sends), and the REST routes
the bot calls: GET /gateway/bot,
GET /users/@me, GET /oauth2/applications/@me, interaction callbacks, webhook follow-ups,
and the @original message (edit, delete). Everything the bot sends is kept in `requests`.
`hold(token)` makes edits of that interaction's @original wait until `release(token)`, so
a test can keep a composition in flight while it watches the bot drain.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

API = "/api/v10"
BOT_ID = 900_000_000_000_000_001
GUILD_ID = 900_000_000_000_000_100
CHANNEL_ID = 900_000_000_000_000_200
MEMBER_ID = 900_000_000_000_000_300
EPHEMERAL = 1 << 6
# Every permission but administrator: enough for anything the bot checks.
ALL_PERMISSIONS = str((1 << 50) - 1 - 8)
BOT_USER = {
    "id": str(BOT_ID),
    "username": "motif",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
    "flags": 0,
}
MEMBER_USER = {
    "id": str(MEMBER_ID),
    "username": "alice",
    "discriminator": "0",
    "global_name": "Alice",
    "avatar": None,
}
OTHER_MEMBER_USER = {
    **MEMBER_USER,
    "id": str(MEMBER_ID + 1),
    "username": "bob",
    "global_name": "Bob",
}
TIMESTAMP = "2026-01-01T00:00:00+00:00"


@dataclass
class Request:
    method: str
    path: str
    json: Any = None
    files: list[str] = field(default_factory=list)


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's rule: which shard receives a guild's events."""
    return (guild_id >> 22) % shard_count


def guild_of_shard(shard: int, shard_count: int) -> int:
    """A guild id on `shard` (GUILD_ID itself when it is there)."""
    guild = GUILD_ID
    while shard_of(guild, shard_count) != shard:
        guild += 1 << 22
    return guild


class DiscordStandIn:
    def __init__(self, shard_count: int = 1) -> None:
        self.requests: list[Request] = []
        self.shard_count = shard_count
        # One guild per shard, each with one channel: guild id -> channel id.
        self.guilds = {
            guild_of_shard(shard, shard_count): CHANNEL_ID + shard for shard in range(shard_count)
        }
        self.ready = asyncio.Event()  # READY and GUILD_CREATE were sent on every shard
        self.identified: list[int] = []  # the shard of each IDENTIFY, in order
        self.gateway_close_codes: list[int | None] = []
        self.port = free_port()
        self._sockets: list[tuple[int, web.WebSocketResponse]] = []  # (shard, socket)
        self._sequence = itertools.count(1)
        self._ids = itertools.count(910_000_000_000_000_000)
        self._held: dict[str, asyncio.Event] = {}
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", API + "/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    async def __aenter__(self) -> DiscordStandIn:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for event in self._held.values():
            event.set()
        for _, ws in self._sockets:
            await ws.close()
        await self._runner.cleanup()

    # What the test does.
    def slash_command(
        self,
        name: str,
        *,
        in_guild: int = GUILD_ID,
        via_shard: int | None = None,
        member: dict[str, Any] = MEMBER_USER,
        **options: Any,
    ) -> str:
        """Dispatch /name with these options as `member` in the guild's channel (to the
        guild's shard, or `via_shard`); the token. An option whose value is a dict is a
        subcommand with those options (/seed play: `play={"name": "riff"}`)."""
        data = {"id": str(next(self._ids)), "name": name, "type": 1, "options": _options(options)}
        return self._interaction(2, data, in_guild, via_shard, member)

    def button(
        self, custom_id: str, *, in_guild: int = GUILD_ID, via_shard: int | None = None
    ) -> str:
        """Dispatch a click on a button with this custom_id (on a message of the bot in the
        guild's channel; to the guild's shard, or `via_shard`)."""
        message = {
            "id": str(next(self._ids)),
            "channel_id": str(self.guilds[in_guild]),
            "author": BOT_USER,
            "content": "",
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
            "components": [
                {
                    "type": 1,
                    "components": [
                        {"type": 2, "style": 1, "label": "Button", "custom_id": custom_id}
                    ],
                }
            ],
        }
        return self._interaction(
            3,
            {"custom_id": custom_id, "component_type": 2},
            in_guild,
            via_shard,
            MEMBER_USER,
            message=message,
        )

    def hold(self, token: str) -> None:
        self._held[token] = asyncio.Event()

    def release(self, token: str) -> None:
        self._held.pop(token).set()

    def callbacks(self, token: str) -> list[dict[str, Any]]:
        """The interaction responses the bot sent for this interaction."""
        return [
            r.json
            for r in self.requests
            if r.path.startswith("/interactions/") and r.path.endswith(f"/{token}/callback")
        ]

    def original_edits(self, token: str) -> list[Request]:
        return [
            r
            for r in self.requests
            if r.method == "PATCH" and r.path.endswith(f"/{token}/messages/@original")
        ]

    def followups(self, token: str) -> list[Request]:
        """Messages the bot sent with the interaction's webhook (interaction.followup)."""
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(f"/{token}")]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Wait until `predicate()` is truthy (re-checked at each request); its value."""
        async with asyncio.timeout(timeout):
            while not (value := predicate()):
                self._changed.clear()
                await self._changed.wait()
        return value

    # The gateway.
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41_250}, "s": None, "t": None})
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            payload = json.loads(message.data)
            if payload["op"] == 1:
                await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif payload["op"] == 2:
                shard = (payload["d"].get("shard") or [0, 1])[0]
                self._sockets.append((shard, ws))
                self.identified.append(shard)
                guilds = [g for g in self.guilds if shard_of(g, self.shard_count) == shard]
                await self._send(
                    ws,
                    "READY",
                    {
                        "v": 10,
                        "user": BOT_USER,
                        "guilds": [{"id": str(g), "unavailable": True} for g in guilds],
                        "session_id": f"standin-{shard}",
                        "resume_gateway_url": self._gateway_url,
                        "application": {"id": str(BOT_ID), "flags": 0},
                        "shard": [shard, self.shard_count],
                    },
                )
                for guild in guilds:
                    await self._send(ws, "GUILD_CREATE", _guild(guild, self.guilds[guild]))
                if set(self.identified) == set(range(self.shard_count)):
                    self.ready.set()
                self._notify()
        self.gateway_close_codes.append(ws.close_code)
        self._notify()
        return ws

    @property
    def _gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def _send(self, ws: web.WebSocketResponse, event: str, data: Any) -> None:
        await ws.send_json({"op": 0, "t": event, "s": next(self._sequence), "d": data})

    def _interaction(
        self,
        kind: int,
        data: dict[str, Any],
        guild: int,
        via_shard: int | None,
        member: dict[str, Any],
        **extra: Any,
    ) -> str:
        token = f"token-{next(self._ids)}"
        channel = self.guilds[guild]
        payload = {
            "id": str(next(self._ids)),
            "application_id": str(BOT_ID),
            "type": kind,
            "token": token,
            "version": 1,
            "guild_id": str(guild),
            "channel_id": str(channel),
            "channel": _channel(guild, channel),
            "data": data,
            "member": {
                "user": member,
                "roles": [],
                "joined_at": TIMESTAMP,
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": ALL_PERMISSIONS,
            },
            "app_permissions": ALL_PERMISSIONS,
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
            **extra,
        }
        shard = shard_of(guild, self.shard_count) if via_shard is None else via_shard
        live = [ws for on, ws in self._sockets if on == shard and not ws.closed]
        assert live, f"the bot is not connected to the gateway on shard {shard}"
        task = asyncio.create_task(self._send(live[-1], "INTERACTION_CREATE", payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return token

    # REST.
    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        recorded = Request(request.method, path)
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if part.name == "payload_json":
                    recorded.json = json.loads(await part.text())
                else:
                    recorded.files.append(part.filename or "")
                    await part.read()
        elif request.can_read_body:
            recorded.json = await request.json()
        self.requests.append(recorded)
        self._notify()
        return await self._answer(recorded)

    async def _answer(self, request: Request) -> web.StreamResponse:
        method, path, body = request.method, request.path, request.json or {}
        if (method, path) == ("GET", "/gateway/bot"):
            return _json(
                {
                    "url": self._gateway_url,
                    "shards": self.shard_count,
                    "session_start_limit": {
                        "total": 1000,
                        "remaining": 1000,
                        "reset_after": 0,
                        "max_concurrency": 1,
                    },
                }
            )
        if (method, path) == ("GET", "/users/@me"):
            return _json(BOT_USER)
        if (method, path) == ("GET", "/oauth2/applications/@me"):
            return _json(
                {
                    "id": str(BOT_ID),
                    "name": "Motif",
                    "description": "",
                    "icon": None,
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": MEMBER_USER,
                    "verify_key": "0" * 64,
                    "flags": 0,
                }
            )
        if method == "POST" and path.endswith("/callback"):
            data = body.get("data") or {}
            return _json(
                {
                    "interaction": {
                        "id": path.split("/")[2],
                        "type": body.get("type"),
                        "response_message_loading": body.get("type") == 5,
                        "response_message_ephemeral": bool((data.get("flags") or 0) & EPHEMERAL),
                    },
                    "resource": {"type": body.get("type")},
                }
            )
        if path.startswith("/webhooks/") and method in ("PATCH", "POST", "GET"):
            token = path.split("/")[3]
            if method == "PATCH" and token in self._held:
                await self._held[token].wait()
            return _json(self._message(request))
        if path.startswith("/webhooks/") and method == "DELETE":
            return web.Response(status=204)
        return _json({"message": f"the stand-in has no {method} {path}", "code": 0}, status=404)

    def _message(self, request: Request) -> dict[str, Any]:
        body = request.json or {}
        return {
            "id": str(next(self._ids)),
            "channel_id": str(CHANNEL_ID),
            "author": BOT_USER,
            "content": body.get("content") or "",
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "type": 0,
            "flags": body.get("flags") or 0,
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "attachments": [
                {
                    "id": str(next(self._ids)),
                    "filename": name,
                    "size": 1,
                    "url": f"{self.api_base}/files/{name}",
                    "proxy_url": f"{self.api_base}/files/{name}",
                }
                for name in request.files
            ],
        }

    def _notify(self) -> None:
        self._changed.set()


def _options(options: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = {bool: 5, int: 4, float: 10, str: 3}
    return [
        {"name": k, "type": 1, "options": _options(v)}
        if isinstance(v, dict)
        else {"name": k, "type": kinds[type(v)], "value": v}
        for k, v in options.items()
    ]


def _json(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json", as Discord sends it: discord.py compares the header whole.
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _channel(guild: int = GUILD_ID, channel: int = CHANNEL_ID) -> dict[str, Any]:
    return {
        "id": str(channel),
        "type": 0,
        "name": "music",
        "guild_id": str(guild),
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
    }


def _guild(guild: int = GUILD_ID, channel: int = CHANNEL_ID) -> dict[str, Any]:
    everyone = {
        "id": str(guild),
        "name": "@everyone",
        "permissions": ALL_PERMISSIONS,
        "position": 0,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }
    return {
        "id": str(guild),
        "name": "Band",
        "icon": None,
        "owner_id": str(MEMBER_ID),
        "roles": [everyone],
        "channels": [_channel(guild, channel)],
        "emojis": [],
        "stickers": [],
        "features": [],
        "members": [],
        "member_count": 2,
        "threads": [],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "unavailable": False,
        "large": False,
        "joined_at": TIMESTAMP,
        "premium_tier": 0,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "system_channel_flags": 0,
        "preferred_locale": "en-US",
        "afk_timeout": 300,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
