"""How a scrape reads metric families from Redis (the reading side).

A scrape reads in rounds of one pipelined round trip each:

1. with this process's flush: READ_META (Redis's clock, the live processes, the names
   of the families: all of them, or only those that can produce the names asked for)
   and the first slice of each family it expects (those defined here, and those the
   last scrape found);
2. then, round after round, the next slice of every family not read to its end, and
   the first of those it did not expect.

A round reads about ``ROUND_FIELDS`` fields, in slices of ``READ_COUNT`` fields or more:
a family known to be large is read in large slices (fewer round trips: a scrape waits
for each), a small one whole. A slice is an HSCAN of the family's hash between two reads
of its definition (no script: a Lua script would about double Redis's time per slice). A
series is one field, so a slice never holds half of one (a histogram's buckets, sum and
count always agree); a family whose definition is not the same before and after each of
its slices (a deploy replaced it meanwhile) is left out of that scrape rather than
decoded with the wrong buckets. Families are not read at one instant together, which no
scrape of a live system does anyway.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from typing import Any

from pytheus.backends.redis_format import (
    aggregate_gauge,
    decode_labelsets,
    decode_value,
    definition_from_json,
    gauge_value,
    malformed,
)
from pytheus.backends.redis_keys import KeyLayout
from pytheus.definitions import (
    HistogramState,
    MetricDefinition,
    MetricSeries,
    SeriesSource,
    SummaryState,
)
from pytheus.families import add_samples, empty_family, le_values
from pytheus.naming import series_names
from pytheus.samples import (
    HistogramRun,
    LabelSet,
    MetricFamily,
    Sample,
    SeriesRun,
)

__all__ = ["READ_COUNT", "Reader", "Scrape", "candidate_families"]

# Series field (a gauge's: the series' part of its fields) -> (its stored value (a gauge's:
# its fields and values), the samples built from it).
_SampleCache = dict[str, tuple[object, SeriesRun]]

#: Fields per slice (HSCAN's COUNT) at least, unless the family holds fewer: a slice
#: takes Redis about a microsecond a field.
READ_COUNT = 1000
#: Fields per round trip, about, and so per slice at most: Redis runs the commands of a
#: pipeline one after the other without serving anyone else in between, so a round is
#: bounded (a few ms). One large slice instead of several small ones costs Redis the
#: same, and a scrape fewer round trips.
ROUND_FIELDS = 5 * READ_COUNT
# What a family never read before is guessed to hold: a small hash (Redis keeps those up
# to 128 fields compact, and HSCAN returns them whole).
_UNKNOWN_SIZE = 128
# Label sets decoded from series fields, and the samples of series, are kept between
# scrapes, up to this many series.
_CACHE_MAX = 200_000
# A place in a list of runs, until the run is built.
_NO_RUN = SeriesRun([])
# Sample name suffixes, to find the families a name[] can come from.
_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_info")
#: The label that "all" and "liveall" gauges add, with the process's host and pid.
PROCESS_LABEL = "pid"


def candidate_families(names: Collection[str]) -> list[str]:
    """Every family name that could produce one of the sample ``names``."""
    out = set(names)
    for name in names:
        for suffix in _SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                out.add(name[: -len(suffix)])
    return sorted(out)


@dataclass
class _Family:
    """One family being read: what the slices so far held."""

    name: str
    definition: str | None = None  # None: no slice read yet; "": not in Redis
    help: str = ""
    cursor: str = "0"
    fields: dict[str, str] = field(default_factory=dict)
    torn: bool = False  # its definition changed between two slices

    @property
    def done(self) -> bool:
        return self.definition is not None and (self.cursor == "0" or self.torn)


class Reader:
    """The reading state that outlives a scrape: decoded label sets, known families."""

    def __init__(self, keys: KeyLayout, process_timeout: float) -> None:
        self.keys = keys
        self.timeout = process_timeout
        self._lock = threading.Lock()
        # Per label names: series field -> its decoded label set. A field decodes the
        # same in every family with those label names (a site's families share a few
        # sets of them), so they share the label sets, decoded once.
        self._labelsets: dict[tuple[str, ...], dict[str, LabelSet]] = {}
        # Per family: what its samples were built under (label names, stored definition),
        # and series field -> (stored value, the series' samples).
        self._samples: dict[str, tuple[tuple[str, ...], str, _SampleCache]] = {}
        # The families the last full scrape found: read in its first round.
        self.known: list[str] = []
        # Fields of each family when it was last read whole: how much a slice will bring.
        self.sizes: dict[str, int] = {}

    def scrape(
        self,
        metrics: Sequence[SeriesSource],
        canonical: Mapping[str, str],
        names: Collection[str] | None,
        include_remote: bool,
    ) -> Scrape:
        return Scrape(self, metrics, canonical, names, include_remote)

    def labelsets(self, d: MetricDefinition) -> dict[str, LabelSet]:
        """The cache of label sets of a family, by its label names: a metric defined
        again with other labels does not get those of the old ones."""
        with self._lock:
            if sum(map(len, self._labelsets.values())) > _CACHE_MAX:
                self._labelsets.clear()
            return self._labelsets.setdefault(d.labelnames, {})

    def samples(self, d: MetricDefinition, stored: str) -> _SampleCache:
        """The cache of samples of one family, read under the stored definition
        ``stored``: emptied when the family is defined again (other buckets, labels)."""
        with self._lock:
            if sum(len(c) for _, _, c in self._samples.values()) > _CACHE_MAX:
                self._samples.clear()
            kept = self._samples.get(d.name)
            if kept is not None and kept[:2] == (d.labelnames, stored):
                return kept[2]
            cache: _SampleCache = {}
            self._samples[d.name] = (d.labelnames, stored, cache)
            return cache


class Scrape:
    """One scrape's reading, round by round; see the module docstring.

    ``first_round`` and ``next_round`` add commands to a pipeline and return how many;
    ``take`` is given their replies, in order. Then ``result()``.
    """

    def __init__(
        self,
        reader: Reader,
        metrics: Sequence[SeriesSource],
        canonical: Mapping[str, str],
        names: Collection[str] | None,
        include_remote: bool,
    ) -> None:
        self.reader = reader
        self.keys = reader.keys
        self.local = {m.definition.name: m for m in metrics}
        self.canonical = canonical  # name -> this process's stored form of the definition
        self.wanted = set(names) if names is not None else None
        self.include_remote = include_remote
        self.families: dict[str, _Family] = {}
        self.live: set[str] = set()
        self.listed: list[str] | None = None  # the names READ_META found
        self._asked: list[_Family] = []

    # ------------------------------------------------------------------ rounds

    def first_round(self, pipe: Any, meta_sha: str) -> int:
        keys = self.keys
        if self.wanted is not None:
            expected = candidate_families(self.wanted) if self.include_remote else []
            meta_args = [self.reader.timeout, *expected]
        else:
            expected = self.reader.known if self.include_remote else []
            meta_args = [self.reader.timeout]
        pipe.evalsha(meta_sha, 3, keys.procs, keys.last, keys.families, *meta_args)
        for name in [*self.local, *expected]:
            self.families.setdefault(name, _Family(name))
        return 1 + self.next_round(pipe)

    def next_round(self, pipe: Any) -> int:
        """A slice of the families not read to their end, as many as ``ROUND_FIELDS``
        allows (one at least): its definition (and help, on the first), HSCAN, its
        definition again."""
        self._asked = []
        counts = []
        budget = ROUND_FIELDS
        for fam in self.families.values():
            if fam.done:
                continue
            left = self._left(fam)
            count = min(left, budget)
            if self._asked and count < min(left, READ_COUNT):
                continue  # a smaller one may still fit
            budget -= count
            self._asked.append(fam)
            counts.append(max(count, READ_COUNT))
        commands = 0
        for fam, count in zip(self._asked, counts, strict=True):
            key = self.keys.family(fam.name)
            pipe.hget(key, "\0d")
            if fam.definition is None:
                pipe.hget(key, "\0h")
            # Series fields only (they start with "["): not the sequence numbers of the
            # processes that wrote the family (some kept a day after they died).
            pipe.hscan(key, fam.cursor, match="\\[*", count=count)
            pipe.hget(key, "\0d")
            commands += 4 if fam.definition is None else 3
        return commands

    def _left(self, fam: _Family) -> int:
        """How many fields of ``fam`` are left to read, as far as the last scrape tells."""
        known = self.reader.sizes.get(fam.name)
        if fam.cursor == "0":  # not started: all of it
            return max(known if known is not None else _UNKNOWN_SIZE, 1)
        if known is None or known <= len(fam.fields):
            return ROUND_FIELDS  # larger than it was, or never read whole: a large one
        return known - len(fam.fields)

    def take(self, replies: Sequence[Any], *, meta: bool = False) -> None:
        """Take the replies of a round (``meta``: the first, which starts with READ_META)."""
        if meta:
            _now, live, listed = self._checked(replies[0], self.keys.families)
            self.live = {_text(p) for p in live}
            self.listed = [_text(n) for n in listed]
            replies = replies[1:]
        at = 0
        for fam in self._asked:
            key = self.keys.family(fam.name)
            first = fam.definition is None
            before = _text(self._checked(replies[at], key))
            help_text = _text(self._checked(replies[at + 1], key)) if first else fam.help
            at += 2 if first else 1
            cursor, fields = self._checked(replies[at], key)
            after = _text(self._checked(replies[at + 1], key))
            at += 2
            if first:
                fam.definition, fam.help = before, help_text
            if before != fam.definition or after != fam.definition:
                fam.torn = True
            fam.cursor = _text(cursor)
            if fields and not isinstance(next(iter(fields)), str):
                fields = {_text(k): _text(v) for k, v in fields.items()}
            fam.fields.update(fields)
        if meta:
            assert self.listed is not None
            for name in self.listed:
                if name not in self.families and self._may_read(name):
                    self.families[name] = _Family(name)

    def _may_read(self, name: str) -> bool:
        # With a name[] filter READ_META looked for the candidates only; the definition's
        # type decides later which of them produce a wanted name.
        return name in self.local or self.include_remote

    @staticmethod
    def _checked(reply: Any, key: str) -> Any:
        if isinstance(reply, Exception):
            raise malformed(key, "", "", f"Redis answered {reply}") from reply
        return reply

    def unfinished(self) -> bool:
        return any(not f.done for f in self.families.values())

    # ------------------------------------------------------------------ decoding

    def result(self) -> Iterator[MetricSeries]:
        """The series read, of the metrics defined here first (in their order), then of
        the others by name."""
        for fam, d in self._definitions():
            series = self._series(d, fam.fields, self.keys.family(fam.name)) if fam else []
            yield MetricSeries(d, series)

    def result_families(self) -> Iterator[MetricFamily]:
        """The families of samples read, in the order of :meth:`result`.

        A series whose stored value is the one the last scrape read has the samples that
        scrape built, and their text once rendered (a :class:`SeriesRun`): a scrape
        decodes, builds and renders only the series that changed since. Sharing them
        between scrapes is safe: samples are immutable tuples.
        """
        for fam, d in self._definitions():
            family = empty_family(d)
            if fam is not None and fam.fields:
                runs = self._gauge_runs(d, fam) if d.type == "gauge" else self._runs(d, fam)
                family.of_runs(runs)
            yield family

    def _runs(self, d: MetricDefinition, fam: _Family) -> list[SeriesRun]:
        """The samples of each series of ``fam``, in field order: kept from the last
        scrape where the stored value is the same, built (all together) where not."""
        assert fam.definition
        cache = self.reader.samples(d, fam.definition)
        runs, changed, places = _kept(cache, fam.fields)
        if changed and d.type == "histogram":
            made = self._histogram_runs(d, changed, self.keys.family(fam.name))
            for key, place, run in zip(changed, places, made, strict=True):
                runs[place] = run
                cache[key] = (changed[key], run)
        elif changed:
            pairs = self._series(d, changed, self.keys.family(fam.name))
            built: list[Sample] = []
            add_samples(d, pairs, built)
            width, uneven = divmod(len(built), len(pairs))
            for i, (key, place) in enumerate(zip(changed, places, strict=True)):
                if uneven:  # not the same number of samples for every series
                    samples: list[Sample] = []
                    add_samples(d, pairs[i : i + 1], samples)
                else:
                    samples = built[i * width : (i + 1) * width]
                run = runs[place] = SeriesRun(samples)
                cache[key] = (changed[key], run)
        _forget_gone(cache, fam.fields)
        return runs

    def _histogram_runs(
        self, d: MetricDefinition, changed: Mapping[str, str], where: str
    ) -> list[SeriesRun]:
        """The runs of a histogram's ``changed`` series: each holds its series as a
        :class:`HistogramRun`, which the exposition renders without making its samples
        (over ten samples and label sets a series, most of a first scrape's time)."""
        le = le_values(d)
        make = partial(_histogram_samples, d)
        # Redis keeps no exemplars: a state is counts and sum.
        return [
            SeriesRun.of_histogram(HistogramRun(labels, le, state.counts, state.sum), make)
            for labels, state in self._series(d, changed, where)
        ]

    def _gauge_runs(self, d: MetricDefinition, fam: _Family) -> list[SeriesRun]:
        """As :meth:`_runs`, for a gauge: a series is kept while its fields (one per
        process that set it) and their values are the same, and, if its mode reads live
        processes only, while the same processes are live."""
        assert fam.definition
        by_series: dict[str, list[tuple[str, str]]] = {}
        for f, raw in fam.fields.items():
            if f[:1] == "[":
                by_series.setdefault(f.partition("\0")[0], []).append((f, raw))
        variant = fam.definition
        if d.multiprocess_mode.startswith("live"):
            variant += "\0" + ",".join(sorted(self.live))
        cache = self.reader.samples(d, variant)
        runs, changed, places = _kept(cache, by_series)
        if changed:
            where = self.keys.family(fam.name)
            fields = {f: raw for parts in changed.values() for f, raw in parts}
            per_series = self._gauge_series(d, fields, self.reader.labelsets(d), where)
            for key, place in zip(changed, places, strict=True):
                samples: list[Sample] = []
                add_samples(d, per_series.get(key, ()), samples)
                run = runs[place] = SeriesRun(samples)
                cache[key] = (changed[key], run)
        _forget_gone(cache, by_series)
        return runs

    def _definitions(self) -> Iterator[tuple[_Family | None, MetricDefinition]]:
        """Each family read, with the definition to read its fields with (None: defined
        here, no series in Redis); the families torn by a deploy are left out."""
        listed = set(self.listed or ())
        if self.wanted is None and self.include_remote:
            self.reader.known = sorted(listed - set(self.local))
        remote = sorted(n for n in self.families if n not in self.local and n in listed)
        for name in [*self.local, *remote]:
            fam = self.families[name]
            self.reader.sizes[name] = len(fam.fields)
            local = self.local.get(fam.name)
            if fam.torn:
                continue
            if not fam.definition:
                # Defined here, not in Redis yet (or no longer): a metric without series.
                if local is not None:
                    yield None, local.definition
                continue
            d = self._definition(fam)
            if d is not None:
                yield fam, d

    def _definition(self, fam: _Family) -> MetricDefinition | None:
        assert fam.definition
        local = self.local.get(fam.name)
        where = self.keys.family(fam.name)
        if local is not None and self.canonical.get(fam.name) == fam.definition:
            d = local.definition
        else:
            # Defined only elsewhere, or differently elsewhere: what Redis holds was
            # written under the stored definition, so read it with that one.
            d = definition_from_json(fam.name, fam.definition, fam.help, where)
            if (
                local is None
                and self.wanted is not None
                and self.wanted.isdisjoint(series_names(fam.name, d.type))
            ):
                return None
        return d

    def _series(
        self, d: MetricDefinition, fields: Mapping[str, str], where: str
    ) -> list[tuple[LabelSet, Any]]:
        labelsets = self.reader.labelsets(d)
        if d.type == "gauge":
            return self._gauges(d, fields, labelsets, where)
        keys = [k for k in fields if k[:1] == "["]
        missing = [k for k in keys if k not in labelsets]
        if missing:
            decode_labelsets(d, missing, labelsets, where)
        # The fast ways first, a scrape runs them once per series; the last one names the
        # culprit of a malformed value.
        if d.type == "counter":
            try:
                return [(labelsets[k], (float(fields[k]), None)) for k in keys]
            except ValueError:
                pass
        elif d.type in ("histogram", "summary"):
            width = len(d.buckets) + 1 if d.type == "histogram" else 2
            numbers = _number_rows([fields[k] for k in keys], width)
            if numbers is not None and d.type == "histogram":
                return [
                    (labelsets[k], HistogramState(tuple(row[:-1]), row[-1]))
                    for k, row in zip(keys, numbers, strict=True)
                ]
            if numbers is not None:
                return [
                    (labelsets[k], SummaryState(row[0], row[1]))
                    for k, row in zip(keys, numbers, strict=True)
                ]
        return [(labelsets[k], decode_value(d, fields[k], where, k)) for k in keys]

    def _gauges(
        self,
        d: MetricDefinition,
        fields: Mapping[str, str],
        labelsets: dict[str, LabelSet],
        where: str,
    ) -> list[tuple[LabelSet, Any]]:
        per_series = self._gauge_series(d, fields, labelsets, where)
        return list(chain.from_iterable(per_series.values()))

    def _gauge_series(
        self,
        d: MetricDefinition,
        fields: Mapping[str, str],
        labelsets: dict[str, LabelSet],
        where: str,
    ) -> dict[str, list[tuple[LabelSet, Any]]]:
        """A gauge's samples by series (its field's part before the process)."""
        # series -> [(process, value, time set)], and the value folded from dead processes
        values: dict[str, list[tuple[str, float, float]]] = {}
        retired: dict[str, tuple[float, float]] = {}
        for f, raw in fields.items():
            if f[:1] != "[":
                continue
            key, _, rest = f.partition("\0")
            if rest.startswith("p\0"):
                values.setdefault(key, []).append((rest[2:], *gauge_value(raw, where, f)))
            elif rest == "r":
                retired[key] = gauge_value(raw, where, f)
                values.setdefault(key, [])
            else:
                raise malformed(where, f, raw, "not a field of a gauge")
        missing = [k for k in values if k not in labelsets]
        if missing:
            decode_labelsets(d, missing, labelsets, where)
        return {
            key: aggregate_gauge(
                d.multiprocess_mode,
                labelsets[key],
                per_process,
                retired=retired.get(key),
                live=self.live,
                process_label=PROCESS_LABEL,
            )
            for key, per_process in values.items()
        }


def _kept(
    cache: _SampleCache, stored: Mapping[str, Any]
) -> tuple[list[SeriesRun], dict[str, Any], list[int]]:
    """The runs of the series in ``stored`` (key -> stored value) whose value is the one
    ``cache`` holds, in order; the others (changed or new, with their values) are left
    for the caller to build, in the places (indexes) given."""
    runs: list[SeriesRun] = []
    changed: dict[str, Any] = {}
    places: list[int] = []
    for key, value in stored.items():
        kept = cache.get(key)
        if kept is not None and kept[0] == value:
            runs.append(kept[1])
        elif key[:1] == "[":
            changed[key] = value
            places.append(len(runs))
            runs.append(_NO_RUN)
    return runs, changed, places


def _histogram_samples(d: MetricDefinition, run: HistogramRun) -> list[Sample]:
    """The samples of a histogram series held as ``run``, made when first asked for."""
    samples: list[Sample] = []
    add_samples(d, [(run.labels, HistogramState(run.counts, run.sum))], samples)
    return samples


def _forget_gone(cache: _SampleCache, present: Collection[str]) -> None:
    """Drop from ``cache`` the series no longer in Redis (expired, deleted), once they
    are as many as those that are: series that come and go must not grow it forever."""
    if len(cache) > 2 * len(present) + 1000:
        for key in [k for k in cache if k not in present]:
            del cache[key]


def _number_rows(values: list[str], width: int) -> list[list[float]] | None:
    """``"1,0,2.5"`` values as lists of ``width`` floats, all in one JSON parse (parsing
    them one by one took most of a histogram's read); None if one is not such a row, or
    holds what JSON cannot (nan, inf): the caller then parses them one by one."""
    try:
        rows: list[list[float]] = json.loads(f"[[{'],['.join(values)}]]", parse_int=float)
    except ValueError:
        return None
    if len(rows) != len(values) or any(len(row) != width for row in rows):
        return None
    return rows


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
