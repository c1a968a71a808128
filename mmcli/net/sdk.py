"""The openai SDK, only where it adds something: the Batch API (files, batches) and the `openai.OpenAI` the
Python API hands out. Questions, embeddings and transcriptions never load it (mmcli.net.transport sends them)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from .apierrors import ConnectionFailure, StatusFailure, map_api_error
from ..settings import Endpoint
from ..errors import EndpointTimeout
from .transport import http_timeout
from ..urls import masked_url


def openai_client(endpoint: Endpoint, max_retries: int = 2):
    """An `openai.OpenAI` for this endpoint and its key (never another host's key: the endpoint's scoping holds)."""
    import openai

    from ..settings import openai_variables_allowed

    client = openai.OpenAI(base_url=endpoint.base_url, api_key=endpoint.require_key(), timeout=http_timeout(endpoint),
                           max_retries=max_retries)
    if not openai_variables_allowed(endpoint.base_url, os.environ):
        # The SDK reads OPENAI_ORG_ID and OPENAI_PROJECT_ID itself and sends them to any host as headers;
        # they name an OpenAI account, so they follow OPENAI_API_KEY's rule.
        client.organization = client.project = None
    return client


@contextmanager
def sdk_errors(endpoint: Endpoint, asked: str = "") -> Iterator[None]:
    """Turn the SDK's errors into mmcli's, worded and redacted as every other endpoint failure; `asked` names
    the object asked for (a batch, a file), for the hint of a 404."""
    import httpx2
    import openai

    try:
        yield
    except openai.APITimeoutError:
        raise EndpointTimeout("no answer in time", f"waited {endpoint.timeout:g} s", where=masked_url(endpoint.base_url),
                              hint="raise --timeout") from None
    except openai.APIStatusError as exc:
        error = map_api_error(StatusFailure(exc.response), endpoint)
        if asked and exc.status_code == 404:
            error.hint = (f"the server does not know {asked}: give the --profile or --base-url (and key) the "
                          "export was submitted with; a provider deletes batches and files after a while")
        raise error from None
    except (openai.APIConnectionError, httpx2.TransportError) as exc:
        failure = ConnectionFailure(str(exc))
        # what the wording looks at: refused, broken off, undecodable (a download's stream error is its own cause)
        failure.__cause__ = exc.__cause__ if isinstance(exc, openai.APIConnectionError) else exc
        raise map_api_error(failure, endpoint) from None
