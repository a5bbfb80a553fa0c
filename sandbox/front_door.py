"""The sandbox's one AWS endpoint (AWS_ENDPOINT_URL): moto, with its gaps filled.

Every AWS call of `opsbot dev` goes here. Two kinds of call are answered by the
sandbox itself, each documented where it is answered:

- AppConfig operations moto does not have (environments, deployment strategies,
  deployments, ListApplications, ListHostedConfigurationVersions): appconfig.py;
- synchronous invocations of the Lambda functions it was given, which moto would
  run in Docker: each is answered by its `Invoker`, any object with
  `invoke(event) -> result`. The sandbox gives it lambdas.py's stand-ins; the
  /dbrole tests give it the real role manager running in-process. An invoker
  that raises is answered as Lambda answers a function that raised: 200 with
  `X-Amz-Function-Error: Unhandled` and an errorType/errorMessage payload.
  Functions it was not given (and every other Lambda call) go to moto, which
  answers ResourceNotFoundException for a function that does not exist.

Everything else is passed to moto unchanged, byte for byte.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import traceback
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import unquote, urlencode, urlsplit

from sandbox.appconfig import AppConfigGaps
from sandbox.server import HttpRequest, HttpResponse, LoopbackServer

log = logging.getLogger(__name__)

# SigV4: Credential=<key>/<date>/<region>/<service>/aws4_request
SERVICE = re.compile(r"Credential=[^/,]+/\d{8}/[^/]+/([^/]+)/aws4_request")
INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


def signing_service(request: HttpRequest) -> str:
    found = SERVICE.search(request.headers.get("authorization", ""))
    return found.group(1) if found else ""


def function_name(path_part: str) -> str:
    """A function's name from its name, its ARN, or either with a qualifier."""
    name = unquote(path_part)
    if name.startswith("arn:"):
        parts = name.split(":")
        return parts[6] if len(parts) > 6 else name
    return name.split(":", 1)[0]


class Invoker(Protocol):
    """What answers one Lambda function's invocations: the event in, the result out."""

    def invoke(self, event: Any) -> Any: ...


class AwsFrontDoor:
    def __init__(
        self,
        *,
        moto_url: str,
        appconfig: AppConfigGaps,
        functions: Mapping[str, Invoker],
    ) -> None:
        self.moto = urlsplit(moto_url)
        self.appconfig = appconfig
        self.functions = dict(functions)  # by function name
        self.server = LoopbackServer(self.handle, call_name=signing_service)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> AwsFrontDoor:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def handle(self, request: HttpRequest) -> HttpResponse:
        service = signing_service(request)
        if service == "appconfig":
            answer = self.appconfig.handle(request)
            if answer is not None:
                return answer
        if service == "lambda" and request.method == "POST":
            found = INVOKE.match(request.path)
            invoker = self.functions.get(function_name(found.group(1))) if found else None
            if invoker is not None:
                return self._invoke(invoker, request)
        return self._forward(request)

    def _invoke(self, invoker: Invoker, request: HttpRequest) -> HttpResponse:
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if request.headers.get("x-amz-invocation-type", "RequestResponse") == "Event":
            try:
                invoker.invoke(_event(request.body))
            except Exception:
                log.exception("an asynchronous invocation raised")
            return HttpResponse(202, b"", headers)
        if request.headers.get("x-amz-invocation-type") == "DryRun":
            return HttpResponse(204, b"", headers)
        try:
            event = json.loads(request.body or b"{}")
        except ValueError:
            body = {
                "errorMessage": "Could not parse request body into json",
                "errorType": "InvalidRequestContentException",
            }
            return HttpResponse.json(
                body, 400, {"x-amzn-ErrorType": "InvalidRequestContentException"}
            )
        try:
            result = invoker.invoke(event)
        except Exception as exc:
            # What the Lambda runtime answers for a handler that raised.
            raised: dict[str, Any] = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "requestId": "",
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            return HttpResponse.json(raised, 200, {**headers, "X-Amz-Function-Error": "Unhandled"})
        return HttpResponse.json(result, 200, headers)

    def _forward(self, request: HttpRequest) -> HttpResponse:
        query = urlencode([(k, v) for k, values in request.query.items() for v in values])
        target = request.path + (f"?{query}" if query else "")
        connection = http.client.HTTPConnection(
            self.moto.hostname or "127.0.0.1", self.moto.port or 80, timeout=60
        )
        try:
            headers = {k: v for k, v in request.headers.items() if k not in ("host", "connection")}
            connection.request(request.method, target, body=request.body or None, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
            kept = {k: v for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP}
            return HttpResponse(answer.status, body, kept)
        finally:
            connection.close()


def _event(body: bytes) -> object:
    try:
        return json.loads(body or b"{}")
    except ValueError:
        return None
