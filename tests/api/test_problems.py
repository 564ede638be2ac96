"""Every error leaves as RFC 9457 problem+json; the API describes itself with OpenAPI 3.1."""

from __future__ import annotations

import httpx
import pytest

from fairmeter.api.problems import TYPE_BASE


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/meters/tokens/nope"])
def test_an_unknown_route_is_a_not_found_problem(api: httpx.Client, problem, path: str) -> None:
    body = problem(api.get(path), 404, "not_found")
    assert body["type"] == TYPE_BASE + "not_found"
    assert body["instance"] == path


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/v1/customers"), ("PUT", "/v1/events"), ("GET", "/v1/events")],
)
def test_a_wrong_method_is_a_method_not_allowed_problem(
    api: httpx.Client, problem, method: str, path: str
) -> None:
    problem(api.request(method, path), 405, "method_not_allowed")


def test_a_method_not_allowed_problem_says_which_methods_are(api: httpx.Client) -> None:
    response = api.put("/v1/events")
    assert response.status_code == 405
    assert "POST" in response.headers.get("allow", "")


def test_a_bad_query_parameter_is_a_problem_naming_it(api: httpx.Client, problem) -> None:
    body = problem(api.get("/v1/customers", params={"limit": 0}), 422, "invalid_input")
    assert [e["pointer"] for e in body["errors"]] == ["/limit"]


def test_an_unknown_window_is_a_problem_naming_it(api: httpx.Client, problem) -> None:
    response = api.get("/v1/meters/tokens/usage", params={"window": "week"})
    body = problem(response, 422, "invalid_input")
    assert [e["pointer"] for e in body["errors"]] == ["/window"]


BODY_ROUTES = [("POST", "/v1/customers"), ("POST", "/v1/meters"), ("PATCH", "/v1/customers/x")]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize("body", [b"[1, 2]", b'"acme"', b"null"], ids=["array", "string", "null"])
def test_a_body_that_is_not_an_object_is_a_problem(
    api: httpx.Client, problem, method: str, path: str, body: bytes
) -> None:
    response = api.request(method, path, content=body, headers={"content-type": "application/json"})
    errors = problem(response, 422, "invalid_input")["errors"]
    assert [(e["pointer"], e["detail"]) for e in errors] == [
        ("/", "the body must be a JSON object")
    ]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_unparseable_json_is_a_malformed_body_problem_everywhere(
    api: httpx.Client, problem, method: str, path: str
) -> None:
    response = api.request(
        method, path, content=b'{"key": ', headers={"content-type": "application/json"}
    )
    body = problem(response, 400, "malformed_body")
    assert "not valid JSON" in body["detail"]
    assert "errors" not in body


def test_a_body_too_deeply_nested_to_parse_is_a_malformed_body_problem(
    api: httpx.Client, problem
) -> None:
    deep = b'{"key": "acme", "metadata": {"a": %s}}' % (b"[" * 5000 + b"]" * 5000)
    response = api.post("/v1/customers", content=deep, headers={"content-type": "application/json"})
    problem(response, 400, "malformed_body")


def test_the_openapi_document_is_version_3_1_and_lists_the_routes(api: httpx.Client) -> None:
    response = api.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    for path in ("/v1/events", "/v1/meters", "/v1/customers", "/v1/meters/{key}/usage"):
        assert path in document["paths"], path
    assert "post" in document["paths"]["/v1/events"]


def test_the_openapi_document_offers_every_cloudevents_content_type(api: httpx.Client) -> None:
    body = api.get("/openapi.json").json()["paths"]["/v1/events"]["post"]["requestBody"]
    assert {
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
        "application/json",
    } <= set(body["content"])


def test_the_docs_page_is_html(api: httpx.Client) -> None:
    response = api.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


@pytest.mark.parametrize("path", ["/v1/customers", "/v1/meters", "/v1/plans"])
def test_a_json_route_refuses_another_media_type_with_415(api: httpx.Client, path: str) -> None:
    response = api.post(path, content=b'{"key": "x"}', headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unsupported_media_type"
