"""Client-level ε: Opacus's RDP accountant for the Gaussian mechanism on the clients' mean update.

Each aggregated round is one release: clients sampled at rate q = sampled / clients, every update clipped to C,
noise of std σ·C/sampled on the mean (Flower's DP wrappers). A round that aggregates nothing releases nothing.
"""

from __future__ import annotations

from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from twinids.errors import TwinIDSError, first_line


def calibrate_noise(target_epsilon: float, delta: float, sample_rate: float, rounds: int) -> float:
    """σ that spends at most `target_epsilon` over `rounds` releases at client sampling rate `sample_rate`."""
    try:
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=rounds,
                accountant="rdp",
                epsilon_tolerance=0.01,
            )
        )
    except ValueError as error:
        raise TwinIDSError(
            f"federation.client_dp.target_epsilon={target_epsilon} cannot be reached in {rounds} rounds "
            f"({first_line(error)}); raise the target or lower federation.rounds"
        ) from None


class ClientLevelAccountant:
    """ε spent so far by the releases of a federation with client-level DP."""

    def __init__(self, noise_multiplier: float, sample_rate: float, delta: float) -> None:
        self.noise_multiplier = noise_multiplier
        self.sample_rate = sample_rate
        self.delta = delta
        self.accountant = RDPAccountant()
        self.releases = 0

    def release(self) -> float:
        """Count one aggregated round; return ε so far."""
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        self.releases += 1
        return self.epsilon()

    def epsilon(self) -> float:
        """ε of the releases so far (0 before the first)."""
        return float(self.accountant.get_epsilon(delta=self.delta)) if self.releases else 0.0
