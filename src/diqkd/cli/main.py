"""The ``diqkd`` command line: thin commands over the library.

Conventions (every command): ``--json`` prints one JSON document on stdout; human output is
rich tables; long work shows a progress bar; bad input exits with code 2 and one line on
stderr (``error: …``), never a traceback. Set ``DIQKD_DEBUG=1`` to see tracebacks of
unexpected errors.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Sequence

import typer

from diqkd import __version__
from diqkd.errors import DiqkdError

__all__ = ["build_app", "run_cli"]  # and `app`, the whole tree, built on first access

#: Every command: name → (module, attribute, is a group of subcommands). Modules are imported
#: only when their command is built, so ``diqkd kme serve`` or ``diqkd --version`` does not pay
#: for importing the protocol, numba kernels and scipy (seconds).
_COMMANDS: dict[str, tuple[str, str, bool]] = {
    "run": ("diqkd.cli.run_cmd", "run", False),
    "distill": ("diqkd.cli.run_cmd", "distill", False),
    "link": ("diqkd.cli.link_cmd", "link", False),
    "simulate": ("diqkd.cli.simulate_cmd", "simulate", False),
    "attack": ("diqkd.cli.attack_cmd", "attack", False),
    "rate": ("diqkd.cli.rate_cmd", "rate", False),
    "reconcile": ("diqkd.cli.reconcile_cmd", "reconcile_cmd", False),
    "profiles": ("diqkd.cli.profiles_cmd", "app", True),
    "records": ("diqkd.cli.records_cmd", "app", True),
    "kme": ("diqkd.cli.kme_cmd", "app", True),
    "encrypt": ("diqkd.cli.crypt_cmd", "encrypt", False),
    "decrypt": ("diqkd.cli.crypt_cmd", "decrypt", False),
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"diqkd {__version__}")
        raise typer.Exit(0)


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Device-independent QKD, end to end."""


def build_app(only: Sequence[str] | None = None) -> typer.Typer:
    """The ``diqkd`` command with every command, or with the commands named in ``only``."""
    root = typer.Typer(
        name="diqkd",
        help="Device-independent QKD, end to end: link physics, records, security, keys.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    root.callback()(_root)
    for name, (module, attribute, group) in _COMMANDS.items():
        if only is not None and name not in only:
            continue
        target = getattr(importlib.import_module(module), attribute)
        if group:
            root.add_typer(target, name=name)
        else:
            root.command(name)(target)
    return root


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the whole command tree (imports every command module)
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Options that take several values after one flag (``--distance-km 11 50 100``).
_VARIADIC = {"--distance-km", "-d"}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def expand_variadic(argv: Sequence[str]) -> list[str]:
    """Rewrite ``--opt a b c`` as ``--opt a --opt b --opt c`` for the variadic options.

    Click options take a fixed number of values; this keeps the documented spelling
    ``--distance-km 11 50 100`` (and ``--distance-km 11,50,100``) working.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        flag, eq, inline = token.partition("=")
        if flag in _VARIADIC:
            values = [inline] if eq else []
            i += 1
            if not eq:
                while (
                    i < len(argv)
                    and all(_NUMBER.match(v) for v in argv[i].split(",") if v)
                    and argv[i]
                ):
                    values.append(argv[i])
                    i += 1
            parts = [v for value in values for v in value.split(",") if v]
            if not parts:
                out.append(flag)  # let click report the missing value
            for part in parts:
                out.extend([flag, part])
            continue
        out.append(token)
        i += 1
    return out


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the process exit code."""
    args = expand_variadic(list(sys.argv[1:] if argv is None else argv))
    if args and args[0] in _COMMANDS:
        only: list[str] | None = [args[0]]
    elif args and args[0] == "--version":
        only = []
    else:  # help, or an unknown command: the whole tree
        only = None
    command = typer.main.get_command(build_app(only))
    code = 0
    try:
        result = command.main(args=args, prog_name="diqkd", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        sys.stderr.write("error: aborted\n")
        code = 130
    except typer.TyperException as exc:
        hint = "" if exc.exit_code != 2 else " (see 'diqkd --help')"
        sys.stderr.write(f"error: {_one_line(exc.format_message())}{hint}\n")
        code = exc.exit_code
    except DiqkdError as exc:
        sys.stderr.write(f"error: {_one_line(str(exc))}\n")
        code = 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        code = 130
    except BrokenPipeError:
        code = 0
    except Exception as exc:
        if os.environ.get("DIQKD_DEBUG"):
            raise
        sys.stderr.write(
            f"internal error: {type(exc).__name__}: {_one_line(str(exc))} "
            "(please report it; DIQKD_DEBUG=1 shows the traceback)\n"
        )
        code = 1
    if argv is None:
        sys.exit(code)
    return code


def _one_line(message: str) -> str:
    return " ".join(message.split())
