"""Contract: every recorded request of the real Scope v0.2.4, replayed against the emulator.

Table-driven from the files in ``scope-v0.2.4/``: a single-request file is replayed
after its setup in ``SETUPS`` put the emulator into the state the recording needed
(nothing loaded, a pipeline loaded, a live session, a deleted one, …), and the answer
must have the recorded status and JSON shape (keys and types), and the recorded values
where the value is the behaviour (``exact``, or the paths in ``values``). A
multi-step file names its behaviour test in ``SCENARIOS`` (``test_scenarios.py``). A
file neither table knows fails: add it there.
"""

from __future__ import annotations

import pytest
import test_scenarios
from lab import (
    TEXT_SESSION,
    Lab,
    Spec,
    asset_uploaded,
    check,
    fresh,
    full_session,
    full_session_then_post,
    load_failed,
    load_failed_and_read,
    loading,
    passthrough_loaded,
    replay,
    viz_deleted,
    viz_live,
    viz_loaded,
)
from recordings import load, recording_names, recordings_dir, sdp, sdp_summary

from soundscape.emulator.catalog import GPU_PIPELINES
from soundscape.emulator.peer import ScopePeer

ANSWER = Spec(viz_loaded, exact=False, values=("type",), extra_keys=frozenset({"body.sdp"}))
ASSET = ("path", "created_at")

SETUPS: dict[str, Spec] = {
    "assets-list.json": Spec(fresh),
    "assets-list.after-upload.json": Spec(
        asset_uploaded, ignore=tuple(f"assets.0.{k}" for k in ASSET)
    ),
    "assets-upload.json": Spec(fresh, ignore=ASSET),
    "assets-upload.bad-extension.json": Spec(fresh),
    "assets-upload.no-filename.json": Spec(fresh),
    "delete-closed-session.json": Spec(viz_deleted),
    "delete-session.json": Spec(viz_live),
    "delete-unknown-session.json": Spec(fresh),
    "hardware-info.json": Spec(fresh),
    "health.json": Spec(fresh, exact=False, values=("status", "version")),
    "ice-servers.json": Spec(fresh),
    "lora-list.json": Spec(fresh),
    "lora-list.v01-path.json": Spec(fresh),
    "models-status.controller-viz.json": Spec(fresh),
    "models-status.no-param.json": Spec(fresh),
    "models-status.rife.json": Spec(fresh),
    "offer-400-after-failed-load.json": Spec(load_failed),
    "offer-400-not-loaded.json": Spec(fresh),
    "offer-422-bad-params.json": Spec(viz_loaded),
    "offer-422-input-mode.json": Spec(viz_loaded),
    "offer-422-kv-bias.json": Spec(viz_loaded),
    "offer-422-no-sdp.json": Spec(viz_loaded),
    "offer-answer.json": ANSWER,
    "patch-closed-session.json": Spec(viz_deleted),
    "patch-known-session.json": Spec(viz_live),
    "patch-unknown-session.bad-body.json": Spec(fresh),
    "patch-unknown-session.empty.json": Spec(fresh),
    "patch-unknown-session.one-candidate.json": Spec(fresh),
    "pipeline-load.json": Spec(fresh),
    "pipeline-load.400-empty.json": Spec(fresh),
    "pipeline-load.unknown-id.json": Spec(fresh),
    "pipeline-status.after-error.json": Spec(load_failed_and_read),
    "pipeline-status.error.json": Spec(load_failed),
    "pipeline-status.loaded.controller-viz.json": Spec(viz_loaded),
    "pipeline-status.loaded.passthrough.json": Spec(passthrough_loaded),
    "pipeline-status.loading.json": Spec(loading),
    "pipeline-status.not_loaded.json": Spec(fresh),
    # The recording's six CPU pipelines as recorded; the GPU ones are served beside them.
    "pipelines-schemas.json": Spec(
        fresh, extra_keys=frozenset(f"body.pipelines.{p}" for p in GPU_PIPELINES)
    ),
    "plugins.json": Spec(fresh),
    "recvonly-no-frames.json": Spec(
        viz_loaded,
        exact=False,
        values=("type",),
        extra_keys=frozenset({"body.sdp"}),
        direction="recvonly",
    ),
    "restart.json": Spec(viz_live),
    "root.json": Spec(fresh),
    "session-metrics.json": Spec(
        viz_live, exact=False, keyed_by_id=frozenset({"body.sessions"}), values=("gpu",)
    ),
    "session-metrics.no-session.json": Spec(fresh),
    "session-parameters.get.json": Spec(full_session),
    "session-parameters.get.after-delete.json": Spec(viz_deleted),
    "session-parameters.get.after-post.json": Spec(full_session_then_post),
    "session-parameters.get.no-session.json": Spec(fresh),
    "session-parameters.post.json": Spec(viz_live),
    "session-parameters.post.empty.json": Spec(viz_live),
    "session-parameters.post.empty.no-session.json": Spec(fresh),
    "session-parameters.post.no-session.json": Spec(fresh),
    "session-parameters.post.out-of-range.json": Spec(viz_live),
}

# Multi-step recordings: the behaviour test in test_scenarios.py that replays each.
SCENARIOS: dict[str, str] = {
    "datachannel-messages.json": "test_datachannel_messages",
    "input-source.json": "test_input_source_is_ignored",
    "mode-switch.json": "test_mode_switch_changes_nothing",
    "recvonly-no-frames.json": "test_recvonly_gets_zero_frames",
    "renegotiation.json": "test_renegotiation",
    "restart.json": "test_restart",
    "status-sequences.json": "test_status_sequences",
    "video.json": "test_video",
    "video-mode.chain.json": "test_video_mode_chain",
    "video-mode.gray.json": "test_video_mode_gray",
    "video-mode.passthrough.json": "test_video_mode_passthrough",
    "video-mode.track-stops.json": "test_video_mode_track_stops",
}


@pytest.mark.parametrize("name", recording_names())
async def test_recording(name: str, lab: Lab) -> None:
    if name == "<recordings missing>":
        recordings_dir()  # raises with where it looked
    assert name in SETUPS or name in SCENARIOS, (
        f"{name} is a new recording: add its setup to SETUPS in tests/contract/test_recorded.py "
        "(single request) or its behaviour test to SCENARIOS (multi-step)"
    )
    if name in SCENARIOS:
        assert callable(getattr(test_scenarios, SCENARIOS[name], None)), SCENARIOS[name]
    if name not in SETUPS:
        return
    spec = SETUPS[name]
    record = load(name)
    await spec.setup(lab)
    response = await replay(lab, record, spec.direction)
    check(record, response, spec, lab)


@pytest.mark.parametrize(
    ("answer", "direction"),
    [("offer-answer.sdp.txt", "sendrecv"), ("recvonly-answer.sdp.txt", "recvonly")],
)
async def test_answer_sdp(answer: str, direction: str, lab: Lab) -> None:
    """Our answer has the recorded m-lines, directions, codec order and data channel."""
    await viz_loaded(lab)
    peer = ScopePeer(lab.emu.url, direction=direction)
    lab.peers.append(peer)
    response = await peer.connect(TEXT_SESSION)
    assert response.status_code == 200
    assert sdp_summary(response.json()["sdp"]) == sdp_summary(sdp(answer))


async def test_recorded_client_offer_is_answered(lab: Lab) -> None:
    """The real client's offer (``offer.sdp.txt``) gets the recorded answer's structure."""
    await viz_loaded(lab)
    body = {"sdp": sdp("offer.sdp.txt"), "type": "offer", "initialParameters": TEXT_SESSION}
    response = await lab.http.post("/api/v1/webrtc/offer", json=body)
    assert response.status_code == 200, response.text
    assert sdp_summary(response.json()["sdp"]) == sdp_summary(sdp("offer-answer.sdp.txt"))
