"""HTTP content encodings ClickHouse speaks: gzip, deflate, br, zstd, lz4 (frame format), xz.

Request bodies may hold several concatenated frames (clickhouse-connect compresses each insert
block as its own frame), so every decoder consumes frames until the input is exhausted.
"""

from __future__ import annotations

import gzip
import lzma
import zlib
from collections.abc import Callable
from typing import Any

import lz4.frame
import zstandard

try:  # optional, only when brotli happens to be installed
    import brotli
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None


class EncodingError(ValueError):
    """A body could not be decoded, or the encoding is not supported."""


def _frames(data: bytes, decoder: Callable[[], Any], codec: str) -> bytes:
    """Decode concatenated frames (each by a fresh ``decoder()``); a cut-off last frame is an error."""
    out = bytearray()
    while data:
        dec = decoder()
        out += dec.decompress(data)
        if not dec.eof:
            raise EncodingError(f"truncated {codec} frame in request body")
        data = dec.unused_data
    return bytes(out)


def _lz4_frames(data: bytes) -> bytes:
    return _frames(data, lz4.frame.LZ4FrameDecompressor, "lz4")


def _zstd_frames(data: bytes) -> bytes:
    return _frames(data, lambda: zstandard.ZstdDecompressor().decompressobj(), "zstd")


def _deflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:
        return zlib.decompress(data, -zlib.MAX_WBITS)  # raw deflate


def _brotli(data: bytes) -> bytes:
    if brotli is None:
        raise EncodingError("brotli request bodies need the brotli package")
    return brotli.decompress(data)


_DECODERS = {
    "gzip": gzip.decompress,
    "x-gzip": gzip.decompress,
    "deflate": _deflate,
    "zstd": _zstd_frames,
    "lz4": _lz4_frames,
    "xz": lzma.decompress,
    "br": _brotli,
}

_ENCODERS = {
    "gzip": lambda b: gzip.compress(b, compresslevel=3),
    "deflate": lambda b: zlib.compress(b, 3),
    "zstd": lambda b: zstandard.ZstdCompressor(level=1).compress(b),
    "lz4": lambda b: lz4.frame.compress(b),
    "xz": lambda b: lzma.compress(b, preset=1),
}
if brotli is not None:  # pragma: no cover - depends on the environment
    _ENCODERS["br"] = lambda b: brotli.compress(b, quality=3)


def decode(data: bytes, content_encoding: str | None) -> bytes:
    """Decode a request body per its Content-Encoding (several codings apply right to left)."""
    if not content_encoding:
        return data
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",") if c.strip()]):
        if coding == "identity":
            continue
        decoder = _DECODERS.get(coding)
        if decoder is None:
            raise EncodingError(f"unsupported Content-Encoding '{coding}' (supported: {', '.join(sorted(_DECODERS))})")
        try:
            data = decoder(data)
        except EncodingError:
            raise
        except Exception as exc:  # each library raises its own error type
            raise EncodingError(f"cannot decode {coding} request body: {exc}") from exc
    return data


def choose(accept_encoding: str | None) -> str | None:
    """The first encoding in the client's Accept-Encoding that we can produce (q=0 excluded)."""
    if not accept_encoding:
        return None
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        name = name.strip().lower()
        if params.replace(" ", "") in ("q=0", "q=0.0"):
            continue
        if name in _ENCODERS:
            return name
    return None


def encode(data: bytes, encoding: str) -> bytes:
    """Compress a response body with ``encoding`` (one of those :func:`choose` returns)."""
    return _ENCODERS[encoding](data)
