"""Default limits the options declare and the media code enforces: written once, importing nothing."""

# Without --pages, a document longer than this is more likely a mistake than a plan.
DEFAULT_MAX_PAGES = 50
# The largest request body, in MB of 10^6 bytes (what the Parasail gateway accepts).
DEFAULT_MAX_REQUEST_MB = 20.0
