"""The built-in digital twin network simulator: device physics, virtual twins and attack injection."""

from twinids.twin.attacks import ATTACKS
from twinids.twin.devices import DEVICE_KINDS
from twinids.twin.network import simulate_network

__all__ = ["ATTACKS", "DEVICE_KINDS", "simulate_network"]
