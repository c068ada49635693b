"""No SQL in correlator/store/ is built from values: values travel as bound `{name:Type}` parameters (STYLE.md 2).

The modules are read with `ast`. Every f-string or string that looks like SQL (outside error messages) may only
interpolate what cannot carry a value from outside:

- module-level constants (UPPER_CASE names of the module itself, of correlator/store/telemetry_sql.py, or
  imported from another correlator module), each itself checked by the same rules;
- identifiers through the quoting helpers (`quote_identifier`, `string_literal`, `Store.table`, `Store.sql`'s
  `$name` placeholders) and SQL string literals through `_literal`, which escapes whatever it gets;
- numbers (`int(...)`, `len(...)`): a number cannot carry SQL, and ClickHouse SETTINGS take no parameters;
- fragments built by functions of the store whose own interpolations pass these rules, with every argument
  the package passes them passing them too (a parameter is trusted only when every call site's argument is);
- fields of the DDL objects, trusted only when every construction in the store passes trusted values;
- the entries of ALLOWED below, each with its reason.

`%` formatting of SQL is refused outright, and `.format(` anywhere in the store unless ALLOWED says why.
A self-test feeds the checker bad snippets (a value in an f-string, `%`, `.format`, `+`) and expects each flagged.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CORRELATOR = Path(__file__).resolve().parents[1] / "correlator"
STORE = CORRELATOR / "store"

# SQL keywords and clauses, or a function call in ClickHouse's camelCase (`toUInt64(`, `arrayMap(`).
SQL_TEXT = re.compile(
    r"\b(SELECT|INSERT|CREATE|ALTER|DROP|DELETE|UPDATE|OPTIMIZE|TRUNCATE|RENAME|FROM|WHERE|PREWHERE|JOIN|"
    r"GROUP BY|ORDER BY|PARTITION BY|PRIMARY KEY|SETTINGS|ENGINE|ON CLUSTER|HAVING|LIMIT|UNION|TTL|INDEX|AS)\b"
    r"|\b[a-z]+[A-Z0-9][A-Za-z0-9]*\(|\b(if|has|length|concat|lower|upper|hex|unhex|count|sum|min|max)\("
)
CONSTANT = re.compile(r"^_?[A-Z][A-Z0-9_]*$")
# Helpers whose result is safe SQL whatever their argument: they quote identifiers or escape string literals.
QUOTING = frozenset({"quote_identifier", "string_literal", "_literal"})
# Builtins whose result is a number, or whose result is safe when their arguments are.
NUMERIC = frozenset({"int", "len", "max", "min", "abs", "round", "bool", "float"})
PASSING = frozenset({"sorted", "tuple", "list", "filter", "reversed", "enumerate", "zip", "range", "dict", "set"})
STRING_METHODS = frozenset(
    {"join", "replace", "removeprefix", "removesuffix", "strip", "lower", "upper", "items", "values", "keys", "format"}
)
# Messages, not SQL: error texts and log lines.
MESSAGE_CALLS = frozenset({"_translate", "exception", "warning", "info", "debug", "error"})

# (module, function or class.method, interpolated source) -> why it is safe.
# Functions whose f-strings are not SQL and reach no SQL: checking them would only flag their own inputs.
NOT_SQL: dict[tuple[str, str], str] = {
    ("client.py", "StoreConfig.describe"): "the DSN without its password, for log lines and error messages",
    ("client.py", "Store.sql"): "builds the `$name` placeholder text that it then replaces with a quoted table",
    ("identifiers.py", "quote_identifier"): "the quoting helper itself: the name matched [A-Za-z_][A-Za-z0-9_.]* first",
    ("native_insert.py", "ensure_schema_file"): "the .proto file's name, from the hash of its content",
}

# (module, function or Class.method, the formatted template or the interpolated source) -> why it is safe. Even an
# allowed .format() is checked: its arguments must pass the rules above.
_IDENTIFIERS_AND_CONSTANTS = (
    "identifier-only: fills quoted tables (store.table) and constant fragments into a constant template whose "
    "values are {{name:Type}} parameters; predates Store.sql's $name placeholders, which would be the house way"
)
ALLOWED: dict[tuple[str, str, str], str] = {
    ("ddl.py", "InsertSelect.select_sql", "self.select.format"): (
        "identifier-only: a migration's copy names its source table `{source}`, filled with the quoted table; "
        "every copy's select is a constant of schema_*.py, the same as its view's"
    ),
    ("ddl.py", "CreateMaterializedView.render", "self.select.format"): (
        "identifier-only: a view's SELECT names its source table `{source}`, filled with the quoted local table "
        "(which differs on a cluster); every view's select is a constant of schema_*.py"
    ),
    ("topology_queries.py", "mesh_requests_sql", "_POINTS_IN.format"): (
        "fills a constant column list (`TimeUnix, Value`) into the constant groupArray template _POINTS_IN"
    ),
    ("topology_queries.py", "mesh_latency_sql", "_POINTS_IN.format"): (
        "fills a constant column list (`TimeUnix, Count, BucketCounts`) into the constant template _POINTS_IN"
    ),
    ("trace_queries.py", "trace_spans", "SPANS.format"): _IDENTIFIERS_AND_CONSTANTS,
    ("trace_queries.py", "trace_spans_in", "SPANS.format"): _IDENTIFIERS_AND_CONSTANTS,
    ("trace_queries.py", "deploy_candidates", "DEPLOY_CANDIDATES.format"): _IDENTIFIERS_AND_CONSTANTS,
}


@dataclass
class Finding:
    """One interpolation or formatting the rules do not allow."""

    module: str
    line: int
    function: str
    source: str
    why: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} in {self.function or '<module>'}: {self.source} ({self.why})"


@dataclass
class Function:
    """A function or method of the analysed modules."""

    module: str
    qualname: str
    node: ast.FunctionDef | ast.Lambda
    params: list[str]
    locals: dict[str, list[ast.expr]] = field(default_factory=dict)
    klass: str | None = None


@dataclass
class Module:
    """One parsed module: its constants, imports, functions and classes."""

    name: str
    tree: ast.Module
    constants: dict[str, ast.expr] = field(default_factory=dict)
    # Loop and comprehension variables at module level (`*(f"{x}.a" for x in KINDS)`).
    locals: dict[str, list[ast.expr]] = field(default_factory=dict)
    imported: dict[str, str] = field(default_factory=dict)  # local name -> module path (correlator.x.y)


def _assigned_names(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for item in target.elts:
            yield from _assigned_names(item)
    elif isinstance(target, ast.Starred):
        yield from _assigned_names(target.value)


class _Element(ast.expr):
    """Stands for `an element of <iterable>`: a loop or `with` target is as trusted as what it comes from."""

    def __init__(self, iterable: ast.expr) -> None:
        super().__init__()
        self.iterable = iterable


def _locals_of(node: ast.AST) -> dict[str, list[ast.expr]]:
    """Every expression assigned to each local name of a function or module (loop targets as elements of their
    iterable, and what `append`, `extend`, `insert` or `add` put into a list or set)."""
    found: dict[str, list[ast.expr]] = {}

    def add(target: ast.expr, value: ast.expr) -> None:
        for name in _assigned_names(target):
            found.setdefault(name, []).append(value)

    for child in ast.walk(node):
        if isinstance(child, ast.Assign):
            for target in child.targets:
                add(target, child.value if isinstance(target, ast.Name) else _Element(child.value))
        elif isinstance(child, ast.AugAssign | ast.NamedExpr) or (
            isinstance(child, ast.AnnAssign) and child.value is not None
        ):
            assert child.value is not None
            add(child.target, child.value)
        elif isinstance(child, ast.For | ast.comprehension):
            add(child.target, _Element(child.iter))
        elif isinstance(child, ast.withitem) and child.optional_vars is not None:
            add(child.optional_vars, child.context_expr)
        elif (
            isinstance(child, ast.Call)
            and isinstance(child.func, ast.Attribute)
            and child.func.attr in ("append", "extend", "insert", "add")
            and isinstance(child.func.value, ast.Name)
        ):
            for argument in child.args:
                add(child.func.value, argument)
    return found


def _params(node: ast.FunctionDef | ast.Lambda) -> list[str]:
    arguments = node.args
    names = [a.arg for a in (*arguments.posonlyargs, *arguments.args)]
    if arguments.vararg is not None:
        names.append(arguments.vararg.arg)
    return names + [a.arg for a in arguments.kwonlyargs]


class Checker:
    """Finds SQL built from anything but constants, quoted identifiers, numbers and checked builders."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.modules: dict[str, Module] = {}
        self.functions: dict[str, list[Function]] = {}  # bare name -> definitions
        self.classes: dict[str, tuple[str, list[str], dict[str, ast.expr]]] = {}  # name -> module, fields, defaults
        self.calls: dict[str, list[tuple[Module, Function | None, ast.Call]]] = {}
        self.findings: list[Finding] = []
        self.used: set[tuple[str, str, str]] = set()  # the ALLOWED entries that were needed
        self._trust_cache: dict[tuple[str, str, str], bool] = {}
        self._parent_call: dict[int, ast.Call] = {}  # a name passed as an argument -> its call
        self._called: dict[int, bool] = {}  # a name that is the function of a call
        self._loads: dict[str, list[ast.Name]] = {}  # every read of a name, by name
        self._sites_cache: dict[str, list[tuple[Module, Function | None, ast.Call]] | None] = {}
        for name, text in sources.items():
            tree = ast.parse(text)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    self._called[id(node.func)] = True
                    for argument in [*node.args, *(k.value for k in node.keywords)]:
                        self._parent_call[id(argument)] = node
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    self._loads.setdefault(node.id, []).append(node)
            self._index(name, tree)

    # --- Indexing -----------------------------------------------------------------------------------------------

    def _index(self, name: str, tree: ast.Module) -> None:
        module = Module(name, tree)
        self.modules[name] = module
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.ClassDef):
                for local, values in _locals_of(node).items():
                    module.locals.setdefault(local, []).extend(values)
        for node in tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    for assigned in _assigned_names(target):
                        module.constants[assigned] = node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None and isinstance(node.target, ast.Name):
                module.constants[node.target.id] = node.value
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    module.imported[alias.asname or alias.name] = node.module
            elif isinstance(node, ast.FunctionDef):
                self._add_function(module, node, None)
            elif isinstance(node, ast.ClassDef):
                fields: list[str] = []
                defaults: dict[str, ast.expr] = {}
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        fields.append(item.target.id)
                        if item.value is not None:
                            defaults[item.target.id] = item.value
                    elif isinstance(item, ast.FunctionDef):
                        self._add_function(module, item, node.name)
                self.classes[node.name] = (name, fields, defaults)
        for function in [f for fs in self.functions.values() for f in fs if f.module == name]:
            for child in ast.walk(function.node):
                if isinstance(child, ast.Call):
                    self.calls.setdefault(self._callee(child), []).append((module, function, child))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.ClassDef):
                for child in ast.walk(node):
                    if isinstance(child, ast.Call):
                        self.calls.setdefault(self._callee(child), []).append((module, None, child))

    def _add_function(self, module: Module, node: ast.FunctionDef, klass: str | None) -> None:
        qualname = f"{klass}.{node.name}" if klass else node.name
        function = Function(module.name, qualname, node, _params(node), _locals_of(node), klass)
        self.functions.setdefault(node.name, []).append(function)

    @staticmethod
    def _callee(call: ast.Call) -> str:
        func = call.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
        return ""

    # --- Trust --------------------------------------------------------------------------------------------------

    def trusted(self, expr: ast.expr, module: Module, function: Function | None, seen: frozenset[str]) -> bool:
        """Whether an expression's value can only be SQL text the store wrote itself (or a number)."""
        if isinstance(expr, _Element):
            return self.trusted(expr.iterable, module, function, seen)
        if isinstance(expr, ast.Constant):
            return True
        if isinstance(expr, ast.JoinedStr):
            return all(self.trusted(part, module, function, seen) for part in expr.values)
        if isinstance(expr, ast.FormattedValue):
            return self.trusted(expr.value, module, function, seen)
        if isinstance(expr, ast.Tuple | ast.List | ast.Set):
            return all(self.trusted(item, module, function, seen) for item in expr.elts)
        if isinstance(expr, ast.Dict):
            return all(self.trusted(item, module, function, seen) for item in [*expr.keys, *expr.values] if item)
        if isinstance(expr, ast.Starred):
            return self.trusted(expr.value, module, function, seen)
        if isinstance(expr, ast.BinOp):
            if isinstance(expr.op, ast.Mod):
                return False
            return self.trusted(expr.left, module, function, seen) and self.trusted(expr.right, module, function, seen)
        if isinstance(expr, ast.UnaryOp):
            return self.trusted(expr.operand, module, function, seen)
        if isinstance(expr, ast.BoolOp):
            return all(self.trusted(value, module, function, seen) for value in expr.values)
        if isinstance(expr, ast.IfExp):
            return self.trusted(expr.body, module, function, seen) and self.trusted(expr.orelse, module, function, seen)
        if isinstance(expr, ast.Compare):
            return True  # a boolean
        if isinstance(expr, ast.ListComp | ast.GeneratorExp | ast.SetComp):
            return self.trusted(expr.elt, module, function, seen) and all(
                self.trusted(g.iter, module, function, seen) for g in expr.generators
            )
        if isinstance(expr, ast.DictComp):
            return all(self.trusted(part, module, function, seen) for part in (expr.key, expr.value)) and all(
                self.trusted(g.iter, module, function, seen) for g in expr.generators
            )
        if isinstance(expr, ast.Lambda):
            return self.trusted(expr.body, module, function, seen)
        if isinstance(expr, ast.Subscript):
            return self.trusted(expr.value, module, function, seen) and self.trusted(expr.slice, module, function, seen)
        if isinstance(expr, ast.Slice):
            return all(self.trusted(p, module, function, seen) for p in (expr.lower, expr.upper, expr.step) if p)
        if isinstance(expr, ast.Name):
            return self._trusted_name(expr.id, module, function, seen)
        if isinstance(expr, ast.Attribute):
            return self._trusted_attribute(expr, module, function, seen)
        if isinstance(expr, ast.Call):
            return self._trusted_call(expr, module, function, seen)
        return False

    def _trusted_name(self, name: str, module: Module, function: Function | None, seen: frozenset[str]) -> bool:
        key = f"{module.name}:{function.qualname if function else ''}:{name}"
        if key in seen:
            return True  # a cycle: trusted unless another path says otherwise
        seen = seen | {key}
        if function is not None and name in function.locals:
            return all(self.trusted(value, module, function, seen) for value in function.locals[name])
        if function is not None and name in function.params:
            return self._trusted_param(function, name, seen)
        if name in module.constants:
            return self.trusted(module.constants[name], module, None, seen)
        if name in module.locals:
            return all(self.trusted(value, module, None, seen) for value in module.locals[name])
        if name in module.imported:
            source = module.imported[name]
            if source.startswith("correlator.store."):
                other = self.modules.get(source.removeprefix("correlator.store.") + ".py")
                if other is not None and name in other.constants:
                    return self.trusted(other.constants[name], other, None, seen)
            # A constant of another correlator module (column lists, message names), or a function reference.
            return source.startswith("correlator.") and (CONSTANT.match(name) is not None or name in self.functions)
        if name in self.functions:
            return all(self._returns_trusted(f, seen) for f in self.functions[name])
        return name in {"None", "True", "False"}

    def _trusted_param(self, function: Function, name: str, seen: frozenset[str]) -> bool:
        """A parameter is trusted when every call in the store passes a trusted value (or the default is used)."""
        if name == "self":
            return True
        node = function.node
        if isinstance(node, ast.Lambda):
            return False
        sites = self._call_sites(node.name, frozenset())
        if sites is None or not sites:
            return False  # called from outside the store, or kept somewhere its calls cannot be followed
        index = function.params.index(name)
        offset = 1 if function.klass is not None and function.params[:1] == ["self"] else 0
        is_vararg = node.args.vararg is not None and node.args.vararg.arg == name
        for caller_module, caller, call in sites:
            position = index - offset
            arguments = [k.value for k in call.keywords if k.arg == name]
            if is_vararg:
                arguments = call.args[position:]
            elif not arguments and 0 <= position < len(call.args):
                arguments = [call.args[position]]
            # No argument: the default, a constant of the signature.
            if not all(self.trusted(a, caller_module, caller, seen) for a in arguments):
                return False
        return True

    def _call_sites(self, name: str, visited: frozenset[str]) -> list[tuple[Module, Function | None, ast.Call]] | None:
        """Every call of a function: direct ones, and calls of the parameters it is passed to (followed through
        functions that pass it on); None when it is also kept where its calls cannot be followed."""
        if name in visited:
            return []
        if not visited and name in self._sites_cache:
            return self._sites_cache[name]
        found = self._find_call_sites(name, visited | {name})
        if not visited:
            self._sites_cache[name] = found
        return found

    def _find_call_sites(
        self, name: str, visited: frozenset[str]
    ) -> list[tuple[Module, Function | None, ast.Call]] | None:
        sites = list(self.calls.get(name, []))
        for node in self._loads.get(name, []):
            call = self._parent_call.get(id(node))
            if call is None:
                if self._called.get(id(node)):
                    continue  # the function of a call: counted above
                return None
            receiver = self._param_receiving(call, node)
            if receiver is None:
                return None
            target, param = receiver
            for inner in ast.walk(target.node):
                if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == param:
                    sites.append((self.modules[target.module], target, inner))
            forwarded = self._forwarded(target, param, visited)
            if forwarded is None:
                return None
            sites += forwarded
        return sites

    def _forwarded(
        self, function: Function, param: str, visited: frozenset[str]
    ) -> list[tuple[Module, Function | None, ast.Call]] | None:
        """Calls of a function parameter that the function passes on to another function."""
        sites: list[tuple[Module, Function | None, ast.Call]] = []
        for node in ast.walk(function.node):
            if isinstance(node, ast.Call):
                for argument in [*node.args, *(k.value for k in node.keywords)]:
                    if isinstance(argument, ast.Name) and argument.id == param:
                        receiver = self._param_receiving(node, argument)
                        if receiver is None:
                            return None
                        target, inner_param = receiver
                        key = f"{target.qualname}:{inner_param}"
                        if key in visited:
                            continue
                        for inner in ast.walk(target.node):
                            if (
                                isinstance(inner, ast.Call)
                                and isinstance(inner.func, ast.Name)
                                and inner.func.id == inner_param
                            ):
                                sites.append((self.modules[target.module], target, inner))
                        more = self._forwarded(target, inner_param, visited | {key})
                        if more is None:
                            return None
                        sites += more
        return sites

    def _param_receiving(self, call: ast.Call, argument: ast.expr) -> tuple[Function, str] | None:
        """The (function, parameter) a call passes an argument to, when the callee is one function of the store."""
        candidates = self.functions.get(self._callee(call), [])
        if len(candidates) != 1 or isinstance(candidates[0].node, ast.Lambda):
            return None
        target = candidates[0]
        for keyword in call.keywords:
            if keyword.value is argument and keyword.arg in target.params:
                return target, keyword.arg
        if argument in call.args:
            offset = 1 if target.klass is not None and target.params[:1] == ["self"] else 0
            position = call.args.index(argument) + offset
            if position < len(target.params):
                return target, target.params[position]
        return None

    def _trusted_attribute(
        self, expr: ast.Attribute, module: Module, function: Function | None, seen: frozenset[str]
    ) -> bool:
        base = expr.value
        klass = self._class_of(base, function)
        if klass is not None:
            # A field of a store object: as trusted as every construction of the class makes it.
            return self._trusted_field(klass, expr.attr, seen)
        if isinstance(base, ast.Call) and self._callee(base) == "uuid4":
            return True  # a random hex name cannot carry SQL
        return self.trusted(base, module, function, seen)

    def _class_of(self, expr: ast.expr, function: Function | None) -> str | None:
        """The store class of `self` or of a parameter annotated with one, else None."""
        if function is None or not isinstance(expr, ast.Name) or isinstance(function.node, ast.Lambda):
            return None
        if expr.id == "self" and function.klass:
            return function.klass
        arguments = function.node.args
        for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs):
            if argument.arg == expr.id and isinstance(argument.annotation, ast.Name):
                return argument.annotation.id if argument.annotation.id in self.classes else None
        return None

    def _trusted_field(self, klass: str, name: str, seen: frozenset[str]) -> bool:
        """A dataclass field: trusted when every construction of the class in the store passes a trusted value."""
        key = f"field:{klass}.{name}"
        if key in seen:
            return True
        seen = seen | {key}
        if klass not in self.classes:
            return False
        module_name, fields, defaults = self.classes[klass]
        if name not in fields:
            # A method used as a value, or a property: trusted when its returns are.
            methods = [f for f in self.functions.get(name, []) if f.klass == klass]
            return bool(methods) and all(self._returns_trusted(f, seen) for f in methods)
        if name in defaults and not self.trusted(defaults[name], self.modules[module_name], None, seen):
            return False
        position = fields.index(name)
        for caller_module, caller, call in self.calls.get(klass, []):
            argument = next((k.value for k in call.keywords if k.arg == name), None)
            if argument is None and position < len(call.args):
                argument = call.args[position]
            if argument is not None and not self.trusted(argument, caller_module, caller, seen):
                return False
        return True

    def _trusted_call(self, call: ast.Call, module: Module, function: Function | None, seen: frozenset[str]) -> bool:
        name = self._callee(call)
        arguments = [*call.args, *(k.value for k in call.keywords)]
        if name in QUOTING or name == "table":
            return True
        if isinstance(call.func, ast.Name) and name in NUMERIC:
            return True
        if isinstance(call.func, ast.Name) and name in PASSING:
            return all(self.trusted(a, module, function, seen) for a in arguments)
        if name in ("uuid4", "fields"):
            return True  # a random hex name, or the field names of a dataclass: code, not data
        if isinstance(call.func, ast.Attribute) and name in ("match", "fullmatch", "search"):
            return all(self.trusted(a, module, function, seen) for a in arguments)  # groups of a trusted text
        if isinstance(call.func, ast.Attribute) and name in STRING_METHODS:
            return self.trusted(call.func.value, module, function, seen) and all(
                self.trusted(a, module, function, seen) for a in arguments
            )
        if isinstance(call.func, ast.Name) and function is not None and name in function.params:
            # A function passed in: trusted when every function the store passes there returns trusted SQL.
            return self._trusted_param(function, name, seen)
        if name in self.functions:
            return all(self._returns_trusted(f, seen) for f in self.functions[name])
        # A DDL or result object: its fields are checked where they are interpolated.
        return name in self.classes

    def _returns_trusted(self, function: Function, seen: frozenset[str]) -> bool:
        key = f"returns:{function.module}:{function.qualname}"
        if key in seen:
            return True
        cache_key = (function.module, function.qualname, "returns")
        if cache_key in self._trust_cache:
            return self._trust_cache[cache_key]
        seen = seen | {key}
        module = self.modules[function.module]
        node = function.node
        values = [n.value for n in ast.walk(node) if isinstance(n, ast.Return | ast.Yield) and n.value is not None]
        result = all(self.trusted(value, module, function, seen) for value in values)
        self._trust_cache[cache_key] = result
        return result

    # --- Finding SQL ----------------------------------------------------------------------------------------------

    def check(self) -> list[Finding]:
        """Every SQL interpolation and formatting in the analysed modules that the rules do not allow."""
        for module in self.modules.values():
            owners = self._owners(module)
            messages = self._message_nodes(module.tree)
            for node in ast.walk(module.tree):
                function = owners.get(id(node))
                if id(node) in messages or self._quoted(node):
                    continue
                where = (module.name, function.qualname if function else "")
                if isinstance(node, ast.JoinedStr) and where not in NOT_SQL:
                    for part in node.values:
                        if isinstance(part, ast.FormattedValue) and not self.trusted(
                            part.value, module, function, frozenset()
                        ):
                            self._report(module, function, part.value, "a value interpolated into SQL")
                elif (
                    isinstance(node, ast.BinOp)
                    and isinstance(node.op, ast.Mod)
                    and self._sql_operand(node.left, module)
                ):
                    self._report(module, function, node, "% formatting of SQL")
                elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                    if self._sql_operand(node.left, module) or self._sql_operand(node.right, module):
                        for side in (node.left, node.right):
                            if not self.trusted(side, module, function, frozenset()):
                                self._report(module, function, side, "a value concatenated into SQL")
                elif (
                    isinstance(node, ast.Call)
                    and self._callee(node) == "format"
                    and isinstance(node.func, ast.Attribute)
                ):
                    self._report(module, function, node, ".format() on a string in the store", node.func)
                    # Even an allowed .format() may only fill in identifiers and constants.
                    for argument in [*node.args, *(k.value for k in node.keywords)]:
                        if not self.trusted(argument, module, function, frozenset()):
                            self.findings.append(
                                Finding(module.name, node.lineno, function.qualname if function else "",
                                        ast.unparse(argument), "a value formatted into SQL")
                            )  # fmt: skip
        return self.findings

    def _quoted(self, node: ast.AST) -> bool:
        """An argument of a quoting helper, which escapes whatever it gets."""
        call = self._parent_call.get(id(node))
        return call is not None and self._callee(call) in QUOTING

    def _report(
        self, module: Module, function: Function | None, node: ast.expr, why: str, key: ast.expr | None = None
    ) -> None:
        qualname = function.qualname if function else ""
        entry = (module.name, qualname, ast.unparse(key or node))
        if entry in ALLOWED:
            self.used.add(entry)
            return
        self.findings.append(Finding(module.name, node.lineno, qualname, ast.unparse(node), why))

    def _owners(self, module: Module) -> dict[int, Function]:
        """Each node's innermost function of the module."""
        owners: dict[int, Function] = {}
        for functions in self.functions.values():
            for function in functions:
                if function.module != module.name:
                    continue
                for child in ast.walk(function.node):
                    current = owners.get(id(child))
                    if current is None or len(function.qualname) >= len(current.qualname):
                        owners[id(child)] = function
        return owners

    def _message_nodes(self, tree: ast.Module) -> set[int]:
        """Nodes inside `raise` statements and message calls (error texts, log lines): not SQL."""
        found: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) or (isinstance(node, ast.Call) and self._callee(node) in MESSAGE_CALLS):
                found.update(id(child) for child in ast.walk(node))
        return found

    @staticmethod
    def _literal_text(node: ast.expr) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(p.value for p in node.values if isinstance(p, ast.Constant) and isinstance(p.value, str))
        return ""

    def _looks_like_sql(self, node: ast.expr) -> bool:
        return SQL_TEXT.search(self._literal_text(node)) is not None

    def _sql_operand(self, node: ast.expr, module: Module | None = None) -> bool:
        if isinstance(node, ast.Name) and module is not None and node.id in module.constants:
            node = module.constants[node.id]
        return isinstance(node, ast.Constant | ast.JoinedStr) and self._looks_like_sql(node)


def _store_sources() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(STORE.glob("*.py"))}


def test_store_sql_interpolates_only_constants_identifiers_and_checked_fragments() -> None:
    checker = Checker(_store_sources())
    findings = checker.check()
    assert not findings, "SQL built from values in correlator/store/:\n" + "\n".join(map(str, findings))


def test_every_allowed_entry_is_still_needed() -> None:
    checker = Checker(_store_sources())
    checker.check()
    assert set(ALLOWED) == checker.used, f"unused ALLOWED entries: {set(ALLOWED) - checker.used}"
    functions = {(f.module, f.qualname) for fs in checker.functions.values() for f in fs}
    assert set(NOT_SQL) <= functions, f"NOT_SQL names functions that are gone: {set(NOT_SQL) - functions}"


BAD_SNIPPETS = {
    "f-string": """
def rows_of(store, service):
    return store.rows(f"SELECT * FROM otel.otel_traces WHERE ServiceName = '{service}'")
""",
    "percent": """
def rows_of(store, service):
    return store.rows("SELECT * FROM otel.otel_traces WHERE ServiceName = '%s'" % service)
""",
    "percent on a constant": """
QUERY = "SELECT * FROM otel.otel_traces WHERE ServiceName = '%s'"

def rows_of(store, service):
    return store.rows(QUERY % service)
""",
    "a value inside an SQL string literal": """
def _metric(name):
    return f"MetricName = '{name}'"

def rows_of(store, metric):
    return store.rows("SELECT * FROM t WHERE " + _metric(metric))
""",
    "a builder passed as a function and also called with a value": """
def _check(attrs):
    return f"length({attrs})"

def _walk(check):
    return f"SELECT {check('a')}"

def rows_of(store, column):
    return store.rows(_walk(_check)), store.rows(f"SELECT {_check(column)}")
""",
    "format": """
def rows_of(store, service):
    return store.rows("SELECT * FROM otel.otel_traces WHERE ServiceName = '{}'".format(service))
""",
    "concatenation": """
def rows_of(store, service):
    return store.rows("SELECT * FROM otel.otel_traces WHERE ServiceName = '" + service + "'")
""",
    "through a local": """
def rows_of(store, service):
    condition = "ServiceName = '" + service + "'"
    return store.rows(f"SELECT * FROM t WHERE {condition}")
""",
    "through a builder called with a value": """
def _where(value):
    return f"ServiceName = '{value}'"

def rows_of(store, service):
    return store.rows(f"SELECT * FROM t WHERE {_where(service)}")
""",
    "through a constant built from the environment": """
import os
WHERE = f"ServiceName = '{os.environ['SERVICE']}'"

def rows_of(store):
    return store.rows(f"SELECT * FROM t WHERE {WHERE}")
""",
    "a DDL field from outside": """
from dataclasses import dataclass

@dataclass(frozen=True)
class Table:
    name: str
    ttl: str

    def render(self):
        return f"CREATE TABLE {quote_identifier(self.name)} TTL {self.ttl}"

def create(store, request):
    store.command(Table("t", request.ttl).render())
""",
}


@pytest.mark.parametrize("snippet", BAD_SNIPPETS.values(), ids=list(BAD_SNIPPETS))
def test_the_checker_flags_a_value_in_sql(snippet: str) -> None:
    assert Checker({"bad.py": snippet}).check(), "the checker let a value into SQL"


def test_the_checker_passes_constants_identifiers_and_parameters() -> None:
    good = """
IS_REQUEST = "SpanKind IN ('Server', 'Consumer')"
TOP = f\"\"\"
SELECT SpanName, count() FROM $traces
WHERE ServiceName = {{service:String}} AND {IS_REQUEST}
LIMIT {{limit:UInt32}}
\"\"\"

def _where(column):
    return f"{column} = {{value:String}}"

def top(store, service, limit, threads):
    sql = store.sql(TOP, traces="otel_traces")
    extra = f"SELECT 1 FROM {store.table('otel_logs')} WHERE {_where('Body')} SETTINGS max_threads = {int(threads)}"
    return store.rows(sql, {"service": service, "limit": limit}), store.rows(extra, {"value": service})
"""
    assert Checker({"good.py": good}).check() == []
