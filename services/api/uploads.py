"""Reading uploaded datasets (Parquet, CSV, NPZ) safely: bounded size, numeric finite columns, plain names.

Sizes are counted as the bytes arrive (``read_limited``; ``services.api.guard`` bounds the whole body),
and what a file would expand to is checked from its own metadata before it is decoded: a Parquet file's
row and column counts, an NPZ member's uncompressed size and array shape, a CSV's header and line count.
At most ``max_cells`` values (rows × columns) are ever decoded. Parsing is CPU work: the service runs it
in a worker thread, off the event loop.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
from fastapi import HTTPException, UploadFile, status

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MIN_ROWS = 10
MAX_COLUMNS = 200


def _bad(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


async def read_limited(upload: UploadFile, max_bytes: int) -> bytes:
    chunks, size = [], 0
    while chunk := await upload.read(1 << 20):
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"upload larger than {max_bytes / 2**20:.0f} MB (L2O_MAX_UPLOAD_MB)")
        chunks.append(chunk)
    return b"".join(chunks)


def _too_big(rows: int, columns: int, max_cells: int) -> None:
    if columns > MAX_COLUMNS + 1:
        raise _bad(f"at most {MAX_COLUMNS} feature columns besides the target, got {columns - 1}")
    if rows * max(columns, 1) > max_cells:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"the table holds {rows} × {columns} values, more than {max_cells} (L2O_MAX_UPLOAD_CELLS)")


def _check_parquet(data: bytes, max_cells: int) -> None:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    _too_big(meta.num_rows, meta.num_columns, max_cells)
    expanded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if expanded > 16 * max_cells:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"the table expands to {expanded} bytes")


def _check_npz(data: bytes, max_cells: int) -> None:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            if info.file_size > 8 * max_cells + 4096:  # float64 values and a .npy header
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                    f"{info.filename} expands to {info.file_size} bytes, more than the "
                                    f"{max_cells} values an upload may hold")
            with z.open(info) as f:
                if info.filename.endswith(".npy"):
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, _ = read(f)
                    if int(np.prod(shape, dtype=np.int64)) > max_cells:
                        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                            f"{info.filename} holds more than {max_cells} values")


def _check_csv(data: bytes, max_cells: int) -> None:
    header = data[:data.find(b"\n")] if b"\n" in data else data
    _too_big(max(data.count(b"\n"), 1), header.count(b",") + 1, max_cells)


def parse_table(data: bytes, filename: str, max_cells: int = 10_000_000) -> pd.DataFrame:
    """A numeric frame from Parquet, CSV or NPZ (``X``, ``y`` and optional ``feature_names``; target ``y``)."""
    name = (filename or "").lower()
    try:
        if name.endswith((".parquet", ".pq")):
            _check_parquet(data, max_cells)
            frame = pd.read_parquet(io.BytesIO(data))
        elif name.endswith(".csv"):
            _check_csv(data, max_cells)
            frame = pd.read_csv(io.BytesIO(data))
        elif name.endswith(".npz"):
            _check_npz(data, max_cells)
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                X, y = np.asarray(z["X"]), np.asarray(z["y"])
                names = [str(n) for n in z["feature_names"]] if "feature_names" in z else [
                    f"x{i}" for i in range(X.shape[1] if X.ndim == 2 else 0)]
            if X.ndim != 2 or y.ndim != 1 or len(X) != len(y) or len(names) != X.shape[1]:
                raise _bad("npz needs X (rows × features), y (rows) and optionally feature_names (features)")
            frame = pd.DataFrame(X, columns=names).assign(y=y)
        else:
            raise _bad("upload a .parquet, .csv or .npz file")
    except HTTPException:
        raise
    except Exception as err:  # every parser raises its own family of errors on malformed input
        raise _bad(f"could not read {filename!r}: {type(err).__name__}: {str(err)[:200]}") from err
    return frame


def features_and_target(frame: pd.DataFrame, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if target not in frame.columns:
        raise _bad(f"no target column {target!r} (columns: {list(map(str, frame.columns))[:20]})")
    cols = [str(c) for c in frame.columns if c != target]
    if not cols or len(cols) > MAX_COLUMNS:
        raise _bad(f"need 1..{MAX_COLUMNS} feature columns besides the target, got {len(cols)}")
    bad = [c for c in cols if not _NAME.match(c)]
    if bad:
        raise _bad(f"feature names must be identifiers (letters, digits, _): {bad[:5]}")
    try:
        X = frame[cols].to_numpy(np.float64)
        y = frame[target].to_numpy(np.float64)
    except (TypeError, ValueError) as err:
        raise _bad(f"every column must be numeric: {err}") from err
    if len(y) < MIN_ROWS:
        raise _bad(f"need at least {MIN_ROWS} rows, got {len(y)}")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise _bad("the data holds NaN or infinite values")
    return X, y, cols
