"""Response to alerts in the twin (SOAR4IoT): playbooks, the simulator run in closed loop with a detector."""
