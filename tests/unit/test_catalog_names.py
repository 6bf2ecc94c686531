"""The catalog's rules for names, namespace storage keys, locations and bind addresses (no server)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.errors import BadRequest
from catalog.locations import Warehouse, segment
from catalog.names import check_namespace, ns_child_prefixes, ns_from_key, ns_key
from catalog.server import UnsafeBind, check_bind

WH = Warehouse("file:///srv/lake/warehouse")


LEVEL = st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="/\\"), min_size=1, max_size=20)


@given(st.lists(LEVEL.filter(lambda s: ".." not in s and s.strip() and s != "."), min_size=1, max_size=4))
@settings(max_examples=200, deadline=None)
def test_namespace_keys_round_trip_and_never_collide(levels: list[str]) -> None:
    ns = check_namespace(levels)
    key = ns_key(ns)
    assert ns_from_key(key) == ns
    if not any("." in level for level in ns):
        assert key == ".".join(ns)  # pyiceberg SqlCatalog's layout
    for parent_len in range(1, len(ns)):
        assert any(key.startswith(p) for p in ns_child_prefixes(ns[:parent_len]))


def test_dotted_levels_are_distinct_namespaces() -> None:
    assert ns_key(("a.b",)) != ns_key(("a", "b"))
    assert ns_from_key(ns_key(("a.b", "c"))) == ("a.b", "c")


@pytest.mark.parametrize("loc", [
    "file:///srv/lake/warehouse/%2e%2e/victim", "file:///srv/lake/warehouse/a/../../victim",
    "file:///srv/lake/warehouse/./x", "file:///srv/lake/warehouse//x", "file:///srv/lake/warehouse/a?b",
    "file:///srv/lake/warehouse/a#b", "file:///srv/lake/warehouse/a;b", "file:///srv/lake/warehouse/a b",
    "file:///srv/lake/warehouse/a\\..\\b", "file:///srv/lake/warehouse-2/x", "file:///srv/lake/warehouse",
    "/srv/lake/warehouse/x", "s3://bucket/warehouse/x", "file:///srv/lake/warehouse/" + "x" * 256,
    "file:///srv/lake/warehouse/" + "/".join(["y" * 100] * 9), "file:///srv/lake/warehouse/\ud800", "", None, 7,
])
def test_locations_outside_or_ambiguous_are_refused(loc) -> None:
    with pytest.raises(BadRequest):
        WH.location(loc)


def test_location_is_kept_as_given_without_decoding() -> None:
    assert WH.location("file:///srv/lake/warehouse/ns/t-1/") == "file:///srv/lake/warehouse/ns/t-1"
    assert WH.location("file:///srv/lake/warehouse", allow_root=True) == "file:///srv/lake/warehouse"
    assert str(WH.local_path("file:///srv/lake/warehouse/a%20b")) == "/srv/lake/warehouse/a%20b"
    with pytest.raises(BadRequest):
        WH.metadata_file("file:///srv/lake/warehouse/secrets.json")
    assert WH.metadata_file("file:///srv/lake/warehouse/t/metadata/00001-x.metadata.json")


@given(st.text(min_size=1))
def test_generated_segments_are_plain(name: str) -> None:
    seg = segment(name)
    assert seg not in ("", ".", "..") and len(seg) <= 100
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in seg)
    assert WH.location(f"{WH.uri}/{seg}-0123") == f"{WH.uri}/{seg}-0123"


def test_contains_rejects_every_reading_that_leaves_the_warehouse() -> None:
    assert WH.contains("file:///srv/lake/warehouse/t/data/ticker=a%20b/x.parquet")
    for path in ("file:///srv/lake/warehouse/%2e%2e/x", "file:///srv/lake/warehouse/%252e%252e/x",
                 "file:///srv/lake/warehouse/../x", "/etc/passwd", "file:///srv/lake/warehouse-x/y"):
        assert not WH.contains(path), path


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_binds_are_allowed_without_auth(host: str) -> None:
    check_bind(host, auth_enabled=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.1.2.3"])  # noqa: S104
def test_public_binds_need_auth(host: str) -> None:
    with pytest.raises(UnsafeBind, match="authentication off"):
        check_bind(host, auth_enabled=False)
    check_bind(host, auth_enabled=True)
