"""Floor 0 of dfseg: helpers every package may import (and that import nothing of dfseg).

- :mod:`dfseg.base.atomic`: write a file (or a set of files) beside its destination and
  rename it into place, so a failed write never leaves a half-new file.
- :mod:`dfseg.base.sizes`: the one ``HxW`` size parser (1024x2048 is height 1024, width 2048).
- :mod:`dfseg.base.errors`: ``InputError``, the root of every bad-input error.
- :mod:`dfseg.base.cli`: the one error path: bad input -> exit 2 and one line; a bug -> exit 1.
- :mod:`dfseg.base.secrets`: a URL's password masked before anything prints, logs or writes it.
- :mod:`dfseg.base.textfile`: read a text, JSON or YAML input file; a binary or malformed one
  is one error line.
"""
from .atomic import atomic_save_figure, atomic_write, atomic_write_bytes, atomic_write_group, atomic_write_text
from .cli import CliError, one_line, run_cli
from .errors import InputError
from .sizes import SizeError, format_hxw, parse_hxw
from .textfile import TextFileError, read_json, read_text, read_yaml

__all__ = ["atomic_save_figure", "atomic_write", "atomic_write_bytes", "atomic_write_group", "atomic_write_text",
           "CliError", "InputError", "one_line", "run_cli", "SizeError", "format_hxw", "parse_hxw", "TextFileError", "read_json",
           "read_text", "read_yaml"]
