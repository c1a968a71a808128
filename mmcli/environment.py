"""The environment variables mmcli reads besides those bound to options, for the reference docs."""

# Variables read by mmcli besides the ones bound to options (those are listed with each option).
ENVIRONMENT: dict[str, str] = {
    "MMCLI_API_KEY": "API key for the endpoint (prefer it to putting keys in the config file).",
    "MMCLI_CONFIG": "Path of the config file, instead of $XDG_CONFIG_HOME/mmcli/config.toml.",
    "MMCLI_DEBUG": "When set (not 0), errors are shown with their traceback, like --debug.",
    "OPENAI_BASE_URL": "Endpoint used when no profile is chosen by flag, MMCLI_PROFILE or the config file.",
    "OPENAI_API_KEY": "Key sent only to api.openai.com or to the endpoint OPENAI_BASE_URL names.",
    "OPENAI_ORG_ID": "Sent (as OpenAI's SDK does) only where OPENAI_API_KEY may go.",
    "OPENAI_PROJECT_ID": "Sent (as OpenAI's SDK does) only where OPENAI_API_KEY may go.",
    "PARASAIL_API_KEY": "Key for the parasail profile.",
    "XINFERENCE_API_KEY": "Key for the xinference profile, if its server requires one.",
    "XDG_CONFIG_HOME": "Base directory of the config file (default ~/.config).",
    "MMCLI_AUTOSTART": "0 or 1: whether client commands may start a local vLLM (like --no-autostart/--autostart).",
    "MMCLI_LOG": "0 or 1: whether requests and answers are kept in the history database (like --no-log/--log).",
    "MMCLI_VLLM_PYTHON": "Python (or venv folder) with vLLM, for mmcli serve and auto-start.",
    "XDG_STATE_HOME": "Base directory of mmcli serve's state (pid, log and key files), of the endpoint probes kept for a minute and of the history database (default ~/.local/state).",
}
