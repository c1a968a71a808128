"""`mmcli serve`'s server side: vLLM's command line, the process group, the state files, start and stop.

Modules: `defaults` (the serve defaults), `command_line` (pure: vLLM's argv and environment),
`process` (the child's process group, readiness, vLLM's log), `state` (the state folder and its files),
`locate` (which Python has vLLM), `network` (can we listen, does it answer) and `launch` (prepare,
start, stop, status, auto-start). None of them imports the client.
"""
