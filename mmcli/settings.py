"""Settings: flags > MMCLI_* env > OPENAI_* env > config file > built-in defaults, read at call time."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

from .errors import UsageError
from .files import small_text_file
from .switches import CONFIG_HINT, checked_number, media_cap, switch
from .urls import is_loopback, masked_url, same_origin

if TYPE_CHECKING:
    from .schema import Schema

# vLLM's own client examples use this placeholder when the server has no --api-key.
PLACEHOLDER_KEY = "EMPTY"
DEFAULT_TIMEOUT = 120.0
MAX_TIMEOUT = 86400.0
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class Quirks:
    """How an endpoint's wire format differs from plain OpenAI-compatible chat."""

    max_tokens_field: str = "max_tokens"  # OpenAI's newer models refuse max_tokens
    takes_video: bool = True  # video content parts (frame lists) are understood
    frame_limit: Optional[int] = 32  # frames a frame list keeps (vLLM's default num_frames); None: all
    media_io_kwargs: bool = False  # per-request media_io_kwargs are allowed (a server mmcli started)
    audio_part: str = "input_audio"  # input_audio (vLLM, OpenAI) | audio_url (a data URL) | xinference
    video_item_tokens: Optional[int] = None  # the most visual tokens one video may take (a server mmcli started)
    media_uuid: bool = False  # media parts carry "uuid" (vLLM caches processed media by it)
    structured_output: str = "json_schema"  # how --schema is sent: json_schema | structured_outputs (vLLM) | none


OPENAI_QUIRKS = Quirks(max_tokens_field="max_completion_tokens", takes_video=False)


@dataclass(frozen=True)
class Profile:
    """A named endpoint: where it is, where its key comes from, and per-endpoint defaults."""

    name: str
    base_url: str
    api_key_env: Optional[str] = None
    model: Optional[str] = None
    family: Optional[str] = None
    pages_per_request: Optional[int] = None
    quirks: Quirks = Quirks()
    concurrency: Optional[int] = None  # jobs at once for --each and mmcli batch; None: local 8, remote 4
    base_urls: tuple = ()  # several servers sharing the jobs of a many-job run

    def default_concurrency(self, base_url: str) -> int:
        """Jobs at once when --concurrency is not given: the profile's, else 8 on this machine, 4 remote."""
        return self.concurrency or (8 if is_loopback(base_url) else 4)


BUILTIN_PROFILES: dict[str, Profile] = {
    "local": Profile("local", "http://127.0.0.1:8000/v1", pages_per_request=4),
    "parasail": Profile("parasail", "https://api.parasail.io/v1", api_key_env="PARASAIL_API_KEY",
                        pages_per_request=8),
    "openai": Profile("openai", "https://api.openai.com/v1", api_key_env="OPENAI_API_KEY",
                      model="gpt-4o-mini", pages_per_request=8, quirks=OPENAI_QUIRKS),
    "xinference": Profile("xinference", "http://127.0.0.1:9997/v1", api_key_env="XINFERENCE_API_KEY",
                          pages_per_request=2, quirks=Quirks(audio_part="xinference")),
}

_PROFILE_KEYS = {"base_url", "api_key_env", "model", "family", "pages_per_request", "frame_limit", "audio_part",
                 "concurrency", "base_urls", "media_uuid", "structured_output"}
AUDIO_PARTS = ("input_audio", "audio_url", "xinference")
CHOICES = {"audio_part": AUDIO_PARTS, "structured_output": ("json_schema", "structured_outputs", "none")}


@dataclass(frozen=True)
class EndpointFlags:
    """Endpoint choices from the command line (or their MMCLI_* environment variables)."""

    profile: Optional[str] = None
    base_url: Optional[str] = None
    api_key_env: Optional[str] = None
    model: Optional[str] = None
    family: Optional[str] = None
    timeout: Optional[float] = None
    autostart: Optional[bool] = None  # --autostart/--no-autostart; None: MMCLI_AUTOSTART, config, on
    base_urls: tuple = ()  # every --base-url when it was given more than once
    log: Optional[bool] = None  # --log/--no-log; None: MMCLI_LOG, config `log`, on
    family_source: str = "flag"  # where --family came from: the flag, or env (MMCLI_FAMILY)


@dataclass(frozen=True)
class Endpoint:
    """Where requests go and how they authenticate; the key is never shown in reprs."""

    base_url: str
    profile: Profile
    api_key: Optional[str] = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    withheld_key: Optional[str] = None  # a key variable that is set but belongs to another host

    @property
    def quirks(self) -> Quirks:
        """The wire-format quirks of this endpoint: its profile's, or OpenAI's at OpenAI's own host."""
        if urlsplit(self.base_url).hostname == urlsplit(BUILTIN_PROFILES["openai"].base_url).hostname:
            return OPENAI_QUIRKS
        return self.profile.quirks

    def require_key(self) -> str:
        """The API key, or a usage error saying how to provide one."""
        if self.api_key is None:
            if self.withheld_key:
                name = self.withheld_key
                raise UsageError("no API key for this endpoint", where=masked_url(self.base_url),
                                 why=f"{name} is only sent to its own host",
                                 hint=f"to send it here, pass --api-key-env {name}")
            hint_env = self.profile.api_key_env or "MMCLI_API_KEY"
            raise UsageError("no API key for this endpoint", where=masked_url(self.base_url),
                             hint=f"export {hint_env}=..., or pass --api-key-env NAME")
        return self.api_key


@dataclass(frozen=True)
class Settings:
    """The resolved endpoint plus the model choices that go with it."""

    endpoint: Endpoint
    model: Optional[str]
    family: Optional[str]
    family_source: str = ""  # flag, env or profile, when the family was given
    autostart: bool = True  # start a local vLLM when the default local endpoint is down
    vllm_python: Optional[str] = None  # the config file's vllm_python
    default_local: bool = False  # the local profile's own address, not one the user gave
    key_named: bool = False  # a real key was found (not the loopback placeholder)
    log: bool = True  # keep requests and answers in the history database
    log_media_bytes: int = 20 * 1024 * 1024  # media larger than this are logged by path only


def config_path(environ: Mapping[str, str]) -> Path:
    """Where the TOML config file lives: $MMCLI_CONFIG, else $XDG_CONFIG_HOME/mmcli/config.toml."""
    if environ.get("MMCLI_CONFIG"):
        return Path(environ["MMCLI_CONFIG"]).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mmcli" / "config.toml"


def load_config(path: Path) -> dict:
    """The parsed config file, or {} when there is none."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised only on 3.10
        import tomli as tomllib
    try:
        text = small_text_file(path, MAX_CONFIG_BYTES, "config file", hint="point MMCLI_CONFIG at a TOML file, or unset it")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError("cannot read config file", exc.strerror or str(exc), where=str(path),
                         hint="make the file readable, or point MMCLI_CONFIG at another one") from None
    except UnicodeDecodeError as exc:
        raise UsageError("invalid config file", f"not UTF-8 text (byte {exc.start})", where=str(path),
                         hint="a TOML config file must be saved as UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError("invalid config file", str(exc), where=str(path),
                         hint="the file is TOML; see README.md, 'Configuration'") from None


def invalid_config(why: str, path: Path) -> UsageError:
    """The error for a config file that parses but says something mmcli cannot use."""
    return UsageError("invalid config file", why, where=str(path), hint=CONFIG_HINT)


def profiles_from(config: dict, path: Path) -> dict[str, Profile]:
    """Built-in profiles overlaid with the config file's [profiles.NAME] tables."""
    profiles = dict(BUILTIN_PROFILES)
    tables = config.get("profiles", {})
    if not isinstance(tables, dict):
        raise invalid_config("'profiles' must be a table", path)
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise invalid_config(f"[profiles.{name}] must be a table", path)
        unknown = set(table) - _PROFILE_KEYS
        if unknown:
            raise UsageError("invalid config file", f"unknown key(s) in [profiles.{name}]: "
                             + ", ".join(sorted(unknown)), where=str(path),
                             hint="known keys: " + ", ".join(sorted(_PROFILE_KEYS)))
        _check_profile_types(name, table, path)
        base = profiles.get(name)
        if base is None and "base_url" not in table and not table.get("base_urls"):
            raise invalid_config(f"[profiles.{name}] needs a base_url", path)
        table = dict(table)
        if "base_urls" in table:
            table["base_urls"] = tuple(table["base_urls"])
            table.setdefault("base_url", table["base_urls"][0])
        quirks = (base.quirks if base else Quirks())
        if "frame_limit" in table:
            quirks = replace(quirks, frame_limit=table.pop("frame_limit"))
        for key in ("audio_part", "media_uuid", "structured_output"):
            if key in table:
                quirks = replace(quirks, **{key: table.pop(key)})
        profiles[name] = replace(base, quirks=quirks, **table) if base else Profile(name=name, quirks=quirks, **table)
    return profiles


def _check_profile_types(name: str, table: dict, path: Path) -> None:
    for key, value in table.items():
        if key == "base_urls":
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
                raise invalid_config(f"[profiles.{name}] base_urls must be a list of URLs", path)
            for url in value:
                _check_base_url(url)
        elif key == "media_uuid":
            if not isinstance(value, bool):
                raise invalid_config(f"[profiles.{name}] media_uuid must be true or false", path)
        elif key in ("pages_per_request", "frame_limit", "concurrency"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise invalid_config(f"[profiles.{name}] {key} must be a positive whole number", path)
        elif not isinstance(value, str) or not value:
            raise invalid_config(f"[profiles.{name}] {key} must be a non-empty string", path)
        elif key in CHOICES and value not in CHOICES[key]:
            raise invalid_config(f"[profiles.{name}] {key} must be one of " + ", ".join(CHOICES[key]), path)


def key_homes(name: str, profile: Profile, config: dict) -> tuple[str, ...]:
    """The URLs a profile's key variable is meant for: every server the profile lists (base_url and
    base_urls) when the config file names the variable for it, else the built-in profile's URL (a config
    file that only moves a built-in profile to another host does not send the built-in key there)."""
    tables = config.get("profiles")
    table = tables.get(name) if isinstance(tables, dict) else None
    if isinstance(table, dict) and "api_key_env" in table:
        return (profile.base_url, *profile.base_urls)
    builtin = BUILTIN_PROFILES.get(name)
    return (builtin.base_url,) if builtin else ()


def _resolve_key(flags: EndpointFlags, environ: Mapping[str, str], profile: Profile,
                 base_url: str, homes: tuple[str, ...]) -> tuple[Optional[str], str]:
    """(key, where it came from) for one server: the one rule every server of a run goes through. A key
    named for no particular host (--api-key-env, MMCLI_API_KEY) goes wherever the user sends requests; a
    profile's key to the servers the profile lists for it; OpenAI's only to its own host."""
    if flags.api_key_env:
        if not environ.get(flags.api_key_env):
            raise UsageError("API key variable is not set", where=flags.api_key_env,
                             hint=f"export {flags.api_key_env}=... first")
        return environ[flags.api_key_env], flags.api_key_env
    if environ.get("MMCLI_API_KEY"):
        return environ["MMCLI_API_KEY"], "MMCLI_API_KEY"
    withheld = ""
    if profile.api_key_env and environ.get(profile.api_key_env):
        if any(same_origin(base_url, home) for home in homes):
            return environ[profile.api_key_env], profile.api_key_env
        withheld = profile.api_key_env
    if environ.get("OPENAI_API_KEY"):
        if openai_variables_allowed(base_url, environ):
            return environ["OPENAI_API_KEY"], "OPENAI_API_KEY"
        withheld = withheld or "OPENAI_API_KEY"
    if is_loopback(base_url):
        return PLACEHOLDER_KEY, "placeholder"
    return None, f"withheld {withheld}" if withheld else "none"


def openai_variables_allowed(base_url: str, environ: Mapping[str, str]) -> bool:
    """Whether OpenAI's own variables (OPENAI_API_KEY, OPENAI_ORG_ID, OPENAI_PROJECT_ID) may go to `base_url`:
    only OpenAI itself or the host OPENAI_BASE_URL names."""
    return (same_origin(base_url, BUILTIN_PROFILES["openai"].base_url)
            or same_origin(base_url, environ.get("OPENAI_BASE_URL") or None))


def resolve_settings(flags: EndpointFlags, environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Combine flags, environment and config file into one Settings (the config file is read here)."""
    environ = os.environ if environ is None else environ
    path = config_path(environ)
    return settings_from(flags, environ, load_config(path), path)


def settings_from(flags: EndpointFlags, environ: Mapping[str, str], config: dict, path: Path) -> Settings:
    """Settings from flags, environment and a parsed config file: pure, nothing is read or started."""
    profiles = profiles_from(config, path)
    name = flags.profile or config.get("profile") or "local"
    if name not in profiles:
        raise UsageError("unknown profile", where=name, hint="known profiles: " + ", ".join(sorted(profiles)))
    profile = profiles[name]
    # An explicitly chosen profile beats OPENAI_BASE_URL; otherwise that variable is honoured.
    use_openai_env = not flags.profile and not config.get("profile") and bool(environ.get("OPENAI_BASE_URL"))
    base_url = flags.base_url or (environ["OPENAI_BASE_URL"] if use_openai_env else profile.base_url)
    base_url = _check_base_url(base_url)
    from_profile = not flags.base_url and not use_openai_env
    key, source = _resolve_key(flags, environ, profile, base_url, key_homes(name, profile, config))
    withheld = source.split(" ", 1)[1] if source.startswith("withheld ") else None
    timeout = checked_number(flags.timeout if flags.timeout is not None else config.get("timeout", DEFAULT_TIMEOUT),
                             "timeout", above=0, at_most=MAX_TIMEOUT, unit="s",
                             where="" if flags.timeout is not None else str(path),
                             hint=f"use a number of seconds above 0 and at most {MAX_TIMEOUT:g} (one day)")
    family = flags.family or profile.family
    _check_family(family)
    endpoint = Endpoint(base_url=base_url, profile=profile, api_key=key, timeout=timeout, withheld_key=withheld)
    autostart, vllm_python = serve_settings(flags.autostart, environ, config, path)
    default_local = from_profile and name == "local" and profile.base_url == BUILTIN_PROFILES["local"].base_url
    if default_local:  # the local profile's own address is a vLLM: it takes media uuids
        endpoint = replace(endpoint, profile=replace(profile, quirks=replace(profile.quirks, media_uuid=True)))
    return Settings(endpoint=endpoint, model=flags.model or profile.model, family=family,
                    family_source=flags.family_source if flags.family else ("profile" if family else ""),
                    autostart=autostart, vllm_python=vllm_python, default_local=default_local,
                    key_named=bool(flags.api_key_env) or key not in (None, PLACEHOLDER_KEY),
                    log=switch(flags.log, environ, "MMCLI_LOG", config, "log", path),
                    log_media_bytes=media_cap(config, path))


def _check_family(family: Optional[str]) -> None:
    from .families import FAMILIES

    if family and family not in FAMILIES:
        raise UsageError("unknown model family", where=family, hint="known families: " + ", ".join(FAMILIES))


def serve_settings(flag: Optional[bool], environ: Mapping[str, str], config: dict, path: Path
                   ) -> tuple[bool, Optional[str]]:
    """(autostart, vllm_python): autostart from the flag > MMCLI_AUTOSTART > config `autostart` > on."""
    vllm_python = config.get("vllm_python")
    if vllm_python is not None and not isinstance(vllm_python, str):
        raise invalid_config("'vllm_python' must be a string (a path)", path)
    return switch(flag, environ, "MMCLI_AUTOSTART", config, "autostart", path), vllm_python


def configured_vllm_python(environ: Mapping[str, str]) -> Optional[str]:
    """The config file's `vllm_python` (for `mmcli serve`)."""
    path = config_path(environ)
    return serve_settings(True, environ, load_config(path), path)[1]


def _check_base_url(url: str) -> str:
    odd = next((c for c in url if c.isspace() or not c.isprintable()), None)
    if odd is not None:
        # httpx refuses such a URL only when the request is made; a space or newline is most often a paste slip
        shown = masked_url(url).encode("unicode_escape").decode("ascii")
        raise UsageError("invalid base URL", f"it contains {odd!r} (a space or control character)", where=shown,
                         hint="give the URL alone, e.g. http://127.0.0.1:8000/v1, without spaces or line ends")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number 0-65535
    except ValueError as exc:
        raise UsageError("invalid base URL", str(exc), where=masked_url(url),
                         hint="use e.g. http://127.0.0.1:8000/v1") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("invalid base URL", where=masked_url(url), hint="use e.g. http://127.0.0.1:8000/v1")
    if parts.query or parts.fragment or url.rstrip("/").endswith(("?", "#")):
        # the request paths are appended to the URL: a query would end up in the middle of them, and be logged
        raise UsageError("invalid base URL", "it has a query or fragment (?... or #...)",
                         where=masked_url(urlunsplit(parts._replace(query="", fragment=""))),
                         hint="give the base URL alone, e.g. http://127.0.0.1:8000/v1; a key goes in a variable "
                              "named by --api-key-env, never in the URL")
    return url.rstrip("/")


@dataclass(frozen=True)
class MediaOptions:
    """How media is sized and encoded."""

    max_pixels: Optional[int] = None
    min_pixels: Optional[int] = None
    max_tokens_per_image: Optional[int] = None
    lossless: bool = False
    pass_url: bool = False


@dataclass(frozen=True)
class GenerationOptions:
    """What the model is asked to do besides the prompt."""

    system: Optional[str] = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    stream: bool = True
    schema: Optional["Schema"] = None  # --schema: the answer is asked for, and checked, as JSON matching it


@dataclass(frozen=True)
class OutputOptions:
    """How results are shown."""

    json: bool = False
    dry_run: bool = False
    verify: bool = False  # count the text with vLLM's /tokenize and check the visual tokens exactly


@dataclass(frozen=True)
class CommonOptions:
    """The options every client command shares."""

    endpoint: EndpointFlags
    media: MediaOptions
    generation: GenerationOptions
    output: OutputOptions
