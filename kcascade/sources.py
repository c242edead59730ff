"""Chunked row sources: data read in pieces, so that a fit never holds all rows.

A source yields (x, y) chunks as numpy arrays, x (c, d) and y (c,), in a fixed
order; it can be read several times (one pass per read), and it can gather a
few given rows (``take``) without reading the others where the format allows
(memory-mapped ``.npy``, Parquet row groups) or in one pass otherwise.

- ``NpySource(x, y)``: two ``.npy`` files (or arrays), memory-mapped;
- ``ParquetSource(path, x=[...], y="...")``: a Parquet file or a directory of
  them (a dataset), read in record batches with ``pyarrow`` (optional
  dependency: ``pip install pyarrow``);
- ``ChunkSource(make_chunks)``: any callable returning a fresh iterator of
  (x, y) chunks (a generator over files, a database cursor, ...).

``SSANOVA.fit`` and ``kc.cascade`` accept a source in place of ``x`` (with
``y=None``); see ``kcascade.estimators.ssanova_stream`` for what a streamed
fit does with it.
"""
from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np

DEFAULT_CHUNK = 1 << 16   # rows read at a time


class Source:
    """The interface: ``n_rows``, ``n_columns``, ``chunks(size)``, ``take(index)``."""

    n_rows: int
    n_columns: int
    chunk_rows: int = DEFAULT_CHUNK   # rows a fit reads and compiles for at a time

    def chunks(self, size: int = DEFAULT_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def take(self, index) -> tuple[np.ndarray, np.ndarray]:
        """(x (k, d), y (k,)) of the rows at the sorted, distinct ``index`` (k,);
        by default one pass over the chunks."""
        index = np.asarray(index, np.int64)
        xs, ys, start = [], [], 0
        for xc, yc in self.chunks():
            stop = start + xc.shape[0]
            lo, hi = np.searchsorted(index, [start, stop])
            if hi > lo:
                xs.append(xc[index[lo:hi] - start])
                ys.append(yc[index[lo:hi] - start])
            start = stop
        return _stack(xs, ys, self.n_columns, index.shape[0])


def _stack(xs, ys, d, k):
    x = np.concatenate(xs) if xs else np.zeros((0, d))
    y = np.concatenate(ys) if ys else np.zeros((0,))
    if x.shape[0] != k:
        raise ValueError(f"source: expected to find {k} requested rows, found {x.shape[0]} "
                         "(the source yielded fewer rows than it reported)")
    return x, y


def _chunk_rows(chunk_rows):
    if not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows: expected a positive integer number of rows, got {chunk_rows!r}")
    return int(chunk_rows)


def _as_2d(x, name):
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-d array of rows (n, d), got shape {x.shape}")
    return x


class NpySource(Source):
    """Rows from ``.npy`` files, memory-mapped (never loaded whole).

    Args:
      x: path of an (n, d) ``.npy`` file, or an (n, d) array (e.g. a
        ``np.memmap``).
      y: path of an (n,) ``.npy`` file, or an (n,) array.
      chunk_rows: rows a fit reads (and compiles for) at a time.
    """

    def __init__(self, x, y, *, chunk_rows: int = DEFAULT_CHUNK):
        self.chunk_rows = _chunk_rows(chunk_rows)
        self.x = _as_2d(np.load(x, mmap_mode="r") if isinstance(x, (str, os.PathLike)) else x, "x")
        self.y = np.load(y, mmap_mode="r") if isinstance(y, (str, os.PathLike)) else np.asarray(y)
        if self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]:
            raise ValueError(f"y: expected shape ({self.x.shape[0]},) to match x's rows, got {self.y.shape}")
        self.n_rows, self.n_columns = self.x.shape

    def chunks(self, size: int = DEFAULT_CHUNK):
        for start in range(0, self.n_rows, size):
            yield np.asarray(self.x[start:start + size]), np.asarray(self.y[start:start + size])

    def take(self, index):
        index = np.asarray(index, np.int64)
        return np.asarray(self.x[index]), np.asarray(self.y[index])


class ParquetSource(Source):
    """Rows from a Parquet file or dataset (a directory of files), read in
    record batches with ``pyarrow``; only the named columns are read.

    Args:
      path: a ``.parquet`` file or a directory of them (read in sorted order).
      x: the covariate column names, in the order of x's columns.
      y: the response column name.
      chunk_rows: rows a fit reads (and compiles for) at a time.
    """

    def __init__(self, path, *, x, y, chunk_rows: int = DEFAULT_CHUNK):
        self.chunk_rows = _chunk_rows(chunk_rows)
        try:
            import pyarrow.parquet as pq
        except ImportError as err:   # pragma: no cover - the optional extra
            raise ImportError("ParquetSource needs pyarrow: pip install pyarrow (or kcascade[parquet])") from err
        self._pq = pq
        path = os.fspath(path)
        if os.path.isdir(path):
            self.files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".parquet"))
        else:
            self.files = [path]
        if not self.files:
            raise ValueError(f"path: expected a .parquet file or a directory holding some, got {path!r} with none")
        if isinstance(x, str) or not len(x):
            raise ValueError(f"x: expected a non-empty list of column names, got {x!r}")
        self.x_columns, self.y_column = list(x), y
        self._meta = [pq.ParquetFile(f).metadata for f in self.files]
        names = set(pq.ParquetFile(self.files[0]).schema_arrow.names)
        missing = [c for c in [*self.x_columns, y] if c not in names]
        if missing:
            raise ValueError(f"x, y: columns {missing} are not in {self.files[0]!r}; it has {sorted(names)}")
        # (file, row group, first row, rows) of every row group
        self._groups, start = [], 0
        for f, meta in enumerate(self._meta):
            for g in range(meta.num_row_groups):
                rows = meta.row_group(g).num_rows
                self._groups.append((f, g, start, rows))
                start += rows
        self.n_rows, self.n_columns = start, len(self.x_columns)

    def _arrays(self, table):
        x = np.column_stack([table.column(c).to_numpy() for c in self.x_columns]).astype(np.float64, copy=False)
        return x, table.column(self.y_column).to_numpy().astype(np.float64, copy=False)

    def chunks(self, size: int = DEFAULT_CHUNK):
        for f in self.files:
            for batch in self._pq.ParquetFile(f).iter_batches(batch_size=size, columns=[*self.x_columns,
                                                                                       self.y_column]):
                yield self._arrays(batch)

    def take(self, index):
        """Reads only the row groups that hold the requested rows."""
        index = np.asarray(index, np.int64)
        xs, ys = [], []
        for f, g, start, rows in self._groups:
            lo, hi = np.searchsorted(index, [start, start + rows])
            if hi > lo:
                table = self._pq.ParquetFile(self.files[f]).read_row_group(g, columns=[*self.x_columns,
                                                                                        self.y_column])
                x, y = self._arrays(table)
                xs.append(x[index[lo:hi] - start])
                ys.append(y[index[lo:hi] - start])
        return _stack(xs, ys, self.n_columns, index.shape[0])


class ChunkSource(Source):
    """Rows from any callable returning a fresh iterator of (x (c, d), y (c,))
    chunks; it is called once per pass (a streamed fit makes three or four
    passes), and every call must yield the same rows in the same order.

    Args:
      make_chunks: () -> iterator of (x, y) chunks.
      n_rows, n_columns: optional; counted in one pass when not given.
      chunk_rows: rows a fit compiles for (the chunks are re-blocked to it).
    """

    def __init__(self, make_chunks: Callable[[], Iterator], n_rows: int | None = None,
                 n_columns: int | None = None, *, chunk_rows: int = DEFAULT_CHUNK):
        self.chunk_rows = _chunk_rows(chunk_rows)
        if not callable(make_chunks):
            raise ValueError(f"make_chunks: expected a callable returning an iterator of (x, y) chunks, "
                             f"got {type(make_chunks).__name__}")
        self.make_chunks = make_chunks
        if n_rows is None or n_columns is None:
            n, d = 0, None
            for xc, _ in self._checked():
                n, d = n + xc.shape[0], xc.shape[1]
            if d is None:
                raise ValueError("make_chunks: expected at least one chunk of rows, got none")
            n_rows, n_columns = n, d
        self.n_rows, self.n_columns = int(n_rows), int(n_columns)

    def _checked(self):
        for i, chunk in enumerate(self.make_chunks()):
            if not isinstance(chunk, tuple) or len(chunk) != 2:
                raise ValueError(f"make_chunks: chunk {i}: expected a tuple (x, y), got {type(chunk).__name__}")
            xc, yc = _as_2d(chunk[0], f"make_chunks: chunk {i}: x"), np.asarray(chunk[1])
            if yc.shape != (xc.shape[0],):
                raise ValueError(f"make_chunks: chunk {i}: expected y of shape ({xc.shape[0]},), got {yc.shape}")
            yield xc, yc

    def chunks(self, size: int = DEFAULT_CHUNK):
        """The chunks as the callable yields them (``size`` is not used)."""
        yield from self._checked()


def is_source(obj) -> bool:
    return isinstance(obj, Source)


def draw_rows(key, n: int, k: int) -> np.ndarray:
    """(k,) sorted distinct row indices in [0, n), uniform without replacement,
    drawn with the ``jax.random`` key without an array of n numbers when
    n is large (oversampled draws with replacement, duplicates dropped)."""
    import jax
    if k > n:
        raise ValueError(f"k: cannot draw {k} distinct rows from {n}")
    if n <= 8 * k or n <= 1 << 20:
        return np.sort(np.asarray(jax.random.permutation(key, n)[:k]))
    for attempt in range(8):
        hi, lo = (np.asarray(jax.random.uniform(k_, (2 * k,), dtype=np.float32), np.float64)
                  for k_ in jax.random.split(jax.random.fold_in(key, attempt)))
        # two float32 draws make one label with ~48 random bits: every row reachable
        idx = np.minimum(np.floor((hi + lo / (1 << 24)) * n), n - 1).astype(np.int64)
        _, first = np.unique(idx, return_index=True)
        if first.shape[0] >= k:
            return np.sort(idx[np.sort(first)[:k]])      # the first k distinct draws
    raise RuntimeError("draw_rows: could not draw distinct rows")  # pragma: no cover - probability ~0
