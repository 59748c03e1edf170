"""The parity runner's pure parts: verdicts, the deliberate list, the summary, the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity._report import Deliberate, apply_deliberate, markdown, read_deliberate, summarize
from parity._send import HttpAnswer, check_request
from parity._table import Keys, Request, TableError, load
from parity._verdict import (
    ACCEPT,
    REFUSE,
    Outcome,
    Row,
    compare,
    litellm_verdict,
    stack_verdict,
)

ROOT = Path(__file__).resolve().parents[2]


def _answer(status: int, error: dict[str, object] | None = None, **headers: str) -> HttpAnswer:
    body = json.dumps({"error": error}).encode() if error is not None else b"{}"
    return HttpAnswer(status, {k.replace("_", "-"): v for k, v in headers.items()}, body)


@pytest.mark.parametrize(
    ("status", "error", "verdict"),
    [
        (200, None, ACCEPT),
        (101, None, ACCEPT),  # websocket upgrade accepted
        (400, {"type": "invalid_request_error"}, ACCEPT),  # generateContent's handler
        (422, None, ACCEPT),  # /config/yaml's handler
        (401, {"type": "auth_error", "param": "invalid_credentials"}, ACCEPT),  # POST /login
        (401, {"type": "auth_error", "param": None}, REFUSE),
        (403, None, REFUSE),  # websocket closed before the upgrade
        (400, {"type": "no_db_connection"}, REFUSE),  # not the master key, no database
        (0, None, REFUSE),
    ],
)
def test_litellm_verdict(status: int, error: dict[str, object] | None, verdict: str) -> None:
    assert litellm_verdict(_answer(status, error)) == verdict


def test_stack_verdict_tells_authsvc_envoy_and_the_app_apart() -> None:
    denied = _answer(401, {"type": "auth_error", "reason": "unknown_key"})
    assert stack_verdict(denied) == (REFUSE, "refuse 401 by authsvc unknown_key")
    assert stack_verdict(_answer(403))[1].startswith("refuse 403 by Envoy")
    passed = _answer(200, None, x_envoy_upstream_service_time="3")
    assert stack_verdict(passed) == (ACCEPT, "accept 200 (LiteLLM)")
    refused_by_app = _answer(400, {"type": "no_db_connection"}, x_envoy_upstream_service_time="3")
    assert stack_verdict(refused_by_app)[0] == REFUSE


def test_compare() -> None:
    assert compare(ACCEPT, ACCEPT) is Outcome.AGREE
    assert compare(ACCEPT, REFUSE) is Outcome.STRICTER
    assert compare(REFUSE, ACCEPT) is Outcome.LOOSER
    assert compare("?", ACCEPT) is Outcome.ERROR


def _row(request: str, check: Outcome, stack: Outcome = Outcome.AGREE) -> Row:
    return Row("s", request, "accept 200", "cell", check, "cell", stack)


def test_only_a_stricter_row_can_be_deliberate() -> None:
    listed = [Deliberate("s", "*", "closed on purpose")]
    rows = apply_deliberate(
        [_row("a", Outcome.STRICTER), _row("b", Outcome.LOOSER), _row("c", Outcome.AGREE)],
        listed,
    )
    assert [r.deliberate for r in rows] == ["closed on purpose", "", ""]
    summary = summarize(rows)
    assert (summary.comparisons, summary.agree, summary.stricter, summary.looser) == (6, 4, 1, 1)
    assert (summary.deliberate, summary.unlisted) == (1, 1)


def test_a_listed_request_matches_only_itself() -> None:
    rows = apply_deliberate(
        [_row("x", Outcome.STRICTER), _row("y", Outcome.STRICTER)], [Deliberate("s", "x", "r")]
    )
    assert summarize(rows).unlisted == 1


def test_read_deliberate_reads_only_the_marked_table(tmp_path: Path) -> None:
    doc = tmp_path / "d.md"
    doc.write_text(
        "| `a` | * | not this one |\n<!-- deliberate:begin -->\n| setup | request | reason |\n"
        "|---|---|---|\n| `open` | * | app open |\n| `nl` | explain: master key | no client |\n"
        "<!-- deliberate:end -->\n",
        encoding="utf-8",
    )
    assert read_deliberate(doc) == [
        Deliberate("open", "*", "app open"),
        Deliberate("nl", "explain: master key", "no client"),
    ]


def test_the_doc_lists_only_setups_of_the_table() -> None:
    table = load(ROOT / "parity" / "scenarios.yaml")
    ids = {s.id for s in table.setups}
    listed = read_deliberate(ROOT / "docs" / "litellm-parity.md")
    assert listed, "docs/litellm-parity.md has no deliberate list"
    assert {d.setup for d in listed} <= ids


def test_generated_keys_have_the_promised_shapes() -> None:
    keys = Keys.generate({"NONE": "None"})
    v = keys.values
    assert len(v["SHORT"]) == 13 and len(v["LONG"]) == 1107 and len(set(v["REPEAT"])) == 1
    assert len({v["A"], v["B"], v["C"], v["WRONG"]}) == 4
    assert keys.label("A") == "A" and keys.label("NONE") == "None"
    assert "NONE" not in keys.secrets()


def test_the_table_never_holds_a_key_and_the_markdown_shows_names(tmp_path: Path) -> None:
    table = load(ROOT / "parity" / "scenarios.yaml")
    keys = Keys.generate(table.literals)
    rows = []
    for setup in table.setups:
        for req in table.requests_of(setup, keys):
            rows.append(
                Row(setup.id, req.label, "accept 200", "accept", Outcome.AGREE, "-", Outcome.AGREE)
            )
    text = markdown(rows, summarize(rows), ["h"], [(s.id, s.covers, "runs") for s in table.setups])
    for name, value in keys.secrets().items():
        assert value not in text, name


def test_unknown_placeholders_and_sets_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text(
        "request_sets: {keys: [{id: x, path: /}]}\n"
        "setups: [{id: s, config: 'general_settings: {master_key: {{NOPE}}}'}]\n",
        encoding="utf-8",
    )
    with pytest.raises(TableError, match="NOPE"):
        load(bad)
    bad.write_text(
        "request_sets: {}\nsetups: [{id: s, config: '', requests: [missing]}]\n", encoding="utf-8"
    )
    with pytest.raises(TableError, match="missing"):
        load(bad)


def test_check_request_joins_repeated_headers_like_envoy() -> None:
    req = Request(
        "r",
        "GET",
        "/v1/models?key=x",
        (("Authorization", "Bearer a"), ("authorization", "Bearer b"), ("X-Api-Key", "k")),
        None,
        "application/json",
        False,
    )
    http = check_request(req, 10000).attributes.request.http
    assert http.path == "/v1/models?key=x"
    assert http.headers["authorization"] == "Bearer a,Bearer b"
    assert http.headers["x-api-key"] == "k"
    assert http.headers[":path"] == "/v1/models?key=x"
