"""Audio features with synthetic signals and a synthetic clock (no wall clock anywhere)."""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pytest
from structlog.testing import capture_logs

from soundscape.audio.config import AudioConfig, NormalizeSection
from soundscape.audio.features import DRUM_BAND, AudioAnalyzer, Features
from soundscape.audio.smoothing import AdaptiveRange, AttackRelease
from soundscape.audio.synth import drum_loop, f_measure
from soundscape.settings import Problem, build

SR = 48000


def run(analyzer: AudioAnalyzer, audio: np.ndarray, block: int, t0: float = 0.0) -> list[Features]:
    return [
        analyzer.process(audio[i : i + block], t0 + i / SR)
        for i in range(0, len(audio) - block + 1, block)
    ]


def tone(freq: float, seconds: float, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, level: float = 0.3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(int(seconds * SR))).astype(np.float32)


# --------------------------------------------------------------------------- timbre


def test_tone_is_tonal_and_noise_is_noisy() -> None:
    sine = run(AudioAnalyzer(), tone(440, 2.0), 512)[-1]
    hiss = run(AudioAnalyzer(), noise(2.0), 512)[-1]
    assert sine.texture < 0.2
    assert hiss.texture > 0.8


def test_texture_grows_with_the_noise_under_a_chord() -> None:
    # Flatness is a ratio of means, so it must not depend on the spectrum's
    # scale: a chord with a little noise is between tonal and noise, not noise.
    t = np.arange(3 * SR) / SR
    chord = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6, 440.0))
    textures = [
        run(AudioAnalyzer(), (chord + noise(3.0, level)).astype(np.float32), 512)[-1].texture
        for level in (0.003, 0.03, 0.1)
    ]
    assert 0.0 < textures[0] < textures[1] < textures[2] < 0.9


def test_brightness_follows_the_spectral_centroid() -> None:
    low = run(AudioAnalyzer(), tone(150, 2.0), 512)[-1]
    mid = run(AudioAnalyzer(), tone(1000, 2.0), 512)[-1]
    high = run(AudioAnalyzer(), tone(7000, 2.0), 512)[-1]
    assert low.brightness < 0.1
    assert low.brightness < mid.brightness < high.brightness
    assert high.brightness > 0.9


def test_bands_split_the_spectrum_at_the_configured_edges() -> None:
    config = AudioConfig(bands=[20.0, 300.0, 3000.0, 16000.0], band_names=["lo", "mid", "hi"])
    bass = run(AudioAnalyzer(config), tone(100, 2.0), 512)[-1]
    treble = run(AudioAnalyzer(config), tone(6000, 2.0), 512)[-1]
    assert set(bass.bands) == {"lo", "mid", "hi"}
    assert bass.bands["lo"] > 0.9 and bass.bands["hi"] < 0.1
    assert treble.bands["hi"] > 0.9 and treble.bands["lo"] < 0.1


# --------------------------------------------------------------------------- levels


@pytest.mark.parametrize("level_db", [-6.0, -40.0])
def test_energy_spans_the_full_range_on_loud_and_quiet_sets(level_db: float) -> None:
    loop = drum_loop(120, 12, level_db=level_db, seed=3)
    feats = run(AudioAnalyzer(), loop.audio, 512)
    settled = [f.energy for f in feats if f.t > 4.0]
    assert max(settled) > 0.95
    assert min(settled) < 0.3  # between hits


def test_silence_reads_zero_and_keeps_the_last_colour() -> None:
    analyzer = AudioAnalyzer()
    loud = run(analyzer, tone(3000, 1.0), 512)[-1]
    quiet = run(analyzer, np.zeros(3 * SR, dtype=np.float32), 512, t0=1.0)[-1]
    assert quiet.energy < 1e-3  # the release has run its course toward 0
    assert all(v < 1e-3 for v in quiet.bands.values())
    assert quiet.brightness == pytest.approx(loud.brightness)  # held, not noise


def test_normalisation_adapts_to_a_quieter_passage() -> None:
    config = AudioConfig(normalize=NormalizeSection(fall=6.0, range_db=36.0, floor_db=-72.0))
    analyzer = AudioAnalyzer(config)
    loud = drum_loop(120, 6, level_db=-6, seed=1).audio
    quiet = drum_loop(120, 12, level_db=-30, seed=2).audio
    run(analyzer, loud, 512)
    feats = run(analyzer, quiet, 512, t0=6.0)
    early = max(f.energy for f in feats if f.t < 7.0)
    late = max(f.energy for f in feats if f.t > 14.0)
    assert early < 0.6  # right after the loud part, 24 dB down reads low
    assert late > 0.95  # 24 dB / 6 dB/s later it uses the full range again


def test_adaptive_range_maps_peak_to_one_and_floor_to_zero() -> None:
    r = AdaptiveRange(fall=1.0, range_db=30.0, floor_db=-70.0)
    assert r.update(-10.0, 0.01) == 1.0
    assert r.update(-25.0, 0.01) == pytest.approx(0.5, abs=0.01)
    assert r.update(-80.0, 0.01) == 0.0


# --------------------------------------------------------------------------- smoothing


@pytest.mark.parametrize("dt", [256 / SR, 512 / SR, 0.001])
def test_attack_and_release_follow_time_not_steps(dt: float) -> None:
    s = AttackRelease(attack=0.05, release=0.4)
    steps = round(0.05 / dt)
    for _ in range(steps):
        s.update(1.0, dt)
    assert s.value == pytest.approx(1 - math.exp(-steps * dt / 0.05), rel=1e-9)
    s.value = 1.0
    steps = round(0.4 / dt)
    for _ in range(steps):
        s.update(0.0, dt)
    assert s.value == pytest.approx(math.exp(-steps * dt / 0.4), rel=1e-9)


def test_block_size_does_not_change_the_smoothed_curves() -> None:
    audio = drum_loop(100, 8, seed=4).audio
    small = run(AudioAnalyzer(AudioConfig(block_size=256)), audio, 256)
    large = run(AudioAnalyzer(AudioConfig(block_size=512)), audio, 512)
    by_t = {round(f.t, 6): f for f in small}
    pairs = [(by_t[round(f.t, 6)], f) for f in large if f.t > 1.0]
    energy_diff = np.median([abs(a.energy - b.energy) for a, b in pairs])
    bright_diff = np.median([abs(a.brightness - b.brightness) for a, b in pairs])
    assert energy_diff < 0.05
    assert bright_diff < 0.05


# --------------------------------------------------------------------------- onsets


@pytest.mark.parametrize(
    ("bpm", "kwargs"),
    [(128, {}), (90, {"pattern": "house"}), (170, {"swing": 0.3}), (100, {"snr_db": 20.0}),
     (120, {"level_db": -40.0})],
)  # fmt: skip
def test_onsets_match_the_ground_truth(bpm: float, kwargs: dict[str, object]) -> None:
    loop = drum_loop(bpm, 10, seed=bpm, **kwargs)  # type: ignore[arg-type]
    feats = run(AudioAnalyzer(AudioConfig(block_size=256)), loop.audio, 256)
    found = [f.onset_time for f in feats if f.onset_time is not None]
    assert all(f.onset for f in feats if f.onset_time is not None)
    assert f_measure(loop.onsets, np.array(found), 0.05) >= 0.95


def test_onset_reaches_the_stream_within_25_ms_at_block_256() -> None:
    loop = drum_loop(128, 10, seed=5)
    feats = run(AudioAnalyzer(AudioConfig(block_size=256)), loop.audio, 256)
    emitted = np.array([f.t + 256 / SR for f in feats if f.onset])  # when the block is done
    latencies = []
    for onset in loop.onsets:
        after = emitted[(emitted >= onset) & (emitted <= onset + 0.05)]
        assert len(after), f"onset at {onset:.3f} s not reported"
        latencies.append(after[0] - onset)
    assert max(latencies) <= 0.025


def test_odd_block_sizes_give_the_same_onsets() -> None:
    loop = drum_loop(128, 6, seed=6)
    even = run(AudioAnalyzer(AudioConfig(block_size=256)), loop.audio, 256)
    odd = run(AudioAnalyzer(AudioConfig(block_size=256)), loop.audio, 300)
    a = [f.onset_time for f in even if f.onset_time is not None]
    b = [f.onset_time for f in odd if f.onset_time is not None]
    assert len(a) == len(b)
    assert np.allclose(a, b, atol=1e-6)


# --------------------------------------------------------------------------- bad input


def test_bad_samples_are_silenced_and_logged_once() -> None:
    analyzer = AudioAnalyzer()
    block = np.full(512, np.nan, dtype=np.float32)
    with capture_logs() as logs:
        for i in range(5):
            f = analyzer.process(block, i * 512 / SR)
    assert [e["event"] for e in logs] == ["audio_bad_samples"]
    assert f.energy == 0.0
    assert all(math.isfinite(x) for x in (f.brightness, f.texture, f.onset_strength))
    good = run(analyzer, tone(440, 0.5), 512, t0=1.0)[-1]
    assert good.energy > 0.5  # recovers at once


def test_other_shapes_and_types_are_accepted() -> None:
    analyzer = AudioAnalyzer()
    stereo = np.stack([tone(440, 0.1), tone(440, 0.1)], axis=1)[:512]
    assert analyzer.process(stereo, 0.0).level_db > -20
    ints = (tone(440, 0.1)[:512] * 32767).astype(np.int16)
    assert math.isfinite(analyzer.process(ints, 0.02).energy)
    before = analyzer.latest
    assert analyzer.process(np.zeros(0, dtype=np.float32), 0.03) is before


# --------------------------------------------------------------------------- config


def test_config_reports_every_problem_with_its_key() -> None:
    problems: list[Problem] = []
    build(
        AudioConfig,
        {
            "bands": [200.0, 100.0],
            "block_size": 300,
            "smoothing": {"energy": {"attack": -1}},
            "beat": {"min_bpm": 100.0, "max_bpm": 120.0},
            "devise": "x",
        },
        "audio",
        problems,
    )
    paths = {p.path for p in problems}
    assert {
        "audio.bands",
        "audio.band_names",
        "audio.block_size",
        "audio.smoothing.energy.attack",
        "audio.beat.max_bpm",
        "audio.devise",
    } <= paths
    assert any("did you mean 'device'" in p.message for p in problems)


def test_partial_smoothing_table_keeps_the_feature_defaults() -> None:
    problems: list[Problem] = []
    config = build(AudioConfig, {"smoothing": {"texture": {"attack": 0.2}}}, "audio", problems)
    assert not problems
    assert config.smoothing.texture.attack == 0.2
    assert config.smoothing.texture.release == AudioConfig().smoothing.texture.release


def test_features_come_out_frozen_and_like_any_other() -> None:
    # process() builds Features unfrozen and then gives it the frozen class (see
    # _FeaturesBuilder): the result must be an ordinary, frozen Features.
    analyzer = AudioAnalyzer(AudioConfig(block_size=512))
    loop = drum_loop(120, 2, seed=1)
    for i in range(0, 48000, 512):
        f = analyzer.process(loop.audio[i : i + 512], i / 48000)
    assert type(f) is Features
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.energy = 0.5  # type: ignore[misc]
    assert f == Features(*(getattr(f, x.name) for x in dataclasses.fields(Features)))
    assert pickle.loads(pickle.dumps(f)) == f
    assert dataclasses.replace(f, bpm=99.0).bpm == 99.0


def test_without_timbre_the_beats_are_the_same_and_the_levels_stay_silent() -> None:
    # soundscape analyze runs the analyzer without the band levels, brightness and
    # texture (its output has none): nothing of them may feed the beats.
    loop = drum_loop(124, 12, pattern="house", seed=5)
    full, beats_only = AudioAnalyzer(AudioConfig()), AudioAnalyzer(AudioConfig(), timbre=False)
    fields = ("beat_time", "downbeat", "bpm", "beat_phase", "bar_phase", "onset_time", "energy")
    sounded = 0.0
    for i in range(0, len(loop.audio) - 512 + 1, 512):
        block = loop.audio[i : i + 512]
        a, b = full.process(block, i / 48000), beats_only.process(block, i / 48000)
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
        assert set(b.bands.values()) == {0.0} and b.brightness == b.texture == 0.0
        sounded = max(sounded, *a.bands.values(), a.brightness, a.texture)
    assert sounded > 0.5  # the full analyzer's levels do move on this loop
    assert beats_only.beats.bpm == pytest.approx(124, abs=1)


def test_without_timbre_one_hop_blocks_give_the_same_beats_within_rounding() -> None:
    # A 256 block is one hop: the block's sums are then a product of other shapes, whose
    # last bit may differ from the full analyzer's (a BLAS kernel's choice).
    loop = drum_loop(124, 12, pattern="house", seed=5)
    config = AudioConfig(block_size=256)
    full, beats_only = AudioAnalyzer(config), AudioAnalyzer(config, timbre=False)
    beats: tuple[list[float], list[float]] = ([], [])
    for i in range(0, len(loop.audio) - 256 + 1, 256):
        block = loop.audio[i : i + 256]
        for out, analyzer in zip(beats, (full, beats_only), strict=True):
            f = analyzer.process(block, i / 48000)
            if f.beat_time is not None:
                out.append(f.beat_time)
    assert len(beats[0]) > 15 and len(beats[0]) == len(beats[1])
    assert np.allclose(beats[0], beats[1], rtol=0, atol=1e-9)


def test_the_drums_cue_rises_for_a_click_and_not_for_a_round_bass_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The beat tracker's drums cue (the bins of ``DRUM_BAND`` whose level jumps): a round
    bass note (73 Hz, its harmonics falling as 1/h², about -46 dB at 1 kHz) entering over
    near-silence rises in a few of them, a click of noise (a kick's beater, a clap) in
    about half of them. (A bright sawtooth, falling as 1/h, rises across the band as a
    click does: the cue tells a drum from a bass by the bass's weak upper harmonics.)"""
    sr, block = 48000, 512
    analyzer = AudioAnalyzer(AudioConfig(block_size=block, sample_rate=sr), timbre=False)
    cues: list[float] = []
    update = analyzer.beats.update_bands

    def capture(*args: float) -> bool:
        cues.append(args[7])  # the drums' count, after lo, mid, hi, t, now, dt, onset
        return update(*args)

    monkeypatch.setattr(analyzer.beats, "update_bands", capture)
    t = np.arange(sr) / sr
    bass = sum(np.sin(2 * np.pi * 73.0 * h * t) / h**2 for h in range(1, 60))
    rng = np.random.default_rng(5)
    x = np.zeros(3 * sr)
    x[sr // 2 : sr] = 0.5 * bass[: sr // 2] / np.abs(bass).max()  # the bass note
    x[2 * sr : 2 * sr + 480] = 0.5 * rng.standard_normal(480)  # the click, 10 ms
    # A little noise throughout, so the level the flux reads is never silence's.
    x += 1e-3 * rng.standard_normal(len(x))
    for i in range(0, len(x) - block + 1, block):
        analyzer.process(x[i : i + block], i / sr)
    hop = AudioAnalyzer.HOP / sr
    freqs = np.fft.rfftfreq(analyzer.fft_size, 1 / sr)
    bins = int(np.count_nonzero((freqs >= DRUM_BAND[0]) & (freqs < DRUM_BAND[1])))
    note = max(cues[int(0.45 / hop) : int(0.6 / hop)])
    click = max(cues[int(1.95 / hop) : int(2.1 / hop)])
    assert click > 0.4 * bins  # 20 of 42 bins at 48 kHz
    assert note < 0.1 * bins  # 3
