"""The only HTTP code: the transport, requests and replies, endpoint errors, downloads."""
