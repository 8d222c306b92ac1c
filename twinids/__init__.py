"""twinids: intrusion detection for IoT-enhanced digital twin networks."""
