"""docs/cli.md, generated from the commands' own help: ``python -m ragtune.cli.reference > docs/cli.md``."""

from __future__ import annotations

import click

from ragtune.cli.main import cli


def _walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    out = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            out += _walk(command.commands[name], [*path, name])
    return out


def reference_markdown() -> str:
    lines = [
        "# Command reference",
        "",
        "Generated from the code by `python -m ragtune.cli.reference`; do not edit.",
        "",
    ]
    for path, command in _walk(cli, ["ragtune"]):
        # click caches a command's --help option from the first context that asks (a test invoking the command
        # alone gets plain --help); forget it so the reference always shows -h, --help
        command._help_option = None
        with click.Context(
            command,
            info_name=" ".join(path),
            max_content_width=100,
            terminal_width=100,
            help_option_names=["-h", "--help"],
        ) as ctx:
            help_text = command.get_help(ctx)
        lines += [f"## `{' '.join(path)}`", "", "```", help_text, "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown())
