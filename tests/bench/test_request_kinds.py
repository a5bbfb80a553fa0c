"""The benchmark's requests are the sandbox builders' requests, and Bolt's verifier takes them."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk.signature import SignatureVerifier

from bench.request_kinds import KINDS, RequestKind
from sandbox.slack_requests import RequestSigner

# Characters that form encoding and JSON escaping both change, so a slip in either shows.
RESPONSE_URL = 'http://127.0.0.1:8/response/a b&c=d+"e"\\f/é-1-7'
TRIGGER_ID = 'True.7.bench&"x"'


def _fields(body: str) -> dict[str, Any]:
    fields: dict[str, Any] = {k: v for k, [v] in parse_qs(body, strict_parsing=True).items()}
    if "payload" in fields:
        payload = json.loads(fields.pop("payload"))
        for action in payload["actions"]:
            del action["action_ts"]  # when the body was built
        fields["payload"] = payload
    return fields


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_a_filled_in_body_is_the_built_body(kind: RequestKind) -> None:
    filled = kind.body(RESPONSE_URL, trigger_id=TRIGGER_ID)
    built = kind.build(RESPONSE_URL, trigger_id=TRIGGER_ID)
    assert _fields(filled) == _fields(built)
    assert kind.body(RESPONSE_URL + "2", trigger_id=TRIGGER_ID) != filled


def test_each_request_is_signed_as_slack_verifies_it() -> None:
    body = KINDS[1].body(RESPONSE_URL, trigger_id=TRIGGER_ID)
    headers = RequestSigner("bench-secret").headers(body)
    assert SignatureVerifier("bench-secret").is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
