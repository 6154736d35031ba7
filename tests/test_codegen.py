"""The operations of the README and of every client example are ready for code generation:
each is named (uniquely within its source), each validates against the committed
schema.graphql, and graphql-codegen (typescript + typescript-operations, pinned in
tests/tools) turns each source's operations into TypeScript types named after them."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from graphql import DocumentNode, OperationDefinitionNode, build_schema, parse, validate

from server.settings import PROJECT_ROOT
from tests.schema_tools import codegen

EXAMPLES = PROJECT_ROOT / "client-examples"
SCHEMA_FILE = PROJECT_ROOT / "schema.graphql"
OPERATION_START = re.compile(r"^\s*(query|mutation|subscription|\{)")


@dataclass
class Operation:
    source: str
    text: str
    document: DocumentNode

    @property
    def definition(self) -> OperationDefinitionNode:
        (op,) = [d for d in self.document.definitions if isinstance(d, OperationDefinitionNode)]
        return op

    @property
    def name(self) -> str | None:
        return self.definition.name.value if self.definition.name else None

    @property
    def kind(self) -> str:
        return self.definition.operation.value


def _readme(path: Path) -> list[str]:
    return re.findall(r"^```graphql\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL)


def _python(path: Path) -> list[str]:
    """Module-level string constants holding an operation."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, str) and OPERATION_START.match(node.value.value):
                found.append(node.value.value)
    return found


_JS_CONST = re.compile(r"^const (\w+) = (`(?:[^`\\]|\\.)*`|'(?:[^'\\]|\\.)*');", re.MULTILINE | re.DOTALL)


def _javascript(path: Path) -> list[str]:
    """`const NAME = `...`` constants holding an operation, with `${CONST}` filled from the
    file's other string constants (the web board shares its task fields that way)."""
    constants = {name: literal[1:-1] for name, literal in _JS_CONST.findall(path.read_text())}

    def fill(text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: fill(constants[m.group(1)]), text)

    return [fill(text) for text in constants.values() if OPERATION_START.match(text)]


def _curl(path: Path) -> list[str]:
    """The `"query": "..."` strings of the sh blocks, as the shell passes them on (a
    here-document turns `\\$` into `$`)."""
    found = []
    for block in re.findall(r"^```sh\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL):
        for literal in re.findall(r'"query": ("(?:[^"\\]|\\.)*")', block):
            found.append(json.loads(literal.replace("\\$", "$")))
    return found


SOURCES = {
    "README.md": (PROJECT_ROOT / "README.md", _readme),
    "python/live_board.py": (EXAMPLES / "python" / "live_board.py", _python),
    "python/nora_chat.py": (EXAMPLES / "python" / "nora_chat.py", _python),
    "node/live-board.mjs": (EXAMPLES / "node" / "live-board.mjs", _javascript),
    "web/index.html": (EXAMPLES / "web" / "index.html", _javascript),
    "curl.md": (EXAMPLES / "curl.md", _curl),
}
# At least this many operations per source: an extractor that silently finds nothing fails.
EXPECTED = {"README.md": 9, "python/live_board.py": 6, "python/nora_chat.py": 5,
            "node/live-board.mjs": 6, "web/index.html": 6, "curl.md": 8}


def operations(source: str) -> list[Operation]:
    path, extract = SOURCES[source]
    return [Operation(source, text, parse(text)) for text in extract(path)]


@pytest.fixture(scope="module")
def served_schema():
    return build_schema(SCHEMA_FILE.read_text())


@pytest.mark.parametrize("source", SOURCES)
def test_every_operation_has_a_unique_name(source):
    ops = operations(source)
    assert len(ops) >= EXPECTED[source], f"{source}: found only {len(ops)} operations"
    anonymous = [op.text.strip()[:60] for op in ops if op.name is None]
    assert not anonymous, f"{source}: anonymous operations: {anonymous}"
    names = [op.name for op in ops]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"{source}: operation names used twice: {duplicates}"


@pytest.mark.parametrize("source", SOURCES)
def test_every_operation_validates_against_the_schema(source, served_schema):
    for op in operations(source):
        errors = validate(served_schema, op.document)
        assert not errors, f"{source}: {op.name}: {[e.message for e in errors]}"


@pytest.mark.parametrize("source", SOURCES)
def test_codegen_types_every_operation(source, tmp_path):
    ops = operations(source)
    documents = []
    for number, op in enumerate(ops):
        document = tmp_path / f"{number:02d}-{op.name or 'anonymous'}.graphql"
        document.write_text(op.text)
        documents.append(document)
    out = tmp_path / "generated.ts"
    done = codegen(SCHEMA_FILE, documents, out)
    assert done.returncode == 0, f"graphql-codegen failed on {source}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    generated = out.read_text()
    for op in ops:
        type_name = f"{op.name}{op.kind.capitalize()}"
        assert f"export type {type_name} = " in generated, f"{source}: no type for {op.name}"
        assert f"export type {type_name}Variables = " in generated, f"{source}: no variables type for {op.name}"
    # The custom scalars are typed (strictScalars would have failed on an unmapped one).
    assert "DateTime: { input: string; output: string; }" in generated


@pytest.mark.parametrize("source", SOURCES)
def test_every_operation_fits_the_default_request_limits(source):
    """What the docs teach must run as taught: within the default cost, depth and alias caps."""
    from schema.limits import LimitError, Limits, analyze
    from schema.root import schema

    for op in operations(source):
        try:
            analyze(schema._schema, op.document, op.name, None, Limits())
        except LimitError as error:
            pytest.fail(f"{source}: {op.name}: {error.message}")
