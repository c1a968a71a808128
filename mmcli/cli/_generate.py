"""Write the shell completions, man pages and Markdown CLI reference from the command tree.

    python -m mmcli.cli._generate            # rewrite completions/, man/ and docs/cli.md
    python -m mmcli.cli._generate --check    # exit 1 if any committed file is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..environment import ENVIRONMENT
from ..errors import EXIT_DESCRIPTIONS

PROG = "mmcli"
COMPLETE_VAR = "_MMCLI_COMPLETE"
SHELLS = {"bash": "mmcli.bash", "zsh": "mmcli.zsh", "fish": "mmcli.fish"}
FILES_TEXT = ("$XDG_CONFIG_HOME/mmcli/config.toml (usually ~/.config/mmcli/config.toml): "
              "TOML config file with a default profile and [profiles.NAME] tables.")


@dataclass
class OptionDoc:
    """What the reference says about one option or argument."""

    names: list[str]
    metavar: str
    help: str
    default: str
    envvar: str
    is_argument: bool = False


@dataclass
class CommandDoc:
    """What the reference says about one command."""

    path: list[str]  # e.g. ["mmcli", "ask"]
    summary: str
    description: str
    usage: str
    options: list[OptionDoc]
    examples: list[str]
    subcommands: list["CommandDoc"]

    @property
    def name(self) -> str:
        """The command as typed: `mmcli ask`."""
        return " ".join(self.path)


_HELP_DEFAULT = re.compile(r"\[default: ([^;\]]+)")


def _default_text(param) -> str:
    default = param.default
    if default is None:
        # Decided when the command runs (config file, environment, model family): the help says
        # what it comes to, e.g. "[default: on; ...]" for --autostart/--no-autostart.
        said = _HELP_DEFAULT.search(param.help or "")
        return " ".join(said.group(1).split()) if said else ""
    if getattr(param, "is_flag", False) and param.secondary_opts:
        return param.opts[0] if default else param.secondary_opts[0]
    if default is False or callable(default) or default == () or default == []:
        return ""
    return str(getattr(default, "value", default))  # an Enum's default as --help shows it


def _option_doc(param) -> OptionDoc:
    is_argument = param.param_type_name == "argument"
    names = list(param.opts) + list(param.secondary_opts)
    if is_argument:
        names = [(param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")]
    metavar = "" if is_argument or getattr(param, "is_flag", False) else (param.metavar or param.name.upper())
    envvar = param.envvar if isinstance(param.envvar, str) else ""
    return OptionDoc(names, metavar, " ".join((param.help or "").split()), _default_text(param), envvar,
                     is_argument)


def _examples(epilog: str) -> list[str]:
    return [line.strip() for line in (epilog or "").splitlines() if line.strip().startswith(PROG + " ")]


def describe(command, path: list[str]) -> CommandDoc:
    """The documentation model of a Click/Typer command and its subcommands."""
    ctx = command.make_context(path[-1], [], resilient_parsing=True)
    params = [p for p in command.get_params(ctx) if not p.hidden and p.name not in ("help",)]
    usage = " ".join(path + command.collect_usage_pieces(ctx))
    help_text = command.help or ""
    summary, _, rest = help_text.strip().partition("\n")
    subs = []
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                subs.append(describe(sub, path + [name]))
    return CommandDoc(path, summary.strip(), rest.strip(), usage, [_option_doc(p) for p in params],
                      _examples(command.epilog), subs)


def command_tree() -> CommandDoc:
    """The documentation model of the whole CLI."""
    import typer.main

    from .app import app

    return describe(typer.main.get_command(app), [PROG])


# ---------------------------------------------------------------- roff


def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in text.splitlines() or [""]:
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def _roff_option(opt: OptionDoc) -> list[str]:
    names = ", ".join(f"\\fB{_roff(n)}\\fR" for n in opt.names)
    if opt.metavar:
        names += f" \\fI{_roff(opt.metavar)}\\fR"
    body = _roff(opt.help or "")
    extras = []
    if opt.default and "[default:" not in (opt.help or ""):  # the help's own "[default: ...]" says it once
        extras.append(f"Default: {_roff(opt.default)}.")
    if opt.envvar:
        extras.append(f"Environment: \\fB{_roff(opt.envvar)}\\fR.")
    return [".TP", names, " ".join(x for x in [body] + extras if x)]


def man_page(doc: CommandDoc, root: CommandDoc) -> str:
    """A roff man page for one command (subcommands included as sections)."""
    page = "-".join(doc.path)
    out = [f'.TH {page.upper()} 1 "" "{PROG} {__version__}" "User Commands"', ".SH NAME",
           f"{_roff(page)} \\- {_roff(doc.summary)}", ".SH SYNOPSIS", f".B {_roff(doc.usage)}",
           ".SH DESCRIPTION", _roff(doc.summary)]
    if doc.description:
        out += [".PP", _roff(doc.description)]
    out += _roff_options(doc)
    for sub in doc.subcommands:
        out += [".SH " + _roff(sub.name.upper()), f".B {_roff(sub.usage)}", ".PP", _roff(sub.summary)]
        out += _roff_options(sub, heading=".SS OPTIONS")
    out += [".SH EXIT STATUS"]
    for code, meaning in EXIT_DESCRIPTIONS.items():
        out += [".TP", f"\\fB{int(code)}\\fR", _roff(meaning)]
    out += [".SH ENVIRONMENT"]
    for name, meaning in _environment(doc).items():
        out += [".TP", f"\\fB{_roff(name)}\\fR", _roff(meaning)]
    out += [".SH FILES", _roff(FILES_TEXT)]
    examples = doc.examples + [e for sub in doc.subcommands for e in sub.examples]
    if examples:
        out += [".SH EXAMPLES"]
        for example in examples:
            out += [".PP", ".nf", f"\\f(CW{_roff(example)}\\fR", ".fi"]
    others = ["-".join(c.path) for c in [root] + root.subcommands if c.path != doc.path]
    out += [".SH SEE ALSO", ", ".join(f"\\fB{_roff(o)}\\fR(1)" for o in others)]
    return "\n".join(out) + "\n"


def _roff_options(doc: CommandDoc, heading: str = ".SH OPTIONS") -> list[str]:
    if not doc.options:
        return []
    out = [heading]
    for opt in doc.options:
        out += _roff_option(opt)
    return out


def _environment(doc: CommandDoc) -> dict[str, str]:
    found = {}
    for command in [doc] + doc.subcommands:
        for opt in command.options:
            if opt.envvar:
                found[opt.envvar] = f"Default for {opt.names[0]}: {opt.help}"
    return {**found, **ENVIRONMENT}


# ---------------------------------------------------------------- markdown


def _md_command(doc: CommandDoc, level: int) -> list[str]:
    out = [f"{'#' * level} `{doc.name}`", "", doc.summary, ""]
    if doc.description:
        out += [doc.description, ""]
    out += ["```", doc.usage, "```", ""]
    if doc.options:
        out += ["| option | description | default | environment |", "| --- | --- | --- | --- |"]
        for opt in doc.options:
            names = ", ".join(f"`{n}`" for n in opt.names) + (f" `{opt.metavar}`" if opt.metavar else "")
            help_text = opt.help.replace("|", "\\|")
            out.append(f"| {names} | {help_text} | {opt.default and f'`{opt.default}`'} | "
                       f"{opt.envvar and f'`{opt.envvar}`'} |")
        out.append("")
    if doc.examples:
        out += ["Examples:", "", "```"] + doc.examples + ["```", ""]
    for sub in doc.subcommands:
        out += _md_command(sub, level + 1)
    return out


def markdown_reference(root: CommandDoc) -> str:
    """The whole CLI reference in Markdown."""
    out = ["# mmcli command reference", "",
           "Generated from the program by `python -m mmcli.cli._generate`; do not edit by hand.", ""]
    out += _md_command(root, 2)
    out += ["## Exit status", "", "| code | meaning |", "| --- | --- |"]
    out += [f"| {int(code)} | {meaning} |" for code, meaning in EXIT_DESCRIPTIONS.items()]
    out += ["", "## Environment", "", "| variable | meaning |", "| --- | --- |"]
    out += [f"| `{name}` | {meaning} |" for name, meaning in ENVIRONMENT.items()]
    out += ["", "## Files", "", FILES_TEXT, ""]
    return "\n".join(out)


# ---------------------------------------------------------------- files


def completion_script(shell: str) -> str:
    """Typer's completion shim for `shell`: it asks the installed program at TAB time."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell).strip() + "\n"


def generated_files() -> dict[str, str]:
    """Every generated file, by path relative to the repository root."""
    root = command_tree()
    files = {f"completions/{name}": completion_script(shell) for shell, name in SHELLS.items()}
    files["man/mmcli.1"] = man_page(root, root)
    for sub in root.subcommands:
        files[f"man/{'-'.join(sub.path)}.1"] = man_page(sub, root)
    files["docs/cli.md"] = markdown_reference(root)
    return files


def write_all(target: Path) -> list[str]:
    """Write every generated file under `target`; returns the paths written."""
    written = []
    for relative, text in generated_files().items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(relative)
    return written


def stale_files(target: Path) -> list[str]:
    """Generated files that are missing or differ under `target`."""
    stale = []
    for relative, text in generated_files().items():
        path = target / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(relative)
    return stale


def main(argv: list[str] | None = None) -> int:
    """Regenerate, or with --check report, the generated files."""
    parser = argparse.ArgumentParser(prog="python -m mmcli.cli._generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if any generated file is out of date")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.out)
        for path in stale:
            print(f"out of date: {path} (run: python -m mmcli.cli._generate)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
