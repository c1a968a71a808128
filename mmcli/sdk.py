"""The openai SDK, only where it adds something: the Batch API (files, batches) and the `openai.OpenAI` the
Python API hands out. Questions, embeddings and transcriptions never load it (mmcli.transport sends them)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .apierrors import ConnectionFailure, StatusFailure, map_api_error
from .config import Endpoint
from .errors import EndpointTimeout
from .transport import http_timeout
from .urls import masked_url


def openai_client(endpoint: Endpoint, max_retries: int = 2):
    """An `openai.OpenAI` for this endpoint and its key (never another host's key: the endpoint's scoping holds)."""
    import openai

    return openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.require_key(), timeout=http_timeout(endpoint),
                         max_retries=max_retries)


@contextmanager
def sdk_errors(endpoint: Endpoint) -> Iterator[None]:
    """Turn the SDK's errors into mmcli's, worded and redacted as every other endpoint failure."""
    import openai

    try:
        yield
    except openai.APITimeoutError:
        raise EndpointTimeout("no answer in time", f"waited {endpoint.timeout:g} s", where=masked_url(endpoint.base_url),
                              hint="raise --timeout") from None
    except openai.APIStatusError as exc:
        raise map_api_error(StatusFailure(exc.response), endpoint) from None
    except openai.APIConnectionError as exc:
        failure = ConnectionFailure(str(exc))
        failure.__cause__ = exc.__cause__  # what the wording looks at: refused, broken off, undecodable
        raise map_api_error(failure, endpoint) from None
