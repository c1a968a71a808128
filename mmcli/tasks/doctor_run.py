"""`mmcli doctor`'s endpoint check and the order the checks run in, with the exit status they add up to."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Mapping

from .doctor import (PROBE_TIMEOUT, Check, Machine, check_av, check_config, check_gpu, check_key, check_poppler,
                     check_python, check_ray, check_server, check_state, check_vllm)
from ..errors import EndpointTimeout, ExitCode, MmcliError

if TYPE_CHECKING:
    from ..settings import EndpointFlags


def _would_autostart(found: Machine, environ: Mapping[str, str]) -> bool:
    """Whether a client command would start a local vLLM for this endpoint by itself."""
    from ..server.launch import profile_address

    settings = found.settings
    return (settings.endpoint.profile.name == "local" and settings.autostart and found.vllm is not None
            and profile_address(settings.endpoint) is not None)


def _refuse_closed_port(endpoint, environ: Mapping[str, str]) -> None:
    """Unreachable at once when nothing accepts a connection (the request path would retry for seconds)."""
    from urllib.parse import urlsplit

    from ..errors import EndpointUnavailable
    from ..hints import unreachable_hint
    from ..server.network import port_open

    if any(environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                                          "ALL_PROXY", "all_proxy")):
        return  # a proxy may reach what this machine cannot connect to directly
    parts = urlsplit(endpoint.base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not port_open(parts.hostname or "", port, timeout=PROBE_TIMEOUT):
        raise EndpointUnavailable("cannot reach the endpoint", f"nothing accepts connections at "
                                  f"{parts.hostname}:{port}", hint=unreachable_hint(endpoint))


def check_endpoint(found: Machine, environ: Mapping[str, str]) -> Check:
    """Whether the endpoint answers, what it serves (family, context length) and if it constrains output."""
    from ..core import probe as probes
    from ..core.endpoint import attach_server, judge_family
    from ..hints import DOCTOR_CLAUSE
    from ..urls import masked_url

    settings = attach_server(found.settings, environ)
    endpoint = replace(settings.endpoint, timeout=PROBE_TIMEOUT)
    where = masked_url(endpoint.base_url)
    try:
        _refuse_closed_port(endpoint, environ)
        seen = probes.probe(endpoint, environ, want_version=True, refresh=True)
    except MmcliError as exc:
        if _would_autostart(found, environ):
            from .doctor_hub import autostart_blocked

            blocked = autostart_blocked(found, where, PROBE_TIMEOUT, environ)
            if blocked is not None:
                return blocked
            return Check("endpoint", "info", f"{where}: nothing answers; a client command starts "
                                             f"{settings.model or 'the default model'} with vLLM by itself",
                         "or start it now: mmcli serve --detach")
        # doctor is the check the usual hint points to: not named again here.
        hint = (exc.hint or "check --base-url / --profile").replace(DOCTOR_CLAUSE, "")
        if isinstance(exc, EndpointTimeout):
            hint = ("it accepts connections but does not list its models (GET /v1/models): is it an "
                    "OpenAI-compatible server, and has it finished starting?")
        return Check("endpoint", "fail", f"{where}: {exc.why or exc.what}", hint, int(exc.exit_code))
    if not seen.models:
        return Check("endpoint", "fail", f"{where}: answers but serves no models", "load a model on the server",
                     int(ExitCode.REJECTED))
    entry = seen.entry(settings.model) or seen.models[0]
    family, source = judge_family(settings, entry["id"], entry.get("root"))
    parts = [f"{where} serves {', '.join(m['id'] for m in seen.models)}",
             f"{entry['id']}: family {family.name} (from {source})"]
    if entry.get("max_model_len"):
        parts.append(f"max_model_len {entry['max_model_len']:,}")
    parts.append(f"vLLM {seen.version}, structured output (json_schema)" if seen.version
                 else "structured output: unknown (not vLLM)")
    if settings.model and seen.entry(settings.model) is None:
        return Check("endpoint", "fail", "; ".join(parts) + f"; but not {settings.model}",
                     "set --model (or the profile's model) to one it serves", int(ExitCode.REJECTED))
    return Check("endpoint", "ok", "; ".join(parts))


def run_checks(flags: "EndpointFlags", environ: Mapping[str, str]) -> list[Check]:
    """Every check, in order; the endpoint and key checks only once the settings are valid."""
    found = Machine()
    config = check_config(found, flags, environ)  # first: it names the Python that has vLLM
    vllm, server = check_vllm(found, environ), check_server(environ)
    checks = [check_python(), check_gpu(found, environ), _beside_server(vllm, server, found), check_poppler(environ),
              check_av(), check_ray(), config, check_state(environ), server]
    if found.settings is None:
        checks.append(Check("endpoint", "info", "not checked: the configuration is not valid"))
        return checks
    checks.append(check_key(found, environ))
    if checks[-1].status == "fail":
        checks.append(Check("endpoint", "info", "not checked: no API key for it"))
    else:
        checks.append(check_endpoint(found, environ))
    return checks


def _beside_server(vllm: Check, server: Check, found: Machine) -> Check:
    """vLLM not found here while a server mmcli started runs: it was found another way when that server started
    (--vllm-python, or MMCLI_VLLM_PYTHON set for that command alone), so nothing is missing for the server."""
    if found.vllm is not None or vllm.status != "warn" or server.status == "info":
        return vllm
    return Check("vllm", "info", f"not found with these settings ({vllm.detail.removeprefix('not found: ')}); the "
                                 "running server was started with a vLLM given to `mmcli serve` (--vllm-python or "
                                 "MMCLI_VLLM_PYTHON)",
                 "for auto-start and the next `mmcli serve` to find it too, set vllm_python in the config "
                 "(or export MMCLI_VLLM_PYTHON)")


def exit_status(checks: list[Check]) -> int:
    """0 when the main job can run as configured; else the status of the first check that failed."""
    failed = [c for c in checks if c.status == "fail"]
    return failed[0].exit_code if failed else 0
