"""mmcli: ask vision-language models about local images, videos and documents.

    import mmcli
    client = mmcli.Client()                     # the local vLLM; or profile=, base_url=, model=
    print(client.ask("photo.jpg", "what's here?").text)

Names are loaded on first use, so `import mmcli` stays instant.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Client": "api.client", "AnswerStream": "api.client", "Conversation": "api.conversation",
    "Answer": "tasks.ask", "DocAnswer": "tasks.docqa", "Detections": "tasks.detect.jobs",
    "Detection": "tasks.detect.result", "Plan": "core.plan", "Events": "events",
    "MmcliError": "errors", "UsageError": "errors", "MediaError": "errors", "RequestRejected": "errors",
    "EndpointUnavailable": "errors", "EndpointTimeout": "errors", "OutputUnparseable": "errors",
    "JobsFailed": "errors", "OutputNotWritten": "errors", "ExitCode": "errors",
    "Jobs": "api.many", "Matches": "tasks.embed.search",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmcli' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
