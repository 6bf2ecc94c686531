"""HTTP content encodings ClickHouse speaks: gzip, deflate, br, zstd, lz4 (frame format), xz.

Request bodies may hold several concatenated frames (clickhouse-connect compresses each insert
block as its own frame), so every decoder consumes frames until the input is exhausted.

Decoding is bounded: a request body is attacker-controlled, and a few hundred kilobytes of gzip can
expand to gigabytes (a "zip bomb"). Every decoder produces output in slices and stops with
:class:`BodyTooLarge` as soon as the output would exceed ``max_size``, so memory never grows past the
cap. zlib, lzma and lz4 take an output limit per call; zstandard's one-shot decompressor does not, so a
zstd body is first measured through its bounded stream reader (output discarded) and only decoded once
its size is known to fit.
"""

from __future__ import annotations

import gzip
import io
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

_SLICE = 1 << 20  # output produced per decompressor call


class EncodingError(ValueError):
    """A body could not be decoded, or the encoding is not supported."""


class BodyTooLarge(EncodingError):
    """The decoded body would exceed the configured cap."""

    def __init__(self, codec: str, max_size: int):
        super().__init__(f"the {codec}-decoded request body exceeds {max_size} bytes")
        self.max_size = max_size


class _Sink:
    """Collects decoded output, refusing to grow past ``max_size``."""

    def __init__(self, codec: str, max_size: int | None):
        self.codec = codec
        self.max_size = max_size
        self.out = bytearray()

    def room(self) -> int:
        """How many more bytes a decompressor call may produce (one more than allowed: to detect excess)."""
        if self.max_size is None:
            return _SLICE
        return max(1, min(_SLICE, self.max_size - len(self.out) + 1))

    def add(self, chunk: bytes) -> None:
        self.out += chunk
        if self.max_size is not None and len(self.out) > self.max_size:
            raise BodyTooLarge(self.codec, self.max_size)


def _zlib_members(data: bytes, wbits: int, codec: str, max_size: int | None) -> bytes:
    """Concatenated zlib/gzip members, each through a fresh decompressobj with an output limit."""
    sink = _Sink(codec, max_size)
    while data:
        dec = zlib.decompressobj(wbits)
        pending = data
        while True:
            sink.add(dec.decompress(pending, sink.room()))
            pending = dec.unconsumed_tail
            if dec.eof:
                break
            if not pending:
                flushed = dec.flush()  # output buffered inside zlib (bounded by its window)
                sink.add(flushed)
                if dec.eof or not flushed:
                    break
        if not dec.eof:
            raise EncodingError(f"truncated {codec} data in request body")
        data = dec.unused_data
        if codec != "gzip" or not data.strip(b"\x00"):
            break  # deflate is a single stream; gzip may be padded with zeros
    return bytes(sink.out)


def _gzip(data: bytes, max_size: int | None) -> bytes:
    return _zlib_members(data, 16 + zlib.MAX_WBITS, "gzip", max_size)


def _deflate(data: bytes, max_size: int | None) -> bytes:
    try:
        return _zlib_members(data, zlib.MAX_WBITS, "deflate", max_size)
    except BodyTooLarge:
        raise
    except (zlib.error, EncodingError):
        return _zlib_members(data, -zlib.MAX_WBITS, "deflate", max_size)  # raw deflate


def _needs_input_frames(data: bytes, decoder: Callable[[], Any], codec: str, max_size: int | None) -> bytes:
    """Concatenated frames for decompressors with ``decompress(data, max_length)`` / ``needs_input``."""
    sink = _Sink(codec, max_size)
    while data:
        dec = decoder()
        sink.add(dec.decompress(data, sink.room()))
        while not dec.eof and not dec.needs_input:
            sink.add(dec.decompress(b"", sink.room()))
        if not dec.eof:
            raise EncodingError(f"truncated {codec} frame in request body")
        data = dec.unused_data
    return bytes(sink.out)


def _lz4(data: bytes, max_size: int | None) -> bytes:
    return _needs_input_frames(data, lz4.frame.LZ4FrameDecompressor, "lz4", max_size)


def _xz(data: bytes, max_size: int | None) -> bytes:
    return _needs_input_frames(data, lzma.LZMADecompressor, "xz", max_size)


def _zstd(data: bytes, max_size: int | None) -> bytes:
    if max_size is not None:  # measure first, holding at most one slice in memory
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
        total = 0
        while chunk := reader.read(_SLICE):
            total += len(chunk)
            if total > max_size:
                raise BodyTooLarge("zstd", max_size)
    out = bytearray()
    while data:
        dec = zstandard.ZstdDecompressor().decompressobj()
        out += dec.decompress(data)
        if not dec.eof:
            raise EncodingError("truncated zstd frame in request body")
        data = dec.unused_data
    return bytes(out)


def _brotli(data: bytes, max_size: int | None) -> bytes:
    if brotli is None:
        raise EncodingError("brotli request bodies need the brotli package")
    out = brotli.decompress(data)  # pragma: no cover - brotli is not installed here
    if max_size is not None and len(out) > max_size:
        raise BodyTooLarge("br", max_size)
    return out


_DECODERS: dict[str, Callable[[bytes, int | None], bytes]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "zstd": _zstd,
    "lz4": _lz4,
    "xz": _xz,
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


def decode(data: bytes, content_encoding: str | None, max_size: int | None = None) -> bytes:
    """Decode a request body per its Content-Encoding (several codings apply right to left).

    ``max_size`` caps every decoding step's output; :class:`BodyTooLarge` when a step would exceed it.
    """
    if not content_encoding:
        return data
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",") if c.strip()]):
        if coding == "identity":
            continue
        decoder = _DECODERS.get(coding)
        if decoder is None:
            raise EncodingError(f"unsupported Content-Encoding '{coding}' (supported: {', '.join(sorted(_DECODERS))})")
        try:
            data = decoder(data, max_size)
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
