#!/usr/bin/env python3
"""Every reference in a set of Terraform modules names something that exists.

Reads the output of `node hcl.js parse ROOT FILE...` (file path -> hcl2json of the file) on
stdin or from the file given, groups the files by directory (one directory = one module), and
checks, without a Terraform binary or provider:

- `var.X` names a variable of the module; `local.X` a local; `data.T.N` a data source;
  `T.N` a managed resource; `module.M` a module call, and `module.M.O` an output of M when M's
  source is a local directory;
- a module call passes only variables the child module declares, and every child variable
  without a default;
- every variable has a description and a type, every output a description;
- names bound inside an expression (`for` variables, `dynamic` block iterators, `each`,
  `count`, `self`, `path`, `terraform`) are allowed where they are in scope.

Exits 1 and prints one line per unknown reference (sorted), 0 when all resolve.
`--expect FILE` instead compares the printed lines with FILE (the negative test: a module
with known mistakes must produce exactly those lines).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import sys
from dataclasses import dataclass, field

KEYWORDS = {"for", "in", "if", "true", "false", "null"}
ALWAYS = {"each", "count", "self", "path", "terraform"}
MODULE_META = {"source", "version", "providers", "count", "for_each", "depends_on"}
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass
class Module:
    directory: str
    files: list[str] = field(default_factory=list)
    variables: dict[str, bool] = field(default_factory=dict)  # name -> has a default
    locals: set[str] = field(default_factory=set)
    resources: set[tuple[str, str]] = field(default_factory=set)
    data: set[tuple[str, str]] = field(default_factory=set)
    modules: dict[str, dict] = field(default_factory=dict)  # name -> call body
    outputs: set[str] = field(default_factory=set)
    undocumented: list[str] = field(default_factory=list)


# --- expressions --------------------------------------------------------------------------


def template_parts(text: str) -> list[str]:
    """The expressions inside a template string: every `${...}` (not `$${`), outermost first,
    with nested templates inside string literals of an expression also returned."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$${", i):
            i += 3
            continue
        if text.startswith("${", i):
            end = match_brace(text, i + 2)
            expr = text[i + 2 : end]
            out.append(expr)
            i = end + 1
            continue
        i += 1
    return out


def match_brace(text: str, i: int) -> int:
    """Index of the `}` closing an expression that starts at i (strings and nested braces
    skipped). Returns len(text) if unbalanced."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            i = skip_string(text, i)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return len(text)


def skip_string(text: str, i: int) -> int:
    """Index just past the string literal starting with the quote at i."""
    i += 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if text.startswith("${", i) and not text.startswith("$${", i - 1 if i else 0):
            i = match_brace(text, i + 2) + 1
            continue
        if c == '"':
            return i + 1
        i += 1
    return i


def traversals(expr: str) -> tuple[list[list[str]], set[str]]:
    """(traversals, bound names) of one expression. A traversal is [root, attr, attr...]
    (index steps dropped); only roots not preceded by `.` and not called as functions.
    Bound names are `for` variables."""
    found: list[list[str]] = []
    bound: set[str] = set()
    i = 0
    n = len(expr)
    while i < n:
        c = expr[i]
        if c == '"':
            end = skip_string(expr, i)
            for inner in template_parts(expr[i + 1 : end - 1]):
                t, b = traversals(inner)
                found += t
                bound |= b
            i = end
            continue
        if c == "#" or expr.startswith("//", i):
            while i < n and expr[i] != "\n":
                i += 1
            continue
        m = IDENT.match(expr, i)
        if m and (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] in "_-.")):
            word = m.group(0)
            j = m.end()
            if word == "for":
                # for A[, B] in ...
                k = j
                names = re.match(r"\s+([A-Za-z_][A-Za-z0-9_-]*)(\s*,\s*([A-Za-z_][A-Za-z0-9_-]*))?\s+in\b", expr[k:])
                if names:
                    bound.add(names.group(1))
                    if names.group(3):
                        bound.add(names.group(3))
                i = j
                continue
            k = j
            while k < n and expr[k] == " ":
                k += 1
            if k < n and expr[k] == "(":
                i = j  # a function call
                continue
            path = [word]
            while j < n:
                if expr[j] == "." and j + 1 < n and expr[j + 1] == "*":
                    j += 2
                    continue
                if expr[j] == ".":
                    a = IDENT.match(expr, j + 1)
                    if not a:
                        break
                    path.append(a.group(0))
                    j = a.end()
                    continue
                if expr[j] == "[":
                    depth = 0
                    while j < n:
                        if expr[j] == '"':
                            j = skip_string(expr, j)
                            continue
                        if expr[j] == "[":
                            depth += 1
                        elif expr[j] == "]":
                            depth -= 1
                            if depth == 0:
                                j += 1
                                break
                        j += 1
                    continue
                break
            if word not in KEYWORDS:
                found.append(path)
            # Index expressions and the rest are scanned by continuing after the root word.
            i = m.end()
            continue
        i += 1
    return found, bound


# --- modules ----------------------------------------------------------------------------


def load(parsed: dict[str, dict]) -> dict[str, Module]:
    mods: dict[str, Module] = {}
    for path, body in sorted(parsed.items()):
        d = posixpath.dirname(path) or "."
        m = mods.setdefault(d, Module(d))
        m.files.append(path)
        for name, blocks in body.get("variable", {}).items():
            m.variables[name] = any("default" in b for b in blocks)
            for attr in ("description", "type"):
                if not any(attr in b for b in blocks):
                    m.undocumented.append(f"{path}: variable \"{name}\" has no {attr}")
        for name, blocks in body.get("output", {}).items():
            if not any("description" in b for b in blocks):
                m.undocumented.append(f"{path}: output \"{name}\" has no description")
        for block in body.get("locals", []):
            m.locals |= set(block)
        for rtype, named in body.get("resource", {}).items():
            m.resources |= {(rtype, n) for n in named}
        for dtype, named in body.get("data", {}).items():
            m.data |= {(dtype, n) for n in named}
        for name, blocks in body.get("module", {}).items():
            m.modules[name] = {"file": path, **blocks[0]}
        m.outputs |= set(body.get("output", {}))
    return mods


def child_dir(mod: Module, call: dict) -> str | None:
    src = call.get("source", "")
    if not isinstance(src, str) or not (src.startswith("./") or src.startswith("../")):
        return None
    return posixpath.normpath(posixpath.join(mod.directory, src))


def check_ref(mods: dict[str, Module], mod: Module, path: list[str], scope: set[str]) -> str | None:
    root = path[0]
    if root in scope or root in ALWAYS:
        return None
    if len(path) < 2:
        return None  # a bare name: an object key, a for variable, a keyword argument
    a1 = path[1]
    if root == "var":
        return None if a1 in mod.variables else f"var.{a1}: no variable \"{a1}\" in this module"
    if root == "local":
        return None if a1 in mod.locals else f"local.{a1}: no local \"{a1}\" in this module"
    if root == "module":
        if a1 not in mod.modules:
            return f"module.{a1}: no module \"{a1}\" in this module"
        if len(path) >= 3:
            d = child_dir(mod, mod.modules[a1])
            if d is not None and d in mods and path[2] not in mods[d].outputs:
                return f"module.{a1}.{path[2]}: module \"{a1}\" ({d}) has no output \"{path[2]}\""
        return None
    if root == "data":
        if len(path) < 3:
            return f"data.{a1}: a data reference needs a type and a name"
        return None if (a1, path[2]) in mod.data else f"data.{a1}.{path[2]}: no data \"{a1}\" \"{path[2]}\" in this module"
    return None if (root, a1) in mod.resources else f"{root}.{a1}: no resource \"{root}\" \"{a1}\" in this module"


def walk(value, scope: set[str], visit) -> None:
    """Every string in a hcl2json value, with the names bound where it stands."""
    if isinstance(value, str):
        visit(value, scope)
    elif isinstance(value, list):
        for v in value:
            walk(v, scope, visit)
    elif isinstance(value, dict):
        for key, v in value.items():
            if key == "dynamic" and isinstance(v, dict):
                for label, blocks in v.items():
                    for b in blocks:
                        it = b.get("iterator", label)
                        it = it[2:-1] if isinstance(it, str) and it.startswith("${") else it
                        walk({k: x for k, x in b.items() if k != "content"}, scope, visit)
                        walk(b.get("content", []), scope | {it}, visit)
            else:
                walk(v, scope, visit)


def check(parsed: dict[str, dict]) -> list[str]:
    mods = load(parsed)
    errors: set[str] = set()
    for path, body in sorted(parsed.items()):
        mod = mods[posixpath.dirname(path) or "."]

        def visit(text: str, scope: set[str], path=path, mod=mod) -> None:
            for expr in template_parts(text):
                refs, bound = traversals(expr)
                for r in refs:
                    e = check_ref(mods, mod, r, scope | bound)
                    if e:
                        errors.add(f"{path}: {e}")

        walk(body, set(), visit)

    for mod in mods.values():
        errors.update(mod.undocumented)
        for name, call in mod.modules.items():
            d = child_dir(mod, call)
            if d is None:
                continue
            if d not in mods:
                errors.add(f"{call['file']}: module \"{name}\": source {call['source']} is not a module among the checked files")
                continue
            child = mods[d]
            for arg in sorted(set(call) - MODULE_META - {"file"}):
                if arg not in child.variables:
                    errors.add(f"{call['file']}: module \"{name}\": argument \"{arg}\" is not a variable of {d}")
            for var, has_default in sorted(child.variables.items()):
                if not has_default and var not in call:
                    errors.add(f"{call['file']}: module \"{name}\": required variable \"{var}\" of {d} is not given")
    return sorted(errors)


def main(argv: list[str]) -> int:
    args = argv[1:]
    expect = None
    if len(args) >= 2 and args[0] == "--expect":
        expect = args[1]
        args = args[2:]
    src = open(args[0]) if args else sys.stdin
    errors = check(json.load(src))
    if expect is not None:
        with open(expect) as f:
            want = sorted(line.rstrip("\n") for line in f if line.strip() and not line.startswith("#"))
        missing = [w for w in want if w not in errors]
        extra = [e for e in errors if e not in want]
        for w in missing:
            print(f"NOT REPORTED: {w}")
        for e in extra:
            print(f"UNEXPECTED:   {e}")
        print(f"negative case: {len(want) - len(missing)} of {len(want)} expected errors reported, {len(extra)} unexpected")
        return 1 if missing or extra else 0
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} unknown reference(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
