"""The FFT helpers: numpy's kernels without the wrapper, and the public fallback, agree."""

from __future__ import annotations

import numpy as np
import pytest

from soundscape.audio import fft
from soundscape.audio.config import AudioConfig
from soundscape.audio.features import AudioAnalyzer
from soundscape.audio.synth import drum_loop


@pytest.fixture(params=["kernels", "public"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "public":  # what numpy 1.26 (no _pocketfft_umath) runs
        monkeypatch.setattr(fft, "_RFFT", None)
        monkeypatch.setattr(fft, "_IRFFT", None)
    return str(request.param)


def test_rfft_and_irfft_into_match_numpy(path: str) -> None:
    x = np.random.default_rng(1).standard_normal((2, 1024))
    spec = np.empty((2, 513), dtype=complex)
    assert fft.rfft_into(x, spec) is spec
    np.testing.assert_allclose(spec, np.fft.rfft(x), rtol=1e-12, atol=1e-12)
    fft.rfft_into(x, spec, 0.25)
    np.testing.assert_allclose(spec, np.fft.rfft(x) * 0.25, rtol=1e-12, atol=1e-12)
    power = np.abs(np.fft.rfft(x[0], 2048)) ** 2
    back = np.empty(2048)
    assert fft.irfft_into(power, back) is back
    np.testing.assert_allclose(back, np.fft.irfft(power, 2048), rtol=1e-12, atol=1e-9)


def test_the_analyzer_reads_the_same_through_either_path(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = drum_loop(124, 8, seed=4)

    def read() -> list[tuple[float | None, float, float]]:
        analyzer = AudioAnalyzer(AudioConfig(block_size=512))
        feats = (
            analyzer.process(loop.audio[i : i + 512], i / 48000)
            for i in range(0, len(loop.audio) - 511, 512)
        )
        return [(f.beat_time, f.bpm, f.texture) for f in feats]

    kernels = read()
    monkeypatch.setattr(fft, "_RFFT", None)
    monkeypatch.setattr(fft, "_IRFFT", None)
    public = read()
    assert sum(b is not None for b, _, _ in kernels) >= 10
    assert [b is None for b, _, _ in kernels] == [b is None for b, _, _ in public]
    np.testing.assert_allclose(
        [(b or 0.0, bpm, tex) for b, bpm, tex in kernels],
        [(b or 0.0, bpm, tex) for b, bpm, tex in public],
        atol=1e-6,
    )


def test_rfft_kernel_matches_rfft_into(path: str) -> None:
    x = np.random.default_rng(2).standard_normal((2, 1024))
    spec = np.empty((2, 513), dtype=complex)
    fft.rfft_kernel()(x, 0.25, out=spec)
    np.testing.assert_array_equal(spec, fft.rfft_into(x, np.empty_like(spec), 0.25))
