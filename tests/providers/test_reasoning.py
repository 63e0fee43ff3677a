"""What a model may be asked comes from its plugin's modelRules, and is refused with the model's name and
the accepted values: when a profile is saved, and by every provider before any request."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from providers import errors
from providers.contract import ChatRequest, Message, ReasoningOptions
from providers.factory import create_llm_provider
from providers.reasoning import options_from_parameters, parameter_problems, reasoning_problem, refused_parameters
from providers.registry import registry
from providers.services import connection_profile_create
from tests.fakes.openai_dialect import FakeOpenAI
from tests.fakes.samples import collect

OPENAI = registry.get("qtap-plugin-openai").manifest.provider_config
ANTHROPIC = registry.get("qtap-plugin-anthropic").manifest.provider_config


def test_the_first_matching_rule_decides() -> None:
    assert OPENAI.rule_for("gpt-5-chat-latest").reasoning is None
    assert OPENAI.rule_for("gpt-5.1-chat").reasoning is None
    assert "none" in OPENAI.rule_for("gpt-5.5").reasoning.efforts
    assert "none" not in OPENAI.rule_for("gpt-5-mini").reasoning.efforts
    assert OPENAI.rule_for("gpt-4o") is None


@pytest.mark.parametrize(
    ("config", "model", "options", "expected"),
    [
        (
            OPENAI,
            "o3-mini",
            ReasoningOptions(effort="xhigh"),
            "'o3-mini' takes a reasoning effort of low, medium, high, not 'xhigh'",
        ),
        (OPENAI, "gpt-4o", ReasoningOptions(effort="low"), "'gpt-4o' takes no reasoning effort"),
        (
            OPENAI,
            "o3-mini",
            ReasoningOptions(budget_tokens=2048),
            "'o3-mini' takes no thinking budget (it takes a reasoning effort of low, medium, high)",
        ),
        (
            ANTHROPIC,
            "claude-haiku-4-5",
            ReasoningOptions(budget_tokens=512),
            "'claude-haiku-4-5' takes a thinking budget of 1024 to 64000 tokens, not 512",
        ),
        (
            ANTHROPIC,
            "claude-haiku-4-5",
            ReasoningOptions(effort="high"),
            "'claude-haiku-4-5' takes no reasoning effort (it takes a thinking budget of 1024 to 64000 tokens)",
        ),
    ],
)
def test_what_a_model_cannot_take_is_named(config, model, options, expected) -> None:
    assert expected in reasoning_problem(config, model, options)


@pytest.mark.parametrize(
    ("config", "model", "options"),
    [
        (OPENAI, "o3-mini", ReasoningOptions(effort="high")),
        (OPENAI, "gpt-5.5", ReasoningOptions(effort="none")),
        (ANTHROPIC, "claude-opus-4-6", ReasoningOptions(effort="xhigh", budget_tokens=4096)),
        (ANTHROPIC, "claude-haiku-4-5", ReasoningOptions(budget_tokens=1024)),
        (OPENAI, "gpt-4o", ReasoningOptions(summary=False)),  # no knob asked for
        (OPENAI, "gpt-4o", None),
    ],
)
def test_what_a_model_takes_passes(config, model, options) -> None:
    assert reasoning_problem(config, model, options) is None


def test_profile_parameters_become_options() -> None:
    assert options_from_parameters({}) is None
    assert options_from_parameters({"temperature": 0.2}) is None
    assert options_from_parameters({"reasoning_effort": "low"}) == ReasoningOptions(effort="low", summary=True)
    assert options_from_parameters({"reasoning_budget_tokens": 2048, "reasoning_summary": False}) == ReasoningOptions(
        budget_tokens=2048, summary=False
    )


def test_refused_sampling_parameters_come_from_the_rules() -> None:
    assert refused_parameters(OPENAI, "o3-mini") == ("temperature", "top_p")
    assert refused_parameters(OPENAI, "gpt-4o") == ()


def test_api_and_caching_switches_are_checked_against_the_plugin() -> None:
    one_api = OPENAI.model_copy(update={"apis": ("responses",), "prompt_caching": False})
    assert parameter_problems(one_api, "gpt-4o", {"api": "responses"}) == []
    assert parameter_problems(one_api, "gpt-4o", {"api": "chat_completions"}) == [
        "OpenAI offers responses; 'api' cannot be 'chat_completions'."
    ]
    assert parameter_problems(one_api, "gpt-4o", {"prompt_caching": True}) == [
        "OpenAI has no prompt caching to switch on."
    ]
    assert parameter_problems(one_api, "gpt-4o", {"prompt_caching": False}) == []


@pytest.mark.django_db
def test_a_profile_asking_what_its_model_cannot_take_is_refused(user) -> None:
    with pytest.raises(ValidationError) as refused:
        connection_profile_create(
            user=user, name="p", plugin="qtap-plugin-openai", model="gpt-4o", parameters={"reasoning_effort": "high"}
        )
    assert "'gpt-4o' takes no reasoning effort" in " ".join(refused.value.message_dict["parameters"])
    profile = connection_profile_create(
        user=user, name="q", plugin="qtap-plugin-openai", model="o3-mini", parameters={"reasoning_effort": "high"}
    )
    assert profile.parameters == {"reasoning_effort": "high"}


async def test_a_provider_refuses_before_any_request() -> None:
    with FakeOpenAI("openai") as fake:
        provider = create_llm_provider("qtap-plugin-openai", api_key="sk-test", base_url=fake.base_url)
        request = ChatRequest(
            model="o3-mini", messages=(Message("user", "hi"),), reasoning=ReasoningOptions(effort="xhigh")
        )
        try:
            with pytest.raises(errors.InvalidRequestError) as refused:
                await collect(provider.stream(request))
        finally:
            await provider.aclose()
        assert "'o3-mini'" in refused.value.message and "low, medium, high" in refused.value.message
        assert fake.requests == []
