"""The README's set-up commands and CI cannot drift apart."""

import re

from conftest import PROJECT_ROOT


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _setup_commands() -> list[str]:
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in _bash_blocks(section) for line in block.splitlines() if line.strip()]


def test_readme_has_exactly_two_setup_commands():
    commands = _setup_commands()
    assert len(commands) == 2, commands
    assert commands[0].startswith("pip install . ") and "cardiosim generate" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = _setup_commands()[1]
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert ci.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in ci
    ci_lines = [line.strip() for line in ci.splitlines()]
    assert test_command in ci_lines


def test_torch_is_pinned_for_tests_and_a_range_for_users():
    constraints = (PROJECT_ROOT / "constraints-test.txt").read_text().split()
    assert "torch==2.13.0" in constraints
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    assert re.search(r'torch = \["torch>=[\d.]+,<\d+"\]', pyproject)
