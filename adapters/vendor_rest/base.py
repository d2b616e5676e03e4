"""What every cloud access-control REST API needs, written once: a client and a webhook receiver.

:class:`RestClient` is an ``httpx.AsyncClient`` with

- token auth: an API key is exchanged for a short-lived token (:meth:`RestClient.mint_token`, written per
  vendor), which is minted again shortly before it expires, and once more when the vendor answers 401/403;
  a second refusal is :class:`~campusguard.sdk.AuthFailed`;
- retries with backoff and jitter: 429 (honouring ``Retry-After``) always, 5xx and network errors only for
  requests that are safe to repeat (an unlock is not: a lost answer may mean the door did open);
- errors mapped to the SDK's: network, 429 after the retries and 5xx are :class:`~campusguard.sdk.NotReady`,
  other refusals :class:`VendorRequestError` (a ``ValueError``) with what the vendor said;
- a cursor paging helper (:meth:`RestClient.paginate`).

:class:`WebhookReceiver` is an aiohttp server on a configured host, port and path that verifies a shared-secret
signature (constant-time), refuses stale timestamps, processes each delivery once, and answers at once.

httpx and aiohttp are imported when a client opens or a receiver starts, so listing plugins stays fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, field_validator

from campusguard.sdk import AuthFailed, CampusguardError, NotReady

if TYPE_CHECKING:
    import httpx
    from aiohttp import web

__all__ = [
    "Delivery",
    "HmacSha256Signature",
    "ReplayGuard",
    "RestClient",
    "RestSettings",
    "Token",
    "UnsupportedAction",
    "VendorError",
    "VendorNotFound",
    "VendorRequestError",
    "VendorResponseError",
    "WebhookPayloadError",
    "WebhookReceiver",
    "WebhookRejected",
    "WebhookSettings",
    "decode",
    "retry_after_seconds",
    "signature_key",
]


# -- errors -----------------------------------------------------------------------------------------


class VendorError(CampusguardError):
    """The vendor's API answered, but not with what was asked for."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class VendorRequestError(VendorError, ValueError):
    """The vendor refused the request (a 4xx other than 401, 403 and 429): sending it again will not help."""


class VendorNotFound(VendorRequestError, LookupError):
    """The vendor answered 404: what the request names does not exist there."""


class VendorResponseError(VendorError):
    """The vendor answered something this client cannot read (not JSON, or not the documented shape)."""


class UnsupportedAction(ValueError):
    """The vendor's API has no way to carry out this door action: nothing was sent."""


# -- settings ----------------------------------------------------------------------------------------


class RestSettings(BaseModel):
    """Options every vendor REST adapter takes (a vendor's ``Config`` subclasses this)."""

    model_config = ConfigDict(extra="forbid")

    base_url: AnyHttpUrl = Field(description="the API's base URL (the vendor's region host)")
    timeout: float = Field(default=10.0, gt=0, description="seconds to connect, and again to read an answer")
    retries: int = Field(default=3, ge=0, le=10, description="tries after the first, for 429, 5xx and network errors")
    backoff: float = Field(default=0.5, gt=0, description="seconds before the first retry; doubled each time, jittered")
    backoff_max: float = Field(default=10.0, gt=0, description="the longest wait between two tries, in seconds")
    retry_after_max: float = Field(
        default=30.0, ge=0, description="a Retry-After longer than this (seconds) is not waited for: NotReady at once"
    )
    token_refresh_margin: float = Field(
        default=60.0, ge=0, description="mint a new token this many seconds before the current one expires"
    )
    verify_tls: bool = Field(default=True, description="check the API's TLS certificate (leave on)")


class WebhookSettings(BaseModel):
    """Where the vendor's webhooks arrive, and how they are checked."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="address to listen on (put a TLS reverse proxy in front)")
    port: int = Field(default=8731, ge=0, le=65535, description="port to listen on (0: any free port)")
    path: str = Field(default="/webhook", description="the URL path the vendor POSTs to")
    secret: SecretStr = Field(description='the shared secret set in the vendor\'s console; use { env = "NAME" }')
    tolerance: float = Field(
        default=300.0, gt=0, description="seconds a signed timestamp may differ from now (older: refused as replayed)"
    )
    max_body: int = Field(default=1_048_576, gt=0, description="largest accepted body, in bytes")
    remember: int = Field(default=10_000, gt=0, description="delivery ids kept to drop duplicates")

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("the webhook path must start with '/'")
        return value

    @field_validator("secret")
    @classmethod
    def _non_empty_secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("the webhook secret is empty: unsigned webhooks are never accepted")
        return value


# -- the REST client ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """A short-lived API token and when (``time.monotonic()``) it stops working."""

    value: str
    expires_at: float


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP date (RFC 9110 10.2.3); None if absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RestClient:
    """An API-key-to-token REST client. Subclass it per vendor: :meth:`mint_token` and :meth:`token_headers`.

    ``sleep`` and ``clock`` are attributes so that tests can record the waits and move time.
    """

    #: the vendor's name, in messages a school's IT lead reads
    vendor = "the vendor"

    def __init__(self, settings: RestSettings, *, log: logging.Logger | None = None) -> None:
        self.settings = settings
        self.log = log or logging.getLogger(f"campusguard.vendor_rest.{type(self).__name__}")
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.clock: Callable[[], float] = time.monotonic
        self.tokens_minted = 0
        self._http: httpx.AsyncClient | None = None
        self._token: Token | None = None
        self._token_lock: asyncio.Lock | None = None

    # -- to write per vendor ------------------------------------------------------------------------

    async def mint_token(self) -> Token:
        """Exchange the API key for a token (use :meth:`send` with ``auth=False``)."""
        raise NotImplementedError

    def token_headers(self, token: str) -> dict[str, str]:
        """The headers that carry ``token`` on each request."""
        return {"Authorization": f"Bearer {token}"}

    # -- life cycle ---------------------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise NotReady(f"{self.vendor} API client is not open")
        return self._http

    @property
    def is_open(self) -> bool:
        return self._http is not None

    async def open(self) -> None:
        import httpx  # here, not at import time: listing plugins stays fast

        from campusguard.sdk import __version__

        if self._http is not None:
            return
        self._token, self._token_lock = None, asyncio.Lock()
        self._http = httpx.AsyncClient(
            base_url=str(self.settings.base_url),
            timeout=httpx.Timeout(self.settings.timeout),
            verify=self.settings.verify_tls,
            headers={"Accept": "application/json", "User-Agent": f"campusguard/{__version__}"},
            follow_redirects=False,
        )

    async def close(self) -> None:
        http, self._http = self._http, None
        self._token = None
        if http is not None:
            await http.aclose()

    # -- tokens -------------------------------------------------------------------------------------

    async def token(self, *, stale: str | None = None) -> str:
        """A token that is not about to expire. ``stale``: the token the vendor just refused (mint anew,
        unless another request has already done so)."""
        if self._token_lock is None:
            raise NotReady(f"{self.vendor} API client is not open")
        async with self._token_lock:
            current = self._token
            fresh = current is not None and self.clock() < current.expires_at - self.settings.token_refresh_margin
            if current is not None and fresh and (stale is None or current.value != stale):
                return current.value
            self._token = await self.mint_token()
            self.tokens_minted += 1
            return self._token.value

    # -- requests -----------------------------------------------------------------------------------

    def _delay(self, attempt: int) -> float:
        base = min(self.settings.backoff * (2.0**attempt), self.settings.backoff_max)
        return base / 2 + random.uniform(0, base / 2)  # "equal jitter": never less than half the backoff

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """One request, retried for 429 always, and for 5xx and network errors if ``idempotent``.

        Raises :class:`~campusguard.sdk.NotReady` when the vendor stays unreachable, rate-limited or failing.
        Other answers (2xx, 4xx) are returned as they are.
        """
        import httpx

        what = f"{self.vendor} {method} {path}"
        attempt = 0
        while True:
            try:
                response = await self.http.request(method, path, params=params, json=json_body, headers=headers)
            except httpx.TransportError as exc:
                # A failed connect never reached the vendor, so even an unlock may be sent again.
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                if attempt >= self.settings.retries or not (idempotent or unsent):
                    maybe = "" if unsent or idempotent else "; it may have been carried out"
                    raise NotReady(f"{what}: {type(exc).__name__}: {exc or 'no answer'}{maybe}") from None
                delay = self._delay(attempt)
                self.log.warning("%s: %s, try %d again in %.2fs", what, type(exc).__name__, attempt + 2, delay)
            else:
                status = response.status_code
                if status == 429 or (status >= 500 and idempotent):
                    if attempt >= self.settings.retries:
                        reason = "rate limited (HTTP 429)" if status == 429 else f"failing (HTTP {status})"
                        raise NotReady(f"{what}: {reason} after {attempt + 1} tries") from None
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                    if wait is not None and wait > self.settings.retry_after_max:
                        raise NotReady(f"{what}: HTTP {status}, asked to wait {wait:.0f}s; not waiting") from None
                    delay = wait if wait is not None else self._delay(attempt)
                    self.log.warning("%s: HTTP %d, try %d again in %.2fs", what, status, attempt + 2, delay)
                elif status >= 500:
                    raise NotReady(
                        f"{what}: HTTP {status}; not repeated, it may have been carried out: {_snippet(response)}"
                    )
                else:
                    return response
            await self.sleep(delay)
            attempt += 1

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        idempotent: bool = True,
    ) -> Any:
        """An authenticated request; returns the decoded JSON answer (None for an empty one).

        A 401/403 mints a new token and tries once more; a second one is :class:`~campusguard.sdk.AuthFailed`.
        """
        what = f"{self.vendor} {method} {path}"
        refused: str | None = None
        while True:
            token = await self.token(stale=refused)
            response = await self.send(
                method,
                path,
                params=params,
                json_body=json_body,
                headers=self.token_headers(token),
                idempotent=idempotent,
            )
            if response.status_code in (401, 403):
                if refused is None:
                    self.log.info("%s: HTTP %d, minting a new token and trying once more", what, response.status_code)
                    refused = token
                    continue
                raise AuthFailed(
                    f"{what}: HTTP {response.status_code} with a new token too; check the API key's permissions: "
                    f"{_snippet(response)}"
                )
            return decode(response, what)

    async def paginate(
        self,
        path: str,
        *,
        items: str,
        params: Mapping[str, Any] | None = None,
        page_size: int | None = None,
        size_param: str = "page_size",
        cursor_param: str = "page_token",
        next_field: str = "next_page_token",
        max_pages: int = 50,
    ) -> AsyncIterator[Any]:
        """Yield every item of a cursor-paged collection: ``items`` in each page, ``next_field`` names the next.

        Stops at an empty or missing cursor; a cursor seen before, or more than ``max_pages`` pages, is a
        :class:`VendorResponseError` (a loop would never end).
        """
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            query = dict(params or {})
            if page_size is not None:
                query[size_param] = page_size
            if cursor is not None:
                query[cursor_param] = cursor
            page = await self.request("GET", path, params=query)
            if not isinstance(page, dict):
                raise VendorResponseError(f"{self.vendor} GET {path}: a page is not a JSON object")
            entries = page.get(items) or []
            if not isinstance(entries, list):
                raise VendorResponseError(f"{self.vendor} GET {path}: {items!r} is not a list")
            for entry in entries:
                yield entry
            following = page.get(next_field)
            if not following:
                return
            if not isinstance(following, str) or following in seen:
                raise VendorResponseError(f"{self.vendor} GET {path}: the page cursor {following!r} repeats")
            seen.add(following)
            cursor = following
        raise VendorResponseError(f"{self.vendor} GET {path}: more than {max_pages} pages; stopped")


def _snippet(response: httpx.Response, limit: int = 300) -> str:
    text = response.text.strip().replace("\n", " ")
    return (text[:limit] + "...") if len(text) > limit else (text or "(empty answer)")


def decode(response: httpx.Response, what: str) -> Any:
    """The JSON of a 2xx answer; a 4xx is a :class:`VendorRequestError` (404: :class:`VendorNotFound`)."""
    status = response.status_code
    if status == 404:
        raise VendorNotFound(f"{what}: HTTP 404, not found: {_snippet(response)}", status=status)
    if status >= 400:
        raise VendorRequestError(f"{what}: HTTP {status}, refused: {_snippet(response)}", status=status)
    if status < 200 or status >= 300:
        raise VendorResponseError(f"{what}: unexpected HTTP {status}", status=status)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise VendorResponseError(f"{what}: the answer is not JSON: {_snippet(response)}", status=status) from None


# -- the webhook receiver ----------------------------------------------------------------------------


class WebhookRejected(Exception):
    """A delivery that is refused before its payload is read (signature, timestamp)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WebhookPayloadError(ValueError):
    """A signed delivery whose payload is not what the vendor documents: answered 400."""


@dataclass(frozen=True)
class Delivery:
    """One authenticated webhook delivery."""

    timestamp: float  # seconds since the epoch, as signed
    signature: str  # the signature header as received
    body: bytes


class HmacSha256Signature:
    """A shared-secret HMAC-SHA256 signature in one header, carrying a timestamp that is signed too.

    ``parse`` splits the header into (timestamp, hex signature); ``message`` builds the signed bytes from the
    raw body and the timestamp text. Vendors differ only in these two (Verkada: ``"<ts>|<hex>"`` over
    ``body + b"|" + ts``).
    """

    def __init__(
        self,
        header: str,
        *,
        parse: Callable[[str], tuple[str, str]],
        message: Callable[[bytes, str], bytes],
    ) -> None:
        self.header = header
        self._parse = parse
        self._message = message

    def sign(self, secret: bytes, body: bytes, timestamp: str) -> str:
        """The hex signature of ``body`` at ``timestamp`` (for test doubles and tools)."""
        return hmac.new(secret, self._message(body, timestamp), hashlib.sha256).hexdigest()

    def verify(self, headers: Mapping[str, str], body: bytes, secret: bytes) -> Delivery:
        value = headers.get(self.header)
        if not value:
            raise WebhookRejected(401, f"no {self.header} header")
        try:
            timestamp_text, signature = self._parse(value)
        except ValueError:
            raise WebhookRejected(401, f"malformed {self.header} header") from None
        if not timestamp_text.isascii() or not timestamp_text.isdigit():  # whole seconds; never "nan" or "inf"
            raise WebhookRejected(401, f"malformed {self.header} header: the timestamp is not a number of seconds")
        timestamp = float(timestamp_text)
        expected = self.sign(secret, body, timestamp_text)
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
            raise WebhookRejected(401, "signature does not match")
        return Delivery(timestamp=timestamp, signature=value, body=body)


class ReplayGuard:
    """Remembers delivery ids for ``window`` seconds (at most ``maxsize`` of them) to process each once."""

    def __init__(self, window: float, maxsize: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.maxsize = maxsize
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _forget_old(self) -> None:
        now = self.clock()
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at <= self.window and len(self._seen) <= self.maxsize:
                break
            del self._seen[key]

    def __contains__(self, key: object) -> bool:
        self._forget_old()
        return key in self._seen

    def add(self, key: str) -> None:
        self._seen[key] = self.clock()
        self._seen.move_to_end(key)
        self._forget_old()


WebhookHandler = Callable[[Any, Delivery], str]
ReplayKey = Callable[[Any, Delivery], str]


def signature_key(payload: Any, delivery: Delivery) -> str:
    """The default delivery id: the signature itself (a resend carries the same one)."""
    return "sig:" + hashlib.sha256(delivery.signature.encode()).hexdigest()


class WebhookReceiver:
    """An aiohttp server that takes a vendor's signed webhooks and hands each authentic one to ``handle`` once.

    The order of checks: size (413), signature (401), timestamp window (401, "stale"), JSON (400), duplicate
    (200, not processed again), ``handle`` (:class:`WebhookPayloadError`: 400; any other error: 500, so the
    vendor retries). Every answer is JSON and is sent at once: ``handle`` only publishes, it never waits.
    """

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        signature: HmacSha256Signature,
        handle: WebhookHandler,
        replay_key: ReplayKey = signature_key,
        log: logging.Logger | None = None,
    ) -> None:
        self.settings = settings
        self.signature = signature
        self.handle = handle
        self.replay_key = replay_key
        self.log = log or logging.getLogger("campusguard.vendor_rest.webhook")
        self.clock: Callable[[], float] = time.time
        # Anything older than the window is refused as stale anyway, so ids are kept twice that long.
        self.replays = ReplayGuard(2 * settings.tolerance, settings.remember)
        self.counts: dict[str, int] = {"accepted": 0, "duplicate": 0, "refused": 0, "malformed": 0, "failed": 0}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the webhook receiver is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}{self.settings.path}"

    async def start(self) -> None:
        from aiohttp import web

        if self._runner is not None:
            return
        app = web.Application(client_max_size=self.settings.max_body)
        app.router.add_post(self.settings.path, self._receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise NotReady(f"cannot listen for webhooks on {self.settings.host}:{self.settings.port}: {exc}") from None
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self.log.info("listening for webhooks on %s", self.url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        self._port = None
        if runner is not None:
            await runner.cleanup()

    def _answer(self, status: int, outcome: str, detail: str) -> web.Response:
        from aiohttp import web

        key = {200: "accepted", 400: "malformed", 413: "malformed", 500: "failed"}.get(status, "refused")
        if outcome == "duplicate":
            key = "duplicate"
        self.counts[key] += 1
        if status >= 400:
            self.log.warning("webhook refused (HTTP %d): %s", status, detail)
        return web.json_response({"status": outcome, "detail": detail}, status=status)

    async def _receive(self, request: web.Request) -> web.Response:
        from aiohttp import web

        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._answer(413, "refused", f"body larger than {self.settings.max_body} bytes")
        secret = self.settings.secret.get_secret_value().encode()
        try:
            delivery = self.signature.verify(request.headers, body, secret)
            age = self.clock() - delivery.timestamp
            if abs(age) > self.settings.tolerance:
                raise WebhookRejected(401, f"stale: signed {age:.0f}s from now (window {self.settings.tolerance:g}s)")
        except WebhookRejected as exc:
            return self._answer(exc.status, "refused", exc.reason)
        try:
            payload = json.loads(body)
        except ValueError:
            return self._answer(400, "malformed", "the body is not JSON")
        try:
            key = self.replay_key(payload, delivery)
            if key in self.replays:
                return self._answer(200, "duplicate", "already processed")
            outcome = self.handle(payload, delivery)
        except WebhookPayloadError as exc:
            return self._answer(400, "malformed", str(exc))
        except Exception as exc:  # a bug here must not be a lost event: 500 makes the vendor send it again
            self.log.exception("webhook handler failed")
            return self._answer(500, "failed", f"{type(exc).__name__}")
        self.replays.add(key)
        return self._answer(200, "ok", outcome)
