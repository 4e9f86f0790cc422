"""Metric points and a min/max pyramid over each series, so a chart of any run reads O(max_points) rows.

`series` holds one row per (job, name): its point count, first and last steps and how many pyramid
levels it has, so counts and names never scan points. `points` holds one row per (series, step): a
resumed attempt that logs a step again replaces it. Level k of `pyramid` summarises buckets of 8^k
steps (bucket = step >> 3k): the point count, the lowest and the highest value with their own steps and
times, and the first step whose value is null (NaN or ±inf in the run). Points appended after a series'
last step (the usual case) are summarised in Python and merged into the buckets as stored; any other
write (a resumed attempt rewriting steps) recomputes the buckets it touched, level by level from the one
below (level 1 from the points), so a rewritten step that lowers a bucket's max is handled too. A
series gets levels until its whole span fits in two buckets.

A read picks the lowest level with at most 2 * max_points buckets over the range, merges runs of them
down to between max_points / 4 and max_points / 2, and returns each bucket's min, max and null points
(spikes stay, at their real steps) and the range's first and last points; a range holding at most
`max_points` points comes back raw. Buckets cut by the range's ends are combined from smaller aligned
blocks, so nothing outside the range comes back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter, lt
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    points INTEGER NOT NULL,
    first_step INTEGER NOT NULL,
    last_step INTEGER NOT NULL,
    levels INTEGER NOT NULL,
    UNIQUE (job_id, name)
);
CREATE TABLE IF NOT EXISTS points (
    series INTEGER NOT NULL,
    step INTEGER NOT NULL,
    value REAL,
    time REAL NOT NULL,
    PRIMARY KEY (series, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pyramid (
    series INTEGER NOT NULL,
    level INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL,
    lo REAL,
    lo_step INTEGER,
    lo_time REAL,
    hi REAL,
    hi_step INTEGER,
    hi_time REAL,
    nan_step INTEGER,
    nan_time REAL,
    PRIMARY KEY (series, level, bucket)
) WITHOUT ROWID;
"""

BITS = 3  # level k's buckets hold 8^k steps: bucket = step >> (BITS * k)
MAX_LEVEL = 62 // BITS  # buckets of 2^62 steps cover any span of steps the API takes
# Steps further apart than this in one write are recomputed as separate ranges, so a batch holding step 5
# and step 9,000,000 does not walk the points in between.
_CLUSTER_GAP = 1024

# Recomputing buckets: level 1 from the points, level k from level k - 1. Three aggregates, each the only
# min() or max() of its subquery, so SQLite fills the bare step and time columns from the row that holds
# the extreme. ?2..?3: the rows below; ?4: BITS; ?5: the level below.
_FROM_POINTS = """
INSERT OR REPLACE INTO pyramid (series, level, bucket, n, nan_step, nan_time, lo, lo_step, lo_time,
                                hi, hi_step, hi_time)
SELECT ?1, 1, c.b, c.n, c.ns, c.nt, l.v, l.s, l.t, h.v, h.s, h.t
FROM (SELECT step >> ?4 AS b, COUNT(*) AS n, MIN(CASE WHEN value IS NULL THEN step END) AS ns, time AS nt
      FROM points WHERE series = ?1 AND step BETWEEN ?2 AND ?3 GROUP BY b) AS c
JOIN (SELECT step >> ?4 AS b, MIN(value) AS v, step AS s, time AS t
      FROM points WHERE series = ?1 AND step BETWEEN ?2 AND ?3 GROUP BY b) AS l ON l.b = c.b
JOIN (SELECT step >> ?4 AS b, MAX(value) AS v, step AS s, time AS t
      FROM points WHERE series = ?1 AND step BETWEEN ?2 AND ?3 GROUP BY b) AS h ON h.b = c.b
"""
_FROM_LEVEL = """
INSERT OR REPLACE INTO pyramid (series, level, bucket, n, nan_step, nan_time, lo, lo_step, lo_time,
                                hi, hi_step, hi_time)
SELECT ?1, ?5 + 1, c.b, c.n, c.ns, c.nt, l.v, l.s, l.t, h.v, h.s, h.t
FROM (SELECT bucket >> ?4 AS b, SUM(n) AS n, MIN(nan_step) AS ns, nan_time AS nt
      FROM pyramid WHERE series = ?1 AND level = ?5 AND bucket BETWEEN ?2 AND ?3 GROUP BY b) AS c
JOIN (SELECT bucket >> ?4 AS b, MIN(lo) AS v, lo_step AS s, lo_time AS t
      FROM pyramid WHERE series = ?1 AND level = ?5 AND bucket BETWEEN ?2 AND ?3 GROUP BY b) AS l ON l.b = c.b
JOIN (SELECT bucket >> ?4 AS b, MAX(hi) AS v, hi_step AS s, hi_time AS t
      FROM pyramid WHERE series = ?1 AND level = ?5 AND bucket BETWEEN ?2 AND ?3 GROUP BY b) AS h ON h.b = c.b
"""
# Appending: a bucket summary of the new points, merged into the bucket as stored (a point added can only
# widen it). SQLite evaluates every SET expression on the old row.
_MERGE = """
INSERT INTO pyramid (series, level, bucket, n, lo, lo_step, lo_time, hi, hi_step, hi_time, nan_step, nan_time)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series, level, bucket) DO UPDATE SET
    n = n + excluded.n,
    lo = CASE WHEN COALESCE(excluded.lo < lo, excluded.lo IS NOT NULL) THEN excluded.lo ELSE lo END,
    lo_step = CASE WHEN COALESCE(excluded.lo < lo, excluded.lo IS NOT NULL) THEN excluded.lo_step ELSE lo_step END,
    lo_time = CASE WHEN COALESCE(excluded.lo < lo, excluded.lo IS NOT NULL) THEN excluded.lo_time ELSE lo_time END,
    hi = CASE WHEN COALESCE(excluded.hi > hi, excluded.hi IS NOT NULL) THEN excluded.hi ELSE hi END,
    hi_step = CASE WHEN COALESCE(excluded.hi > hi, excluded.hi IS NOT NULL) THEN excluded.hi_step ELSE hi_step END,
    hi_time = CASE WHEN COALESCE(excluded.hi > hi, excluded.hi IS NOT NULL) THEN excluded.hi_time ELSE hi_time END,
    nan_time = CASE WHEN nan_step IS NULL THEN excluded.nan_time ELSE nan_time END,
    nan_step = COALESCE(nan_step, excluded.nan_step)
"""
_BUCKET_COLUMNS = "n, lo, lo_step, lo_time, hi, hi_step, hi_time, nan_step, nan_time"

Point = tuple[int, float | None, float]  # step, value (None for NaN/±inf), time
Bucket = list[Any]  # bucket, then _BUCKET_COLUMNS


@dataclass
class _Summary:
    """What a bucket (or any run of steps) holds: its extremes with their steps, its first null."""

    n: int = 0
    lo: tuple[int, float, float] | None = None
    hi: tuple[int, float, float] | None = None
    nan: Point | None = None

    def add(self, n: int, lo: float | None, lo_step: int, lo_time: float, hi: float | None, hi_step: int,
            hi_time: float, nan_step: int | None, nan_time: float) -> None:
        """Fold in one bucket's row (`_BUCKET_COLUMNS`); a null lo/hi means the bucket held only nulls."""
        self.n += n
        if lo is not None and (self.lo is None or lo < self.lo[1]):
            self.lo = (lo_step, lo, lo_time)
        if hi is not None and (self.hi is None or hi > self.hi[1]):
            self.hi = (hi_step, hi, hi_time)
        if nan_step is not None and (self.nan is None or nan_step < self.nan[0]):
            self.nan = (nan_step, None, nan_time)

    def merge(self, other: _Summary) -> None:
        self.n += other.n
        if other.lo is not None and (self.lo is None or other.lo[1] < self.lo[1]):
            self.lo = other.lo
        if other.hi is not None and (self.hi is None or other.hi[1] > self.hi[1]):
            self.hi = other.hi
        if other.nan is not None and (self.nan is None or other.nan[0] < self.nan[0]):
            self.nan = other.nan

    def points(self) -> Iterator[Point]:
        yield from (p for p in (self.lo, self.hi, self.nan) if p is not None)


# -- writing ------------------------------------------------------------------------------------
def write(conn: sqlite3.Connection, job_id: str, points: dict[str, list[Point]]) -> None:
    """Store points of one job, {name: [(step, value, time)]}; a later point at a step replaces the
    earlier one. Runs inside the caller's transaction."""
    for name, rows in points.items():
        if rows:
            _write_series(conn, job_id, name, rows)


def _write_series(conn: sqlite3.Connection, job_id: str, name: str, rows: list[Point]) -> None:
    found = conn.execute("SELECT id, points, first_step, last_step, levels FROM series "
                         "WHERE job_id = ? AND name = ?", (job_id, name)).fetchone()
    ranges = _clusters(rows)
    low, high = ranges[0][0], ranges[-1][1]
    if found is None:
        sid = conn.execute("INSERT INTO series (job_id, name, points, first_step, last_step, levels) "
                           "VALUES (?, ?, 0, ?, ?, 0)", (job_id, name, low, high)).lastrowid
        assert sid is not None
        count, first, last, old_levels, appended = 0, low, high, 0, False
    else:
        sid, count, first, last, old_levels = found
        steps = [r[0] for r in rows]
        appended = low > last and all(map(lt, steps, steps[1:]))
        first, last = min(first, low), max(last, high)
    levels = levels_for(first, last)
    if appended:  # the usual case: new steps after the last one
        conn.executemany("INSERT INTO points (series, step, value, time) VALUES (?, ?, ?, ?)",
                         [(sid, step, value, when) for step, value, when in rows])
        count += len(rows)
        merged: list[tuple[Any, ...]] = []
        summaries = _first_level(rows)
        for level in range(1, old_levels + 1):
            if level > 1:
                summaries = _summarise(summaries)
            merged.extend((sid, level, *b) for b in summaries)
        conn.executemany(_MERGE, merged)
        spans = [(first, last)]  # for the levels the series did not have yet
    else:  # a resumed attempt's rewritten steps, steps out of order: recompute what they touch
        count -= sum(_count(conn, sid, a, b) for a, b in ranges)
        conn.executemany("INSERT OR REPLACE INTO points (series, step, value, time) VALUES (?, ?, ?, ?)",
                         [(sid, step, value, when) for step, value, when in rows])
        count += sum(_count(conn, sid, a, b) for a, b in ranges)
        spans = ranges
    for level in range(1 if not appended else old_levels + 1, levels + 1):
        # a level the series had gets the touched buckets again; a new one is built over the whole span
        shift = level * BITS
        for a, b in _merged([(a >> shift, b >> shift) for a, b in (spans if level <= old_levels else [(first, last)])]):
            below = (a << BITS, ((b + 1) << BITS) - 1)
            if level == 1:
                conn.execute(_FROM_POINTS, (sid, *below, BITS))
            else:
                conn.execute(_FROM_LEVEL, (sid, *below, BITS, level - 1))
    conn.execute("UPDATE series SET points = ?, first_step = ?, last_step = ?, levels = ? WHERE id = ?",
                 (count, first, last, levels, sid))


def _first_level(rows: list[Point]) -> list[Bucket]:
    """Level 1's buckets of points in step order."""
    out: list[Bucket] = []
    current: Bucket = [None]
    for step, value, when in rows:
        key = step >> BITS
        if current[0] != key:
            current = [key, 1, value, step, when, value, step, when, None if value is not None else step, when]
            out.append(current)
        elif value is None:
            current[1] += 1
            if current[8] is None:
                current[8:10] = step, when
        else:
            current[1] += 1
            if current[2] is None or value < current[2]:
                current[2:5] = value, step, when
            if current[5] is None or value > current[5]:
                current[5:8] = value, step, when
    return out


def _summarise(rows: list[Bucket]) -> list[Bucket]:
    """The buckets one level up of buckets in step order."""
    out: list[Bucket] = []
    current: Bucket = [None]
    for bucket, n, lo, lo_step, lo_time, hi, hi_step, hi_time, nan_step, nan_time in rows:
        key = bucket >> BITS
        if current[0] != key:
            current = [key, n, lo, lo_step, lo_time, hi, hi_step, hi_time, nan_step, nan_time]
            out.append(current)
            continue
        current[1] += n
        if lo is not None and (current[2] is None or lo < current[2]):
            current[2:5] = lo, lo_step, lo_time
        if hi is not None and (current[5] is None or hi > current[5]):
            current[5:8] = hi, hi_step, hi_time
        if current[8] is None:
            current[8:10] = nan_step, nan_time
    return out


def levels_for(first: int, last: int) -> int:
    """Levels a series spanning first..last needs: until the span fits in two buckets."""
    level = 1
    while level < MAX_LEVEL and (last >> (level * BITS)) - (first >> (level * BITS)) > 1:
        level += 1
    return level


def _clusters(rows: list[Point]) -> list[tuple[int, int]]:
    """The step ranges a write touches: one for a dense batch (the usual case, no sorting), else runs of
    steps split at gaps wider than _CLUSTER_GAP."""
    low = min(rows, key=itemgetter(0))[0]
    high = max(rows, key=itemgetter(0))[0]
    if high - low <= 4 * len(rows) + _CLUSTER_GAP:
        return [(low, high)]
    steps = sorted({r[0] for r in rows})
    ranges = [[steps[0], steps[0]]]
    for step in steps[1:]:
        if step - ranges[-1][1] > _CLUSTER_GAP:
            ranges.append([step, step])
        else:
            ranges[-1][1] = step
    return [(a, b) for a, b in ranges]


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _count(conn: sqlite3.Connection, sid: int, a: int, b: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM points WHERE series = ? AND step BETWEEN ? AND ?",
                            (sid, a, b)).fetchone()[0])


def delete(conn: sqlite3.Connection, job_id: str) -> None:
    for table in ("points", "pyramid"):
        conn.execute(f"DELETE FROM {table} WHERE series IN (SELECT id FROM series WHERE job_id = ?)", (job_id,))
    conn.execute("DELETE FROM series WHERE job_id = ?", (job_id,))


def migrate(conn: sqlite3.Connection) -> None:
    """State folders made before the pyramid kept points in `metrics` (job_id, name, step, value, time):
    move them over once, building the pyramid, and drop that table."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'metrics'").fetchone():
        return
    for job_id, name in conn.execute("SELECT DISTINCT job_id, name FROM metrics").fetchall():
        rows = conn.execute("SELECT step, value, time FROM metrics WHERE job_id = ? AND name = ? ORDER BY step",
                            (job_id, name)).fetchall()
        _write_series(conn, job_id, name, rows)
    conn.execute("DROP TABLE metrics")


# -- reading ------------------------------------------------------------------------------------
def names(conn: sqlite3.Connection, job_id: str) -> list[str]:
    return sorted(r[0] for r in conn.execute("SELECT name FROM series WHERE job_id = ?", (job_id,)))


def read(conn: sqlite3.Connection, job_id: str, name: str, max_points: int,
         from_step: int | None = None, to_step: int | None = None) -> tuple[list[Point], int]:
    """About `max_points` points of a series over from_step..to_step (inclusive; default: all of it),
    and how many points the whole series holds."""
    found = conn.execute("SELECT id, points, first_step, last_step, levels FROM series "
                         "WHERE job_id = ? AND name = ?", (job_id, name)).fetchone()
    if found is None:
        return [], 0
    sid, total, first, last, levels = found
    a = first if from_step is None else max(first, from_step)
    b = last if to_step is None else min(last, to_step)
    if a > b:
        return [], total
    whole = (a, b) == (first, last)
    if (total if whole else _count_upto(conn, sid, a, b, max_points + 1)) <= max_points:
        return conn.execute("SELECT step, value, time FROM points WHERE series = ? AND step BETWEEN ? AND ? "
                            "ORDER BY step", (sid, a, b)).fetchall(), total
    ends = [conn.execute("SELECT step, value, time FROM points WHERE series = ? AND step >= ? "
                         "ORDER BY step LIMIT 1", (sid, a)).fetchone(),
            conn.execute("SELECT step, value, time FROM points WHERE series = ? AND step <= ? "
                         "ORDER BY step DESC LIMIT 1", (sid, b)).fetchone()]
    budget = max(1, (max_points - 2) // 2)  # buckets, two points each, and the ends
    # The lowest level with at most 4 * budget buckets over the range (at most 2 * max_points rows read),
    # runs of `group` of them merged: between budget / 2 and budget buckets.
    level = 1
    while level < levels and (b >> (level * BITS)) - (a >> (level * BITS)) + 1 > 4 * budget:
        level += 1
    while True:
        summaries = buckets(conn, sid, level, a, b)
        group = -(-len(summaries) // budget)
        if group > 1:
            for i in range(0, len(summaries), group):
                for other in summaries[i + 1:i + group]:
                    summaries[i].merge(other)
            summaries = summaries[::group]
        picked = {p[0]: p for p in ends}
        for summary in summaries:
            picked.update((p[0], p) for p in summary.points())
        if len(picked) <= max_points or level >= levels:  # null points may need the next level up
            return sorted(picked.values()), total
        level += 1


def buckets(conn: sqlite3.Connection, sid: int, level: int, a: int, b: int) -> list[_Summary]:
    """The level's buckets over a..b, in order; the two cut by a or b summarise only their part inside."""
    shift = level * BITS
    mask = (1 << shift) - 1
    head = tail = None
    if a & mask or b < a | mask:  # a's bucket is cut
        head = _combine(conn, sid, a, min(b, a | mask), level - 1)
        a = (a | mask) + 1
    if a <= b and ~b & mask:  # b's bucket is cut
        tail = _combine(conn, sid, b & ~mask, b, level - 1)
        b = (b & ~mask) - 1
    out = [head] if head else []
    if a <= b:
        for row in conn.execute(f"SELECT {_BUCKET_COLUMNS} FROM pyramid WHERE series = ? AND level = ? "
                                "AND bucket BETWEEN ? AND ? ORDER BY bucket", (sid, level, a >> shift, b >> shift)):
            summary = _Summary()
            summary.add(*row)
            out.append(summary)
    if tail:
        out.append(tail)
    return [s for s in out if s.n]


def _combine(conn: sqlite3.Connection, sid: int, a: int, b: int, top: int) -> _Summary:
    """The summary of steps a..b from the fewest aligned blocks of levels 0 (points) to `top`."""
    summary = _Summary()
    while a <= b:
        level = 0
        while level < top and a % (width := 1 << ((level + 1) * BITS)) == 0 and a + width - 1 <= b:
            level += 1
        if level == 0:
            row = conn.execute("SELECT step, value, time FROM points WHERE series = ? AND step = ?",
                               (sid, a)).fetchone()
            if row is not None:
                step, value, when = row
                summary.add(1, value, step, when, value, step, when, step if value is None else None, when)
        else:
            row = conn.execute(f"SELECT {_BUCKET_COLUMNS} FROM pyramid WHERE series = ? AND level = ? "
                               "AND bucket = ?", (sid, level, a >> (level * BITS))).fetchone()
            if row is not None:
                summary.add(*row)
        a += 1 << (level * BITS)
    return summary


def _count_upto(conn: sqlite3.Connection, sid: int, a: int, b: int, limit: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM (SELECT 1 FROM points WHERE series = ? AND step BETWEEN ? AND ? "
                            "LIMIT ?)", (sid, a, b, limit)).fetchone()[0])
