"""Who may read the metrics: one check, shared by every view that exposes them.

Configured in ``PYTHEUS["AUTH"]`` (all keys optional; no ``AUTH`` means public, which
system check ``django_pytheus.W004`` flags when ``DEBUG`` is off)::

    "AUTH": {
        "NETWORKS": ["10.0.0.0/8", "::1"],  # where requests may come from
        "TRUSTED_PROXIES": ["10.0.0.2"],  # whose X-Forwarded-For to believe
        "TOKENS": ["s3cret-token"],  # Authorization: Bearer s3cret-token
        "BASIC": {"prometheus": "s3cret"},  # Authorization: Basic ...
        "STAFF": True,  # a logged-in staff user's session
        "CALLABLE": "myproject.metrics.can_scrape",  # f(request) -> bool
    }

``NETWORKS`` is a gate: the client address must be in one of them (else 403).
``TOKENS``, ``BASIC``, ``STAFF`` and ``CALLABLE`` are ways to authenticate: when any
is set, one of them must accept the request; missing or wrong credentials get 401
with a ``WWW-Authenticate`` challenge when tokens or basic auth are configured, 403
otherwise. Secrets are compared in constant time.

The client address is ``REMOTE_ADDR``. Behind a reverse proxy that is the proxy's
address: list the proxies in ``TRUSTED_PROXIES`` and the address is read from
``X-Forwarded-For`` instead, right to left, skipping trusted proxies, so that the
first untrusted hop (the one the nearest trusted proxy saw) is the client. A client
can forge the left part of the header, never that hop.

Use it in any view that shows metrics (a JSON endpoint, an admin page)::

    from django_pytheus.access import check_access


    def my_view(request):
        if (denied := check_access(request)) is not None:
            return denied
        ...

Call it from synchronous code: ``STAFF`` reads ``request.user``, which may query the
database.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from django_pytheus.conf import AuthSettings, IPNetwork, get_settings, secret_digest

__all__ = ["check_access", "client_ip"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_REALM = 'realm="metrics"'


def _parse_ip(value: str | None) -> IPAddress | None:
    if not value:
        return None
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[::1]:8080"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "10.0.0.1:8080"
        value = value.partition(":")[0]
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _in(ip: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def client_ip(request: HttpRequest, trusted_proxies: Sequence[IPNetwork] = ()) -> IPAddress | None:
    """The client's address; ``X-Forwarded-For`` is read only from ``trusted_proxies``.

    Returns ``None`` when the address is missing or malformed.
    """
    remote = _parse_ip(request.META.get("REMOTE_ADDR"))
    if remote is None or not trusted_proxies or not _in(remote, trusted_proxies):
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [h for h in (p.strip() for p in forwarded.split(",")) if h]
    if not hops:
        return remote
    ip: IPAddress | None = remote
    for hop in reversed(hops):
        ip = _parse_ip(hop)
        if ip is None or not _in(ip, trusted_proxies):
            return ip
    return ip  # every hop is a trusted proxy: the left-most one is the client


@functools.lru_cache(maxsize=8)
def _import_check(path: str) -> Callable[[HttpRequest], Any]:
    check: Callable[[HttpRequest], Any] = import_string(path)
    return check


def _matches(given: str, digests: Sequence[bytes]) -> bool:
    digest = secret_digest(given)
    ok = False
    for expected in digests:  # no early exit: every entry is compared
        ok |= hmac.compare_digest(digest, expected)
    return ok


def _token_ok(auth: AuthSettings, scheme: str, credentials: str) -> bool:
    return (
        bool(auth.token_digests)
        and scheme == "bearer"
        and _matches(credentials, auth.token_digests)
    )


def _basic_ok(auth: AuthSettings, scheme: str, credentials: str) -> bool:
    if not auth.basic_digests or scheme != "basic":
        return False
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, password = decoded.partition(":")
    if not sep:
        return False
    user_digest, password_digest = secret_digest(user), secret_digest(password)
    ok = False
    for expected_user, expected_password in auth.basic_digests:
        ok |= hmac.compare_digest(user_digest, expected_user) & hmac.compare_digest(
            password_digest, expected_password
        )
    return ok


def _staff_ok(auth: AuthSettings, request: HttpRequest) -> bool:
    if not auth.staff:
        return False
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def _callable_ok(auth: AuthSettings, request: HttpRequest) -> bool:
    check = auth.check
    if check is None:
        return False
    if isinstance(check, str):
        check = _import_check(check)
    return bool(check(request))


def _denied(status: int, reason: str, challenge: str | None = None) -> HttpResponse:
    response = HttpResponse(f"{reason}\n", status=status, content_type="text/plain; charset=utf-8")
    if challenge:
        response["WWW-Authenticate"] = challenge
    response["Cache-Control"] = "no-store"
    return response


def check_access(request: HttpRequest, auth: AuthSettings | None = None) -> HttpResponse | None:
    """Return ``None`` if the request may read metrics, else the 401 or 403 to answer.

    ``auth`` defaults to ``PYTHEUS["AUTH"]``; see the module docstring.
    """
    if auth is None:
        auth = get_settings().auth
    if not auth.enabled:
        return None
    if auth.networks:
        ip = client_ip(request, auth.trusted_proxies)
        if ip is None or not _in(ip, auth.networks):
            return _denied(403, "Forbidden: this address may not read the metrics.")
    if not auth.needs_credentials:
        return None
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = header.strip().partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    if (
        _token_ok(auth, scheme, credentials)
        or _basic_ok(auth, scheme, credentials)
        or _staff_ok(auth, request)
        or _callable_ok(auth, request)
    ):
        return None
    challenges = []
    if auth.token_digests:
        error = ', error="invalid_token"' if scheme == "bearer" else ""
        challenges.append(f"Bearer {_REALM}{error}")
    if auth.basic_digests:
        challenges.append(f'Basic {_REALM}, charset="UTF-8"')
    if challenges:
        reason = "Unauthorized: wrong credentials." if header else "Unauthorized: log in."
        return _denied(401, reason, ", ".join(challenges))
    return _denied(403, "Forbidden: not allowed to read the metrics.")
