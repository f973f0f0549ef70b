"""Several aligned channels of one series through the per-series detector, as one alarm stream that names the
channels behind each alarm. Framework-free; the runtime (context_runtime.py) answers with what this computes.

The rule, label-free, with the served detector's settings (bench/anomaly_multivariate.py measures it):

* each channel is scored alone by the univariate detector (its own warm-up, scale, threshold; nulls missing);
* coupled channels are checked together: two channels are coupled when their values over the warm-up rows (all
  present) correlate with |r| >= PEER_CORRELATION. A coupled channel's departure is its value minus the mean of its
  peers' (each standardised with its warm-up mean and standard deviation, a negatively correlated peer negated),
  and that departure series is scored by the same detector, DEPARTURE_SHIFT less sensitive (a departure is mostly
  noise, whose new extremes the detector's range rule would otherwise report; its scores are divided by how much
  wider its limits are, so every score is measured against the one threshold): it alarms when a channel leaves its
  usual relation to the others while each channel alone may look normal (a broken correlation);
* the more channels a request has (k), the more often one of them crosses its line by chance: each channel's
  limits are widened x (1 + SERIES_WIDENING x ln k) (its scores divided by as much, so every score is still read
  against the one threshold). A channel's chance alarms fall about as exp(-1.4 x (f - 1)) when its limits are f
  times wider (fault-free runs, bench/anomaly_channel_line.py), so k channels alarm about as often as one (a
  Bonferroni correction for that tail). The departures keep their own line (DEPARTURE_SHIFT, chosen with their
  chance alarms counted). One channel (k = 1) is scored exactly as a one-channel request;
* with several channels, every channel and every departure is scored by a young detector (the detector's
  young/youth rule): limits x(1 + CHANNEL_YOUTH), a departure's x(1 + DEPARTURE_YOUTH), at the end of the warm-up,
  falling to x1 at YOUNG rows. Right after the warm-up a channel's seen range (the range rule's reference) is
  that of 150 rows, and on fault-free runs nearly all chance alarms were new extremes of that short range in the
  next 200 rows (bench/anomaly_young_channels.py);
* with several channels, a channel's or departure's alarms are at least CHANNEL_REFRACTORY rows apart, however
  short the detector's refractory period (models/nearest_context/4's is 20, chosen on single series), and the
  first CHANNEL_WARMUP rows are learned, however short the detector's warm-up (models/nearest_context/5's is 100):
  every rule above was chosen and measured with 100 and 150;
* a series' point scores the highest of its channels' and departures' scores; an alarm of any of them is a series
  alarm, unless the series alarmed in the JOIN rows before it: then it is the same event, and joins that alarm.
  An alarm names the channels whose own detector alarmed in its event (kind "channels"); when none did, the
  channels whose departures alarmed and scored at least DRIVER_SHARE of the highest of them in the event (kind
  "correlation": one channel pulled away from coupled peers moves its own departure most, theirs by a share), each
  with its highest score over the event's JOIN rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from app.errors import InvalidInput
from app.families.anomaly import series
from app.families.anomaly.detector import DEFAULT, DetectorConfig, Scored, alarm_limits

PEER_CORRELATION = 0.7  # |Pearson r| over the warm-up rows from which two channels are coupled
MIN_COMPLETE_ROWS = 30  # warm-up rows with every channel present needed to measure the correlations
JOIN = 10  # rows after a series alarm within which other channels' alarms are the same event
DEPARTURE_SHIFT = 0.25  # departures are scored this much less sensitive than the channels (x2 limits at 0.25)
SERIES_WIDENING = 0.7  # a request of k channels widens each one's limits x (1 + this x ln k) (0: none)
DRIVER_SHARE = 2 / 3  # a correlation alarm names the departures scoring at least this share of the highest
YOUNG = 600  # with several channels, each channel's and departure's limits are widened until this many rows ...
CHANNEL_YOUTH = 2.0  # ... a channel's x(1 + this) at the end of the warm-up (the detector's young/youth rule)
DEPARTURE_YOUTH = 1.0  # ... a departure's x(1 + this)
CHANNEL_REFRACTORY = 100  # with several channels, at least this many rows between a channel's or departure's alarms
CHANNEL_WARMUP = 150  # with several channels, at least this many rows learned before the first score


@dataclass(frozen=True)
class Alarm:
    index: int
    kind: str  # "channels": their own detectors alarmed; "correlation": only their relation to the others did
    scores: dict[str, float]  # the channels that drove it, each with its highest score in the event's JOIN rows


@dataclass(frozen=True)
class Combined:
    names: list[str]
    channels: list[Scored]  # each channel alone, in the order of `names`
    departures: dict[str, Scored]  # a coupled channel's departure from its peers, by its name
    peers: dict[str, list[str]]  # a coupled channel's peers
    status: list[str]  # per row: "scored" (some channel scored), "warming_up", or "missing" (every channel)
    score: np.ndarray  # per row: the highest channel or departure score (0 where none is scored)
    alarm: np.ndarray  # bool, per row: a series alarm (one per event)
    alarms: list[Alarm]


def rows_config(config: DetectorConfig, channels: int) -> DetectorConfig:
    """The settings rows of this many channels are scored with: one channel's as a one-channel series', several
    channels' with a warm-up of at least CHANNEL_WARMUP rows."""
    return config if channels == 1 else replace(config, warmup=max(config.warmup, CHANNEL_WARMUP))


def check_channels(values: np.ndarray, names: list[str], causal: bool, config: DetectorConfig) -> None:
    """422 naming the first channel with too few present values to score."""
    config = rows_config(config, len(names))
    for c, name in enumerate(names):
        try:
            series.check_length(len(values), causal, config, int(np.isnan(values[:, c]).sum()))
        except InvalidInput as error:
            raise InvalidInput(f"Channel {name!r}: {error.message}", error.detail | {"channel": name}) from None


def coupled(values: np.ndarray, warmup: int) -> dict[int, list[tuple[int, float]]]:
    """For each channel, its peers (index, sign of the correlation) over the warm-up rows where all are present."""
    head = values[:warmup]
    head = head[~np.isnan(head).any(axis=1)]
    if len(head) < MIN_COMPLETE_ROWS or values.shape[1] < 2:
        return {}
    moving = head.std(axis=0) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(head, rowvar=False)
    out: dict[int, list[tuple[int, float]]] = {}
    for c in range(values.shape[1]):
        peers = [
            (p, float(np.sign(r[c, p])))
            for p in range(values.shape[1])
            if p != c and moving[c] and moving[p] and abs(r[c, p]) >= PEER_CORRELATION
        ]
        if peers:
            out[c] = peers
    return out


def standardisation(head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each channel's mean and standard deviation over the warm-up rows `head` (missing values left out; NaN for a
    channel with none there: it is coupled with no other)."""
    mean, std = np.full(head.shape[1], np.nan), np.full(head.shape[1], np.nan)
    for k in np.flatnonzero(~np.isnan(head).all(axis=0)):
        mean[k], std[k] = np.nanmean(head[:, k]), np.nanstd(head[:, k])
    return mean, std


def departure_of(
    values: np.ndarray, c: int, peers: list[tuple[int, float]], mean: np.ndarray, std: np.ndarray
) -> np.ndarray:
    """Channel c standardised, minus the mean of its peers standardised (signed), for any rows of `values`: NaN
    where any of them is missing (row by row, so a stream's parts give the whole series' values)."""

    def z(k: int) -> np.ndarray:
        return (values[:, k] - mean[k]) / std[k]

    return z(c) - np.mean([sign * z(p) for p, sign in peers], axis=0)


def departure(values: np.ndarray, c: int, peers: list[tuple[int, float]], warmup: int) -> np.ndarray:
    """Channel c's departure from its peers, each standardised with its warm-up rows' mean and standard deviation
    (known by the end of the warm-up)."""
    return departure_of(values, c, peers, *standardisation(values[:warmup]))


def departure_scale(config: DetectorConfig, sensitivity: float, shift: float = DEPARTURE_SHIFT) -> tuple[float, float]:
    """(the sensitivity departures are scored at, how much wider their limits are than the channels')."""
    at = max(0.0, sensitivity - shift)
    return at, alarm_limits(config, at)[0] / alarm_limits(config, sensitivity)[0]


def widening(channels: int, per_log: float = SERIES_WIDENING) -> float:
    """How much wider each channel's limits are in a request of this many channels."""
    return 1.0 + per_log * float(np.log(channels))


def widened(config: DetectorConfig, factor: float) -> DetectorConfig:
    """`config` with every alarm limit (threshold, spatial tolerance, onset) `factor` times wider."""
    return replace(
        config,
        threshold=config.threshold * factor,
        spatial_tolerance=config.spatial_tolerance * factor,
        onset=config.onset * factor,
    )


def young(config: DetectorConfig, youth: float) -> DetectorConfig:
    """`config` as a young detector of at least YOUNG rows, at least `youth` wider at the end of the warm-up."""
    return replace(config, young=max(config.young, YOUNG), youth=max(config.youth, youth))


def several(config: DetectorConfig, youth: float) -> DetectorConfig:
    """`config` as a young detector (`youth`) whose alarms are at least CHANNEL_REFRACTORY rows apart."""
    return replace(young(config, youth), refractory=max(config.refractory, CHANNEL_REFRACTORY))


def departure_config(config: DetectorConfig) -> DetectorConfig:
    """The settings a departure is scored with (at its own sensitivity: departure_scale)."""
    return several(config, DEPARTURE_YOUTH)


def channel_config(config: DetectorConfig, channels: int, per_log: float = SERIES_WIDENING) -> DetectorConfig:
    """The settings each channel of a request of this many channels is scored with (one channel: `config`)."""
    return config if channels == 1 else several(widened(config, widening(channels, per_log)), CHANNEL_YOUTH)


def narrowed(scored: Scored, factor: float) -> Scored:
    """Scores of a series whose limits are `factor` times wider, read against the one threshold."""
    return scored if factor == 1 else replace(scored, score=scored.score / factor)


def score(
    values: np.ndarray,
    names: list[str],
    sensitivity: float = 0.5,
    causal: bool = True,
    config: DetectorConfig = DEFAULT,
    shift: float = DEPARTURE_SHIFT,
    per_log: float = SERIES_WIDENING,
) -> Combined:
    """Score rows x channels `values` (NaN: missing) per channel (limits widened x (1 + `per_log` x ln k) for k
    channels) and per coupled channel's departure (at `sensitivity - shift`, at least 0), each series' scores
    divided by how much wider its limits are, so that every score is measured against the same threshold; combine."""
    config = rows_config(config, len(names))
    check_channels(values, names, causal, config)
    wide, each = widening(len(names), per_log), channel_config(config, len(names), per_log)
    channels = [narrowed(series.score_series(values[:, c], sensitivity, causal, each), wide) for c in range(len(names))]
    at, wider = departure_scale(config, sensitivity, shift)
    peers = coupled(values, config.warmup)
    departures: dict[str, Scored] = {}
    for c, its_peers in peers.items():
        d = departure(values, c, its_peers, config.warmup)
        if (~np.isnan(d)).sum() >= series.min_length(causal, config):
            departures[names[c]] = narrowed(series.score_series(d, at, causal, departure_config(config)), wider)
    return combine(names, channels, departures, {names[c]: [names[p] for p, _ in ps] for c, ps in peers.items()})


def scores_of(scored: Scored) -> np.ndarray:
    return np.where(scored.warming_up | scored.missing, 0.0, np.nan_to_num(scored.score))


def named(index: int, names: list[str], by_kind: dict[str, dict[str, float]]) -> Alarm:
    """The alarm of an event from its hits (kind -> channel -> its highest score in the event's JOIN rows)."""
    kind = "channels" if by_kind["channels"] else "correlation"
    found = by_kind[kind]
    top = max(found.values())
    keep = [n for n in names if n in found and (kind == "channels" or found[n] >= DRIVER_SHARE * top)]
    return Alarm(index, kind, {n: found[n] for n in keep})


def row_status(channels: list[Scored]) -> list[str]:
    """Per row: "scored" when some channel is scored there, "missing" when every channel is null, else
    "warming_up"."""
    scored = np.any([~(s.warming_up | s.missing) for s in channels], axis=0)
    missing = np.all([s.missing for s in channels], axis=0)
    return np.where(scored, "scored", np.where(missing, "missing", "warming_up")).tolist()


def combine(
    names: list[str], channels: list[Scored], departures: dict[str, Scored], peers: dict[str, list[str]]
) -> Combined:
    """One alarm stream from the channels' and the departures' own (the module docstring's third point)."""
    rows = len(channels[0].score)
    all_scores = [scores_of(s) for s in [*channels, *departures.values()]]
    combined = np.max(all_scores, axis=0)
    status = row_status(channels)
    hits = [(int(t), "channels", names[c], s) for c, s in enumerate(channels) for t in np.flatnonzero(s.alarm)]
    hits += [(int(t), "correlation", name, s) for name, s in departures.items() for t in np.flatnonzero(s.alarm)]
    events: list[tuple[int, dict[str, dict[str, float]]]] = []  # (first row, kind -> channel -> score)
    for t, kind, name, s in sorted(hits, key=lambda hit: hit[0]):
        if not events or t - events[-1][0] >= JOIN:
            events.append((t, {"channels": {}, "correlation": {}}))
        start = events[-1][0]
        events[-1][1][kind].setdefault(name, float(scores_of(s)[start : start + JOIN].max()))
    alarm = np.zeros(rows, dtype=bool)
    alarms = []
    for t, by_kind in events:
        alarm[t] = True
        alarms.append(named(t, names, by_kind))
    return Combined(names, channels, departures, peers, status, combined, alarm, alarms)
