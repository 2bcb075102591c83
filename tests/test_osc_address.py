"""The OSC address table: argument checking, lookup, feedback rendering, docs (pure)."""

from __future__ import annotations

import pytest

from soundscape.control import osc_docs
from soundscape.control.osc_address import TABLE, Arg, ArgError, View, bind
from soundscape.scope.params import ParameterStore

LORAS = {"wave": "/loras/wave.safetensors", "ink": "/loras/ink.safetensors"}


@pytest.fixture
def store() -> ParameterStore:
    return ParameterStore(loras=LORAS)


# --------------------------------------------------------------------------- bind


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("float", 1, 1.0),
        ("float", 0.25, 0.25),
        ("int", 8.0, 8),  # TouchDesigner sends CHOP values as floats
        ("int", 2**40, 2**40),
        ("bool", True, True),
        ("bool", 1.0, True),  # TouchOSC button
        ("bool", 0, False),
        ("str", "text", "text"),
        ("str", b"blob text", "blob text"),
        ("scene", "intro", "intro"),
        ("scene", 3.0, 3),
        ("any", [1, 2], [1, 2]),
    ],
)
def test_bind_converts(kind: str, value: object, expected: object) -> None:
    out = bind((Arg("v", kind),), (value,))
    assert out["v"] == expected
    assert type(out["v"]) is type(expected)


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("float", "0.5", "expected f, got string '0.5'"),
        ("float", True, "expected f, got true"),
        ("float", float("inf"), "expected f"),
        ("float", None, "got nil"),
        ("int", 2.5, "expected i, got float 2.5"),
        ("bool", 0.5, "expected T/F or 0/1"),
        ("bool", "yes", "expected T/F or 0/1"),
        ("str", 3, "expected s, got int 3"),
        ("str", b"\xff\xfe", "not UTF-8"),
        ("scene", True, "expected s or i"),
        ("any", None, "expected any, got nil"),
    ],
)
def test_bind_refuses_with_a_clear_message(kind: str, value: object, message: str) -> None:
    with pytest.raises(ArgError, match=message.replace("(", r"\(")):
        bind((Arg("v", kind),), (value,))


def test_bind_counts_and_optionals() -> None:
    spec = (Arg("text", "str"), Arg("weight", "float", optional=True))
    assert bind(spec, ("a",)) == {"text": "a", "weight": None}
    assert bind(spec, ("a", None)) == {"text": "a", "weight": None}  # Nil = left out
    assert bind(spec, ("a", 0.5)) == {"text": "a", "weight": 0.5}
    with pytest.raises(ArgError, match="3 arguments, at most 2"):
        bind(spec, ("a", 0.5, 1))
    with pytest.raises(ArgError, match="text: expected s, got nothing"):
        bind(spec, ())


def test_bind_rest_flattens_arrays() -> None:
    spec = (Arg("steps", "int", rest=True),)
    assert bind(spec, (1000, 750.0, 500)) == {"steps": [1000, 750, 500]}
    assert bind(spec, ([1000, 750, 500],)) == {"steps": [1000, 750, 500]}
    with pytest.raises(ArgError):
        bind(spec, ())
    with pytest.raises(ArgError, match="nil is not a value"):
        bind((Arg("value", "any", rest=True),), (1, None))


def test_bind_prompt_lists() -> None:
    spec = (Arg("steps", "int"), Arg("method", "str"), Arg("prompts", "prompts", rest=True))
    out = bind(spec, (8, "slerp", "a forest", 0.8, "a city", "a sea", 2))
    assert out["prompts"] == [
        {"text": "a forest", "weight": 0.8},
        {"text": "a city", "weight": 1.0},
        {"text": "a sea", "weight": 2.0},
    ]
    with pytest.raises(ArgError, match=r"prompts\[0\].text: expected s, got float"):
        bind(spec, (8, "slerp", 0.5))


# --------------------------------------------------------------------------- lookup


def test_lookup_exact_before_templates() -> None:
    route, captures = TABLE.lookup("/scope/noise_scale")  # type: ignore[misc]
    assert route.action == "set_param" and route.param == "noise_scale" and captures == {}
    route, captures = TABLE.lookup("/scope/my_runtime_param")  # type: ignore[misc]
    assert route.action == "generic" and captures == {"param": "my_runtime_param"}
    route, captures = TABLE.lookup("/soundscape/prompt/2/weight")  # type: ignore[misc]
    assert route.action == "prompt_weight" and captures == {"index": "2"}
    route, captures = TABLE.lookup("/soundscape/norm/lora:wave")  # type: ignore[misc]
    assert route.action == "norm" and captures == {"target": "lora:wave"}
    assert TABLE.lookup("/nothing/here") is None
    assert TABLE.lookup("/scope/a/b") is None  # <param> is one address part


def test_concrete_addresses_follow_the_state(store: ParameterStore) -> None:
    names = TABLE.concrete(store)
    assert "/soundscape/prompt/0" in names and "/soundscape/prompt/1" not in names
    assert {"/soundscape/lora/ink", "/soundscape/lora/wave"} <= set(names)
    assert "/soundscape/norm/prompt_weight:0" in names
    assert "/soundscape/status" not in names  # outbound only
    assert "/soundscape/tap" in names
    # Drastic actions only answer their literal address, never a wildcard.
    assert "/soundscape/panic" not in names and "/soundscape/reconnect" not in names
    store.set("my_param", 3)
    store.set_prompt(1, text="two")
    names = TABLE.concrete(store)
    assert "/scope/my_param" in names and "/soundscape/prompt/1/weight" in names
    assert "/scope/pipeline_ids" not in names


# --------------------------------------------------------------------------- render


def test_render_everything(store: ParameterStore) -> None:
    store.set_lora_scale("wave", 2.5)
    store.set("my_param", [1, 2])
    view = View(
        store,
        transition_steps=4,
        transition_method="slerp",
        status={"state": "streaming", "fps": 29.5},
    )
    out = dict(TABLE.render(view))
    assert out["/scope/noise_scale"] == (0.7,)
    assert out["/soundscape/noise"] == (0.7,)
    assert out["/soundscape/norm/noise_scale"] == (0.7,)
    assert out["/soundscape/norm/kv_cache_attention_bias"] == pytest.approx(((0.3 - 0.01) / 0.99,))
    assert out["/scope/paused"] == (False,)
    assert out["/scope/denoising_step_list"] == (1000, 750, 500, 250)
    assert out["/scope/prompt"] == (store.get("prompts")[0]["text"],)
    assert out["/soundscape/prompt/1"] == ("", 0.0)  # empty slots are cleared
    assert out["/soundscape/lora/wave"] == (2.5,)
    assert "/soundscape/lora/ink" not in out  # no scale set
    assert out["/soundscape/norm/lora:wave"] == (0.625,)
    assert out["/scope/my_param"] == (1, 2)
    assert out["/scope/transition_steps"] == (4,)
    assert out["/scope/temporal_interpolation_method"] == ("slerp",)
    assert out["/soundscape/status"] == ("streaming",)
    assert out["/soundscape/status/fps"] == (29.5,)
    assert "/scope/pipeline_ids" not in out and "/scope/lora_scales" not in out


def test_render_only_what_changed(store: ParameterStore) -> None:
    out = dict(TABLE.render(View(store), {"noise_scale"}))
    assert set(out) == {"/scope/noise_scale", "/soundscape/noise", "/soundscape/norm/noise_scale"}
    out = dict(TABLE.render(View(store), {"prompts"}))
    assert "/soundscape/prompt/0/weight" in out and "/soundscape/norm/prompt_weight:0" in out
    assert "/scope/noise_scale" not in out


# --------------------------------------------------------------------------- docs


def test_docs_osc_md_is_current() -> None:
    text = osc_docs.DOC.read_text(encoding="utf-8")
    assert osc_docs.update(text) == text, "run: python -m soundscape.control.osc_docs --write"


def test_every_inbound_address_is_documented() -> None:
    text = osc_docs.DOC.read_text(encoding="utf-8")
    for route in TABLE.routes:
        assert f"`{route.address}`" in text
