"""A cache with async methods of its own (no Django backend has them yet)."""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache


class NativeAsyncCache(LocMemCache):
    """aget() and aset() that do not go through get() and set(), as a native
    asynchronous client's would not."""

    async def aget(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return LocMemCache.get(self, key, default, version)

    async def aset(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None
    ) -> None:
        LocMemCache.set(self, key, value, timeout, version)
