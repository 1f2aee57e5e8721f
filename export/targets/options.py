"""Typed target options: one dataclass per target, the single source of its defaults and CLI flags.

Each field of a target's options dataclass is declared with :func:`option`,
which carries the flag, its help text and how the command line spells the
value. From those declarations come the ``target options`` argument group of
``mobexport export`` (:func:`add_arguments`), the options dict it hands to
:class:`~mobexport.config.ExportConfig` (:func:`options_from_args`) and the
defaults the benchmark sweep exports with (:func:`default_options`).

Two targets may declare the same option (Core ML and TensorRT both take
``--precision``): the command line then has one flag, and its help names both.
This module imports no converter and no torch.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mobexport.errors import TargetOptionError


@dataclass(frozen=True)
class Flag:
    """How one option appears on the command line."""

    flag: str
    help: str                      # "{default}" is replaced by the default's CLI spelling
    choices: tuple[str, ...] | None = None
    # "value" (a string), "switch" (store_true), "yes_no" (a bool spelled yes/no), "file" (an existing file)
    kind: str = "value"
    # Shown as the default in the help when the field's default is None ("the target picks").
    shown_default: str | None = None
    # (message, hint) to refuse a non-default value when the chosen target does not take this option.
    elsewhere: tuple[str, str] | None = None


def option(default: Any, flag: str, help: str, choices: tuple[str, ...] | None = None, kind: str = "value",
           shown_default: str | None = None, elsewhere: tuple[str, str] | None = None):
    """A dataclass field that is also a command-line option."""
    return field(default=default, metadata={"cli": Flag(flag, help, choices, kind, shown_default, elsewhere)})


@dataclass(frozen=True)
class TargetOptions:
    """Base of every target's options; a subclass declares its fields with :func:`option`."""

    target: ClassVar[str] = ""

    @classmethod
    def flags(cls) -> dict[str, Flag]:
        return {f.name: f.metadata["cli"] for f in dataclasses.fields(cls) if "cli" in f.metadata}

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, values: dict | None) -> "TargetOptions":
        """The options ``values`` (an ExportConfig's ``target_options``) sets for this target; ``None`` = default."""
        values = values or {}
        given = {name: values[name] for name in cls.defaults() if values.get(name) is not None}
        return cls(**given)


def cli_value(flag: Flag, value: Any) -> str:
    if flag.kind == "yes_no":
        return "yes" if value else "no"
    return str(value)


def _declarations(option_classes) -> dict[str, tuple[Flag, Any, list[str]]]:
    """name -> (flag, default, targets declaring it), in declaration order."""
    found: dict[str, tuple[Flag, Any, list[str]]] = {}
    for cls in option_classes:
        for name, flag in cls.flags().items():
            default = cls.defaults()[name]
            if name in found:
                known, known_default, owners = found[name]
                if known.flag != flag.flag or known_default != default:
                    raise ValueError(f"option '{name}' is declared differently by {owners[0]} and {cls.target}")
                owners.append(cls.target)
            else:
                found[name] = (flag, default, [cls.target])
    return found


def add_arguments(group, option_classes) -> None:
    """Add every target's options to an argparse group (one flag per option name)."""
    for name, (flag, default, owners) in _declarations(option_classes).items():
        shown = flag.shown_default if default is None else cli_value(flag, default)
        text = f"{' / '.join(owners)}: {flag.help.format(default=shown)}"
        if flag.kind == "switch":
            group.add_argument(flag.flag, dest=name, action="store_true", help=text)
        elif flag.kind == "yes_no":
            group.add_argument(flag.flag, dest=name, choices=["yes", "no"], default=cli_value(flag, default),
                               help=text)
        elif flag.kind == "file":
            from mobexport.options import existing_file

            group.add_argument(flag.flag, dest=name, type=existing_file, default=default, help=text)
        else:
            group.add_argument(flag.flag, dest=name, choices=list(flag.choices) if flag.choices else None,
                               default=default, help=text)


def options_from_args(args: argparse.Namespace, option_classes) -> dict[str, Any]:
    """The ``target_options`` dict of a parsed command line: every declared option, by name."""
    out = {}
    for name, (flag, _, _) in _declarations(option_classes).items():
        value = getattr(args, name)
        out[name] = (value == "yes") if flag.kind == "yes_no" else value
    return out


def default_options(option_classes) -> dict[str, Any]:
    """What the command line gives when no target option is passed."""
    return {name: default for name, (_, default, _) in _declarations(option_classes).items()}


def refuse_foreign_options(target: str, values: dict, option_classes) -> None:
    """Refuse an option set away from its default that ``target`` does not take, where its owner asks for that."""
    for name, (flag, default, owners) in _declarations(option_classes).items():
        if target in owners or flag.elsewhere is None:
            continue
        value = values.get(name)
        if value is not None and value != default:
            raise TargetOptionError(flag.elsewhere[0], flag.elsewhere[1])


def option_classes_flags(option_classes) -> dict[str, Flag]:
    """name -> its command-line flag, over every target's options."""
    return {name: flag for name, (flag, _, _) in _declarations(option_classes).items()}
