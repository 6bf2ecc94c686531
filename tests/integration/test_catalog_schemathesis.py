"""Property-based run of schemathesis against the server's own OpenAPI schema: no request gets a 5xx."""

from __future__ import annotations

import pyarrow as pa
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.catalog_support import catalog_server, rest_catalog

EXAMPLES = 30  # per operation: keeps the whole run well under a minute
STATUS: dict[int, int] = {}


def test_openapi_schema_no_server_errors(tmp_path) -> None:
    with catalog_server(f"sqlite:///{tmp_path}/catalog.db", (tmp_path / "warehouse").as_uri()) as srv:
        cat = rest_catalog(srv.url)
        cat.create_namespace("a")
        t = cat.create_table("a.b", schema=pa.schema([("id", pa.int64())]))
        t.append(pa.table({"id": pa.array([1], pa.int64())}))
        schema = schemathesis.openapi.from_url(f"{srv.url}/openapi.json")
        failures: list[str] = []
        seen = 0
        for result in schema.get_all_operations():
            op = result.ok()

            @given(case=op.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            def run(case) -> None:
                nonlocal seen
                response = case.call(base_url=srv.url, timeout=30)
                seen += 1
                STATUS[response.status_code] = STATUS.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                    f"{response.text[:300]}")

            run()
        assert STATUS.get(200, 0) > 10, STATUS  # not everything was rejected
        assert seen > 100
        assert not failures, "\n".join(failures[:10])
        # the server is still healthy and the seeded table intact
        assert cat.load_table("a.b").scan().to_arrow().num_rows == 1
