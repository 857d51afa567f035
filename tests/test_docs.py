"""The README documents every CLI command, its Quick start holds exactly two
commands, and .ci/run runs the second one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import click

from agent.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str) -> list[str]:
    out = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        if isinstance(cmd, click.Group):
            out += _commands(cmd, f"{prefix} {name}")
        else:
            out.append(f"{prefix} {name}")
    return out


def test_every_agent_command_is_in_the_readme() -> None:
    missing = [c for c in _commands(cli, "kiosk-agent") if f"`{c}" not in README]
    assert not missing, f"README lacks: {missing}"


def test_every_server_command_is_in_the_readme() -> None:
    from server_stub.cli import cli as server_cli

    section = README.split("## Central server", 1)[1]
    # the table writes `kiosk-server [--db URL] init` for the command that takes the global options
    text = section.replace("kiosk-server [--db URL] [--keys-dir DIR] ", "kiosk-server ")
    missing = [c for c in _commands(server_cli, "kiosk-server") if f"`{c}" not in text]
    assert not missing, f"README lacks: {missing}"


def quick_start() -> list[str]:
    section = README.split("## Quick start", 1)[1]
    block = re.search(r"```(?:sh|bash)?\n(.*?)```", section, re.S)
    assert block, "Quick start has no code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_two_commands_and_ci_runs_the_second() -> None:
    lines = quick_start()
    assert len(lines) == 2
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert lines[1] in ci.splitlines()


def test_every_document_the_readme_links_is_in_the_repo() -> None:
    """A clone holds every document its README names (no links out of the repo)."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    links = [m for m in re.findall(r"\]\(([^)#\s]+)", readme) if "://" not in m]
    assert "ARCHITECTURE.md" in links
    for link in links:
        target = (root / link).resolve()
        assert target.is_relative_to(root) and target.exists(), f"README links {link}, not in the repo"
