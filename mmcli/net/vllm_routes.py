"""vLLM's own routes at the server's root, beside the OpenAI API: /version and /tokenize."""

from __future__ import annotations

from typing import Optional

from .apierrors import redact
from .openai_routes import located
from .transport import MAX_REPLY_BYTES, http_timeout, read_limited
from ..settings import Endpoint
from ..urls import masked_url
from ..errors import BadReply, EndpointTimeout, EndpointUnavailable, MmcliError, RequestRejected
from .replies import decode_json


def root_url(endpoint: Endpoint) -> str:
    """The server's root: the base URL without its trailing /v1 (where vLLM serves /version and /tokenize)."""
    url = endpoint.base_url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def _root_call(endpoint: Endpoint, method: str, path: str, body: Optional[dict] = None):
    """One plain HTTP call at the server's root (vLLM's own routes), the key sent as the SDK sends it."""
    import httpx2

    from .deadline import Deadline

    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    where = masked_url(endpoint.base_url)
    clock = Deadline()
    try:
        with httpx2.Client(timeout=http_timeout(endpoint)) as http:
            clock.hold_client(http)
            clock.start(endpoint.timeout)  # the whole call: a dripping server holds it no longer
            # read capped: a small gzip reply can inflate to gigabytes
            with http.stream(method, root_url(endpoint) + path, json=body, headers=headers) as response:
                return response.status_code, read_limited(response, MAX_REPLY_BYTES, where=where)
    except httpx2.TimeoutException:
        raise EndpointTimeout("no answer in time", f"{path}: not whole within {endpoint.timeout:g} s", where=where,
                              hint="raise --timeout") from None
    except httpx2.HTTPError as exc:
        raise EndpointUnavailable("cannot reach the endpoint", redact(f"{path}: {exc}", endpoint),
                                  where=where, hint="check --base-url and that the server is running") from None


def server_version(endpoint: Endpoint) -> Optional[str]:
    """vLLM's version (GET /version at the server's root); None when the server has no such route."""
    code, body = _root_call(endpoint, "GET", "/version")
    if code != 200:
        return None
    try:
        data = decode_json(body, "the version")
    except BadReply:
        return None  # not vLLM's reply: the server is something else
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else None


def tokenize(endpoint: Endpoint, request: dict) -> int:
    """How many tokens vLLM's chat template makes of `request`'s messages (POST /tokenize at the root)."""
    body = {"model": request.get("model"), "messages": request["messages"], "add_generation_prompt": True}
    code, raw = _root_call(endpoint, "POST", "/tokenize", body)
    where = masked_url(endpoint.base_url)
    if code != 200:
        error = RequestRejected("the endpoint cannot count tokens", redact(f"POST /tokenize: HTTP {code}", endpoint),
                                where=where, hint="--verify needs a vLLM endpoint (it serves POST /tokenize)")
        error.status_code = code
        raise error
    try:
        data = decode_json(raw, "the token count")
    except MmcliError as exc:
        raise located(exc, endpoint) from None
    count = data.get("count") if isinstance(data, dict) else None
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise located(BadReply("the token count has no whole 'count'"), endpoint)
    return count
