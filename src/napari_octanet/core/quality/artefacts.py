"""Artefact flags read from the scan itself: what makes an OCTA scan unfit for measuring.

A scan is read as lines: its rows (B-scans along the fast axis) and, for devices that scan the
other way, its columns. Each check measures one number per scan, and a flag is raised where the
number passes its threshold:

* **blink**: a run of lines with no signal (their upper quartile far below the median line's);
* **motion**: a saccade displaces a band of lines sideways (two neighbouring lines match best when one
  is shifted), motion correction repeats a strip (lines that copy a line a few lines away), or a
  decorrelation stripe crosses the scan (one or two lines much brighter or darker than their neighbours);
* **low signal**: the finest detail is mostly noise. Structure is correlated between neighbouring
  pixels and white noise is not, so the high-pass scan's neighbour correlation falls below zero.

The scan is scaled as inference scales it (``preprocess.normalise``), so its dtype and range do
not matter. The thresholds are below, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy.ndimage import gaussian_filter, median_filter

from ..preprocess import as_image_stack, featureless_slices, normalise

# The thresholds. Each was set between the measure on the clean val scans (OCTA-500 3M and 6M, ROSSA;
# 130 scans) and on the same scans with the artefact drawn at moderate strength (quality.simulate);
# docs/confidence.md gives both distributions and the hit and false-flag rates that follow.

#: A line holds no signal when its 75th percentile is below this share of the median line's (blink).
BLANK_LINE_SHARE = 0.15
#: A blink is a run of blank lines at least this share of the scan's lines long (and at least 2 lines).
BLINK_MIN_SHARE = 0.02
#: Motion: two neighbouring lines correlate this much better when one is shifted by 2 or more pixels.
SHIFT_GAIN = 0.5
#: The largest shift searched, as a share of the line's length.
MAX_SHIFT_SHARE = 0.1
#: Motion: a line repeats another when their correlation (fine detail) is at least this...
REPEAT_CORRELATION = 0.9
#: ...for a run of at least this many lines, each repeating the line the same distance away...
REPEAT_MIN_LINES = 3
#: ...which lies 3 lines to this share of the scan's lines away (nearer lines are alike anyway).
REPEAT_MAX_DISTANCE_SHARE = 0.15
#: Motion: a stripe is a line whose median departs this much (scaled intensity) from its neighbours'.
STRIPE_OFFSET = 0.3
#: Low signal: the neighbour correlation of the scan's fine detail (scan minus its 1-px blur) is below this.
FINE_DETAIL_CORRELATION = 0.05

#: Blurs that split a scan into fine detail and the rest (pixels): for the low-signal and the motion checks.
FINE_DETAIL_SIGMA = 1.0
LINE_DETAIL_SIGMA = 3.0
#: Lines each side that the stripe check compares a line with (its running median).
STRIPE_WINDOW = 9
#: Lines next to a blank run that the motion checks leave out (the blur there mixes in the blank run).
BLANK_MARGIN = 3

AXIS_NAMES = ("rows", "columns")
#: The shift check's measure where no two neighbouring lines can be compared (the least a gain can be).
NO_GAIN = -2.0


@dataclass(frozen=True)
class Flag:
    """Something that makes a scan unfit for measuring: ``name`` (blink, motion, ...) and a short reason."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason}


FEATURELESS = "featureless"
FEATURELESS_REASON = "one value everywhere: no signal at all"


def scan_plane(image: np.ndarray) -> np.ndarray:
    """One 2D scan (grey, or RGB turned grey) in its own dtype; a stack is refused with one line."""
    stack, _ = as_image_stack(image)
    if stack.shape[0] != 1:
        raise ValueError(f"expected one 2D scan, got a stack of {stack.shape[0]}; check each slice on its own")
    return stack[0]


@dataclass(frozen=True)
class Inspection:
    """What the checks measured on one scan (by name, for benchmarks and the confidence) and the flags raised."""

    measures: dict[str, float]
    flags: list[Flag]


def artefact_flags(image: np.ndarray) -> list[Flag]:
    """The artefacts found in one 2D scan (empty for a clean scan); a featureless scan gets that flag only."""
    return inspect_scan(image).flags


def inspect_scan(image: np.ndarray) -> Inspection:
    """Run every check on one 2D scan; a featureless scan is measured as nothing and flagged as such."""
    plane = scan_plane(image)
    if featureless_slices(plane[np.newaxis]):
        return Inspection({}, [Flag(FEATURELESS, FEATURELESS_REASON)])
    scan = normalise(plane[np.newaxis])[0]
    detail = scan - gaussian_filter(scan, LINE_DETAIL_SIGMA)
    measures: dict[str, float] = {}
    flags: list[Flag] = []
    for axis, lines in enumerate(AXIS_NAMES):
        along = (np.ascontiguousarray(a.T) if axis else a for a in (scan, detail))
        _check_lines(*along, lines, measures, flags)
    correlation = fine_detail_correlation(scan)
    measures["fine_detail_correlation"] = correlation
    if correlation < FINE_DETAIL_CORRELATION:
        reason = f"fine detail is mostly noise (neighbour correlation {correlation:.2f} < {FINE_DETAIL_CORRELATION})"
        flags.append(Flag("low_signal", reason))
    return Inspection(measures, _one_per_name(flags))


def _one_per_name(flags: list[Flag]) -> list[Flag]:
    """The first flag of each name: a reason names the clearest instance, not every line."""
    seen: dict[str, Flag] = {}
    for flag in flags:
        seen.setdefault(flag.name, flag)
    return list(seen.values())


def _check_lines(
    scan: np.ndarray, detail: np.ndarray, lines: str, measures: dict[str, float], flags: list[Flag]
) -> None:
    """Blink and motion checks along axis 0 of ``scan`` (scaled to [0, 1]), whose lines are called ``lines``.

    ``detail`` is the scan minus its LINE_DETAIL_SIGMA blur. Adds ``<check>_<lines>`` measures and any
    flags raised.
    """
    medians, uppers = line_quantiles(scan, (0.5, 0.75))
    blank = uppers < BLANK_LINE_SHARE * np.median(uppers)
    start, length = longest_run(blank)
    measures[f"blink_share_{lines}"] = length / len(blank)
    if length >= max(2, BLINK_MIN_SHARE * len(blank)):
        flags.append(Flag("blink", f"{lines} {start}-{start + length - 1} hold no signal"))
    usable = ~_widen(blank, BLANK_MARGIN)
    detail = _unit_lines(detail)
    where, shift, gain = best_shift(detail, usable)
    measures[f"shift_gain_{lines}"] = gain
    if gain >= SHIFT_GAIN:
        flags.append(Flag("motion", f"{lines} {where} and {where + 1} are displaced by {abs(shift)} px"))
    repeat = repeated_run(detail, usable)
    measures[f"repeated_{lines}"] = 0 if repeat is None else repeat[1]
    if repeat is not None and repeat[1] >= REPEAT_MIN_LINES:
        first, count, distance = repeat
        flags.append(Flag("motion", f"{lines} {first}-{first + count - 1} repeat those {distance} before them"))
    where, offset = strongest_stripe(medians, usable)
    measures[f"stripe_offset_{lines}"] = abs(offset)
    if abs(offset) >= STRIPE_OFFSET:
        kind = "bright" if offset > 0 else "dark"
        flags.append(Flag("motion", f"a {kind} stripe crosses the scan at {lines[:-1]} {where}"))


def line_quantiles(scan: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """Each line's quantiles (nearest rank), one row per quantile: sorting beats ``np.percentile`` per line."""
    ordered = np.sort(scan, axis=1)
    last = scan.shape[1] - 1
    return ordered[:, [round(q * last) for q in quantiles]].T


def longest_run(mask: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of True in a 1D mask; (0, 0) when there is none."""
    padded = np.concatenate(([0], mask.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    if edges.size == 0:
        return 0, 0
    starts, stops = edges[::2], edges[1::2]
    longest = int(np.argmax(stops - starts))
    return int(starts[longest]), int(stops[longest] - starts[longest])


def _widen(mask: np.ndarray, margin: int) -> np.ndarray:
    """``mask`` with each True spread ``margin`` entries either way."""
    widened = mask.copy()
    for step in range(1, margin + 1):
        widened[step:] |= mask[:-step]
        widened[:-step] |= mask[step:]
    return widened


def _unit_lines(detail: np.ndarray) -> np.ndarray:
    """Each line of ``detail`` centred and scaled to unit length (0 for a flat line)."""
    detail = detail - detail.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(detail, axis=1, keepdims=True)
    return np.divide(detail, norms, out=np.zeros_like(detail), where=norms > 1e-9)


def best_shift(detail: np.ndarray, usable: np.ndarray) -> tuple[int, int, float]:
    """(line, shift, gain): where shifting line+1 against line raises their correlation most, and by how much.

    The gain compares the best shift of 2 or more pixels (up to MAX_SHIFT_SHARE of the line) with no
    shift; for neighbouring lines of an undisturbed scan it is negative. NO_GAIN without usable pairs.
    """
    pairs = usable[:-1] & usable[1:]
    if not pairs.any():
        return 0, 0, NO_GAIN
    spectra = scipy.fft.rfft(detail, axis=1)
    correlation = scipy.fft.irfft(spectra[:-1] * np.conj(spectra[1:]), n=detail.shape[1], axis=1)
    reach = max(2, int(detail.shape[1] * MAX_SHIFT_SHARE))
    shifts = np.r_[2 : reach + 1, -reach:-1]
    shifted = correlation[:, shifts]
    gains = np.where(pairs, shifted.max(axis=1) - correlation[:, 0], NO_GAIN)
    line = int(np.argmax(gains))
    return line, int(shifts[int(np.argmax(shifted[line]))]), float(gains[line])


def repeated_run(detail: np.ndarray, usable: np.ndarray) -> tuple[int, int, int] | None:
    """(first line, count, distance) of the longest run of lines that repeat the line ``distance`` before.

    None when no line does. Distances from 3 lines to REPEAT_MAX_DISTANCE_SHARE of the scan are searched.
    """
    best: tuple[int, int, int] | None = None
    correlations = detail @ detail.T
    for distance in range(3, max(4, int(len(detail) * REPEAT_MAX_DISTANCE_SHARE) + 1)):
        alike = np.diagonal(correlations, -distance) >= REPEAT_CORRELATION
        alike &= usable[distance:] & usable[:-distance]
        start, count = longest_run(alike)
        if count > 0 and (best is None or count > best[1]):
            best = (start + distance, count, distance)
    return best


def strongest_stripe(medians: np.ndarray, usable: np.ndarray) -> tuple[int, float]:
    """(line, offset): the line whose median departs most from the running median of its neighbours' medians."""
    offsets = np.where(usable, medians - median_filter(medians, STRIPE_WINDOW, mode="nearest"), 0.0)
    line = int(np.argmax(np.abs(offsets)))
    return line, float(offsets[line])


def fine_detail_correlation(scan: np.ndarray) -> float:
    """Correlation of neighbouring pixels' fine detail (scan minus its 1-px blur), rows and columns averaged.

    Vessels and capillaries span a few pixels, so their detail is positively correlated; white noise's
    detail is negatively correlated. 0 for a scan without detail.
    """
    detail = scan - gaussian_filter(scan, FINE_DETAIL_SIGMA)
    detail -= detail.mean()
    energy = float((detail * detail).sum())
    if energy <= 1e-12:
        return 0.0
    across = (detail[:, 1:] * detail[:, :-1]).sum() / energy
    down = (detail[1:] * detail[:-1]).sum() / energy
    return float((across + down) / 2)
