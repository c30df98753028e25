"""The simulator answers as vivenu's OpenAPI document says: paths, schemas, status codes.

Raw httpx requests, not VivenuClient, so a client bug cannot hide a simulator bug.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kits import loopback
from kits.sim import SIM_TOKEN

from scanner.sim import SimServer, World
from scanner.sim.scans import scan_errors

if TYPE_CHECKING:
    from openapi_schema_validator import OAS30Validator

PREFIX = "/api/accessusers"
# ../shared beside the repository root, as on CI and development machines.
SPEC_CANDIDATES = [Path(__file__).resolve().parents[2] / "shared" / "vivenu"]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    for folder in SPEC_CANDIDATES:
        path = folder / "accessusers-openapi.yml"
        if path.exists():
            # Imported here, as the validator is: every worker collects this module, and
            # loading them costs each about 0.2 s of CPU.
            import yaml

            return yaml.safe_load(path.read_text(encoding="utf-8"))
    pytest.skip("vivenu's accessusers-openapi.yml is not beside the repository")


def validator(spec: dict[str, Any], path: str, method: str, status: str = "200",
              ) -> OAS30Validator:
    """The response schema the document gives, with its $refs resolvable."""
    from openapi_schema_validator import OAS30Validator

    operation = spec["paths"][path][method]
    schema = operation["responses"][status]["content"]["application/json"]["schema"]
    return OAS30Validator({**schema, "components": spec["components"]})


def assert_valid(validator_: OAS30Validator, body: Any) -> None:
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator_.iter_errors(body)]
    assert problems == []


@pytest.fixture
def http(sim_server: SimServer) -> Iterator[httpx.Client]:
    with loopback.client(base_url=sim_server.url + PREFIX, headers={"token": SIM_TOKEN}) as client:
        yield client


def first_doc(world: World, event: int = 0) -> dict[str, Any]:
    return next(world.current_tickets(world.event_ids[event]))


# -- response bodies match the schemas -----------------------------------------------------

def test_events_match_the_schema(spec: dict, http: httpx.Client) -> None:
    answer = http.get("/events")
    assert answer.status_code == 200
    assert_valid(validator(spec, PREFIX + "/events", "get"), answer.json())


def test_me_matches_the_schema(spec: dict, http: httpx.Client) -> None:
    answer = http.get("/me")
    assert answer.status_code == 200
    assert_valid(validator(spec, PREFIX + "/me", "get"), answer.json())


def test_me_with_restricted_types_and_checkout_only_matches_the_schema(
        spec: dict, http: httpx.Client, sim_world: World) -> None:
    event_id = sim_world.event_ids[0]
    sim_world.device = dataclasses.replace(
        sim_world.device, checkin=False, checkout=True, include_details_required=True,
        allowed_ticket_types={event_id: tuple(sim_world.ticket_types(event_id)[:2])})
    body = http.get("/me").json()
    assert_valid(validator(spec, PREFIX + "/me", "get"), body)
    first = body["deviceSettings"]["scanConfig"]["events"][0]
    assert first["allowAllTicketTypes"] is False and len(first["allowedTicketTypeIds"]) == 2


def test_seller_matches_the_schema(spec: dict, http: httpx.Client) -> None:
    assert_valid(validator(spec, PREFIX + "/seller", "get"), http.get("/seller").json())


def test_ticket_page_matches_the_schema(spec: dict, http: httpx.Client,
                                        sim_world: World) -> None:
    sim_world.mutate(30)
    answer = http.get(f"/tickets/v2/{sim_world.event_ids[0]}", params={"top": 1000})
    body = answer.json()
    assert answer.status_code == 200 and len(body["docs"]) > 300
    assert_valid(validator(spec, PREFIX + "/tickets/v2/{eventId}", "get"), body)


def test_ticket_page_covers_every_optional_field(http: httpx.Client, sim_world: World) -> None:
    docs = http.get(f"/tickets/v2/{sim_world.event_ids[0]}", params={"top": 300}).json()["docs"]
    seen = set().union(*(doc.keys() for doc in docs))
    assert {"name", "priceCategoryId", "priceCategory", "area", "row", "seat", "discountId",
            "discount", "entry", "slotStartTime"} <= seen
    assert {doc["status"] for doc in docs} == {"VALID", "INVALID", "DETAILSREQUIRED"}
    assert len({doc["ticketTypeId"] for doc in docs}) >= 4


def test_ticket_by_barcode_matches_the_schema(spec: dict, http: httpx.Client,
                                              sim_world: World) -> None:
    [doc] = sim_world.sell(sim_world.event_ids[1], 1)
    answer = http.get(f"/tickets/{doc['barcode']}", params={"eventId": doc["eventId"]})
    assert answer.status_code == 200 and answer.json() == doc
    assert_valid(validator(spec, PREFIX + "/tickets/{barcode}", "get"), answer.json())


def test_scan_matches_the_schema(spec: dict, http: httpx.Client, sim_world: World) -> None:
    answer = http.post(f"/tickets/{first_doc(sim_world)['barcode']}/scan")
    assert answer.status_code == 200
    assert_valid(validator(spec, PREFIX + "/tickets/{barcode}/scan", "post"), answer.json())


def test_post_scans_answer_matches_the_schema(spec: dict, http: httpx.Client,
                                              sim_world: World) -> None:
    scans = [{"ticketId": "t1", "barcode": "ABCDEFGH", "scanned_at": "2026-05-01T18:00:00Z",
              "type": "FAIL", "direction": "OUT"}]
    answer = http.post(f"/scans/{sim_world.event_ids[0]}", content=orjson.dumps(scans))
    assert answer.status_code == 200
    assert_valid(validator(spec, PREFIX + "/scans/{eventId}", "post"), answer.json())
    assert answer.json() == {"status": "OK"}


# -- what the simulator refuses ------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/events"), ("GET", "/me"), ("GET", "/seller"), ("GET", "/tickets/v2/{event}"),
    ("GET", "/tickets/{barcode}"), ("POST", "/tickets/{barcode}/scan"),
    ("POST", "/scans/{event}")])
@pytest.mark.parametrize("token", [None, "", "sim-token-but-longer"])
def test_missing_or_wrong_token_is_401(sim_server: SimServer, method: str, path: str,
                                       token: str | None) -> None:
    world = sim_server.world
    url = sim_server.url + PREFIX + path.format(event=world.event_ids[0],
                                                barcode=first_doc(world)["barcode"])
    headers = {} if token is None else {"token": token}
    answer = loopback.request(method, url, headers=headers, content=b"[]")
    assert answer.status_code == 401
    assert world.scans == [] and world.scan_decisions == []


@pytest.mark.parametrize("query", [{"top": 0}, {"top": 1001}, {"top": "many"}, {"top": 2.5},
                                   {"top": "nan"}, {"skip": -1}, {"skip": "x"},
                                   {"from": "yesterday"}, {"until": "2026-13-01T00:00:00Z"}])
def test_bad_listing_parameters_are_400(http: httpx.Client, sim_world: World,
                                        query: dict) -> None:
    answer = http.get(f"/tickets/v2/{sim_world.event_ids[0]}", params=query)
    assert answer.status_code == 400
    assert next(iter(query)) in answer.json()["message"]


@pytest.mark.parametrize(("top", "count"), [(None, 25), (1, 1), (1000, 300), ("10.0", 10)])
def test_top_bounds_and_default(http: httpx.Client, sim_world: World, top: Any,
                                count: int) -> None:
    params = {} if top is None else {"top": top}
    body = http.get(f"/tickets/v2/{sim_world.event_ids[0]}", params=params).json()
    assert len(body["docs"]) == count and body["total"] == 300


def test_unknown_event_is_404(http: httpx.Client) -> None:
    assert http.get("/tickets/v2/evt-nope").status_code == 404


def test_unknown_route_is_404(http: httpx.Client) -> None:
    assert http.get("/nothing/here").status_code == 404


def test_every_answer_has_a_date_header(sim_server: SimServer, http: httpx.Client) -> None:
    sim_server.faults.update(rate_limit=1)
    answers = [http.get("/me"), http.get("/me"), http.get("/tickets/NOPE12345678"),
               loopback.get(sim_server.url + PREFIX + "/me")]
    assert [a.status_code for a in answers] == [429, 200, 404, 401]
    assert all(a.headers.get("date", "").endswith("GMT") for a in answers)
    assert answers[0].headers["retry-after"] == "1"


def test_paths_used_are_documented(spec: dict) -> None:
    for path in ("/events", "/me", "/seller", "/tickets/v2/{eventId}", "/tickets/{barcode}",
                 "/tickets/{barcode}/scan", "/scans/{eventId}"):
        assert PREFIX + path in spec["paths"]


# -- POST /scans validation agrees with the schema -----------------------------------------

SCAN_FIELD_VALUES = {
    "ticketId": st.one_of(st.text(max_size=5), st.integers()),
    "barcode": st.one_of(st.text(min_size=0, max_size=12), st.integers(), st.none()),
    "scanned_at": st.sampled_from(["2026-05-01T18:00:00.000Z", "2026-05-01T18:00:00+02:00"]),
    "type": st.sampled_from(["OK", "FAIL", "ok", "", None]),
    "direction": st.sampled_from(["IN", "OUT", "in", "SIDEWAYS"]),
}
scan_items = st.fixed_dictionaries({}, optional=SCAN_FIELD_VALUES)


@settings(max_examples=200, deadline=None)
@given(st.lists(scan_items, max_size=4))
def test_scan_validation_agrees_with_the_schema(spec: dict, body: list[dict]) -> None:
    """Timestamps here are always ISO: the schema's date-time format is not enforced by
    jsonschema without extras, and bad timestamps have their own test."""
    from openapi_schema_validator import OAS30Validator

    schema = spec["paths"][PREFIX + "/scans/{eventId}"]["post"]["requestBody"]
    schema = schema["content"]["application/json"]["schema"]
    schema_ok = OAS30Validator({**schema, "components": spec["components"]}).is_valid(body)
    assert (scan_errors(body) is None) == schema_ok


@pytest.mark.parametrize(("body", "where"), [
    ({"x": 1}, "body"),
    ([{"barcode": "ABCDEFGH", "scanned_at": "noon", "type": "OK", "direction": "IN"}],
     "[0].scanned_at"),
    ([{"barcode": "ABCDEFGH", "scanned_at": "2026-05-01T18:00:00Z", "type": "OK",
       "direction": "IN"}, {"barcode": "ABCDEFGH"}], "[1].scanned_at"),
])
def test_invalid_scans_name_the_offending_place(http: httpx.Client, sim_world: World,
                                                body: Any, where: str) -> None:
    answer = http.post(f"/scans/{sim_world.event_ids[0]}", content=orjson.dumps(body))
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(where)
    assert sim_world.scans == []


def test_non_json_scans_are_400(http: httpx.Client, sim_world: World) -> None:
    answer = http.post(f"/scans/{sim_world.event_ids[0]}", content=b"[{")
    assert answer.status_code == 400 and sim_world.scans == []


def test_a_garbled_content_length_is_400(sim_server: SimServer) -> None:
    host, port = sim_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /api/accessusers/scans/x HTTP/1.1\r\nHost: x\r\n"
                     b"token: sim-token\r\nContent-Length: lots\r\n\r\n")
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 400")
    assert sim_server.world.scans == []
