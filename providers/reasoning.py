"""What a model may be asked, from its plugin's ``modelRules``: the reasoning knob it takes (effort levels, a
thinking budget), whether it calls tools and the sampling parameters it refuses.

One rule, asked in three places: a profile being saved (its parameters are refused with the reason), a send
being prepared (a ``generation.error`` before anything is sent) and every provider's ``stream`` (an
``InvalidRequestError`` before any request, for callers that build requests themselves).

May import: ``providers.contract`` and ``providers.manifest`` (data only; no Django, no network).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.contract import ReasoningOptions
from providers.manifest import ProviderConfig

# Profile parameters handed to the plugin as ``ChatRequest.options`` (the plugin's own switches).
PLUGIN_OPTIONS = ("api", "prompt_caching")


def options_from_parameters(parameters: Mapping[str, Any]) -> ReasoningOptions | None:
    """A profile's ``reasoning_*`` parameters as the request's ``ReasoningOptions`` (None: provider default)."""
    keys = ("reasoning_effort", "reasoning_budget_tokens", "reasoning_summary")
    if not any(parameters.get(key) is not None for key in keys):
        return None
    summary = parameters.get("reasoning_summary")
    return ReasoningOptions(
        effort=parameters.get("reasoning_effort"),
        budget_tokens=parameters.get("reasoning_budget_tokens"),
        summary=True if summary is None else bool(summary),
    )


def reasoning_problem(config: ProviderConfig, model: str, reasoning: ReasoningOptions | None) -> str | None:
    """Why ``model`` cannot take ``reasoning``, naming the model and what it takes; None when it can."""
    if reasoning is None or (reasoning.effort is None and reasoning.budget_tokens is None):
        return None
    rule = config.rule_for(model)
    knob = rule.reasoning if rule is not None else None
    if reasoning.effort is not None:
        if knob is None or not knob.efforts:
            return f"The model {model!r} takes no reasoning effort{_budget_hint(knob)}."
        if reasoning.effort not in knob.efforts:
            accepted = ", ".join(knob.efforts)
            return f"The model {model!r} takes a reasoning effort of {accepted}, not {reasoning.effort!r}."
    if reasoning.budget_tokens is not None:
        if knob is None or knob.budget_tokens is None:
            efforts = f" (it takes a reasoning effort of {', '.join(knob.efforts)})" if knob and knob.efforts else ""
            return f"The model {model!r} takes no thinking budget{efforts}."
        allowed = knob.budget_tokens
        if not allowed.min <= reasoning.budget_tokens <= allowed.max:
            return (
                f"The model {model!r} takes a thinking budget of {allowed.min} to {allowed.max} tokens, "
                f"not {reasoning.budget_tokens}."
            )
    return None


def _budget_hint(knob: Any) -> str:
    if knob is not None and knob.budget_tokens is not None:
        return f" (it takes a thinking budget of {knob.budget_tokens.min} to {knob.budget_tokens.max} tokens)"
    return ""


def takes_tools(config: ProviderConfig, model: str) -> bool:
    """Whether ``model`` can call tools (its rule's ``tools``; a model no rule matches can)."""
    rule = config.rule_for(model)
    return rule.tools if rule is not None else True


def tools_problem(config: ProviderConfig, model: str, tools: tuple[Any, ...]) -> str | None:
    """Why ``model`` cannot be offered ``tools``; None when it can (or none are offered)."""
    if tools and not takes_tools(config, model):
        return f"The model {model!r} cannot call tools; switch its tools off or choose another model."
    return None


def refused_parameters(config: ProviderConfig, model: str) -> tuple[str, ...]:
    """The sampling parameters ``model`` rejects: qtap drops them (and says so) instead of failing the call."""
    rule = config.rule_for(model)
    return rule.refused_parameters if rule is not None else ()


def dropped_note(config: ProviderConfig, model: str, parameters: Mapping[str, Any]) -> str:
    """What a person is told when parameters of their profile are not sent because ``model`` refuses them."""
    dropped = [name for name in refused_parameters(config, model) if parameters.get(name) not in (None, "", [])]
    if not dropped:
        return ""
    return f"{' and '.join(dropped)} not sent: {model} does not take {'it' if len(dropped) == 1 else 'them'}."


def parameter_problems(config: ProviderConfig, model: str, parameters: Mapping[str, Any]) -> list[str]:
    """Every reason a profile's parameters do not fit its plugin and model, one line each."""
    problems = []
    if problem := reasoning_problem(config, model, options_from_parameters(parameters)):
        problems.append(problem)
    api = parameters.get("api")
    if api is not None and api not in config.apis:
        offered = ", ".join(config.apis) if config.apis else "no choice of API"
        problems.append(f"{config.display_name} offers {offered}; 'api' cannot be {api!r}.")
    if parameters.get("prompt_caching") and not config.prompt_caching:
        problems.append(f"{config.display_name} has no prompt caching to switch on.")
    return problems
