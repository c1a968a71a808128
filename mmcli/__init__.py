"""mmcli: ask vision-language models about local images, videos and documents."""

__version__ = "0.1.0"
