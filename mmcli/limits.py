"""Default limits the options declare and the media code enforces: written once, importing nothing."""

# Without --pages, a document longer than this is more likely a mistake than a plan.
DEFAULT_MAX_PAGES = 50
# The largest request body, in MB of 10^6 bytes (what the Parasail gateway accepts).
DEFAULT_MAX_REQUEST_MB = 20.0
# The largest reply read from a server, once decoded (a thousand embeddings fit several times); a line of a
# batch runner's output holds one reply, so its cap follows (mmcli.batch.collect).
MAX_REPLY_BYTES = 64 << 20
# A line of JSON that holds one reply and what goes around it (custom_id, status, a results line's fields).
MAX_REPLY_LINE = MAX_REPLY_BYTES + (1 << 20)
