"""Governed functions that look exactly like the functions they govern:
the same name, docstring, signature and (resolved) annotations, so agent
frameworks that build tool schemas from a function accept them unchanged,
and positional and keyword arguments bound through the signature."""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Awaitable, Callable, Dict, Mapping, Tuple

__all__ = ["bind_parameters", "governed_function"]

Call = Callable[..., Any]
ACall = Callable[..., Awaitable[Any]]


def _resolved_signature(fn: Callable[..., Any]) -> Tuple[inspect.Signature, Dict[str, Any]]:
    """`fn`'s signature with its annotations evaluated in `fn`'s own module
    (so `from __future__ import annotations` and names imported there work
    anywhere), and those annotations. An annotation that cannot be
    evaluated stays as written."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:
        hints = {}
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
    ]
    ret = hints.get("return", sig.return_annotation)
    annotations = {
        p.name: p.annotation for p in params if p.annotation is not inspect.Parameter.empty
    }
    if ret is not inspect.Signature.empty:
        annotations["return"] = ret
    return sig.replace(parameters=params, return_annotation=ret), annotations


def bind_parameters(
    sig: inspect.Signature, args: Tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Dict[str, Any]:
    """The call's arguments by parameter name, as `fn(*args, **kwargs)`
    would bind them (a `TypeError` where it would fail). Defaults are left
    to the executor; `**kwargs` of the signature are spread out."""
    bound = sig.bind(*args, **kwargs)
    out: Dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                raise TypeError(
                    f"*{name} cannot be passed to a governed action (parameters have names)"
                )
        else:
            out[name] = value
    return out


def governed_function(fn: Callable[..., Any], action_id: str, call: Call, acall: ACall) -> Any:
    """A function that runs `action_id` through `call` (or, for a
    coroutine function, `acall`) with the arguments bound to `fn`'s
    parameter names, and otherwise looks like `fn`."""
    sig, annotations = _resolved_signature(fn)

    if inspect.iscoroutinefunction(fn):

        async def agoverned(*args: Any, **kwargs: Any) -> Any:
            return await acall(action_id, **bind_parameters(sig, args, kwargs))

        wrapper: Callable[..., Any] = agoverned
    else:

        def governed(*args: Any, **kwargs: Any) -> Any:
            return call(action_id, **bind_parameters(sig, args, kwargs))

        wrapper = governed
    functools.update_wrapper(wrapper, fn)
    wrapper.__signature__ = sig  # type: ignore[attr-defined]
    wrapper.__annotations__ = annotations
    wrapper.__cra_action__ = action_id  # type: ignore[attr-defined]
    return wrapper
