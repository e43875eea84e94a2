"""Where the Redis backend keeps what, under a prefix ``P`` (``KeyLayout``).

Every key is ``P:{<tag>}:<rest>`` or ``P:{<tag>}``: the prefix, then a tag in braces. A
prefix may not contain braces, so the first ``{`` of a key ends its prefix, and no key of
one prefix can be a key of another (prefix ``a`` and prefix ``a:v`` cannot collide,
whatever the metric names). The tag is a metric family's name, or ``@`` (which no metric
name contains) for the keys of the whole prefix. The braces are also what Redis Cluster
hashes when it places a key (a "hash tag"): each family's keys land on one slot, and
the keys of the whole prefix on another, so that every script call touches one slot.

``P:{<family>}``             hash, one per metric family (see below)
``P:{@}:families``           hash: family name -> "" (which families exist), and the
                             field ``\\0epoch``, a token made when this hash was created:
                             a process that sees it change knows the hash was lost, and
                             ``\\0expiry``, where idle-series expiry goes on next
``P:{@}:procs``              sorted set: live process -> Redis time of its last flush
``P:{@}:last``               string: Redis time of the last flush of any process
``P:{@}:dead``               sorted set: reaped process -> when it was reaped
``P:{@}:fold``               sorted set: dead processes whose gauge values are still
                             being folded, a bounded number per flush
``P:{@}:turn``               string: the process whose turn of housekeeping it is (expires)
``P:{@}:g:<process>``        set: the gauge values a process wrote (for folding)
``P:{@}:q:<process>``        set: the families that hold a sequence number of the process
``P:{<family>}:t``           sorted set (``series_ttl`` only): a family's fields -> when
                             last written: what expiry deletes

A family's hash holds everything about it, so that losing the key (evicted, deleted)
loses it all together, bookkeeping included, and can never leave values behind that
bookkeeping no longer guards:

``\\0d``                     its definition (canonical JSON, without the help text)
``\\0h``                     its help text (the last process to define it wrote it)
``\\0q\\0<process>``          the last flush chunk of that process applied to it
``<series>``                 a series: the JSON list of its label values, ordered by label
                             name; the value is the counter's value, ``c0,c1,...,sum``
                             for a histogram (per bucket, not cumulative), ``count,sum``
                             for a summary, the JSON of an info, an enum's state
``<series>\\0p\\0<process>``  a gauge's value in one process: ``value,time set``
``<series>\\0r``              a gauge's value folded from dead processes: ``value,time``

A series field starts with ``[``, a bookkeeping field with ``\\0``.
"""

from __future__ import annotations

__all__ = ["GLOBAL_TAG", "KeyLayout", "check_prefix"]

#: The tag of the keys that belong to the whole prefix, not to one family.
GLOBAL_TAG = "@"

_FORBIDDEN = frozenset("{}\0 \t\r\n")


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` if keys can be built from it, else raise ``ValueError`` saying why."""
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a non-empty str, got {prefix!r}.")
    bad = sorted(set(prefix) & _FORBIDDEN)
    if bad:
        raise ValueError(
            f"prefix {prefix!r} contains {', '.join(map(repr, bad))}: a prefix may not contain "
            "braces (they delimit the tag that makes every key unambiguous) or white space."
        )
    return prefix


class KeyLayout:
    """The names of the keys under one prefix; see the module docstring."""

    __slots__ = (
        "prefix",
        "shared",
        "family_open",
        "families",
        "procs",
        "last",
        "dead",
        "fold",
        "turn",
    )

    def __init__(self, prefix: str) -> None:
        self.prefix = check_prefix(prefix)
        #: What every key of the whole prefix starts with ("P:{@}:"); the scripts build
        #: the keys of other processes from it.
        self.shared = f"{prefix}:{{{GLOBAL_TAG}}}:"
        #: What every family key starts with ("P:{"); the scripts build family keys found
        #: in bookkeeping from it.
        self.family_open = f"{prefix}:{{"
        self.families = self.shared + "families"
        self.procs = self.shared + "procs"
        self.last = self.shared + "last"
        self.dead = self.shared + "dead"
        self.fold = self.shared + "fold"
        self.turn = self.shared + "turn"

    def family(self, name: str) -> str:
        """The hash of metric family ``name``."""
        return f"{self.family_open}{name}}}"

    def touched(self, name: str) -> str:
        """The sorted set of when each field of family ``name`` was last written."""
        return f"{self.family_open}{name}}}:t"

    def gauges_of(self, process: str) -> str:
        """The set of the gauge values ``process`` wrote."""
        return f"{self.shared}g:{process}"

    def sequences_of(self, process: str) -> str:
        """The set of the families that hold a sequence number of ``process``."""
        return f"{self.shared}q:{process}"

    def family_pattern(self) -> str:
        """A SCAN ``MATCH`` pattern for the family hashes (and a few keys more: check
        each with :meth:`family_name`)."""
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.prefix)
        return f"{escaped}:\\{{*}}"

    def family_name(self, key: str) -> str | None:
        """The family whose hash ``key`` is, or None for any other key."""
        if not key.startswith(self.family_open) or not key.endswith("}"):
            return None
        name = key[len(self.family_open) : -1]
        if not name or name == GLOBAL_TAG or "}" in name or "{" in name:
            return None
        return name
