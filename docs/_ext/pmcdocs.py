"""The manual's own Sphinx extension: what keeps it true to the code.

* ``.. settings-table:: SECTION`` renders one section's keys from their definitions in
  :mod:`adapter.config` (name, environment variable, default, meaning), so that the
  tables cannot drift from the code. SECTION is ``adapter``, ``erp``, ``pmc_api``,
  ``ftps``, ``callers``, ``operators`` or ``billers``; ``:without: erp pmc_api ftps``
  leaves out the keys of those groups (each has a table of its own). Every key of
  every section must be in some table: one left out is a warning.
* ``:source:`adapter/erp/connector.py``` names a file or folder of the repository,
  rendered as a literal (``:source:`connector.py <adapter/erp/connector.py>``` shows
  the short name); a path that does not exist is a warning.
* ``.. runnable::`` is a shell example run by ``tests/e2e/test_docs.py`` against a live
  server: its content is the commands, then a line ``--- output``, then the output
  shown (``...`` stands for what changes from run to run: an ID, a date). The test
  finds them in ``runnable.json``, which the build writes beside the HTML.

Warnings are what fail a build under ``-W``: every check here emits one.
"""
from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole

from adapter import config

log = logging.getLogger(__name__)
REPOSITORY = Path(__file__).resolve().parents[2]
OUTPUT_MARKER = "--- output"

#: The sections and groups of keys a table may show, by the directive's argument.
SECTIONS = {
    "adapter": ("[adapter]", config.ADAPTER_KEYS),
    "erp": ("[adapter] and [billers.NNNN]", config.ERP_KEYS),
    "pmc_api": ("[adapter] and [billers.NNNN]", config.PMC_API_KEYS),
    "ftps": ("[adapter] and [billers.NNNN]", config.FTPS_KEYS),
    "callers": ("[callers.NAME]", config.CALLER_KEYS),
    "operators": ("[operators.NAME]", config.OPERATOR_KEYS),
    "billers": ("[billers.NNNN]", config.BILLER_KEYS),
}
_ALIASES_OF = {name: alias for alias, name in config.ALIASES.items()}


def readable_default(value) -> str:
    """A default as a reader (and a TOML file) would write it, in reST."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return f"``{str(value).lower()}``"
    if isinstance(value, (frozenset, tuple, list, dict)) and not value:
        return "(empty)"
    if isinstance(value, str):
        return f'``"{value}"``' if value else '``""``'
    if hasattr(value, "strftime"):  # a time of day
        return f'``"{value.strftime("%H:%M")}"``'
    return f"``{value!r}``"


def environment_variable(section: str, name: str) -> str:
    """Where the environment gives ``name`` (the [adapter] keys only), in reST."""
    if section in ("callers", "operators", "billers"):
        return "(the file only)"
    if name in config.NOT_FROM_ENVIRONMENT:
        return "(the file only: a table)"
    variable = f"``{config.environment_variable(name)}``"
    if name in _ALIASES_OF:
        variable += f" (alias ``{config.environment_variable(_ALIASES_OF[name])}``)"
    return variable


class SettingsTable(SphinxDirective):
    required_arguments = 1
    option_spec = {"without": directives.unchanged}

    def run(self):
        section = self.arguments[0]
        if section not in SECTIONS:
            log.warning("settings-table: no section %r (one of %s)", section,
                        ", ".join(SECTIONS), location=self.get_location())
            return []
        where, keys = SECTIONS[section]
        left_out = set()
        for group in (self.options.get("without") or "").split():
            if group not in SECTIONS:
                log.warning("settings-table: no group %r to leave out", group,
                            location=self.get_location())
                continue
            left_out |= set(SECTIONS[group][1])
        shown = [name for name in keys if name not in left_out]
        self.env.__dict__.setdefault("pmc_settings_shown", {}).setdefault(
            self.env.docname, set()).update(f"{section}.{name}" for name in shown)

        rows = []
        for name in shown:
            key = keys[name]
            title = f"``{name}``"
            if name in _ALIASES_OF:
                title += f" (alias ``{_ALIASES_OF[name]}``)"
            rows += [f"   * - {title}",
                     f"     - {environment_variable(section, name)}",
                     f"     - {readable_default(key.default)}",
                     f"     - {key.doc}"]
        text = [f".. list-table:: {where}", "   :header-rows: 1",
                "   :widths: 22 28 16 34", "",
                "   * - key", "     - environment variable", "     - default",
                "     - meaning", *rows]
        container = nodes.container(classes=["settings-table"])
        self.state.nested_parse(StringList(text, source=f"adapter/config.py ({section})"),
                                self.content_offset, container)
        return container.children


def _purge(app, env, docname):
    getattr(env, "pmc_settings_shown", {}).pop(docname, None)


def _every_key_shown(app, env):
    """A warning for each key no table shows: in its own section's table, or in the
    table of a group of keys it belongs to (the ERP keys of [adapter] in ``erp``'s)."""
    shown = set().union(*getattr(env, "pmc_settings_shown", {}).values())
    if not shown:  # a build of other pages only
        return
    for section, (_, keys) in SECTIONS.items():
        for name in keys:
            if not any(f"{table}.{name}" in shown for table, (_, table_keys)
                       in SECTIONS.items() if name in table_keys
                       and table in (section, "erp", "pmc_api", "ftps")):
                log.warning("settings-table: key %s of %s is in no table", name, section)


class SourceRole(SphinxRole):
    """``:source:`path``` -- a file or folder of the repository, checked to exist."""

    def run(self):
        shown, _, target = self.text.strip().partition(" <")
        target = target.removesuffix(">") if target else shown
        path = target.rstrip("/")
        if not path or ".." in Path(path).parts or not (REPOSITORY / path).exists():
            log.warning("source: %s is no file or folder of the repository", target,
                        location=self.get_location())
        return [nodes.literal(self.rawtext, shown, classes=["source"])], []


class Runnable(SphinxDirective):
    """A shell example that tests/e2e/test_docs.py runs; see the module's docstring."""

    has_content = True
    option_spec = {"name": directives.unchanged}

    def run(self):
        lines = list(self.content)
        if OUTPUT_MARKER not in lines:
            log.warning("runnable: no %r line before the output shown", OUTPUT_MARKER,
                        location=self.get_location())
            commands, output = lines, []
        else:
            at = lines.index(OUTPUT_MARKER)
            commands, output = lines[:at], lines[at + 1:]
        commands_text = "\n".join(commands).strip("\n")
        output_text = "\n".join(output).strip("\n")
        examples = self.env.__dict__.setdefault("pmc_runnable", {})
        source, line = self.get_source_info()
        examples.setdefault(self.env.docname, []).append(
            {"name": self.options.get("name", ""), "source": source, "line": line,
             "commands": commands_text, "output": output_text})
        shown = [nodes.literal_block(commands_text, commands_text, language="bash")]
        if output_text:
            shown.append(nodes.literal_block(output_text, output_text, language="text",
                                             classes=["runnable-output"]))
        return shown


def _purge_runnable(app, env, docname):
    getattr(env, "pmc_runnable", {}).pop(docname, None)


def _write_runnable(app, exception):
    if exception is None:
        examples = getattr(app.env, "pmc_runnable", {})
        (Path(app.outdir) / "runnable.json").write_text(json.dumps(
            [example for docname in sorted(examples) for example in examples[docname]],
            indent=1))


def setup(app):
    app.add_directive("settings-table", SettingsTable)
    app.add_role("source", SourceRole())
    app.add_directive("runnable", Runnable)
    app.connect("env-purge-doc", _purge)
    app.connect("env-purge-doc", _purge_runnable)
    app.connect("env-check-consistency", _every_key_shown)
    app.connect("build-finished", _write_runnable)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}
