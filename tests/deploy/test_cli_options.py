"""The command line's defaults are the config dataclasses' (``deploy.commands.options``): each
option made from a field defaults to the field's default, every exception is named here, and
``deepcredit --help`` loads none of the heavy libraries."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.cli import _parser
from deploy.commands.options import FIELD_DEFAULT, field_of, value

ROOT = Path(__file__).resolve().parents[2]

#: Options whose default differs on purpose from their field's (``Option(default=...)``).
ON_PURPOSE = {
    ("generate", "--users"),  # GeneratorConfig.users has none: the paper's sample
    ("drift loop", "--users"),  # DriftLoopConfig's is the CI size; the command runs the README's
}

TALK_TO_KAFKA = ("archive", "bench gateway", "bench latency", "bench live", "controller",
                 "cutover", "dashboard", "drift loop", "drift report", "gateway",
                 "models history", "models promote", "models rollback", "replay", "roundtrip",
                 "scores", "serve",
                 "thresholds history", "thresholds rollback", "thresholds set", "thresholds show",
                 "thresholds simulate")  # fmt: skip
USE_THE_REGISTRY = ("controller", "cutover", "models current", "models history", "models list",
                    "models promote", "models rollback", "retrain", "serve")  # fmt: skip

#: Defaults no config dataclass holds: the command's own, written once, in the command.
COMMAND_ONLY = {
    *((c, "--bootstrap") for c in TALK_TO_KAFKA),
    *((c, "--models-dir") for c in USE_THE_REGISTRY),
    ("ablate", "--out"),
    ("bench engine", "--items"),
    ("bench engine", "--live"),
    ("bench engine", "--out"),
    ("bench engine", "--repeats"),
    ("bench engine", "--users"),
    ("bench gateway", "--out"),
    ("bench latency", "--out"),
    ("bench memory", "--in-memory-up-to"),
    ("bench memory", "--out"),
    ("bench memory", "--stages"),
    ("bench memory", "--users"),
    ("bench live", "--out"),
    ("bench project", "--scaling"),
    ("bench reasons", "--epochs"),
    ("bench reasons", "--out"),
    ("bench reasons", "--users"),
    ("bench rebuild", "--out"),
    ("bench rebuild", "--repeats"),
    ("bench rebuild", "--users"),
    ("bench step", "--hidden"),
    ("bench step", "--model"),
    ("bench step", "--out"),
    ("bench step", "--repeats"),
    ("bench step", "--users"),
    ("bench train", "--out"),
    ("bench scaling", "--out"),
    ("challengers cost", "--out"),
    ("challengers cost", "--repeats"),
    ("challengers events", "--out"),
    ("challengers uci", "--out"),
    ("challengers uci", "--table"),
    ("controller", "--group"),
    ("cutover", "--partitions"),
    ("drift loop", "--out"),
    ("drift measure", "--out"),
    ("drift report", "--out"),
    ("fuzz", "--crashes"),
    ("fuzz", "--seconds"),
    ("fuzz", "--target"),
    ("kafka up", "--partitions"),
    ("models history", "--timeout"),
    ("models promote", "--last"),
    ("models promote", "--max-shift"),
    ("models promote", "--timeout"),
    ("models rollback", "--last"),
    ("models rollback", "--max-shift"),
    ("models rollback", "--timeout"),
    ("report build", "--out"),
    ("report predict", "--splits"),
    ("kafka up", "--timeout"),
    ("roundtrip", "--timeout"),
    ("scores", "--latest"),
    ("thresholds history", "--timeout"),
    ("thresholds rollback", "--last"),
    ("thresholds rollback", "--max-shift"),
    ("thresholds rollback", "--timeout"),
    ("thresholds set", "--last"),
    ("thresholds set", "--max-shift"),
    ("thresholds set", "--timeout"),
    ("thresholds show", "--timeout"),
    ("thresholds simulate", "--last"),
    ("thresholds simulate", "--target"),
    ("thresholds simulate", "--timeout"),
    ("train", "--out-dir"),
    ("train", "--variant"),
    ("tune", "--out"),
    ("tune", "--trials"),
    ("uci", "--draws"),
    ("uci", "--out"),
    ("uci", "--work"),
}


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command's parser, named as typed: ``"drift loop"``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield " ".join((*path, name)), sub
                yield from commands(sub, (*path, name))


def options() -> Iterator[tuple[str, argparse.Action]]:
    for name, p in commands(_parser()):
        for a in p._actions:
            if a.option_strings and a.default is not argparse.SUPPRESS:
                yield name, a


def field_default(cls: type, name: str):
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default  # MISSING when it has none


def test_every_option_made_from_a_field_defaults_to_the_field() -> None:
    on_purpose, checked = set(), 0
    for name, a in options():
        made = field_of(a)
        if made is None:
            continue
        cls, opt = made
        if opt.default is not FIELD_DEFAULT:
            on_purpose.add((name, a.option_strings[0]))
            continue
        expected = field_default(cls, opt.field)
        if expected is dataclasses.MISSING:  # a field without a default: a required option
            assert a.required, (name, a.option_strings)
            continue
        assert value(cls, opt.field, a.default) == expected, (name, a.option_strings)
        # A default that is not a value of the field's type (a slots dataclass's member
        # descriptor, read as another dataclass's default) would slip through equality.
        items = expected if isinstance(expected, frozenset | tuple | list) else [expected]
        if isinstance(a.type, type):
            assert all(isinstance(v, a.type) or (a.type is float and type(v) is int)
                       for v in items if v is not None), (name, a.option_strings)  # fmt: skip
        checked += 1
    assert on_purpose == ON_PURPOSE
    assert checked > 60


def test_no_other_default_is_written_in_a_command() -> None:
    written = {(name, a.option_strings[0]) for name, a in options()
               if field_of(a) is None and a.default not in (None, False)}  # fmt: skip
    assert written == COMMAND_ONLY


def test_a_repeatable_option_given_replaces_its_default() -> None:
    parser = _parser()
    assert parser.parse_args(["gateway"]).flow_urls == ["http://127.0.0.1:9464"]
    given = ["gateway", "--flow-url", "http://a:1", "--flow-url", "http://b:2"]
    assert parser.parse_args(given).flow_urls == ["http://a:1", "http://b:2"]
    assert parser.parse_args(["gateway"]).flow_urls == ["http://127.0.0.1:9464"]  # untouched


@pytest.mark.parametrize("name", sorted(dict(commands(_parser()))))
def test_every_help_renders_with_a_help_for_each_option(name: str) -> None:
    parser = dict(commands(_parser()))[name]
    assert parser.format_help()
    assert all(a.help for a in parser._actions if a.option_strings)


def test_the_help_loads_no_heavy_library() -> None:
    code = ("import sys\n"
            "from deploy.cli import _parser\n"
            "_parser()\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'bytewax', 'confluent_kafka', 'river', 'numpy'}))\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
