"""Claim checks: small expressions over ``metric(experiment)`` calls, compiled (with :mod:`ast`, never ``eval``)
into a *margin*, a number that is positive exactly when the claim holds on the given values.

A comparison ``a > b`` has margin ``a - b`` (``a < b``: ``b - a``); a chain ``a < b < c`` and an ``and`` take the
smallest margin of their parts, an ``or`` the largest, a ``not`` the negated one. The reproduced tables bootstrap
this margin to decide a claim with an interval (common/verdicts.py). ``>=`` reads as ``>``: an interval cannot tell
them apart; for counts compare with a half-integer (``cells_above(main) > 17.5``).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from common.errors import ReprozooError

ALLOWED_CHECK_FORMS = (
    "allowed forms: numbers, metric calls such as gauc(table4_twin) (metric and experiment as bare names), "
    "+ - * /, unary -, abs(x), max(a, b, ...), min(a, b, ...), comparisons < <= > >= (chains ok) "
    "and and/or/not over comparisons"
)

Values = Mapping[str, float]
Margin = Callable[[Values], float]


class CheckError(ReprozooError, ValueError):
    """A claim check that cannot be compiled or evaluated; the message quotes it and says what is allowed."""


# the sign that turns `left - right` into a margin that is positive when the comparison holds
_COMPARISON_SIGN: dict[type[ast.cmpop], float] = {ast.Gt: 1.0, ast.GtE: 1.0, ast.Lt: -1.0, ast.LtE: -1.0}
_ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {"abs": abs, "max": max, "min": min}


@dataclass(frozen=True)
class CompiledCheck:
    text: str
    margin: Margin
    calls: dict[str, tuple[str, str]]  # "gauc(table4_twin)" -> ("gauc", "table4_twin"), first-seen order

    def evaluate(self, values: Values) -> float:
        """The margin on `values` (one number per call); a CheckError if it divides by zero."""
        try:
            return self.margin(values)
        except ZeroDivisionError:
            raise CheckError(f"claim check {self.text!r} divides by zero with values {dict(values)}.") from None


def compile_check(check: str) -> CompiledCheck:
    try:
        tree = ast.parse(check.strip(), mode="eval")
    except SyntaxError as exc:
        raise CheckError(
            f"claim check {check!r} is not a valid expression ({exc.msg}); {ALLOWED_CHECK_FORMS}."
        ) from None
    calls: dict[str, tuple[str, str]] = {}
    return CompiledCheck(text=check, margin=_compile_node(tree.body, True, check, calls), calls=calls)


def _compile_node(node: ast.expr, boolean: bool, check: str, calls: dict[str, tuple[str, str]]) -> Callable:
    """Turn an allowed node into a function of the metric values: a margin where ``boolean``, else a number."""

    def sub(child: ast.expr, child_boolean: bool) -> Callable:
        return _compile_node(child, child_boolean, check, calls)

    if boolean and isinstance(node, ast.Compare) and all(type(op) in _COMPARISON_SIGN for op in node.ops):
        operands = [sub(child, False) for child in (node.left, *node.comparators)]
        signs = [_COMPARISON_SIGN[type(op)] for op in node.ops]
        pairs = list(zip(signs, operands[:-1], operands[1:], strict=True))
        return lambda v: min(sign * (a(v) - b(v)) for sign, a, b in pairs)
    if boolean and isinstance(node, ast.BoolOp):
        parts = [sub(child, True) for child in node.values]
        combine = min if isinstance(node.op, ast.And) else max
        return lambda v: combine(part(v) for part in parts)
    if boolean and isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = sub(node.operand, True)
        return lambda v: -inner(v)
    if not boolean and isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if not isinstance(node.value, bool):
            value = float(node.value)
            return lambda v: value
    if not boolean and isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right, apply = sub(node.left, False), sub(node.right, False), _ARITHMETIC[type(node.op)]
        return lambda v: apply(left(v), right(v))
    if not boolean and isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = sub(node.operand, False)
        return lambda v: -inner(v)
    if not boolean and isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name, args = node.func.id, node.args
        if name in _FUNCTIONS:
            if len(args) == 1 if name == "abs" else len(args) >= 2:
                function, compiled = _FUNCTIONS[name], [sub(arg, False) for arg in args]
                return lambda v: function(*(arg(v) for arg in compiled))
        elif len(args) == 1 and isinstance(args[0], ast.Name):
            key = f"{name}({args[0].id})"
            calls.setdefault(key, (name, args[0].id))
            return lambda v: v[key]
    expected = "a comparison (< <= > >=) or and/or/not of comparisons" if boolean else "a number"
    raise CheckError(
        f"claim check {check!r} uses `{ast.unparse(node)}` ({type(node).__name__}) where {expected} is "
        f"expected; {ALLOWED_CHECK_FORMS}."
    )
