"""Real FFTs into preallocated arrays, without numpy's per-call wrapper when possible.

``np.fft.rfft`` and ``irfft`` spend more time checking arguments and
allocating than transforming the short frames the analyzer uses. numpy >= 2
runs its pocketfft kernels as ufuncs that write into a given array; they are
internal, so they are used only if they exist and give exactly what the
public functions give on a test signal. Otherwise the public functions are
called and their result copied (numpy 1.26).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Forward = Callable[[np.ndarray, np.ndarray, float], object]
Inverse = Callable[[np.ndarray, np.ndarray], object]


def _kernels() -> tuple[Forward | None, Inverse | None]:
    try:
        from numpy.fft import _pocketfft_umath as pfu  # type: ignore[attr-defined]

        x = np.random.default_rng(0).standard_normal((2, 16))
        spec = np.empty((2, 9), dtype=complex)
        pfu.rfft_n_even(x, 1, out=spec)
        back = np.empty((2, 16))
        pfu.irfft(spec, 1 / 16, out=back)
        if np.array_equal(spec, np.fft.rfft(x)) and np.array_equal(back, np.fft.irfft(spec)):
            return (
                lambda a, out, scale: pfu.rfft_n_even(a, scale, out=out),
                lambda a, out: pfu.irfft(a, 1 / out.shape[-1], out=out),
            )
    except Exception:  # any failure (another numpy): the public calls
        pass
    return None, None


_RFFT, _IRFFT = _kernels()


def _rfft_public(x: np.ndarray, scale: float, out: np.ndarray) -> object:
    out[...] = np.fft.rfft(x)
    if scale != 1.0:
        out *= scale
    return out


def rfft_kernel() -> Callable[..., object]:
    """A function ``f(x, scale, out=out)`` doing what :func:`rfft_into` does, with no wrapper.

    The kernel itself where there is one (a Python call less per transform,
    for the analyzer's per-block path), else the public call.
    """
    if _RFFT is not None:
        from numpy.fft import _pocketfft_umath as pfu  # type: ignore[attr-defined]

        return pfu.rfft_n_even  # type: ignore[no-any-return]
    return _rfft_public


def rfft_into(x: np.ndarray, out: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``np.fft.rfft(x) * scale`` along the last axis (even length) written into ``out``.

    The kernel scales as it goes, which saves a pass over the spectrum.
    """
    if _RFFT is not None:
        _RFFT(x, out, scale)
    else:
        out[...] = np.fft.rfft(x)
        if scale != 1.0:
            out *= scale
    return out


def irfft_into(spec: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.fft.irfft(spec, n)`` along the last axis, n = ``out``'s (even) length, into ``out``."""
    if _IRFFT is not None:
        _IRFFT(spec, out)
    else:
        out[...] = np.fft.irfft(spec, out.shape[-1])
    return out
