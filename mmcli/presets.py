"""How each known embedding model wants its inputs: pure data, shown by --dry-run.

Conventions come from the model cards and vLLM's examples (examples/pooling/embed/
vision_embedding_online.py and the chat templates it names):
- VLM2Vec (TIGER-Lab/VLM2Vec-Full, Phi-3-V): an image followed by "Represent the given image.";
  text queries as they are; served with vLLM's template_vlm2vec_phi3v.jinja.
- DSE (MrLight/dse-qwen2-2b-mrl-v1, Qwen2-VL): an image followed by "What is shown in this image?";
  a text query is "Query: <text>" after a placeholder image of the minimum size (56x56 for a 28-px
  grid); the prompt ends with the generation prompt and <|endoftext|> (template_dse_qwen2_vl.jinja).
- GME (Alibaba-NLP/gme-Qwen2-VL-*): the instruction is the system message ("You are a helpful
  assistant." for the corpus, "Find an image that matches the given text." for text queries), the
  input alone as the user turn, then the generation prompt and <|endoftext|> (the DSE template does
  exactly that); vectors are L2-normalised.
- plain: the input alone, the server's template, vectors as the server returns them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

# vLLM examples/template_dse_qwen2_vl.jinja: a default system turn, images as Qwen's vision
# markers, and <|endoftext|> last (DSE and GME pool the last token, which must be EOS).
DSE_TEMPLATE = (
    "{{ bos_token -}}\n"
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}{% raw %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endraw %}{% endif %}"
    "<|im_start|>{{ message['role'] }}{% raw %}\n{% endraw %}"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>{% raw %}\n{% endraw %}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>{% raw %}\n{% endraw %}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant{% raw %}\n{% endraw %}{% endif %}"
    "<|endoftext|>"
)

# vLLM examples/template_vlm2vec_phi3v.jinja: one message, its parts joined by spaces, images as <|image_N|>.
VLM2VEC_TEMPLATE = (
    "{%- if messages | length > 1 -%}\n"
    "    {{ raise_exception('Embedding models should only embed one message at a time') }}\n"
    "{%- endif -%}\n\n"
    "{% set vars = namespace(parts=[], next_image_id=1) %}\n"
    "{%- for message in messages -%}\n"
    "    {%- for content in message['content'] -%}\n"
    "        {%- if content['type'] == 'text' -%}\n"
    "            {%- set vars.parts = vars.parts + [content['text']] %}\n"
    "        {%- elif content['type'] == 'image' -%}\n"
    "            {%- set vars.parts = vars.parts + ['<|image_{i:d}|>'.format(i=vars.next_image_id)] %}\n"
    "            {%- set vars.next_image_id = vars.next_image_id + 1 %}\n"
    "        {%- endif -%}\n"
    "    {%- endfor -%}\n"
    "{%- endfor -%}\n"
    "{{ vars.parts | join(' ') }}\n"
)

TEMPLATES = {"dse": DSE_TEMPLATE, "vlm2vec": VLM2VEC_TEMPLATE}


@dataclass(frozen=True)
class Preset:
    """The conventions of one embedding model: text around inputs, text queries, normalisation."""

    name: str
    models: str  # the checkpoints it is for, as shown in --help and --dry-run
    image_text: str = ""  # sent after each image or page ("" : the image alone)
    text_format: str = "{text}"  # how a text input is written
    image_system: Optional[str] = None  # a system turn before each image
    text_system: Optional[str] = None  # a system turn before each text query
    placeholder_image: bool = False  # text queries carry an image of the minimum size
    normalize: bool = False  # L2-normalise vectors on this side
    generation_prompt: bool = False  # ask the template for the assistant header (the pooled EOS follows it)
    template: Optional[str] = None  # key in TEMPLATES: what `mmcli serve --embed` passes as --chat-template

    def describe(self) -> dict:
        """The conventions as JSON-ready data (the --dry-run view)."""
        data = asdict(self)
        data["chat_template"] = data.pop("template")
        return data


PRESETS: dict[str, Preset] = {
    "plain": Preset("plain", "any pooling model (e.g. a VLM with --convert embed)"),
    "vlm2vec": Preset("vlm2vec", "TIGER-Lab/VLM2Vec-Full", image_text="Represent the given image.",
                      normalize=True, template="vlm2vec"),
    "dse-qwen2": Preset("dse-qwen2", "MrLight/dse-qwen2-2b-mrl-v1", image_text="What is shown in this image?",
                        text_format="Query: {text}", placeholder_image=True, normalize=True,
                        generation_prompt=True, template="dse"),
    "gme": Preset("gme", "Alibaba-NLP/gme-Qwen2-VL-2B-Instruct, gme-Qwen2-VL-7B-Instruct",
                  image_system="You are a helpful assistant.",
                  text_system="Find an image that matches the given text.", normalize=True,
                  generation_prompt=True, template="dse"),
}

# Substrings of a model id that name its preset (checked in order).
_GUESSES = (("vlm2vec", "vlm2vec"), ("dse-qwen2", "dse-qwen2"), ("dse", "dse-qwen2"), ("gme", "gme"))


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a usage error listing the known ones."""
    from .errors import UsageError

    preset = PRESETS.get(name.lower())
    if preset is None:
        raise UsageError("unknown embedding preset", where=name, hint="known presets: " + ", ".join(PRESETS))
    return preset


def guess_preset(model: Optional[str]) -> Preset:
    """The preset a model id suggests (`plain` when it names none)."""
    lowered = (model or "").lower()
    for fragment, name in _GUESSES:
        if fragment in lowered:
            return PRESETS[name]
    return PRESETS["plain"]


def chat_template(preset: Preset) -> Optional[str]:
    """The chat template text the server should use for this preset, if it needs its own."""
    return TEMPLATES[preset.template] if preset.template else None


def choose_preset(flag: Optional[str], index: Any, model: Optional[str]) -> Preset:
    """The flag's preset, else the index's (anything with a `.preset` name, or None), else the one the model id
    suggests."""
    if flag:
        return get_preset(flag)
    if index is not None:
        return get_preset(index.preset)
    return guess_preset(model)
