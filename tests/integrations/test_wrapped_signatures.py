"""Governed functions in agent frameworks: what `gt.wrap(fn, action_id)`
returns keeps fn's signature, annotations (resolved, though this module
uses `from __future__ import annotations`), name and docstring, so the
OpenAI Agents SDK, LangChain and pydantic-ai take it unchanged; and every
call they make goes through cra."""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, FunctionTool, RunConfig, Runner, function_tool
from execute_helpers import Harness
from integration_helpers import call, executed, harness, say, scripted_model, tool_outputs
from langchain_core.tools import StructuredTool, tool
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.models.test import TestModel

WEATHER: dict[str, Any] = {"temp": 21}


def get_weather(city: str, units: str = "metric") -> dict[str, Any]:
    """Get the current weather for a city."""
    return {"city": city, "units": units, **WEATHER}


async def aget_weather(city: str, units: str = "metric") -> dict[str, Any]:
    """Get the current weather for a city (async)."""
    await asyncio.sleep(0)
    return {"city": city, "units": units, "async": True, **WEATHER}


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness() as hh:
        yield hh


def governed(h: Harness, fn: Any = get_weather) -> Any:
    return h.rt.governed(h.sid).wrap(fn, "weather.get")


def shape(fn: Any) -> list[tuple[str, Any, Any]]:
    """Name, kind and default of each parameter (annotations may be resolved or not)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def weather_calls(h: Harness) -> list[dict[str, Any]]:
    return [p for p in executed(h) if p["action_id"] == "weather.get"]


# -- the wrapped function itself --------------------------------------------------------


def test_the_wrapper_keeps_the_function_metadata(h: Harness) -> None:
    fn = governed(h)
    assert fn.__name__ == "get_weather"
    assert fn.__doc__ == "Get the current weather for a city."
    assert shape(fn) == shape(get_weather)
    hints = typing.get_type_hints(fn)
    assert hints == {"city": str, "units": str, "return": dict[str, Any]}
    assert not inspect.iscoroutinefunction(fn)


def test_a_positional_call_goes_through_cra(h: Harness) -> None:
    fn = governed(h)
    assert fn("Paris") == {"city": "Paris", "units": "metric", "temp": 21}
    assert fn("Oslo", units="imperial")["units"] == "imperial"
    assert len(weather_calls(h)) == 2


def test_an_async_function_gives_an_async_governed_function(h: Harness) -> None:
    fn = governed(h, aget_weather)
    assert inspect.iscoroutinefunction(fn)
    assert shape(fn) == shape(aget_weather)
    assert asyncio.run(fn("Paris"))["async"] is True
    assert len(weather_calls(h)) == 1


# -- OpenAI Agents SDK ---------------------------------------------------------------------


def test_agents_function_tool_takes_the_wrapper(h: Harness) -> None:
    ft = function_tool(governed(h))
    assert isinstance(ft, FunctionTool)
    assert ft.name == "get_weather"
    assert ft.description == "Get the current weather for a city."
    schema = ft.params_json_schema
    assert set(schema["properties"]) == {"city", "units"}
    assert schema["properties"]["city"]["type"] == "string"
    assert schema["properties"]["units"]["default"] == "metric"


@pytest.mark.parametrize("fn", [get_weather, aget_weather])
def test_an_agents_run_calls_the_wrapper_through_cra(h: Harness, fn: Any) -> None:
    model = scripted_model(
        [call(fn.__name__, {"city": "Paris", "units": "metric"}, "c1")], [say("21 degrees")]
    )
    agent = Agent(name="w", tools=[function_tool(governed(h, fn))], model=model)
    result = asyncio.run(Runner.run(agent, "Weather?", run_config=RunConfig(tracing_disabled=True)))
    assert result.final_output == "21 degrees"
    assert "Paris" in tool_outputs(model.inputs[1])["c1"]
    assert len(weather_calls(h)) == 1


# -- LangChain -----------------------------------------------------------------------------


def test_structured_tool_from_function_takes_the_wrapper(h: Harness) -> None:
    lc = StructuredTool.from_function(governed(h))
    assert lc.name == "get_weather"
    assert lc.description == "Get the current weather for a city."
    assert set(lc.args) == {"city", "units"}
    assert lc.args["units"]["default"] == "metric"
    assert lc.invoke({"city": "Paris"})["city"] == "Paris"
    assert len(weather_calls(h)) == 1


def test_the_tool_decorator_takes_the_wrapper(h: Harness) -> None:
    lc = tool(governed(h))
    assert isinstance(lc, StructuredTool)
    assert set(lc.args) == {"city", "units"}
    assert lc.invoke({"city": "Rome", "units": "imperial"})["units"] == "imperial"
    assert len(weather_calls(h)) == 1


def test_an_async_wrapper_is_a_langchain_coroutine(h: Harness) -> None:
    lc = StructuredTool.from_function(coroutine=governed(h, aget_weather))
    assert set(lc.args) == {"city", "units"}
    assert asyncio.run(lc.ainvoke({"city": "Paris"}))["async"] is True
    assert len(weather_calls(h)) == 1


# -- pydantic-ai ---------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [get_weather, aget_weather])
def test_a_pydantic_ai_agent_calls_the_wrapper_through_cra(h: Harness, fn: Any) -> None:
    model = TestModel()
    agent = PydanticAgent(model, tools=[governed(h, fn)])
    # `asyncio.run`, not `run_sync`: that one leaves an event loop open behind it.
    result = asyncio.run(agent.run("Weather in Paris?"))
    params = model.last_model_request_parameters
    assert params is not None
    (definition,) = params.function_tools
    assert definition.name == fn.__name__
    assert set(definition.parameters_json_schema["properties"]) == {"city", "units"}
    assert "temp" in result.output
    calls = weather_calls(h)
    assert len(calls) == 1
