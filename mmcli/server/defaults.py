"""The defaults of `mmcli serve`, defined once (the Typer options and the server code both use them).

No imports: the command line reads these at start-up, and `mmcli --help` must stay instant.
"""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_IMAGES = 8
DEFAULT_MAX_VIDEOS = 1
DEFAULT_DEVICE = "auto"
DEFAULT_STARTUP_TIMEOUT = 1200  # seconds to wait for /health (a first start downloads the weights)
DEFAULT_STOP_GRACE = 20  # seconds from SIGTERM to SIGKILL
# vLLM's own default `num_frames` for a `data:video/jpeg;base64,f1,f2,...` frame list: a server started
# without `--media-io-kwargs '{"video": {"num_frames": -1}}'` keeps only the first 32 frames.
VLLM_DEFAULT_NUM_FRAMES = 32
HUB_CHECK_SECONDS = 3.0  # for the model hub to take a TCP connection before auto-start gives up on it
