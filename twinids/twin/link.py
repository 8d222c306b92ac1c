"""The link between each simulated device and its virtual twin, as an attacker who rewrites delivered readings sees it.

An attacker between a device and the platform writes what a packet carries (`PACKET`: the two sensor readings and
the reported actuator). The virtual twin computes its columns (`TWIN_COMPUTED`) from the delivered readings, so they
must follow whatever the attacker wrote: `recompute` runs each device's twin again (the simulator's own
`follow_twin`) over the rewritten readings, from the commands and inputs the platform had, and `follow` gives a
white-box attacker the residuals' gradient with respect to the readings it writes.

The attack is offline, on the recorded test split: the platform's controller acted on the readings as they were
delivered (the attack still does what it did); only what the twin and the detector see is rewritten. The simulation
is run again from the run's own settings (it is deterministic), and the link refuses data its rows do not match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twinids.errors import TwinIDSError
from twinids.twin.devices import DeviceModel
from twinids.twin.network import KEY, PACKET, TWIN_COMPUTED, simulate_devices
from twinids.twin.stream import TwinInputs, follow_twin

SIMULATOR = "twinids.twin.simulate_network"
RESIDUAL_OF = {"residual_primary": "sensor_primary", "residual_secondary": "sensor_secondary"}


@dataclass(frozen=True)
class _Device:
    """One device's rows in the data and what its twin needs to run again over them."""

    rows: np.ndarray  # indices into the data's rows, in time order
    steps: np.ndarray  # the simulation step of each row
    model: DeviceModel
    inputs: TwinInputs
    packets: np.ndarray  # (rows, 3) the delivered readings in the frame's units (PACKET order)
    computed: dict[str, np.ndarray]  # TWIN_COMPUTED name -> recorded value per row, the frame's units
    states: list[tuple[float, float, bool]]  # the twin's state before each step, to resume mid-stream


class SimulatedLink:
    """Which channels an attacker on the simulator's links writes, and the twin columns that follow them.

    Args:
        source: the run's `data.source` (the simulator's settings), run again to recover each twin's inputs.
        data: the run's windowed data (rows in the encoded units the detector reads).
        channels: the packet fields the attacker writes (a subset of `PACKET`); those the data lacks are skipped.
    """

    def __init__(self, source: Any, data: Any, channels: Sequence[str]) -> None:
        from omegaconf import OmegaConf

        names = list(data.feature_names)
        unknown = sorted(set(channels) - set(PACKET))
        if unknown:
            raise TwinIDSError(f"data.link.channels names {unknown}; a packet carries only {list(PACKET)}")
        settings = OmegaConf.to_container(source, resolve=True) if OmegaConf.is_config(source) else dict(source)
        if settings.pop("_target_", None) != SIMULATOR:
            raise TwinIDSError(f"data.link follows the simulator's twins, but {KEY} is not the simulator ({SIMULATOR})")
        if data.row_devices is None or data.row_times is None or data.decoding is None:
            raise TwinIDSError("this data carries no per-row devices, times or decoding, which the twin link needs")
        self.channels = np.array([names.index(name) for name in channels if name in names], dtype=np.int64)
        self.derived = np.array([names.index(name) for name in TWIN_COMPUTED if name in names], dtype=np.int64)
        self._names = names
        self._original = data.rows
        self._offset, self._scale = (np.asarray(part, dtype=np.float64) for part in data.decoding)
        self._gain, self._gate = float(settings["twin_gain"]), float(settings["twin_gate"])
        step_seconds = float(settings["step_seconds"])
        self._devices = [
            _device(name, model, stream, data, step_seconds, self._gain, self._gate)
            for name, (_, model, stream) in simulate_devices(**settings).items()
        ]
        self._check_encoded(data.rows)

    def downstream(self, written: np.ndarray) -> np.ndarray:
        """Per data row, whether its twin columns can follow readings written at `written` (row indices): the rows
        of a written device from its first written row on."""
        mask = np.zeros(len(self._original), dtype=bool)
        written = np.asarray(written)
        for device in self._devices:
            hit = np.isin(device.rows, written)
            if hit.any():
                mask[device.rows[int(np.argmax(hit)) :]] = True
        return mask

    def recompute(self, rows: np.ndarray) -> np.ndarray:
        """`rows` with the twin columns recomputed from their (possibly rewritten) packet readings.

        Entries whose recomputed value equals the recorded one keep their encoded value bit for bit.
        """
        out = rows.copy()
        if len(self.derived) == 0:
            return out
        fields = [PACKET.index(self._names[channel]) for channel in self.channels]
        for device in self._devices:
            block, before = rows[device.rows], self._original[device.rows]
            moved = block[:, self.channels] != before[:, self.channels]
            if not moved.any():
                continue
            first = int(np.argmax(moved.any(axis=1)))
            packets = device.packets.copy()
            for column, (channel, field) in enumerate(zip(self.channels, fields, strict=True)):
                at = moved[:, column]
                packets[at, field] = self._offset[channel] + self._scale[channel] * block[at, channel].astype(
                    np.float64
                )
            step = int(device.steps[first])
            expected = follow_twin(
                device.model,
                device.inputs,
                packets,
                self._gain,
                self._gate,
                start=(step, first, device.states[step]),
            )
            recomputed = _twin_columns(packets[first:], expected)
            for channel in self.derived:
                name = self._names[channel]
                new, old = recomputed[name], device.computed[name][first:]
                changed = new != old
                encoded = (new[changed] - self._offset[channel]) / self._scale[channel]
                out[device.rows[first:][changed], channel] = encoded.astype(out.dtype)
        return out

    def follow(self, rows: Any) -> Any:
        """Torch rows (recomputed by `recompute`) whose residuals move with their readings under autograd.

        The values stay; each residual gains its reading's gradient (d residual / d reading = 1 in the frame's
        units). The twin's expectation is held at its recomputed value: the path through the twin, which folds in
        `twin_gain` of a residual per step, is left out of the gradient (the values themselves are exact).
        """
        rows = rows.clone()
        for channel in self.derived:
            reading = RESIDUAL_OF.get(self._names[channel])
            if reading is None or reading not in self._names:
                continue
            source = self._names.index(reading)
            ratio = float(self._scale[source] / self._scale[channel])
            rows[:, channel] = rows[:, channel] + ratio * (rows[:, source] - rows[:, source].detach())
        return rows

    def _check_encoded(self, rows: np.ndarray) -> None:
        """Refuse data whose packet and twin columns are not what the simulation gives (other settings or data)."""
        for device in self._devices:
            for channel in self.channels:
                raw = device.packets[:, PACKET.index(self._names[channel])]
                self._check_column(rows, device, channel, raw)
            for channel in self.derived:
                self._check_column(rows, device, channel, device.computed[self._names[channel]])

    def _check_column(self, rows: np.ndarray, device: _Device, channel: int, raw: np.ndarray) -> None:
        encoded = (raw - self._offset[channel]) / self._scale[channel]
        if not np.allclose(encoded, rows[device.rows, channel], rtol=1e-5, atol=1e-4):
            raise TwinIDSError(
                f"the data's {self._names[channel]} is not what the simulator's settings give when run again: "
                "the twin link cannot follow it"
            )


def _device(
    name: str, model: DeviceModel, stream: Any, data: Any, step_seconds: float, gain: float, gate: float
) -> _Device:
    """One device's rows matched to its simulation, and its twin's state per step."""
    rows = np.flatnonzero(data.row_devices == name)
    delivered = np.flatnonzero(stream.twin_inputs.delivered)
    steps = np.rint(np.asarray(data.row_times[rows], dtype=np.float64) / step_seconds).astype(np.int64)
    if len(rows) != len(delivered) or not np.array_equal(steps, delivered):
        raise TwinIDSError(
            f"device {name!r}: the data's rows are not the packets the simulator's settings deliver when run again"
        )
    packets = np.column_stack([np.asarray(stream.rows[field], dtype=np.float64) for field in PACKET])
    states: list[tuple[float, float, bool]] = []
    expected = follow_twin(model, stream.twin_inputs, packets, gain, gate, states=states)
    return _Device(rows, steps, model, stream.twin_inputs, packets, _twin_columns(packets, expected), states)


def _twin_columns(packets: np.ndarray, expected: np.ndarray) -> dict[str, np.ndarray]:
    """The TWIN_COMPUTED columns (the frame's units) from delivered packets and the twin's expectation before each,
    computed as `simulate_network` computes them (residual = reading - twin)."""
    return {
        "twin_primary": expected[:, 0],
        "twin_secondary": expected[:, 1],
        "residual_primary": packets[:, 0] - expected[:, 0],
        "residual_secondary": packets[:, 1] - expected[:, 1],
    }
