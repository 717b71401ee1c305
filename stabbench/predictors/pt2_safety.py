"""What must hold before a ``torch.export`` archive (``.pt2``) from a stranger is deserialised.

``torch.export.load`` is not inert: it unpickles some payloads, hands every symbolic-shape
``expr_str`` of ``models/*.json`` to ``sympy.sympify`` (which evaluates Python), ``exec``-s
the ``guards_code`` strings when the module is built, and resolves every node ``target``
string to an attribute of ``torch`` / ``operator`` / ``math``, which the graph then calls.
:func:`unsafe_members` reads the archive as a zip of JSON and bytes (nothing deserialised)
and reports every member that breaks these rules:

- member names: relative, no ``..``, under one top folder, in the archive's known layout;
  plain files (no symlink or special entries);
- JSON members parse, and in them:

  - every ``expr_str`` is symbolic shape arithmetic: sympy constructor calls from a fixed
    list (``Add``, ``Mul``, ``Symbol``, ``Integer``, ``FloorDiv``, ...), symbol names like
    ``s12``, numbers, booleans and arithmetic/comparison operators; nothing else;
  - every ``guards_code`` string compares sizes of the inputs: ``L['x'].size()[2]``-style
    terms, numbers, arithmetic, comparisons and boolean operators; nothing else;
  - every graph node ``target`` is an ATen/prims operator (``torch.ops.aten.*``,
    ``torch.ops.prims.*``), a symbolic-size helper (``torch.sym_*``) or an arithmetic /
    comparison function of ``operator`` / ``math``;
  - ``range_constraints`` keys are symbol names;

- tensor payloads load with ``torch.load(weights_only=True)``; no pickled custom or opaque
  object, no compiled (AOTInductor / ExecuTorch) code.
"""

from __future__ import annotations

import ast
import io
import json
import re
import stat
import zipfile
from pathlib import Path
from typing import Any, Iterator

#: Layout of a ``torch.export.save`` archive, relative to its top folder.
MEMBER_RE = re.compile(
    r"^(archive_format|archive_version|byteorder|version|\.data/version|\.data/serialization_id"
    r"|models/[A-Za-z0-9_.-]+\.json"
    r"|data/(weights|constants|sample_inputs)/[A-Za-z0-9_.-]+"
    r"|extra/[A-Za-z0-9_.-]+)$"
)
SYMBOL_RE = re.compile(r"^[a-z]+[0-9]+$")

#: sympy constructors allowed in ``expr_str`` (the ones torch's serializer writes).
SYMPY_CALLS = frozenset({
    "Add", "Mul", "Pow", "Integer", "Rational", "Float", "Symbol", "Max", "Min", "Abs", "Eq", "Ne", "Lt", "Le", "Gt",
    "Ge", "StrictLessThan", "StrictGreaterThan", "LessThan", "GreaterThan", "Equality", "Unequality", "And", "Or",
    "Not", "true", "false", "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt",
    "FloorToInt", "CeilDiv", "IntTrueDiv", "FloatTrueDiv", "LShift", "RShift", "IsNonOverlappingAndDenseIndicator",
    "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "FloatPow", "PowByNatural", "Identity",
    "OpaqueUnaryFn_sqrt", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or", "oo", "zoo", "nan", "Piecewise",
    "ExprCondPair",
})
SYMPY_KEYWORDS = frozenset({"positive", "negative", "integer", "real", "finite", "nonnegative", "nonpositive",
                            "zero", "nonzero", "even", "odd", "rational", "evaluate"})
#: methods a guard may call on an input (no arguments), and functions it may call.
GUARD_METHODS = frozenset({"size", "stride", "storage_offset", "dim", "numel"})
GUARD_FUNCTIONS = frozenset({"Max", "Min", "Abs", "FloorDiv", "Mod", "PythonMod", "CeilToInt", "FloorToInt", "TruncToInt"})

ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd, ast.Not,
              ast.And, ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
TARGET_RES = (
    re.compile(r"^torch\.ops\.(aten|prims)\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$"),
    re.compile(r"^torch\.sym_(max|min|float|int|not|sqrt|ite|sum)$"),
    re.compile(r"^_operator\.(getitem|add|sub|mul|floordiv|truediv|mod|pow|neg|pos|abs|lt|le|gt|ge|eq|ne|and_|or_|not_)$"),
    re.compile(r"^math\.(ceil|floor|trunc|sqrt)$"),
)
MAX_EXPRESSION = 20_000


# ----------------------------------------------------------------------------- grammars


def _numbers_ok(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float, bool)


def _parse(text: Any) -> ast.AST | None:
    """The Python expression tree of ``text`` (never evaluated), or ``None``."""
    if not isinstance(text, str) or len(text) > MAX_EXPRESSION:
        return None
    try:
        return ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _accepted(text: Any, node_ok) -> bool:
    """Whether ``text`` parses and every node is arithmetic structure or accepted by ``node_ok``."""
    tree = _parse(text)
    return tree is not None and all(_arithmetic(node) or node_ok(node) for node in ast.walk(tree))


def _arithmetic(node: ast.AST) -> bool:
    return isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Load, *ARITHMETIC)) \
        or _numbers_ok(node)


def _shape_node(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(SYMBOL_RE.match(node.value))  # Symbol('s12', ...)
    if isinstance(node, ast.Name):
        return node.id in SYMPY_CALLS or bool(SYMBOL_RE.match(node.id))
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name) and node.func.id in SYMPY_CALLS
    if isinstance(node, ast.keyword):
        return node.arg in SYMPY_KEYWORDS and _numbers_ok(node.value)
    return isinstance(node, ast.Tuple)


def _guard_node(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ({"L"} | GUARD_FUNCTIONS)
    if isinstance(node, ast.Subscript):
        index = node.slice
        if not isinstance(index, ast.Constant) or isinstance(index.value, bool) or not isinstance(index.value, (str, int)):
            return False
        return not isinstance(index.value, str) or bool(re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", index.value))
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)  # the keys of L['x'] (checked on their Subscript)
    if isinstance(node, ast.Attribute):
        return node.attr in GUARD_METHODS
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        if isinstance(func, ast.Attribute):
            return func.attr in GUARD_METHODS and not node.args
        return isinstance(func, ast.Name) and func.id in GUARD_FUNCTIONS
    return False


def is_shape_expression(text: Any) -> bool:
    """Whether ``text`` is symbolic shape arithmetic in sympy's ``srepr`` or infix form."""
    return _accepted(text, _shape_node)


def is_guard(text: Any) -> bool:
    """Whether ``text`` is a guard over input sizes: ``L['x'].size()[2] >= 2``-style code."""
    return _accepted(text, _guard_node)


def is_safe_target(text: Any) -> bool:
    """Whether a graph node's ``target`` names an operator the graph may call."""
    return isinstance(text, str) and any(r.match(text) for r in TARGET_RES)


# ----------------------------------------------------------------------------- the archive


def _walk(value: Any, where: str) -> Iterator[tuple[str, str, Any, dict | None]]:
    """``(where, key, value, parent)`` of every key of every object in a JSON value."""
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                yield path, key, child, item
                stack.append((child, f"{path}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))


def json_problems(data: Any, member: str) -> list[str]:
    """Every rule of the module docstring that a JSON member breaks."""
    problems = []
    for where, key, value, parent in _walk(data, ""):
        if key == "expr_str" and not is_shape_expression(value):
            problems.append(f"{member} ({where}.expr_str is not symbolic shape arithmetic: {str(value)[:80]!r})")
        elif key == "guards_code":
            bad = [g for g in value] if not isinstance(value, list) else [g for g in value if not is_guard(g)]
            if bad:
                problems.append(f"{member} ({where}.guards_code holds code that is not a size guard: {str(bad[0])[:80]!r})")
        elif key == "target" and isinstance(parent, dict) and "inputs" in parent and not is_safe_target(value):
            problems.append(f"{member} ({where}.target calls {str(value)[:80]!r}, not an ATen/prims/arithmetic operator)")
        elif key == "range_constraints" and isinstance(value, dict):
            bad_keys = [k for k in value if not SYMBOL_RE.match(k)]
            if bad_keys:
                problems.append(f"{member} ({where}.range_constraints key {bad_keys[0][:40]!r} is not a symbol name)")
        if len(problems) >= 5:
            break
    return problems


def _is_plain_file(info: zipfile.ZipInfo) -> bool:
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no file type recorded (zip writers that set none)
    return not info.is_dir() and kind in (0, stat.S_IFREG)


def unsafe_members(path: Path) -> list[str]:
    """Members of a ``.pt2`` archive that loading it would unpickle, run or evaluate (see the
    module docstring), each with the reason; ``[]`` for an archive that is plain data."""
    import torch

    unsafe: list[str] = []
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        tops = {info.filename.split("/", 1)[0] for info in infos}
        if len(tops) != 1:
            return [f"archive layout ({len(tops)} top folders, expected one)"]
        pickled: set[str] = set()
        for info in infos:
            name = info.filename
            rel = name.split("/", 1)[1] if "/" in name else ""
            if ".." in name.split("/") or name.startswith("/") or "\\" in name or not MEMBER_RE.match(rel):
                unsafe.append(f"{name} (unexpected member name)")
                continue
            if not _is_plain_file(info):
                unsafe.append(f"{name} (not a plain file)")
                continue
            base = rel.rsplit("/", 1)[-1]
            if rel.endswith(".json"):
                try:
                    data = json.loads(archive.read(name))
                except (ValueError, RecursionError, UnicodeDecodeError):
                    unsafe.append(f"{name} (not valid JSON)")
                    continue
                unsafe += json_problems(data, name)
                if rel.endswith("_config.json") and rel.startswith(("data/weights/", "data/constants/")):
                    config = data.get("config", {}) if isinstance(data, dict) else None
                    if not isinstance(config, dict) or not all(isinstance(m, dict) for m in config.values()):
                        unsafe.append(f"{name} (malformed payload config)")
                        continue
                    folder = name.rsplit("/", 1)[0]
                    pickled |= {f"{folder}/{meta.get('path_name')}" for meta in config.values() if meta.get("use_pickle")}
            elif rel.startswith("data/constants/") and base.startswith(("custom_obj_", "opaque_obj_")):
                unsafe.append(f"{name} (pickled object)")
        for info in infos:
            name = info.filename
            rel = name.split("/", 1)[1] if "/" in name else ""
            if name in pickled or (rel.endswith(".pt") and MEMBER_RE.match(rel)):
                try:
                    torch.load(io.BytesIO(archive.read(name)), map_location="cpu", weights_only=True)
                except Exception:  # noqa: BLE001 - anything weights_only refuses is a pickled object
                    unsafe.append(f"{name} (pickled object)")
    return unsafe


__all__ = ["is_guard", "is_safe_target", "is_shape_expression", "json_problems", "unsafe_members"]
